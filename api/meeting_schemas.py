"""Schemas of the meetings, questions and adoption endpoints (../shared/API.md, "Meetings, questions,
adoption")."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.schemas import LocalDateTime, PageArgs, StrictSchema, UnitBriefSchema, UtcDateTime, aware_datetime, id_field
from content.meetings import HTTPS_URL

MEETING_KINDS = ["regular", "thematic", "extraordinary"]
MEETING_STATUSES = ["scheduled", "open", "closed", "cancelled"]
TITLE = validate.Length(min=1, max=255)
URL = [validate.Length(max=512), validate.Regexp(HTTPS_URL, error="https_url")]   # checked again by the domain


class AgendaItemInSchema(StrictSchema):
    title = ma.fields.String(required=True, validate=TITLE)
    document_id = id_field(strict=True, allow_none=True,
                           metadata={"description": "A document the meeting's members can read, to brief"})


class MeetingWriteSchema(StrictSchema):
    title = ma.fields.String(validate=TITLE)
    starts_at = aware_datetime(metadata={"description": "RFC 3339 with offset; in the future"})
    ends_at = aware_datetime(metadata={"description": "After starts_at, at most 12 hours later"})
    place = ma.fields.String(validate=validate.Length(min=1, max=255))
    online_url = ma.fields.String(allow_none=True, validate=URL, metadata={"description": "https link"})
    agenda = ma.fields.List(ma.fields.Nested(AgendaItemInSchema), validate=validate.Length(max=30))
    note = ma.fields.String(allow_none=True, validate=validate.Length(max=4000))


class MeetingCreateSchema(MeetingWriteSchema):
    title = ma.fields.String(required=True, validate=TITLE)
    kind = ma.fields.String(required=True, validate=validate.OneOf(MEETING_KINDS))
    starts_at = aware_datetime(required=True, metadata={"description": "RFC 3339 with offset; in the future"})
    ends_at = aware_datetime(required=True, metadata={"description": "After starts_at, at most 12 hours later"})
    place = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))


class MeetingPatchSchema(MeetingWriteSchema):
    pass


class AgendaDocumentSchema(StrictSchema):
    id = ma.fields.Integer()
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()


class AgendaItemSchema(StrictSchema):
    title = ma.fields.String()
    document = ma.fields.Nested(AgendaDocumentSchema, allow_none=True)


class MeetingCountsSchema(StrictSchema):
    invited = ma.fields.Integer()
    attending = ma.fields.Integer(metadata={"description": "Answered that they will attend"})
    absent = ma.fields.Integer(metadata={"description": "Answered that they will be absent"})
    present = ma.fields.Integer()
    excused = ma.fields.Integer()
    unexcused = ma.fields.Integer()


class MyMeetingSchema(StrictSchema):
    rsvp = ma.fields.String(allow_none=True, metadata={"enum": ["attending", "absent"]})
    attendance = ma.fields.String(allow_none=True, metadata={"enum": ["present", "excused", "unexcused"]})


class MinutesFileSchema(StrictSchema):
    id = ma.fields.Integer()
    filename = ma.fields.String()
    content_type = ma.fields.String()
    size = ma.fields.Integer()


class MeetingSchema(StrictSchema):
    id = ma.fields.Integer()
    org_unit = ma.fields.Nested(UnitBriefSchema)
    title = ma.fields.String()
    kind = ma.fields.String(metadata={"enum": MEETING_KINDS})
    status = ma.fields.String(metadata={"enum": MEETING_STATUSES})
    starts_at = LocalDateTime()
    ends_at = LocalDateTime()
    place = ma.fields.String()
    online_url = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    cancel_reason = ma.fields.String(allow_none=True)
    agenda = ma.fields.List(ma.fields.Nested(AgendaItemSchema))
    counts = ma.fields.Nested(MeetingCountsSchema)
    minutes = ma.fields.List(ma.fields.Nested(MinutesFileSchema), metadata={
        "description": "Files of the minutes: GET /meetings/{id}/attachments/{file id}"})
    my = ma.fields.Nested(MyMeetingSchema)
    invited = ma.fields.Boolean(metadata={"description": "The caller is invited (may answer and check in)"})
    can_run = ma.fields.Boolean(metadata={"description": "The caller may change, check in, mark and close it"})


class MeetingListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(MeetingSchema))
    next_cursor = ma.fields.String(allow_none=True)


class UnitMeetingsArgs(PageArgs):
    from_ = ma.fields.Date(data_key="from", metadata={"description": "Meetings starting on or after this day"})
    to = ma.fields.Date(metadata={"description": "Meetings starting on or before this day"})


class MyMeetingsArgs(PageArgs):
    upcoming = ma.fields.Boolean(load_default=True,
                                 metadata={"description": "true: not over yet, soonest first; false: past, latest first"})


class CancelSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class RsvpSchema(StrictSchema):
    response = ma.fields.String(required=True, validate=validate.OneOf(["attending", "absent"]))
    reason = ma.fields.String(allow_none=True, validate=validate.Length(max=2000),
                              metadata={"description": "Required when absent"})


class RsvpResultSchema(StrictSchema):
    rsvp = ma.fields.String()
    reason = ma.fields.String(allow_none=True)


class CheckInCodeSchema(StrictSchema):
    code = ma.fields.String(metadata={"description": "6 digits"})
    valid_until = UtcDateTime()
    qr_svg = ma.fields.String(metadata={"description": "The code as a QR code (an SVG document)"})


class CheckInSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="invalid_code"))


class CheckInResultSchema(StrictSchema):
    attendance = ma.fields.String()
    checked_in_at = UtcDateTime()


class AbsentSchema(StrictSchema):
    member_id = id_field(required=True, strict=True)
    reason = ma.fields.String(allow_none=True, validate=validate.Length(max=2000))
    excused = ma.fields.Boolean(load_default=False)


class AttendanceSchema(StrictSchema):
    present = ma.fields.List(id_field(strict=True), load_default=list, validate=validate.Length(max=1000))
    absent = ma.fields.List(ma.fields.Nested(AbsentSchema), load_default=list, validate=validate.Length(max=1000))


class AttendanceCountsSchema(StrictSchema):
    invited = ma.fields.Integer()
    present = ma.fields.Integer()
    excused = ma.fields.Integer()
    unexcused = ma.fields.Integer()


class BriefedSchema(StrictSchema):
    document_id = ma.fields.Integer()
    members = ma.fields.List(ma.fields.Integer(), metadata={"description": "Recorded as briefed (method meeting)"})


class CloseResultSchema(StrictSchema):
    attendance = ma.fields.Nested(AttendanceCountsSchema)
    briefed = ma.fields.List(ma.fields.Nested(BriefedSchema))


class StatsArgs(StrictSchema):
    month = ma.fields.String(required=True, validate=[validate.Length(max=7), validate.Regexp(
                                 r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$", error="invalid_month")],
                             metadata={"description": "YYYY-MM (years 1900-2999)"})
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "xlsx"]))


class StatsUnitSchema(StrictSchema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()


class MeetingStatsPartSchema(StrictSchema):
    org_unit = ma.fields.Nested(StatsUnitSchema)
    branches = ma.fields.Integer(metadata={"description": "Member-holding units (chi bộ) in the subtree"})
    branches_with_regular_meeting = ma.fields.Integer()
    meetings = ma.fields.Integer(metadata={"description": "Meetings closed in the month"})
    attendance_rate = ma.fields.Float(allow_none=True, metadata={"description": "present / invited, 0..1"})


class OverdueBranchSchema(StrictSchema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()


class MeetingStatsSchema(MeetingStatsPartSchema):
    month = ma.fields.String()
    children = ma.fields.List(ma.fields.Nested(MeetingStatsPartSchema),
                              metadata={"description": "Lowest share of branches with their regular meeting first"})
    overdue_branches = ma.fields.List(ma.fields.Nested(OverdueBranchSchema),
                                      metadata={"description": "No regular meeting by day 25 (from that day on): "
                                                               "the first 200 by position in the tree"})
    overdue_count = ma.fields.Integer(metadata={"description": "How many branches are overdue in all"})


# --- questions -------------------------------------------------------------------------------------

class QuestionInSchema(StrictSchema):
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class AnswerInSchema(StrictSchema):
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))
    public = ma.fields.Boolean(load_default=False,
                               metadata={"description": "Publish under the document as a Q&A, without the asker's name"})


class QuestionDocumentSchema(StrictSchema):
    id = ma.fields.Integer()
    number = ma.fields.String(allow_none=True)
    title = ma.fields.String()


class AskerSchema(StrictSchema):
    id = ma.fields.Integer()
    full_name = ma.fields.String()


class QuestionSchema(StrictSchema):
    id = ma.fields.Integer()
    text = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["open", "answered"]})
    created_at = UtcDateTime()
    answer = ma.fields.String(allow_none=True)
    answered_at = UtcDateTime(allow_none=True)
    public = ma.fields.Boolean()
    document = ma.fields.Nested(QuestionDocumentSchema)
    asker = ma.fields.Nested(AskerSchema, metadata={"description": "Publishers' list only"})


class QuestionListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(QuestionSchema))
    next_cursor = ma.fields.String(allow_none=True)


class PublicAnswerSchema(StrictSchema):
    id = ma.fields.Integer()
    text = ma.fields.String()
    answer = ma.fields.String()
    answered_at = UtcDateTime()


class PublicAnswerListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(PublicAnswerSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AdminQuestionArgs(PageArgs):
    document = id_field()
    status = ma.fields.String(validate=validate.OneOf(["open", "answered"]))


# --- adoption --------------------------------------------------------------------------------------

class FormatArgs(StrictSchema):
    format = ma.fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "xlsx"]))


class AdoptionPartSchema(StrictSchema):
    org_unit = ma.fields.Nested(UnitBriefSchema)
    members = ma.fields.Integer()
    signed_in = ma.fields.Integer(metadata={"description": "Members who ever signed in"})
    with_device = ma.fields.Integer(metadata={"description": "Members with a registered device"})
    active_30d = ma.fields.Integer(metadata={"description": "Signed in or refreshed a token in the last 30 days"})
    signed_in_share = ma.fields.Float(allow_none=True)
    with_device_share = ma.fields.Float(allow_none=True)
    active_30d_share = ma.fields.Float(allow_none=True)


class AdoptionSchema(AdoptionPartSchema):
    as_of = UtcDateTime(allow_none=True, metadata={"description": "When the figures were rolled up"})
    children = ma.fields.List(ma.fields.Nested(AdoptionPartSchema),
                              metadata={"description": "Lowest share with a device first"})

