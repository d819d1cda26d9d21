"""Marshmallow schemas of the public contract (../shared/API.md). Unknown fields are rejected (422)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

import marshmallow as ma
from marshmallow import validate

from handbook.extensions import MAX_ID
from handbook.pagination import DEFAULT_LIMIT, MAX_LIMIT
from handbook.text import NO_BAD_CHARACTERS_PATTERN, has_bad_characters
from handbook.timeutil import local_zone


def _has_bad_characters(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if has_bad_characters(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def input_string_pattern(self, field, ret, **kwargs) -> dict:
    """apispec attribute function: every string field without a pattern of its own is documented with the
    characters StrictSchema refuses (so that the OpenAPI document says what the server enforces)."""
    if isinstance(field, ma.fields.String) and "pattern" not in ret and not field.dump_only:
        return {"pattern": NO_BAD_CHARACTERS_PATTERN}
    return {}


def document_rules(schemas: dict) -> None:
    """Rules across fields that marshmallow's fields cannot state, added to their OpenAPI components:
    a device needs `fid` or `token`; only a study document (kind=study) belongs to a series."""
    if "DeviceIn" in schemas:
        schemas["DeviceIn"]["anyOf"] = [{"required": ["fid"]}, {"required": ["token"]}]
    if "DocumentCreate" in schemas:
        schemas["DocumentCreate"]["anyOf"] = [
            {"properties": {"kind": {"type": "string", "enum": ["study"]}}, "required": ["kind"]},
            {"not": {"required": ["series_id"]}},
            {"properties": {"series_id": {"nullable": True, "enum": [None]}}},
        ]


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def booleans_are_booleans(self, data, **kwargs):
        """In a JSON body a boolean field takes true or false only: marshmallow would also take 0, 1.0,
        "yes" or "on", which the OpenAPI document (type: boolean) says are refused. Query strings and form
        parts are text and come as a MultiDictProxy: "true"/"false" stay theirs."""
        if isinstance(data, dict):
            errors = {}
            for name, field in self.load_fields.items():
                key = field.data_key or name
                if isinstance(field, ma.fields.Boolean) and data.get(key) is not None \
                        and not isinstance(data[key], bool):
                    errors[key] = ["Not a valid boolean."]
            if errors:
                raise ma.ValidationError(errors)
        return data

    @ma.pre_load
    def reject_bad_characters(self, data, **kwargs):
        # A JSON body is a dict; query strings and form parts come as webargs' MultiDictProxy (a Mapping).
        if isinstance(data, Mapping):
            errors = {str(k): ["invalid_characters"] for k, v in data.items() if _has_bad_characters([k, v])}
            if errors:
                raise ma.ValidationError(errors)
        return data


class UnitBriefSchema(StrictSchema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String(metadata={"enum": ["city", "upper", "grassroots", "sub", "branch"]})


class RoleGrantSchema(StrictSchema):
    role = ma.fields.String(metadata={"enum": ["secretary", "committee", "publisher", "admin"]})
    org_unit = ma.fields.Nested(UnitBriefSchema)


class MeSchema(StrictSchema):
    id = ma.fields.Integer()
    card_number = ma.fields.String()
    full_name = ma.fields.String()
    phone = ma.fields.String(allow_none=True)
    org_unit = ma.fields.Nested(UnitBriefSchema)
    ancestors = ma.fields.List(ma.fields.Nested(UnitBriefSchema), metadata={"description": "Root first"})
    roles = ma.fields.List(ma.fields.Nested(RoleGrantSchema))


class LoginSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(min=1, max=64),
                                metadata={"description": "Party card number or phone number"})
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class TokenPairSchema(StrictSchema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String(dump_default="Bearer")
    expires_in = ma.fields.Integer(metadata={"description": "Access token lifetime in seconds"})


class LoginResponseSchema(TokenPairSchema):
    member = ma.fields.Nested(MeSchema)


class PasswordChangeSchema(StrictSchema):
    current_password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    new_password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class SummarySchema(StrictSchema):
    pending = ma.fields.Integer()
    overdue = ma.fields.Integer()
    unread_notifications = ma.fields.Integer()


class StatusSchema(StrictSchema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


# --- times ---------------------------------------------------------------------------------------

class UtcDateTime(ma.fields.DateTime):
    """RFC 3339 with offset; SQLite hands back naive UTC datetimes, which get their +00:00 here."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class LocalDateTime(UtcDateTime):
    """A time shown in HANDBOOK_TIMEZONE (deadlines are ends of local days: 23:59:59+07:00)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None:
            value = (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(local_zone())
        return super()._serialize(value, attr, obj, **kwargs)


class AwareUtcDateTime(ma.fields.AwareDateTime):
    """An input time that must carry its UTC offset; handed on in UTC (0001-01-01+07:00 is refused)."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


