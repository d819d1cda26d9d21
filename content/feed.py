"""What a member reads (read side): the feed, delta sync, search, one document, series, the badge.

Every query starts from the reader's few audience keys (their unit and its ancestors, their roles), so
its cost does not grow with the number of members; the document side is driven by the audience primary
key (org_unit_id, document_id) and the documents' primary key. The member's own receipt is one LEFT
JOIN on its primary key.

A member's state for a document:
- `acknowledged`: they acknowledged the version that must be acknowledged (a correction keeps it; a
  material change asks again);
- `exempt`: their secretary excused them (not counted as pending);
- `overdue`: it needs acknowledging, they have not, and the deadline has passed;
- `opened`: they opened it (and it needs nothing more, or not yet);
- `new`: not opened.
Filters: `pending` = needs acknowledging and not acknowledged (overdue included); the others as above.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, and_, bindparam, case, cast, exists, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import defer, lazyload

from content import search
from content.access import Reader, in_audience_param, is_out, readable, reader_params, was_out
from content.models import Attachment, ContentRevision, Document, Receipt, Series, Status
from content.progress import acknowledged_condition, classify, extended_condition
from handbook.errors import ProblemError
from handbook.permissions import not_found
from handbook.extensions import db, reads
from handbook.members import Member, MemberTransfer
from handbook.pagination import decode_cursor, encode_cursor, page
from handbook.timeutil import as_utc, local_zone, utcnow

STATES = ("new", "opened", "acknowledged", "pending", "overdue")


# Lists need neither bodies nor relationships: no body_html column, no eager loads.
_LIST_OPTIONS = (lazyload("*"), defer(Document.body_html))


@dataclass
class FeedPage:
    items: list[dict]
    next_cursor: str | None
    reset: bool = False
    watermark: datetime | None = None


def _receipt_join(member_id: int):
    return and_(Receipt.document_id == Document.id, Receipt.member_id == member_id)


def _acknowledged():
    return acknowledged_condition(Document.ack_version)


def _state_condition(state: str, now, today=None):
    """SQL condition: the member's state (as `my_state` computes it) is `state`; `pending` is every
    document still waiting for their acknowledgement, overdue ones included. `now` and `today` (the local
    date; from `now` when not given) are values or bound parameters."""
    if today is None:
        today = now.astimezone(local_zone()).date()
    needs_ack = Document.requires_ack == true()
    acknowledged = and_(needs_ack, _acknowledged())
    exempt = and_(needs_ack, ~_acknowledged(), Receipt.exempted_at.is_not(None))
    pending = and_(needs_ack, ~_acknowledged(), Receipt.exempted_at.is_(None))
    overdue = and_(pending, Document.deadline < now, ~extended_condition(today))
    settled = or_(acknowledged, exempt, overdue)
    conditions = {
        "acknowledged": acknowledged,
        "exempt": exempt,
        "pending": pending,
        "overdue": overdue,
        "opened": and_(Receipt.opened_at.is_not(None), ~settled),
        "new": and_(Receipt.opened_at.is_(None), ~settled),
    }
    return conditions[state]


def my_state(doc: Document, receipt: Receipt | None, now: datetime) -> dict:
    settled = classify(receipt, doc.ack_version)
    if doc.requires_ack and settled in ("acknowledged", "exempt"):
        state = settled
    elif doc.requires_ack and doc.deadline is not None and as_utc(doc.deadline) < now \
            and not _extended(receipt, now):
        state = "overdue"
    elif receipt is not None and receipt.opened_at is not None:
        state = "opened"
    else:
        state = "new"
    return {
        "state": state,
        "opened_at": receipt.opened_at if receipt else None,
        "acknowledged_at": receipt.acknowledged_at if receipt else None,
        "acknowledged_version": receipt.acknowledged_version if receipt else None,
    }


def _extended(receipt: Receipt | None, now: datetime) -> bool:
    """The member's deadline extension for the document runs today (they are not overdue)."""
    until = receipt.extended_until if receipt is not None else None
    return until is not None and until >= now.astimezone(local_zone()).date()


def item(doc: Document, receipt: Receipt | None, now: datetime) -> dict:
    """One feed item (API.md: Reading)."""
    return {
        "id": doc.id, "kind": doc.kind, "number": doc.number, "title": doc.title, "summary": doc.summary,
        "issuing_body": doc.issuing_body, "issued_on": doc.issued_on, "published_at": doc.published_at,
        "requires_ack": doc.requires_ack, "deadline": doc.deadline if doc.requires_ack else None,
        "version": doc.version, "ack_version": doc.ack_version, "updated_at": doc.sync_at, "tags": doc.tags or [],
        "series": {"id": doc.series_id, "lesson_no": doc.lesson_no} if doc.series_id else None,
        "my": my_state(doc, receipt, now),
    }


