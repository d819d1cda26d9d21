"""Opening and acknowledging (members), briefings and exemptions (secretaries), with their undo.

Every change goes through `_change()`, on a document its caller has read under a shared lock: lock the
member's receipt, note the member's state before, change the receipt, note the state after, and move one count in the progress
counters, all in one transaction. Acknowledging is idempotent and implies opening; nothing here ever
deletes a receipt.

Client times (offline phones) are kept but clamped: never in the future, never before publication; the
server's own time is recorded beside them.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time

from sqlalchemy import bindparam, exists, select

from content import ackgate, progress
from content.access import (Reader, can_manage, in_audience, in_audience_param, is_out, reaches, reader_params,
                            readable_document, went_out)
from content.models import Document, ProgressCounter, Receipt, Status
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db, upsert
from handbook.members import Member, Role
from handbook.orgunits import OrgUnit
from handbook.permissions import has_role_over, not_found, scope_roots
from handbook.text import nfc
from handbook.timeutil import as_utc, local_zone, utcnow

BRIEFING_ROLES = frozenset({Role.SECRETARY.value, Role.ADMIN.value})
MAX_SYNC_ITEMS = 500


def _clamp(client_at: datetime | None, doc: Document, now: datetime) -> datetime:
    if client_at is None:
        return now
    floor = doc.published_at or now
    return max(floor, min(client_at.astimezone(UTC), now))


def _receipt_for_update(document_id: int, member_id: int) -> Receipt:
    """The receipt row, created if missing, locked for this transaction: one INSERT … ON CONFLICT DO
    UPDATE … RETURNING, which takes the row lock of an existing receipt and returns its current values."""
    stmt = upsert(Receipt).values(document_id=document_id, member_id=member_id)
    stmt = stmt.on_conflict_do_update(index_elements=["document_id", "member_id"],
                                      set_={"document_id": stmt.excluded.document_id}).returning(Receipt)
    return db.session.scalars(select(Receipt).from_statement(stmt)
                              .execution_options(populate_existing=True)).one()


def _change(doc: Document, member: Member, mutate: Callable[[Receipt], None],
            check: Callable[[Document], None] | None = None) -> tuple[str, str, Receipt]:
    """Apply `mutate` to the member's receipt and keep the counters exact; returns (before, after, receipt).

    Under the lock, the document (its ack_version) and the member's unit are read afresh: a material
    change or a transfer that committed while this request waited must not be missed: the caller has
    read `doc` under its share lock in this transaction (`readable_document(lock=True)` or
    `progress.lock_document`), once for all the receipts it changes. `check` runs on that document
    before anything is written (e.g. the version check).
    """
    if check is not None:
        check(doc)
    return _change_many(doc, [member.id], mutate)[member.id]


def _change_many(doc: Document, member_ids: list[int], mutate: Callable[[Receipt], None]
                 ) -> dict[int, tuple[str, str, Receipt]]:
    """`_change` for several members of one document, keeping the one lock order of every writer.

    Lock order (PostgreSQL), the same for all writers so that no two can wait for each other in a cycle:
    the document row (FOR SHARE; FOR UPDATE by recounts and material changes), then the receipts in
    member id order, then the progress counters in unit id order (`progress.apply_moves`). A batch takes
    every receipt before it moves any counter: moving a counter between two receipt locks let a single
    writer holding the next receipt wait for that counter while the batch waited for its receipt.
    """
    ids = sorted(set(member_ids))
    unit_of = {row.id: (row.org_unit_id, row.active) for row in db.session.execute(
        select(Member.id, Member.org_unit_id, Member.active).where(Member.id.in_(ids)))}
    changes: dict[int, tuple[str, str, Receipt]] = {}
    moves: list[tuple[int, str, str]] = []
    for member_id in ids:
        receipt = _receipt_for_update(doc.id, member_id)
        before = progress.classify(receipt, doc.ack_version)
        mutate(receipt)
        after = progress.classify(receipt, doc.ack_version)
        changes[member_id] = (before, after, receipt)
        unit_id, active = unit_of[member_id]
        if active:
            moves.append((unit_id, before, after))
    db.session.flush()
    progress.apply_moves(doc, moves)
    return changes


# --- members ---------------------------------------------------------------------------------------

def _open(receipt: Receipt, at: datetime) -> None:
    """The earliest open is kept: an offline phone may report an open earlier than one already stored."""
    if receipt.opened_at is None or _utc(at) < _utc(receipt.opened_at):
        receipt.opened_at = at


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)   # SQLite hands back naive UTC


def open_document(member: Member, document_id: int, *, client_at: datetime | None = None) -> None:
    """POST /documents/{id}/open: the earliest open is kept; later ones change nothing."""
    doc = readable_document(member, document_id, lock=True)
    now = utcnow()
    _change(doc, member, lambda r: _open(r, _clamp(client_at, doc, now)))
    db.session.commit()


def _check_version(doc: Document, version: int) -> None:
    if not doc.requires_ack:
        raise ProblemError("ack_not_required", 409)
    if version > doc.version:
        raise ProblemError("validation_error", 422, errors={"version": ["unknown_version"]})
    if version < doc.ack_version:
        raise ProblemError("stale_version", 409, current_version=doc.version,
                           extra={"current_version": doc.version, "ack_version": doc.ack_version})


def _acknowledge(doc: Document, member: Member, version: int, client_at: datetime | None, now: datetime, *,
                 platform: str | None = None, device: str | None = None) -> Receipt:
    def mutate(r: Receipt) -> None:
        at = _clamp(client_at, doc, now)
        _open(r, at)
        if r.acknowledged_version is not None and r.acknowledged_version >= doc.ack_version:
            return  # already acknowledged: idempotent
        r.acknowledged_at, r.acknowledged_version, r.method, r.recorded_by = at, version, "app", member.id
        r.recorded_at, r.client_acknowledged_at, r.platform, r.device = now, client_at, platform, device
        r.held_on = r.note = None

    def check(fresh: Document) -> None:
        _check_version(fresh, version)
        if ackgate.has_rules(fresh):   # reading time, quiz: no statement at all for a document without rules
            ackgate.check(fresh, member.id, _clamp(client_at, fresh, now))

    return _change(doc, member, mutate, check=check)[2]


# The single acknowledgement (PUT /documents/{id}/acknowledgement), the hottest writer: Core statements
# built once, rows instead of ORM objects, the same locks in the same order as `_change_many`.

_LOCKED_DOCUMENT_COLUMNS = ("id", "status", "requires_ack", "version", "ack_version", "published_at", "roles_mask",
                            "min_read_seconds", "ack_quiz_id")
_RECEIPT_STATE = ("opened_at", "acknowledged_at", "acknowledged_version", "exempted_at")


@functools.cache
def _locked_document_statement(dialect: str):
    """The document if the reader may read it, under the shared lock of member-level writers (what
    `readable_document(lock=True)` reads, without the ORM)."""
    documents = Document.__table__
    stmt = (select(*(documents.c[c] for c in _LOCKED_DOCUMENT_COLUMNS))
            .where(documents.c.id == bindparam("document_id"), is_out(bindparam("now")), in_audience_param()))
    return stmt.with_for_update(read=True, of=documents) if dialect == "postgresql" else stmt


@functools.cache
def _receipt_lock_statement(dialect: str):
    """`_receipt_for_update` as rows: the receipt, created if missing and locked; and, read under that lock
    in the same statement, the member's unit and whether they are active (a transfer that committed while
    this waited for the document's lock is seen)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    receipts, members = Receipt.__table__, Member.__table__
    stmt = insert(receipts).values(document_id=bindparam("document_id"), member_id=bindparam("member_id"))
    counters = ProgressCounter.__table__
    member = select(members.c.org_unit_id, members.c.active).where(members.c.id == bindparam("member_id"))
    # Whether the member's unit has its counter row: rows come and go only in recounts, which lock the
    # document exclusively, so the answer holds until this transaction ends.
    counted = exists().where(counters.c.document_id == bindparam("document_id"),
                             counters.c.org_unit_id == member.with_only_columns(members.c.org_unit_id).scalar_subquery())
    return (stmt.on_conflict_do_update(index_elements=["document_id", "member_id"],
                                       set_={"document_id": stmt.excluded.document_id})
            .returning(*(receipts.c[c] for c in _RECEIPT_STATE),
                       member.with_only_columns(members.c.org_unit_id).scalar_subquery().label("unit_id"),
                       member.with_only_columns(members.c.active).scalar_subquery().label("active"),
                       counted.label("counted")))