def aware_datetime(**kwargs):
    return AwareUtcDateTime(**kwargs)


def id_field(**kwargs) -> ma.fields.Integer:
    """An input id: from 1 to MAX_ID (past it there is no such row; the database must not see it)."""
    return ma.fields.Integer(validate=validate.Range(1, MAX_ID), **kwargs)


LIMIT = ma.fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT),
                          metadata={"description": f"Page size (default {DEFAULT_LIMIT}, max {MAX_LIMIT})"})
CURSOR = ma.fields.String(validate=[validate.Length(max=512), validate.Regexp(r"^[A-Za-z0-9_-]*$", error="invalid_cursor")],
                          metadata={"description": "`next_cursor` of the previous page (empty: the first page)"})


class PageArgs(StrictSchema):
    limit = LIMIT
    cursor = CURSOR


# --- reading -------------------------------------------------------------------------------------

DOCUMENT_KINDS = ["directive", "resolution", "conclusion", "plan", "guidance", "notice", "study"]
READER_STATES = ["new", "opened", "acknowledged", "pending", "overdue", "exempt"]


class MyStateSchema(StrictSchema):
    state = ma.fields.String(metadata={"enum": ["new", "opened", "acknowledged", "overdue", "exempt"]})
    opened_at = UtcDateTime(allow_none=True)
    acknowledged_at = UtcDateTime(allow_none=True)
    acknowledged_version = ma.fields.Integer(allow_none=True)


class SeriesRefSchema(StrictSchema):
    id = ma.fields.Integer()
    lesson_no = ma.fields.Integer(allow_none=True)
    title = ma.fields.String()


class DocumentItemSchema(StrictSchema):
    """A feed item. In delta sync, a withdrawn document is only `{"id", "withdrawn": true, "updated_at"}`."""

    id = ma.fields.Integer()
    withdrawn = ma.fields.Boolean(metadata={"description": "Present (true) on delta-sync tombstones only"})
    kind = ma.fields.String(metadata={"enum": DOCUMENT_KINDS})
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()
    summary = ma.fields.String()
    issuing_body = ma.fields.String(allow_none=True)
    issued_on = ma.fields.Date(allow_none=True)
    published_at = UtcDateTime(allow_none=True)
    requires_ack = ma.fields.Boolean()
    deadline = LocalDateTime(allow_none=True, metadata={"description": "End of the last local day to acknowledge"})
    version = ma.fields.Integer()
    ack_version = ma.fields.Integer(metadata={"description": "The version members must have acknowledged"})
    updated_at = UtcDateTime(metadata={"description": "Last change for readers; resume delta sync from it"})
    tags = ma.fields.List(ma.fields.String())
    series = ma.fields.Nested(SeriesRefSchema, allow_none=True)
    my = ma.fields.Nested(MyStateSchema)


class FeedSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(DocumentItemSchema))
    next_cursor = ma.fields.String(allow_none=True)
    reset = ma.fields.Boolean(metadata={
        "description": "True when the member moved to another unit since `updated_since`: drop the cache, "
                       "the items are a full list"})
    watermark = UtcDateTime(metadata={
        "description": "Delta sync, last page: pass it as the next `updated_since`"})