# Delta sync hands out a watermark a little in the past, so that a document committed a moment after
# the query (its sync_at set at the start of its transaction) is not skipped; re-sent items are harmless.
SYNC_MARGIN = timedelta(seconds=10)


def _last_transfer(member_id: int) -> datetime | None:
    return db.session.scalar(select(func.max(MemberTransfer.transferred_at))
                             .where(MemberTransfer.member_id == member_id))


# --- the conditional GET's stamps ----------------------------------------------------------------------

def stamp_columns(member_id, now, dialect: str) -> list:
    """What the feed and a document show a member changes only when one of these does, besides the
    member's own unit and roles (read beside them, `handbook.auth.Principal`) and the local date (an
    extension runs to the end of a local day):

    - `content_revision`: moved by every committed change of documents, audience, attachments, series;
    - a digest of the member's receipts (what `my` shows and what decides their state);
    - the latest scheduled publication whose time has come (it appears with no write at that moment);
    - the latest deadline passed (pending turns overdue with no write either).

    Scalar subqueries on `member_id` and `now` (bound parameters), O(the member's receipts) plus two
    index probes; built into the principal's statement once."""
    documents, receipts, revision = Document.__table__, Receipt.__table__, ContentRevision.__table__

    def text_of(column):
        return func.coalesce(cast(column, String), "")

    row = (cast(receipts.c.document_id, String) + "," + text_of(receipts.c.opened_at) + ","
           + text_of(receipts.c.acknowledged_at) + "," + text_of(receipts.c.acknowledged_version) + ","
           + text_of(receipts.c.exempted_at) + "," + text_of(receipts.c.extended_until))
    mine = receipts.c.member_id == member_id
    if dialect == "postgresql":
        digest = select(func.md5(func.string_agg(row, aggregate_order_by(literal(";"), receipts.c.document_id))))
        digest = digest.where(mine)
    else:
        ordered = select(row.label("row")).where(mine).order_by(receipts.c.document_id).subquery()
        digest = select(func.group_concat(ordered.c.row, ";"))
    return [
        select(revision.c.revision).where(revision.c.id == 1).scalar_subquery().label("s_revision"),
        digest.scalar_subquery().label("s_receipts"),
        select(func.max(documents.c.published_at))
        .where(documents.c.status == Status.SCHEDULED.value, documents.c.published_at <= now)
        .scalar_subquery().label("s_scheduled"),
        select(func.max(documents.c.deadline)).where(documents.c.deadline < now).scalar_subquery().label("s_deadline"),
    ]


# --- the feed's statements: Core, built once per shape, executed with parameters; rows, not objects ----

_DOCUMENT_COLUMNS = ("id", "kind", "number", "title", "summary", "issuing_body", "issued_on", "published_at",
                     "requires_ack", "deadline", "version", "ack_version", "sync_at", "tags", "series_id",
                     "lesson_no", "status")
_RECEIPT_COLUMNS = ("member_id", "opened_at", "acknowledged_at", "acknowledged_version", "exempted_at",
                    "extended_until")


class _Receipt:
    """The member's receipt as the feed's rows carry it (`r_` columns), for `my_state`."""

    __slots__ = _RECEIPT_COLUMNS

    def __init__(self, row) -> None:
        for name in _RECEIPT_COLUMNS:
            setattr(self, name, getattr(row, "r_" + name))


def _row_receipt(row) -> _Receipt | None:
    return _Receipt(row) if row.r_member_id is not None else None


def _rows_select(*extra, series: bool = False):
    """Documents LEFT JOIN the reader's receipt (`:member_id`), as rows named like the model's attributes
    (receipt columns prefixed `r_`); with `series`, LEFT JOIN the series too."""
    documents, receipts = Document.__table__, Receipt.__table__
    joined = documents.outerjoin(receipts, and_(receipts.c.document_id == documents.c.id,
                                                receipts.c.member_id == bindparam("member_id")))
    if series:
        joined = joined.outerjoin(Series.__table__, Series.__table__.c.id == documents.c.series_id)
    return (select(*(documents.c[c] for c in _DOCUMENT_COLUMNS),
                   *(receipts.c[c].label("r_" + c) for c in _RECEIPT_COLUMNS), *extra)
            .select_from(joined))


def _readable_param():
    return and_(is_out(bindparam("now")), in_audience_param())


