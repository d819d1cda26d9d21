"""The publishing workflow (write side): draft → scheduled → published → withdrawn, and versions.

Each operation loads, checks access, acts, writes its audit entry and commits once. Publishing writes the
document, its resolved deadline, its first version and its notification in one transaction (the
notification is the outbox row that the push fan-out picks up).

- Drafts and scheduled documents are edited in place. A published document is never edited in place:
  each edit makes a new version; `reack=True` (a material change) also makes that version the one
  members must acknowledge, with a fresh deadline, and queues a notification; `reack=False` is a
  correction that keeps every acknowledgement.
- The deadline is the end (23:59:59) of the local day `ack_days` after the day of publication, in
  HANDBOOK_TIMEZONE.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select, update

from content import progress, search
from content.access import managed_document, publish_scope_condition
from content.models import (CONTENT_FIELDS, Document, DocumentAudience, DocumentVersion, Kind, Series, Status,
                            roles_to_mask)
from content.sanitize import clean_html
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.pagination import decode_cursor, page
from handbook.permissions import PUBLISH_ROLES, has_role_over, scope_roots
from handbook.text import nfc
from handbook.timeutil import as_utc, local_zone, utcnow
from push.models import Notification, NotificationKind, NotificationState

# Fields that cannot change once a document has been published.
LOCKED_AFTER_PUBLICATION = ("kind", "audience", "requires_ack", "ack_days", "owner_unit", "series_id", "lesson_no")
DEFAULT_ACK_DAYS = 14


def deadline_for(published_at: datetime, ack_days: int) -> datetime:
    """The end of the local day `ack_days` after publication, as a UTC instant."""
    zone = local_zone()
    day: date = as_utc(published_at).astimezone(zone).date() + timedelta(days=ack_days)
    return datetime.combine(day, time(23, 59, 59), tzinfo=zone).astimezone(UTC)


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError("validation_error", 422, errors={field: [message]})


def _clean_text(data: dict) -> dict:
    out = dict(data)
    for key in ("number", "title", "summary", "issuing_body"):
        if key in out and out[key] is not None:
            out[key] = nfc(out[key])
    if "title" in out and not out["title"]:
        raise _invalid("title", "required")
    if "body_html" in out:
        out["body_html"] = clean_html(out["body_html"])
    if "tags" in out:
        out["tags"] = list(dict.fromkeys(t for t in (nfc(t) for t in out["tags"] or []) if t))
    return out


def _audience_units(actor: Member, unit_ids: list[int]) -> list[OrgUnit]:
    """The audience units, each inside the actor's publishing scope (403 otherwise)."""
    ids = list(dict.fromkeys(unit_ids))
    if not ids:
        raise ProblemError("validation_error", 422, errors={"audience": {"org_units": ["required"]}})
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)))}
    unknown = [i for i in ids if i not in units]
    if unknown:
        raise ProblemError("validation_error", 422,
                           errors={"audience": {"org_units": {str(ids.index(i)): ["unknown_unit"] for i in unknown}}})
    outside = [units[i] for i in ids if not has_role_over(actor, units[i], PUBLISH_ROLES)]
    if outside:
        raise ProblemError("audience_out_of_scope", 403, unit=outside[0].name)
    return [units[i] for i in ids]


def _owner_unit(actor: Member, audience: list[OrgUnit], owner_id: int | None) -> OrgUnit:
    """The issuing unit: given, or the actor's deepest publishing grant that covers the whole audience."""
    if owner_id is not None:
        owner = db.session.get(OrgUnit, owner_id)
        if owner is None:
            raise _invalid("owner_unit", "unknown_unit")
        if not has_role_over(actor, owner, PUBLISH_ROLES):
            raise ProblemError("audience_out_of_scope", 403, unit=owner.name)
        if not all(owner.contains(u) for u in audience):
            raise _invalid("owner_unit", "must_contain_audience")
        return owner
    grants = [g.org_unit for g in actor.roles if g.role in PUBLISH_ROLES]
    covering = [u for u in grants if all(u.contains(a) for a in audience)]
    if not covering:
        # Each audience unit is in scope, but no single grant covers them all (e.g. two districts).
        raise _invalid("audience", "spans_several_scopes")
    return max(covering, key=lambda u: u.depth)


def _series(actor: Member, series_id: int | None, kind: str) -> Series | None:
    if series_id is None:
        return None
    if kind != Kind.STUDY.value:
        raise _invalid("series_id", "only_for_study")
    series = db.session.get(Series, series_id)
    if series is None or not has_role_over(actor, series.owner_unit, PUBLISH_ROLES):
        raise _invalid("series_id", "unknown_series")
    return series