class FeedArgs(PageArgs):
    kind = ma.fields.String(validate=validate.OneOf(DOCUMENT_KINDS))
    state = ma.fields.String(validate=validate.OneOf(READER_STATES))
    q = ma.fields.String(validate=validate.Length(min=1, max=200),
                         metadata={"description": "Words to find (accents, case and đ/d ignored; all must match)"})
    updated_since = aware_datetime(metadata={"description": "Delta sync: changes at or after this time"})


class AttachmentSchema(StrictSchema):
    id = ma.fields.Integer()
    filename = ma.fields.String()
    content_type = ma.fields.String()
    size = ma.fields.Integer()
    sha256 = ma.fields.String()


class DocumentDetailSchema(DocumentItemSchema):
    body_html = ma.fields.String(metadata={"description": "Sanitised HTML"})
    attachments = ma.fields.List(ma.fields.Nested(AttachmentSchema))


class SeriesProgressSchema(StrictSchema):
    lessons = ma.fields.Integer()
    completed = ma.fields.Integer()


class SeriesSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    summary = ma.fields.String()
    progress = ma.fields.Nested(SeriesProgressSchema)


class SeriesListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(SeriesSchema))


class SeriesDetailSchema(SeriesSchema):
    lessons = ma.fields.List(ma.fields.Nested(DocumentItemSchema))


# --- publishing ----------------------------------------------------------------------------------

ROLE_NAMES = ["secretary", "committee", "publisher", "admin"]
DOCUMENT_STATUSES = ["draft", "scheduled", "published", "withdrawn"]


class AudienceInSchema(StrictSchema):
    org_units = ma.fields.List(id_field(strict=True), required=True, validate=validate.Length(min=1, max=500),
                               metadata={"description": "Units whose whole subtrees receive the document"})
    roles = ma.fields.List(ma.fields.String(validate=validate.OneOf(ROLE_NAMES)), validate=validate.Length(max=4),
                           metadata={"description": "Optional: only members holding one of these roles"})


class DocumentWriteSchema(StrictSchema):
    kind = ma.fields.String(validate=validate.OneOf(DOCUMENT_KINDS))
    number = ma.fields.String(allow_none=True, validate=validate.Length(max=64), metadata={"example": "24-CT/TU"})
    title = ma.fields.String(validate=validate.Length(min=1, max=500))
    summary = ma.fields.String(validate=validate.Length(max=5000))
    body_html = ma.fields.String(validate=validate.Length(max=2_000_000),
                                 metadata={"description": "HTML; sanitised on save (no scripts, handlers, js: URLs)"})
    issuing_body = ma.fields.String(allow_none=True, validate=validate.Length(max=255))
    issued_on = ma.fields.Date(allow_none=True)
    requires_ack = ma.fields.Boolean()
    ack_days = ma.fields.Integer(strict=True, validate=validate.Range(1, 365))
    audience = ma.fields.Nested(AudienceInSchema)
    tags = ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=30))
    owner_unit = id_field(strict=True, metadata={
        "description": "Issuing unit (default: your publishing unit that covers the audience)"})
    series_id = id_field(strict=True, allow_none=True, metadata={
        "description": "Study series; only a study document (kind=study) belongs to one (422 otherwise)"})
    lesson_no = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 10000))


class DocumentCreateSchema(DocumentWriteSchema):
    class Meta(DocumentWriteSchema.Meta):
        pass

    kind = ma.fields.String(required=True, validate=validate.OneOf(DOCUMENT_KINDS))
    title = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))
    audience = ma.fields.Nested(AudienceInSchema, required=True)


class DocumentPatchSchema(DocumentWriteSchema):
    reack = ma.fields.Boolean(metadata={
        "description": "Published documents: true for a material change that members must acknowledge again"})
    note = ma.fields.String(allow_none=True, validate=validate.Length(max=2000), metadata={"description": "What changed"})


class PublishSchema(StrictSchema):
    publish_at = aware_datetime(allow_none=True, metadata={"description": "Future time to schedule; empty: now"})
    urgent = ma.fields.Boolean(load_default=False,
                               metadata={"description": "Push even during quiet hours (QUIET_HOURS)"})


class WithdrawSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class PublishResultSchema(StrictSchema):
    status = ma.fields.String(metadata={"enum": ["published", "scheduled"]})
    published_at = UtcDateTime(allow_none=True)
    deadline = LocalDateTime(allow_none=True)
    notification_id = ma.fields.Integer(allow_none=True)


class AudienceOutSchema(StrictSchema):
    org_units = ma.fields.List(ma.fields.Nested(UnitBriefSchema))
    roles = ma.fields.List(ma.fields.String(metadata={"enum": ROLE_NAMES}))


class AdminDocumentSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": DOCUMENT_KINDS})
    status = ma.fields.String(metadata={"enum": DOCUMENT_STATUSES})
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()
    summary = ma.fields.String()
    issuing_body = ma.fields.String(allow_none=True)
    issued_on = ma.fields.Date(allow_none=True)
    tags = ma.fields.List(ma.fields.String())
    owner_unit = ma.fields.Nested(UnitBriefSchema)
    audience = ma.fields.Nested(AudienceOutSchema)
    requires_ack = ma.fields.Boolean()
    ack_days = ma.fields.Integer()
    version = ma.fields.Integer()
    ack_version = ma.fields.Integer()
    series_id = ma.fields.Integer(allow_none=True)
    lesson_no = ma.fields.Integer(allow_none=True)
    published_at = UtcDateTime(allow_none=True)
    deadline = LocalDateTime(allow_none=True)
    withdrawn_at = UtcDateTime(allow_none=True)
    withdraw_reason = ma.fields.String(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class AdminDocumentDetailSchema(AdminDocumentSchema):
    body_html = ma.fields.String()
    attachments = ma.fields.List(ma.fields.Nested(AttachmentSchema))


class AdminDocumentListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(AdminDocumentSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AdminDocumentArgs(PageArgs):
    status = ma.fields.String(validate=validate.OneOf(DOCUMENT_STATUSES))
    kind = ma.fields.String(validate=validate.OneOf(DOCUMENT_KINDS))


class VersionSchema(StrictSchema):
    version = ma.fields.Integer()
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()
    summary = ma.fields.String()
    issuing_body = ma.fields.String(allow_none=True)
    issued_on = ma.fields.Date(allow_none=True)
    tags = ma.fields.List(ma.fields.String())
    reack = ma.fields.Boolean(metadata={"description": "This version had to be acknowledged again"})
    note = ma.fields.String(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class VersionDetailSchema(VersionSchema):
    body_html = ma.fields.String()


class VersionListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(VersionSchema))


class SeriesCreateSchema(StrictSchema):
    title = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))
    summary = ma.fields.String(validate=validate.Length(max=5000))
    owner_unit = id_field(strict=True)


class SeriesAdminSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    summary = ma.fields.String()
    owner_unit = ma.fields.Nested(UnitBriefSchema)
    created_at = UtcDateTime()


# --- audit ---------------------------------------------------------------------------------------

class AuditArgs(PageArgs):
    actor = id_field(metadata={"description": "Member id of the actor"})
    action = ma.fields.String(validate=validate.Length(min=1, max=64), metadata={"example": "document.publish"})
    since = aware_datetime()


class ActorSchema(StrictSchema):
    id = ma.fields.Integer()
    card_number = ma.fields.String()
    full_name = ma.fields.String()


class AuditEntrySchema(StrictSchema):
    id = ma.fields.Integer()
    at = UtcDateTime()
    actor = ma.fields.Nested(ActorSchema, allow_none=True)
    action = ma.fields.String()
    target_type = ma.fields.String(allow_none=True)
    target_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()


class AuditListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)


# --- acknowledgements ----------------------------------------------------------------------------

PLATFORMS = ["android", "ios", "web"]