_ACK_WRITE = ("opened_at", "acknowledged_at", "acknowledged_version", "method", "recorded_by", "recorded_at",
              "client_acknowledged_at", "platform", "device", "held_on", "note")


@functools.cache
def _receipt_update_statement(columns: tuple[str, ...]):
    receipts = Receipt.__table__
    return (receipts.update()
            .where(receipts.c.document_id == bindparam("k_document_id"), receipts.c.member_id == bindparam("k_member_id"))
            .values({c: bindparam(c, type_=receipts.c[c].type) for c in columns}))


class _State:
    """A receipt's state columns, for `progress.classify`."""

    __slots__ = _RECEIPT_STATE

    def __init__(self, **values) -> None:
        for name in _RECEIPT_STATE:
            setattr(self, name, values[name])


def acknowledge(member: Member, document_id: int, version: int, *, client_at: datetime | None = None,
                platform: str | None = None, device: str | None = None) -> dict:
    """PUT /documents/{id}/acknowledgement. Idempotent; a version older than the one to acknowledge is
    409 stale_version.

    Five statements in one transaction, each built once: the document under its shared lock (with the
    reader's audience check), the receipt created or locked (returning it and the member's unit), the
    receipt's UPDATE (only if it changes) and the one counter's UPDATE (only if the state moves); the
    rules of `ackgate` (reading time, quiz) come between the first two, exactly as in `_change`. The lock
    order is every writer's: the document, the receipt, the counter."""
    now = utcnow()
    conn = db.session.connection()
    dialect = conn.dialect.name
    doc = conn.execute(_locked_document_statement(dialect),
                       {"document_id": document_id, "now": now, **reader_params(Reader.of(member))}).first()
    if doc is None:
        raise not_found()
    _check_version(doc, version)
    at = _clamp(client_at, doc, now)
    if ackgate.has_rules(doc):   # reading time, quiz: no statement at all for a document without rules
        ackgate.check(doc, member.id, at)
    row = conn.execute(_receipt_lock_statement(dialect), {"document_id": doc.id, "member_id": member.id}).one()
    before = progress.classify(row, doc.ack_version)
    values = {}
    if row.opened_at is None or _utc(at) < _utc(row.opened_at):
        values["opened_at"] = at
    if before != "acknowledged":   # else already acknowledged: idempotent
        values.update(acknowledged_at=at, acknowledged_version=version, method="app", recorded_by=member.id,
                      recorded_at=now, client_acknowledged_at=client_at, platform=platform, device=device,
                      held_on=None, note=None)
    state = _State(**{**{c: getattr(row, c) for c in _RECEIPT_STATE}, **values})
    after = progress.classify(state, doc.ack_version)
    answer = {"state": "acknowledged" if after == "acknowledged" else ("opened" if state.opened_at else "new"),
              "opened_at": state.opened_at, "acknowledged_at": state.acknowledged_at,
              "acknowledged_version": state.acknowledged_version}
    writes = []
    if values:
        columns = tuple(c for c in _ACK_WRITE if c in values)
        writes.append((_receipt_update_statement(columns),
                       {"k_document_id": doc.id, "k_member_id": member.id, **values}))
    move = row.active and before != after and doc.status in progress.ACTIVE_STATUSES
    if move and row.counted:
        writes.append(progress.counter_move(doc.id, row.unit_id, before, after))
        move = False
    if dialect == "postgresql" and not move:
        _pipelined(conn, writes)   # the UPDATEs and the COMMIT: one round trip
    else:
        for stmt, params in writes:
            conn.execute(stmt, params)
        if move:   # the unit has no counter row yet: counted from scratch (progress.apply_moves)
            progress.apply_moves(doc, [(row.unit_id, before, after)])
    db.session.commit()
    return answer