def _lesson_no(series: Series | None, lesson_no: int | None, document_id: int | None = None) -> int | None:
    """A lesson's place in its series; two live lessons of one series never share a number."""
    if series is None or lesson_no is None:
        return None
    taken = db.session.scalar(select(Document.id).where(
        Document.series_id == series.id, Document.lesson_no == lesson_no,
        Document.status != Status.WITHDRAWN.value, Document.id != (document_id or 0)).limit(1))
    if taken is not None:
        raise _invalid("lesson_no", "lesson_taken")
    return lesson_no


def require_publisher(actor: Member) -> None:
    if not scope_roots(actor, PUBLISH_ROLES):
        raise ProblemError("forbidden", 403)


def create_document(actor: Member, data: dict) -> Document:
    """A new draft (API: POST /admin/documents)."""
    require_publisher(actor)
    missing = [f for f in ("kind", "title") if not data.get(f)]
    if missing:
        raise ProblemError("validation_error", 422, errors={f: ["required"] for f in missing})
    data = _clean_text(data)
    audience = data.get("audience") or {}
    units = _audience_units(actor, audience.get("org_units") or [])
    owner = _owner_unit(actor, units, data.get("owner_unit"))
    series = _series(actor, data.get("series_id"), data["kind"])
    now = utcnow()
    doc = Document(
        kind=data["kind"], number=data.get("number"), title=data["title"], summary=data.get("summary") or "",
        body_html=data.get("body_html") or "", issuing_body=data.get("issuing_body"),
        issued_on=data.get("issued_on"), tags=data.get("tags") or [],
        requires_ack=data.get("requires_ack", True), ack_days=DEFAULT_ACK_DAYS if data.get("ack_days") is None else data["ack_days"],
        status=Status.DRAFT.value, owner_unit_id=owner.id, roles_mask=roles_to_mask(audience.get("roles")),
        series_id=series.id if series else None, lesson_no=_lesson_no(series, data.get("lesson_no")),
        created_by=actor.id, created_at=now, updated_at=now, sync_at=now,
    )
    doc.audience = [DocumentAudience(org_unit_id=u.id) for u in units]
    db.session.add(doc)
    db.session.flush()
    search.index_document(doc)
    audit.record("document.create", actor_id=actor.id, target_type="document", target_id=doc.id,
                 kind=doc.kind, number=doc.number, title=doc.title, audience=[u.id for u in units])
    db.session.commit()
    return doc


def _snapshot(doc: Document, created_by: int | None, *, reack: bool = False, note: str | None = None
              ) -> DocumentVersion:
    version = DocumentVersion(document_id=doc.id, version=doc.version, reack=reack, note=note, created_by=created_by,
                              **{f: getattr(doc, f) for f in CONTENT_FIELDS})
    db.session.add(version)
    return version


def update_document(actor: Member, document_id: int, data: dict) -> Document:
    """Edit a draft in place, or make a new version of a published document (API: PATCH)."""
    doc = _managed_current(actor, document_id)
    if doc.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 409)
    reack = bool(data.pop("reack", False))
    note = nfc(data.pop("note", None))
    data = _clean_text(data)
    published = doc.status == Status.PUBLISHED.value
    if published:
        locked = [f for f in LOCKED_AFTER_PUBLICATION if f in data]
        if locked:
            raise ProblemError("validation_error", 422, errors={f: ["locked_after_publication"] for f in locked})
    changed = {f: v for f, v in data.items() if f in CONTENT_FIELDS and getattr(doc, f) != v}

    if not published:
        _edit_unpublished(actor, doc, data, changed)
    elif changed or reack:
        for field, value in changed.items():
            setattr(doc, field, value)
        doc.version += 1
        now = utcnow()
        if reack and doc.requires_ack:
            doc.ack_version = doc.version
            doc.deadline = deadline_for(now, doc.ack_days)
            db.session.add(Notification(kind=NotificationKind.REACK.value, document_id=doc.id, due_at=now,
                                        created_by=actor.id))
        doc.sync_at = now
        _snapshot(doc, actor.id, reack=reack, note=note)
        if reack and doc.requires_ack:
            db.session.flush()
            progress.recount_document(doc)  # every acknowledgement of an older version is pending again
    else:
        return doc  # nothing changed: no new version

    search.index_document(doc)
    audit.record("document.edit", actor_id=actor.id, target_type="document", target_id=doc.id,
                 version=doc.version, reack=reack if published else None, fields=sorted(changed))
    db.session.commit()
    return doc