class AcknowledgeSchema(StrictSchema):
    version = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1),
                                metadata={"description": "The version the member read"})
    acknowledged_at = aware_datetime(allow_none=True, metadata={
        "description": "Client time (offline); clamped to [publication, now], the server time is kept too"})
    platform = ma.fields.String(validate=validate.OneOf(PLATFORMS))
    device = ma.fields.String(validate=validate.Length(max=128))


class AcknowledgementSchema(StrictSchema):
    state = ma.fields.String(metadata={"enum": ["acknowledged"]})
    opened_at = UtcDateTime(allow_none=True)
    acknowledged_at = UtcDateTime(allow_none=True)
    acknowledged_version = ma.fields.Integer(allow_none=True)


class SyncItemSchema(StrictSchema):
    document_id = id_field(required=True, strict=True)
    version = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    opened_at = aware_datetime(allow_none=True)
    acknowledged_at = aware_datetime(allow_none=True)


class SyncSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(SyncItemSchema), required=True, validate=validate.Length(max=500))
    platform = ma.fields.String(validate=validate.OneOf(PLATFORMS))
    device = ma.fields.String(validate=validate.Length(max=128))


class SyncResultSchema(StrictSchema):
    document_id = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": ["ok", "stale_version", "not_found", "not_required", "invalid",
                                                 "read_too_fast", "quiz_required"]})
    current_version = ma.fields.Integer(metadata={"description": "With stale_version: the current version"})
    quiz_id = ma.fields.Integer(metadata={"description": "With quiz_required: the quiz to pass first"})


class SyncResultsSchema(StrictSchema):
    results = ma.fields.List(ma.fields.Nested(SyncResultSchema))


# --- following up --------------------------------------------------------------------------------

MEMBER_STATES = ["new", "opened", "acknowledged", "pending", "overdue", "exempt"]


class ProgressArgs(StrictSchema):
    org_unit = id_field(metadata={"description": "Unit to report on (default: the caller's scope root)"})


class FiguresSchema(StrictSchema):
    total = ma.fields.Integer(metadata={"description": "Audience members in the subtree"})
    acknowledged = ma.fields.Integer()
    opened = ma.fields.Integer(metadata={"description": "Opened, not acknowledged, not exempt"})
    pending = ma.fields.Integer(metadata={"description": "total - acknowledged - exempt"})
    overdue = ma.fields.Integer(metadata={"description": "pending, once the deadline has passed"})
    exempt = ma.fields.Integer()


class ChildProgressSchema(FiguresSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)


class ProgressSchema(FiguresSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    deadline = LocalDateTime(allow_none=True)
    children = ma.fields.List(ma.fields.Nested(ChildProgressSchema))


class DailyPointSchema(StrictSchema):
    day = ma.fields.Date(metadata={"description": "Local day (HANDBOOK_TIMEZONE)"})
    total = ma.fields.Integer(metadata={"description": "Audience members in the subtree that day"})
    acknowledged = ma.fields.Integer()
    opened = ma.fields.Integer(metadata={"description": "Opened, not acknowledged, not exempt"})
    exempt = ma.fields.Integer()
    pending = ma.fields.Integer(metadata={"description": "total - acknowledged - exempt"})
    live = ma.fields.Boolean(metadata={"description": "true for today: read now from the live counters; "
                                                      "false: taken at the end of that day"})


class DailyProgressSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    published_on = ma.fields.Date(allow_none=True)
    deadline = LocalDateTime(allow_none=True)
    deadline_day = ma.fields.Date(allow_none=True)
    as_of = LocalDateTime()
    days = ma.fields.List(ma.fields.Nested(DailyPointSchema),
                          metadata={"description": "Oldest first; days when no snapshot was taken are missing"})


class MemberListArgs(PageArgs):
    org_unit = id_field()
    state = ma.fields.String(validate=validate.OneOf(MEMBER_STATES))
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "xlsx"]),
                              metadata={"description": "csv (UTF-8 with BOM, opens in Excel) and xlsx stream every row"})


class MemberBriefSchema(ActorSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)