def _pipelined(conn, writes: list) -> None:
    """Send the statements and the COMMIT in one round trip (psycopg's pipeline mode), on the session's
    own connection and transaction; the session's commit that follows finds nothing left to do. An error
    in any of them raises here, before the COMMIT took effect (PostgreSQL skips what follows an error in
    a pipeline), and the session rolls back as after any failed statement."""
    raw = conn.connection.driver_connection
    last = None
    with raw.pipeline(), raw.cursor() as cursor:
        for stmt, params in writes:
            if last is not None:
                conn.dispatch.after_cursor_execute(conn, cursor, *last, None, False)
            compiled = _compiled(stmt, conn.dialect)
            last = (str(compiled), compiled.construct_params(params, escape_names=False))
            # Seen by the engine's cursor events like any statement (logs, statement counts, timings; the
            # last one's time includes the round trip that sends them all).
            conn.dispatch.before_cursor_execute(conn, cursor, *last, None, False)
            cursor.execute(*last)
        raw.commit()
    if last is not None:
        conn.dispatch.after_cursor_execute(conn, cursor, *last, None, False)


_COMPILED: dict = {}   # statement (built once, kept for good by functools.cache) → its compiled form


def _compiled(stmt, dialect):
    compiled = _COMPILED.get(id(stmt))
    if compiled is None:
        compiled = _COMPILED[id(stmt)] = stmt.compile(dialect=dialect)
    return compiled