@functools.cache
def _feed_statement(kind: bool, state: str | None, cursor: bool):
    """The first page (or the next one, after `:at`/`:last_id`), newest first, `:limit` + 1 rows."""
    stmt = _rows_select().where(_readable_param())
    if kind:
        stmt = stmt.where(Document.kind == bindparam("kind"))
    if state:
        stmt = stmt.where(_state_condition(state, bindparam("now"), bindparam("today")))
    if cursor:
        stmt = stmt.where(or_(Document.published_at < bindparam("at"),
                              and_(Document.published_at == bindparam("at"), Document.id < bindparam("last_id"))))
    return stmt.order_by(Document.published_at.desc(), Document.id.desc()).limit(bindparam("limit"))


@functools.cache
def _sync_statement(kind: bool, state: str | None, cursor: bool, since: bool, tombstones: bool):
    visible = _readable_param()
    if tombstones:
        # Withdrawn documents that the reader could have seen, as tombstones.
        visible = or_(visible, and_(in_audience_param(), was_out()))
    stmt = _rows_select().where(visible, Document.sync_at <= bindparam("now"))
    if kind:
        stmt = stmt.where(Document.kind == bindparam("kind"))
    if state:
        stmt = stmt.where(_state_condition(state, bindparam("now"), bindparam("today")))
    if since:
        stmt = stmt.where(Document.sync_at >= bindparam("since"))
    if cursor:
        stmt = stmt.where(or_(Document.sync_at > bindparam("at"),
                              and_(Document.sync_at == bindparam("at"), Document.id > bindparam("last_id"))))
    return stmt.order_by(Document.sync_at, Document.id).limit(bindparam("limit"))


def _params(reader: Reader, now: datetime, limit: int, **extra) -> dict:
    return {"member_id": reader.member_id, **reader_params(reader), "now": now,
            "today": now.astimezone(local_zone()).date(), "limit": limit + 1, **extra}


def _execute(stmt, params: dict) -> list:
    return reads().execute(stmt, params).all()


def feed(member: Member, *, kind: str | None = None, state: str | None = None, q: str | None = None,
         updated_since: datetime | None = None, limit: int = 20, cursor: str | None = None) -> FeedPage:
    """GET /documents. Newest first; with `updated_since`, changes in order of change, tombstones included;
    with `q`, best match first."""
    now = utcnow()
    reader = Reader.of(member)
    reset = None
    if updated_since is not None:
        moved = _last_transfer(member.id)
        if moved is not None and moved > updated_since:
            # The member moved: their audience changed as a whole, so the client must refetch everything.
            updated_since, reset = None, moved

    if q is not None:
        hits = search.matches(q)
        if hits is None:
            return FeedPage([], None)
        stmt = _rows_select().join(hits, hits.c.document_id == Document.id).where(_readable_param())
        if kind:
            stmt = stmt.where(Document.kind == bindparam("kind"))
        if state:
            stmt = stmt.where(_state_condition(state, bindparam("now"), bindparam("today")))
        offset = decode_cursor(cursor, int)[0] if cursor else 0
        if offset < 0:
            raise ProblemError("validation_error", 422, errors={"cursor": ["invalid_cursor"]})
        stmt = (stmt.order_by(hits.c.score, Document.published_at.desc(), Document.id.desc())
                .offset(offset).limit(bindparam("limit")))
        rows = _execute(stmt, _params(reader, now, limit, kind=kind))
        items = [item(r, _row_receipt(r), now) for r in rows[:limit]]
        return FeedPage(items, encode_cursor(offset + limit) if len(rows) > limit else None)

    if updated_since is not None or reset is not None:
        return _sync(reader, now, updated_since, limit, cursor, kind=kind, state=state,
                     tombstones=not state and reset is None, reset=reset)

    extra = {"kind": kind} if kind else {}
    if cursor:
        extra["at"], extra["last_id"] = decode_cursor(cursor, datetime, int)
    rows = _execute(_feed_statement(bool(kind), state, bool(cursor)), _params(reader, now, limit, **extra))
    rows, next_cursor = page(rows, limit, key=lambda row: (as_utc(row.published_at), row.id))
    return FeedPage([item(r, _row_receipt(r), now) for r in rows], next_cursor)


def _sync(reader: Reader, now: datetime, since: datetime | None, limit: int, cursor: str | None, *,
          kind: str | None, state: str | None, tombstones: bool, reset: datetime | None) -> FeedPage:
    """Changes since `since`, oldest change first, so a client can resume from the last `updated_at`
    (or from `watermark`, on the last page). After a transfer (`reset`, its time), the full list, each
    item's `updated_at` no earlier than the transfer, so that resuming from it does not reset again."""
    extra = {"kind": kind} if kind else {}
    if since is not None:
        extra["since"] = as_utc(since)
    if cursor:
        extra["at"], extra["last_id"] = decode_cursor(cursor, datetime, int)
    stmt = _sync_statement(bool(kind), state, bool(cursor), since is not None, tombstones)
    rows = _execute(stmt, _params(reader, now, limit, **extra))
    rows, next_cursor = page(rows, limit, key=lambda row: (as_utc(row.sync_at), row.id))
    items = [{"id": r.id, "withdrawn": True, "updated_at": r.sync_at} if r.status == Status.WITHDRAWN.value
             else item(r, _row_receipt(r), now) for r in rows]
    if reset is not None:
        for it in items:
            it["updated_at"] = max(as_utc(it["updated_at"]), reset)
    watermark = None if next_cursor else max(now - SYNC_MARGIN, reset or now - SYNC_MARGIN)
    return FeedPage(items, next_cursor, reset is not None, watermark)