def _edit_unpublished(actor: Member, doc: Document, data: dict, changed: dict) -> None:
    for field, value in changed.items():
        setattr(doc, field, value)
    for field in ("requires_ack", "ack_days"):
        if field in data and data[field] is not None:
            setattr(doc, field, data[field])
            changed[field] = data[field]
    if "kind" in data and data["kind"] != doc.kind:
        if doc.series_id is not None and data["kind"] != Kind.STUDY.value:
            raise _invalid("kind", "series_needs_study")
        doc.kind = changed["kind"] = data["kind"]
    if "series_id" in data or "lesson_no" in data:
        series = _series(actor, data.get("series_id", doc.series_id), doc.kind)
        doc.series_id = series.id if series else None
        doc.lesson_no = _lesson_no(series, data.get("lesson_no", doc.lesson_no), doc.id)
        changed["series_id"], changed["lesson_no"] = doc.series_id, doc.lesson_no
    if "audience" in data or "owner_unit" in data:
        audience = data.get("audience") or {}
        unit_ids = audience.get("org_units") if "org_units" in audience else doc.audience_unit_ids
        units = _audience_units(actor, unit_ids)
        owner = _owner_unit(actor, units, data.get("owner_unit", doc.owner_unit_id if "audience" not in data else None))
        doc.owner_unit_id = owner.id
        doc.audience = [DocumentAudience(org_unit_id=u.id) for u in units]
        if "roles" in audience:
            doc.roles_mask = roles_to_mask(audience["roles"])
        changed["audience"] = [u.id for u in units]
        if doc.status == Status.SCHEDULED.value:  # counted when scheduled: count the new audience
            db.session.flush()
            progress.recount_document(doc)
    if doc.status == Status.SCHEDULED.value and doc.requires_ack:
        doc.deadline = deadline_for(doc.published_at, doc.ack_days)
    elif not doc.requires_ack:
        doc.deadline = None
    doc.updated_at = utcnow()


def publish_document(actor: Member, document_id: int, publish_at: datetime | None = None, *,
                     urgent: bool = False) -> dict:
    """Publish now, or schedule for `publish_at` (API: POST /admin/documents/{id}/publish). An urgent
    publication is pushed even during quiet hours.

    Idempotent: publishing a published document again changes nothing and answers the same.
    """
    doc = _managed_current(actor, document_id)
    if doc.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 409)
    if doc.status == Status.PUBLISHED.value:
        db.session.commit()  # (a due scheduled publication may just have been released)
        return publication_result(doc)
    # Roles may have changed since the draft was written: the audience must still be in scope.
    _audience_units(actor, doc.audience_unit_ids)
    now = utcnow()
    at = as_utc(publish_at) if publish_at is not None else now
    scheduled = at > now
    if not scheduled:
        at = now
    notification = db.session.scalar(select(Notification).where(
        Notification.document_id == doc.id, Notification.kind == NotificationKind.PUBLISHED.value,
        Notification.state == NotificationState.PENDING.value))
    if notification is None:
        notification = Notification(kind=NotificationKind.PUBLISHED.value, document_id=doc.id,
                                    org_unit_id=doc.owner_unit_id, created_by=actor.id)
        db.session.add(notification)
    notification.due_at = at
    notification.urgent = urgent
    doc.published_at = doc.sync_at = at
    doc.deadline = deadline_for(at, doc.ack_days) if doc.requires_ack else None
    doc.status = (Status.SCHEDULED if scheduled else Status.PUBLISHED).value
    if not scheduled:
        _snapshot(doc, actor.id)
    db.session.flush()
    progress.recount_document(doc)
    audit.record("document.schedule" if scheduled else "document.publish", actor_id=actor.id,
                 target_type="document", target_id=doc.id, publish_at=at.isoformat(),
                 notification_id=notification.id)
    db.session.commit()
    return publication_result(doc)


def publication_result(doc: Document) -> dict:
    notification_id = db.session.scalar(
        select(Notification.id).where(Notification.document_id == doc.id,
                                      Notification.kind == NotificationKind.PUBLISHED.value)
        .order_by(Notification.id.desc()).limit(1))
    return {"status": doc.status, "published_at": doc.published_at, "deadline": doc.deadline,
            "notification_id": notification_id}


def publish_due(at: datetime | None = None) -> list[Document]:
    """Turn every scheduled document whose time has come into a published one (worker and `push run-due`).

    Readers already see a scheduled document from its `published_at` on; this records the publication
    (version 1, audit). Rows are locked with SKIP LOCKED on PostgreSQL so that two runners never take
    the same document; running it twice does nothing the second time.
    """
    at = as_utc(at) if at is not None else utcnow()
    stmt = (select(Document).where(Document.status == Status.SCHEDULED.value, Document.published_at <= at)
            .order_by(Document.published_at, Document.id))
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Document, key_share=True)
    docs = list(db.session.scalars(stmt))
    for doc in docs:
        _release(doc)
    db.session.commit()
    return docs


def _release(doc: Document) -> None:
    """A scheduled document whose time has come becomes published (in the caller's transaction)."""
    doc.status = Status.PUBLISHED.value
    _snapshot(doc, doc.created_by)
    audit.record("document.publish", target_type="document", target_id=doc.id, scheduled=True,
                 published_at=as_utc(doc.published_at).isoformat())