def sync(member: Member, items: list[dict], *, platform: str | None = None, device: str | None = None) -> list[dict]:
    """POST /me/acknowledgements/sync: what an offline phone did, item by item, in one transaction."""
    reader = Reader.of(member)
    ids = {item["document_id"] for item in items}
    docs = {d.id: d for d in db.session.scalars(
        select(Document).where(Document.id.in_(ids), is_out(), in_audience(reader)))}
    now = utcnow()
    results: list[dict] = [{} for _ in items]
    # Documents locked in one order, so two syncs of one phone never deadlock; answers in the given order.
    for index, item in sorted(enumerate(items), key=lambda pair: (pair[1]["document_id"], pair[0])):
        doc = docs.get(item["document_id"])
        result = {"document_id": item["document_id"], "status": "ok"}
        if doc is None:
            result["status"] = "not_found"
        else:
            try:
                _sync_item(progress.lock_document(doc.id), member, item, now, platform, device)
            except ProblemError as e:
                result["status"] = SYNC_STATUSES[e.code]
                if e.code == "stale_version":
                    result["current_version"] = doc.version
                elif e.code == "quiz_required":
                    result["quiz_id"] = e.extra["quiz_id"]
        results[index] = result
    db.session.commit()
    return results


SYNC_STATUSES = {"stale_version": "stale_version", "ack_not_required": "not_required",
                 "validation_error": "invalid", "read_too_fast": "read_too_fast", "quiz_required": "quiz_required"}


def _sync_item(doc: Document, member: Member, item: dict, now: datetime, platform: str | None,
               device: str | None) -> None:
    """One offline item: the phone's open time first (so an acknowledgement does not stand in for it),
    then the acknowledgement; a rejected acknowledgement raises before anything of it is written."""
    version, opened_at, acknowledged_at = item.get("version"), item.get("opened_at"), item.get("acknowledged_at")
    if opened_at is not None:
        _change(doc, member, lambda r: _open(r, _clamp(opened_at, doc, now)))
    if acknowledged_at is not None or (version is not None and opened_at is None):
        if version is None:
            raise ProblemError("validation_error", 422)
        _acknowledge(doc, member, version, acknowledged_at, now, platform=platform, device=device)


# --- secretaries -----------------------------------------------------------------------------------

def followed_for_briefing(actor: Member, document_id: int) -> Document:
    """A document that is out (or was: withdrawn ones are 409) and reaches the actor's scope (else 404)."""
    if not scope_roots(actor, BRIEFING_ROLES):
        raise ProblemError("forbidden", 403)
    roots = scope_roots(actor, BRIEFING_ROLES)
    doc = db.session.get(Document, document_id)
    if doc is None or doc.published_at is None or doc.status == Status.DRAFT.value:
        raise ProblemError("not_found", 404)
    # Before its time a scheduled document does not exist for anyone but its managers (who get 409 below).
    if not (went_out(doc) or can_manage(actor, doc)) or not any(reaches(doc, root) for root in roots):
        raise ProblemError("not_found", 404)
    if doc.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 409)
    return doc