class MemberStateSchema(StrictSchema):
    member = ma.fields.Nested(MemberBriefSchema)
    state = ma.fields.String(metadata={"enum": ["new", "opened", "acknowledged", "overdue", "exempt"]})
    opened_at = UtcDateTime(allow_none=True)
    acknowledged_at = UtcDateTime(allow_none=True)
    acknowledged_version = ma.fields.Integer(allow_none=True)
    method = ma.fields.String(allow_none=True, metadata={"enum": ["app", "briefing", "meeting"]})
    exempt_reason = ma.fields.String(allow_none=True)
    held_on = ma.fields.Date(allow_none=True)
    extended_until = ma.fields.Date(allow_none=True, metadata={"description": "A deadline extension: not overdue, "
                                                                             "nor reminded, until this day ends"})
    extension_reason = ma.fields.String(allow_none=True)


class MemberStateListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(MemberStateSchema))
    next_cursor = ma.fields.String(allow_none=True)


MEMBER_IDS = ma.fields.List(id_field(strict=True), required=True, validate=validate.Length(min=1, max=500))


class ExtensionSchema(StrictSchema):
    member_ids = MEMBER_IDS
    until = ma.fields.Date(required=True, metadata={"description": "A day after the deadline (at most 90 days)"})
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class BriefingSchema(StrictSchema):
    member_ids = MEMBER_IDS
    method = ma.fields.String(required=True, validate=validate.OneOf(["briefing"]))
    held_on = ma.fields.Date(required=True, metadata={"description": "Date of the branch meeting"})
    note = ma.fields.String(allow_none=True, validate=validate.Length(max=2000))


class ExemptionSchema(StrictSchema):
    member_ids = MEMBER_IDS
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class MemberResultSchema(StrictSchema):
    member_id = ma.fields.Integer()
    status = ma.fields.String(metadata={"enum": ["ok", "already_acknowledged", "not_found"]})


class MemberResultsSchema(StrictSchema):
    results = ma.fields.List(ma.fields.Nested(MemberResultSchema))


class OverviewDocumentSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": DOCUMENT_KINDS})
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()
    published_at = UtcDateTime()
    deadline = LocalDateTime(allow_none=True)
    version = ma.fields.Integer()


class OverviewItemSchema(FiguresSchema):
    document = ma.fields.Nested(OverviewDocumentSchema)
    percent = ma.fields.Float(metadata={"description": "(acknowledged + exempt) / total, in %"})
    days_left = ma.fields.Integer(metadata={"description": "Local days until the deadline; negative once overdue"})


class OverviewSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    items = ma.fields.List(ma.fields.Nested(OverviewItemSchema))


class ComplianceFiguresSchema(StrictSchema):
    total = ma.fields.Integer()
    acknowledged = ma.fields.Integer(metadata={"description": "Acknowledged by the deadline"})
    exempt = ma.fields.Integer()
    pending = ma.fields.Integer(metadata={"description": "Not acknowledged by the deadline, not exempt"})
    reached = ma.fields.Boolean(metadata={"description": "Every member acknowledged in time or was exempt"})


class ChildComplianceSchema(ComplianceFiguresSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)


class ComplianceItemSchema(ComplianceFiguresSchema):
    document = ma.fields.Nested(OverviewDocumentSchema)
    units_reached = ma.fields.Integer()
    units_total = ma.fields.Integer()
    children = ma.fields.List(ma.fields.Nested(ChildComplianceSchema))


class ComplianceSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    items = ma.fields.List(ma.fields.Nested(ComplianceItemSchema))
    next_cursor = ma.fields.String(allow_none=True)


# --- devices -------------------------------------------------------------------------------------

class DeviceInSchema(StrictSchema):
    fid = ma.fields.String(validate=validate.Length(min=1, max=255),
                           metadata={"description": "Firebase installation ID (preferred)"})
    token = ma.fields.String(validate=validate.Length(min=1, max=1024),
                             metadata={"description": "FCM registration token (legacy)"})
    platform = ma.fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    app_version = ma.fields.String(validate=validate.Length(max=64))
    locale = ma.fields.String(validate=validate.Length(max=35), metadata={"example": "vi-VN"})