def _managed_current(actor: Member, document_id: int) -> Document:
    """The managed document, locked, with a due scheduled publication already released."""
    doc = managed_document(actor, document_id, for_update=True)
    if doc.status == Status.SCHEDULED.value and as_utc(doc.published_at) <= utcnow():
        _release(doc)
        db.session.flush()
    return doc


def withdraw_document(actor: Member, document_id: int, reason: str) -> Document:
    """Withdraw (API: POST /admin/documents/{id}/withdraw). Receipts are kept; pending pushes cancelled."""
    doc = _managed_current(actor, document_id)
    if doc.status == Status.WITHDRAWN.value:
        return doc
    reason = nfc(reason)
    if not reason:
        raise _invalid("reason", "required")
    now = utcnow()
    previous = doc.status
    doc.status = Status.WITHDRAWN.value
    doc.withdrawn_at = doc.sync_at = now
    doc.withdraw_reason = reason
    db.session.execute(update(Notification).where(
        Notification.document_id == doc.id,
        Notification.state.in_([NotificationState.PENDING.value, NotificationState.SENDING.value]),
    ).values(state=NotificationState.CANCELLED.value, finished_at=now))
    audit.record("document.withdraw", actor_id=actor.id, target_type="document", target_id=doc.id,
                 reason=reason, previous_status=previous)
    db.session.commit()
    return doc


def versions(actor: Member, document_id: int) -> list[DocumentVersion]:
    doc = managed_document(actor, document_id)
    return list(db.session.scalars(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)
                                   .order_by(DocumentVersion.version)))


def version(actor: Member, document_id: int, number: int) -> DocumentVersion:
    doc = managed_document(actor, document_id)
    found = db.session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == doc.id,
                                                            DocumentVersion.version == number))
    if found is None:
        raise ProblemError("not_found", 404)
    return found


def create_series(actor: Member, data: dict) -> Series:
    require_publisher(actor)
    grants = scope_roots(actor, PUBLISH_ROLES)
    owner_id = data.get("owner_unit")
    owner = db.session.get(OrgUnit, owner_id) if owner_id is not None else grants[0]
    if owner is None:
        raise _invalid("owner_unit", "unknown_unit")
    if not has_role_over(actor, owner, PUBLISH_ROLES):
        raise ProblemError("audience_out_of_scope", 403, unit=owner.name)
    title = nfc(data["title"])
    if not title:
        raise _invalid("title", "required")
    series = Series(title=title, summary=nfc(data.get("summary")) or "", owner_unit_id=owner.id, created_by=actor.id)
    db.session.add(series)
    db.session.flush()
    audit.record("series.create", actor_id=actor.id, target_type="series", target_id=series.id, title=title)
    db.session.commit()
    return series


# --- publisher views -------------------------------------------------------------------------------

def admin_view(doc: Document, *, detail: bool = False) -> dict:
    out = {
        "id": doc.id, "kind": doc.kind, "status": doc.status, "number": doc.number, "title": doc.title,
        "summary": doc.summary, "issuing_body": doc.issuing_body, "issued_on": doc.issued_on, "tags": doc.tags or [],
        "owner_unit": doc.owner_unit.brief(),
        "audience": {"org_units": [a.org_unit.brief() for a in doc.audience], "roles": doc.audience_roles},
        "requires_ack": doc.requires_ack, "ack_days": doc.ack_days, "version": doc.version,
        "ack_version": doc.ack_version, "series_id": doc.series_id, "lesson_no": doc.lesson_no,
        "published_at": doc.published_at, "deadline": doc.deadline, "withdrawn_at": doc.withdrawn_at,
        "withdraw_reason": doc.withdraw_reason, "created_by": doc.created_by, "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }
    if detail:
        out["body_html"] = doc.body_html
        out["attachments"] = [a.brief() for a in doc.attachments]
    return out


def admin_list(actor: Member, *, status: str | None = None, kind: str | None = None, limit: int = 20,
               cursor: str | None = None) -> tuple[list[Document], str | None]:
    """GET /admin/documents: documents issued within the actor's publishing scopes, newest first."""
    require_publisher(actor)
    in_scope = publish_scope_condition(actor)
    stmt = select(Document).join(OrgUnit, OrgUnit.id == Document.owner_unit_id).where(in_scope)
    if status:
        stmt = stmt.where(Document.status == status)
    if kind:
        stmt = stmt.where(Document.kind == kind)
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(Document.id < last_id)
    rows = list(db.session.scalars(stmt.order_by(Document.id.desc()).limit(limit + 1)))
    return page(rows, limit, key=lambda d: (d.id,))


def admin_document(actor: Member, document_id: int) -> Document:
    return managed_document(actor, document_id)