def _members_in_scope(actor: Member, doc: Document, member_ids: list[int]) -> dict[int, Member]:
    """The listed members that are in the document's audience and inside the actor's briefing scope."""
    rows = db.session.scalars(
        select(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(Member.id.in_(member_ids), progress.audience_members(doc)))
    return {m.id: m for m in rows if has_role_over(actor, m.org_unit, BRIEFING_ROLES)}


def _for_each_member(actor: Member, doc: Document, member_ids: list[int], mutate: Callable[[Receipt], None], *,
                     count_changed_only: bool) -> tuple[list[dict], list[int]]:
    """Apply `mutate` to each listed member in the actor's scope: per-member results, and the ids recorded
    (every member found, or with `count_changed_only` only those who became acknowledged)."""
    members = _members_in_scope(actor, doc, member_ids)
    doc = progress.lock_document(doc.id)   # the same object, refreshed: `mutate` sees it too
    changes = _change_many(doc, [m for m in member_ids if m in members], mutate)
    status, recorded = {}, []
    for member_id in sorted(set(member_ids)):
        if member_id not in changes:
            status[member_id] = "not_found"
            continue
        before, after, _ = changes[member_id]
        became = before != "acknowledged" and after == "acknowledged"
        status[member_id] = "already_acknowledged" if before == "acknowledged" else "ok"
        if became or (not count_changed_only and before != "acknowledged"):
            recorded.append(member_id)
    return [{"member_id": m, "status": status[m]} for m in dict.fromkeys(member_ids)], recorded


def record_briefing(actor: Member, document_id: int, member_ids: list[int], held_on: date,
                    note: str | None) -> list[dict]:
    """POST /documents/{id}/acknowledgements (method briefing): members briefed at a branch meeting."""
    doc = followed_for_briefing(actor, document_id)
    if not doc.requires_ack:
        raise ProblemError("ack_not_required", 409)
    now = utcnow()
    zone = local_zone()
    if held_on > now.astimezone(zone).date():
        raise ProblemError("validation_error", 422, errors={"held_on": ["not_in_future"]})
    if held_on < doc.published_at.astimezone(zone).date():
        raise ProblemError("validation_error", 422, errors={"held_on": ["before_publication"]})
    at = _clamp(datetime.combine(held_on, time(12, 0), tzinfo=zone), doc, now)
    note = nfc(note)

    def mutate(r: Receipt) -> None:
        if r.acknowledged_version is not None and r.acknowledged_version >= doc.ack_version:
            return
        r.acknowledged_at, r.acknowledged_version, r.method, r.recorded_by = at, doc.version, "briefing", actor.id
        r.recorded_at, r.held_on, r.note, r.client_acknowledged_at = now, held_on, note, None
        r.platform = r.device = None

    results, recorded = _for_each_member(actor, doc, member_ids, mutate, count_changed_only=True)
    audit.record("acknowledgement.briefing", actor_id=actor.id, target_type="document", target_id=doc.id,
                 members=recorded, held_on=held_on.isoformat(), note=note)
    db.session.commit()
    return results


def brief_at_meeting(actor: Member, document_id: int, member_ids: list[int], held_on: date,
                     meeting_id: int) -> list[int]:
    """Members present at a closed meeting whose agenda briefed the document, recorded as briefed (method
    `meeting`) in the caller's transaction (the meeting's close): only members of the document's audience
    who had not acknowledged its current version; returns their ids. A document that no longer needs
    acknowledging (withdrawn, not out, no acknowledgement required) briefs nobody. Undone like a briefing."""
    doc = db.session.get(Document, document_id)
    if doc is None or not doc.requires_ack or doc.status not in progress.ACTIVE_STATUSES or not went_out(doc):
        return []
    ids = set(db.session.scalars(select(Member.id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                                 .where(Member.id.in_(member_ids), progress.audience_members(doc))))
    doc = progress.lock_document(doc.id)
    now = utcnow()
    at = _clamp(datetime.combine(held_on, time(12, 0), tzinfo=local_zone()), doc, now)

    def mutate(r: Receipt) -> None:
        if r.acknowledged_version is not None and r.acknowledged_version >= doc.ack_version:
            return
        r.acknowledged_at, r.acknowledged_version, r.method, r.recorded_by = at, doc.version, "meeting", actor.id
        r.recorded_at, r.held_on, r.note, r.client_acknowledged_at = now, held_on, None, None
        r.platform = r.device = None

    changes = _change_many(doc, sorted(ids), mutate)
    recorded = [m for m, (before, after, _) in changes.items() if before != "acknowledged" and after == "acknowledged"]
    if recorded:
        audit.record("acknowledgement.briefing", actor_id=actor.id, target_type="document", target_id=doc.id,
                     members=recorded, held_on=held_on.isoformat(), method="meeting", meeting=meeting_id)
    return recorded


UNDOABLE_METHODS = ("briefing", "meeting")


def undo_briefing(actor: Member, document_id: int, member_id: int) -> None:
    """DELETE /documents/{id}/acknowledgements/{member_id}: only a briefing (by hand or at a meeting) can
    be undone."""
    doc = followed_for_briefing(actor, document_id)
    member = _members_in_scope(actor, doc, [member_id]).get(member_id)
    if member is None:
        raise ProblemError("not_found", 404)
    receipt = db.session.get(Receipt, (doc.id, member.id))
    if receipt is None or receipt.method not in UNDOABLE_METHODS:
        raise ProblemError("not_found", 404)

    def mutate(r: Receipt) -> None:
        r.acknowledged_at = r.acknowledged_version = r.method = r.recorded_by = None
        r.recorded_at = r.held_on = r.note = None

    _change(progress.lock_document(doc.id), member, mutate)
    audit.record("acknowledgement.briefing_undo", actor_id=actor.id, target_type="document", target_id=doc.id,
                 member=member_id)
    db.session.commit()


def exempt(actor: Member, document_id: int, member_ids: list[int], reason: str) -> list[dict]:
    """POST /documents/{id}/exemptions: members excused, with the reason kept; out of the denominator."""
    doc = followed_for_briefing(actor, document_id)
    reason = nfc(reason)
    if not reason:
        raise ProblemError("validation_error", 422, errors={"reason": ["required"]})
    now = utcnow()

    def mutate(r: Receipt) -> None:
        if progress.classify(r, doc.ack_version) == "acknowledged":
            return   # already acknowledged: nothing to excuse, nothing written (nor audited, nor exported)
        r.exempt_reason, r.exempted_at, r.exempted_by = reason, now, actor.id

    results, recorded = _for_each_member(actor, doc, member_ids, mutate, count_changed_only=False)
    audit.record("acknowledgement.exemption", actor_id=actor.id, target_type="document", target_id=doc.id,
                 members=recorded, reason=reason)
    db.session.commit()
    return results


def undo_exemption(actor: Member, document_id: int, member_id: int) -> None:
    """DELETE /documents/{id}/exemptions/{member_id}."""
    _undo(actor, document_id, member_id, "exempted_at", ("exempt_reason", "exempted_at", "exempted_by"),
          "acknowledgement.exemption_undo")


def _undo(actor: Member, document_id: int, member_id: int, marker: str, columns: tuple[str, ...],
          action: str) -> None:
    """Take back what a secretary recorded on one member's receipt (`marker` set): clear `columns`."""
    doc = followed_for_briefing(actor, document_id)
    member = _members_in_scope(actor, doc, [member_id]).get(member_id)
    receipt = db.session.get(Receipt, (doc.id, member_id)) if member else None
    if receipt is None or getattr(receipt, marker) is None:
        raise ProblemError("not_found", 404)

    def mutate(r: Receipt) -> None:
        for column in columns:
            setattr(r, column, None)

    _change(progress.lock_document(doc.id), member, mutate)
    audit.record(action, actor_id=actor.id, target_type="document", target_id=doc.id, member=member_id)
    db.session.commit()


# --- deadline extensions ---------------------------------------------------------------------------

MAX_EXTENSION = 90   # days past the deadline


def extend(actor: Member, document_id: int, member_ids: list[int], until: date, reason: str) -> list[dict]:
    """POST /documents/{id}/extensions: chosen members get a later date for one document (illness,
    leave): not overdue, nor reminded, until that local day ends. Members who already acknowledged are
    `already_acknowledged` and nothing is written for them; no count moves (an extension changes no state)."""
    doc = followed_for_briefing(actor, document_id)
    if not doc.requires_ack or doc.deadline is None:
        raise ProblemError("ack_not_required", 409)
    reason = nfc(reason)
    deadline_day = as_utc(doc.deadline).astimezone(local_zone()).date()
    errors = {}
    if not reason:
        errors["reason"] = ["required"]
    if until <= deadline_day:
        errors["until"] = ["not_after_deadline"]
    elif (until - deadline_day).days > MAX_EXTENSION:
        errors["until"] = ["too_far"]
    if errors:
        raise ProblemError("validation_error", 422, errors=errors)

    def mutate(r: Receipt) -> None:
        if progress.classify(r, doc.ack_version) == "acknowledged":
            return
        r.extended_until, r.extension_reason, r.extended_by = until, reason, actor.id

    results, recorded = _for_each_member(actor, doc, member_ids, mutate, count_changed_only=False)
    audit.record("acknowledgement.extension", actor_id=actor.id, target_type="document", target_id=doc.id,
                 members=recorded, until=until.isoformat(), reason=reason)
    db.session.commit()
    return results


def undo_extension(actor: Member, document_id: int, member_id: int) -> None:
    """DELETE /documents/{id}/extensions/{member_id}."""
    _undo(actor, document_id, member_id, "extended_until", ("extended_until", "extension_reason", "extended_by"),
          "acknowledgement.extension_undo")