@functools.cache
def _detail_statement():
    attachments = Attachment.__table__
    series = Series.__table__
    has_attachments = exists().where(attachments.c.document_id == Document.__table__.c.id)
    return (_rows_select(Document.__table__.c.body_html, series.c.title.label("series_title"),
                         has_attachments.label("has_attachments"), series=True)
            .where(Document.id == bindparam("document_id"), or_(is_out(bindparam("now")), was_out()),
                   in_audience_param()))


@functools.cache
def _attachments_statement():
    attachments = Attachment.__table__
    return (select(attachments.c.id, attachments.c.filename, attachments.c.content_type, attachments.c.size,
                   attachments.c.sha256)
            .where(attachments.c.document_id == bindparam("document_id")).order_by(attachments.c.id))


def detail(member: Member, document_id: int) -> dict:
    """GET /documents/{id}: the item, the sanitised body and the attachments; 410 once withdrawn. One
    statement (the document, the member's receipt, the series' title), and one more for attachments when
    the document has any."""
    now = utcnow()
    rows = _execute(_detail_statement(), _params(Reader.of(member), now, 0, document_id=document_id))
    if not rows:
        raise not_found()
    row = rows[0]
    if row.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 410)
    out = item(row, _row_receipt(row), now)
    out["body_html"] = row.body_html
    out["attachments"] = ([dict(a._mapping) for a in _execute(_attachments_statement(), {"document_id": row.id})]
                          if row.has_attachments else [])
    if row.series_id:
        out["series"]["title"] = row.series_title
    return out


def member_summary(member: Member) -> dict:
    """GET /me/summary: documents waiting for the member's acknowledgement, and how many are late."""
    now = utcnow()
    reader = Reader.of(member)
    pending = _state_condition("pending", now)
    overdue = _state_condition("overdue", now)
    row = db.session.execute(
        select(func.count().filter(pending), func.count().filter(overdue))
        .select_from(Document).outerjoin(Receipt, _receipt_join(member.id))
        .where(readable(reader, now), Document.requires_ack == true())
    ).one()
    return {"pending": row[0], "overdue": row[1]}


# --- study series ---------------------------------------------------------------------------------

def _lesson_done():
    """A lesson counts as done when acknowledged (if it asks for that) or opened (if it does not)."""
    return case((Document.requires_ack == true(), _acknowledged()), else_=Receipt.opened_at.is_not(None))


def series_list(member: Member) -> list[dict]:
    """GET /series: the series with at least one lesson the member can read, with their progress."""
    now = utcnow()
    reader = Reader.of(member)
    done = func.sum(case((_lesson_done(), literal(1)), else_=literal(0)))
    rows = db.session.execute(
        select(Series, func.count(Document.id), done)
        .join(Document, Document.series_id == Series.id).outerjoin(Receipt, _receipt_join(member.id))
        .where(readable(reader, now)).group_by(Series.id).order_by(Series.id.desc())
    ).all()
    return [_series_brief(s, total, completed or 0) for s, total, completed in rows]


def _series_brief(series: Series, total: int, completed: int) -> dict:
    return {"id": series.id, "title": series.title, "summary": series.summary,
            "progress": {"lessons": total, "completed": completed}}


def series_detail(member: Member, series_id: int) -> dict:
    """GET /series/{id}: the lessons in order, each with the member's state, and the progress."""
    now = utcnow()
    reader = Reader.of(member)
    series = db.session.get(Series, series_id)
    rows = [] if series is None else db.session.execute(
        select(Document, Receipt).outerjoin(Receipt, _receipt_join(member.id)).options(*_LIST_OPTIONS)
        .where(Document.series_id == series_id, readable(reader, now))
        .order_by(Document.lesson_no.is_(None), Document.lesson_no, Document.published_at, Document.id)
    ).all()
    if not rows:
        raise ProblemError("not_found", 404)
    lessons = [item(d, r, now) for d, r in rows]
    completed = sum(1 for (d, r), it in zip(rows, lessons, strict=True)
                    if (it["my"]["state"] == "acknowledged") or (not d.requires_ack and r and r.opened_at))
    out = _series_brief(series, len(rows), completed)
    out["lessons"] = lessons
    return out