class DeviceSchema(StrictSchema):
    id = ma.fields.Integer()
    fid = ma.fields.String(allow_none=True)
    token = ma.fields.String(allow_none=True)
    platform = ma.fields.String(metadata={"enum": PLATFORMS})
    app_version = ma.fields.String(allow_none=True)
    locale = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()
    last_seen_at = UtcDateTime()


class DeviceListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(DeviceSchema))


# --- notifications -------------------------------------------------------------------------------

NOTIFICATION_KINDS = ["published", "reack", "reminder", "manual", "escalation", "answer", "meeting",
                      "meeting_reminder", "meeting_changed", "meeting_cancelled"]


class InboxArgs(PageArgs):
    unread = ma.fields.Boolean(metadata={"description": "true: only unread; false: only read"})


class InboxDocumentSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": DOCUMENT_KINDS})
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()
    deadline = LocalDateTime(allow_none=True)
    status = ma.fields.String()


class InboxMeetingSchema(StrictSchema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    starts_at = LocalDateTime()
    place = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["scheduled", "closed", "cancelled"]})


class EscalationUnitSchema(StrictSchema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    pending = ma.fields.Integer()
    names = ma.fields.List(ma.fields.String(), metadata={"description": "Pending members (at most 30 per unit)"})


class InboxItemSchema(StrictSchema):
    id = ma.fields.Integer()
    notification_id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": NOTIFICATION_KINDS})
    title = ma.fields.String()
    body = ma.fields.String()
    document = ma.fields.Nested(InboxDocumentSchema, allow_none=True,
                                metadata={"description": "The document it is about (null for meeting notices)"})
    meeting = ma.fields.Nested(InboxMeetingSchema, allow_none=True,
                               metadata={"description": "Meeting notices: the meeting"})
    units = ma.fields.List(ma.fields.Nested(EscalationUnitSchema), allow_none=True,
                           metadata={"description": "Escalations: the secretary's units with pending members"})
    created_at = UtcDateTime()
    read_at = UtcDateTime(allow_none=True)


class InboxSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(InboxItemSchema))
    next_cursor = ma.fields.String(allow_none=True)


class ReadAllSchema(StrictSchema):
    read = ma.fields.Integer(metadata={"description": "How many were unread"})


class ReminderInSchema(StrictSchema):
    org_unit = id_field(required=True, strict=True)


class ReminderResultSchema(StrictSchema):
    notification_id = ma.fields.Integer()
    recipients = ma.fields.Integer(metadata={"description": "Pending members of the unit now"})
    due_at = UtcDateTime(metadata={"description": "When the push goes (later than now during quiet hours)"})


class NotificationStatsSchema(StrictSchema):
    id = ma.fields.Integer()
    kind = ma.fields.String(metadata={"enum": NOTIFICATION_KINDS})
    state = ma.fields.String(metadata={"enum": ["pending", "sending", "done", "cancelled"]})
    document_id = ma.fields.Integer(allow_none=True)
    meeting_id = ma.fields.Integer(allow_none=True)
    org_unit_id = ma.fields.Integer(allow_none=True)
    urgent = ma.fields.Boolean()
    recipients = ma.fields.Integer(metadata={"description": "Members it is for (inbox items)"})
    devices = ma.fields.Integer(metadata={"description": "Their registered devices"})
    sent = ma.fields.Integer(metadata={"description": "Devices FCM accepted the push for"})
    failed = ma.fields.Integer(metadata={"description": "Devices given up on (attempts exhausted, configuration)"})
    invalid_tokens = ma.fields.Integer(metadata={"description": "Devices FCM called dead (deleted)"})
    resent = ma.fields.Integer(metadata={"description": "Pushes sent again because a worker died mid-send"})
    skipped = ma.fields.Integer(metadata={"description": "Devices not sent to: their member acted meanwhile, the "
                                                         "phone moved to someone else, or it was withdrawn"})
    in_progress = ma.fields.Integer(metadata={"description": "Devices queued, being sent or waiting to retry"})
    due_at = UtcDateTime()
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
