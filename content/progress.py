"""Per-unit progress counters: kept exact in the writer's transaction, summed up the tree on read.

Each audience member of a document is in exactly one state:
    acknowledged  acknowledged a version >= the document's `ack_version` (by app or briefing);
    exempt        excused (with a reason) and not acknowledged;
    opened        opened, neither acknowledged nor exempt;
    new           none of these.
`progress_counters` holds, per (document, member-holding unit), the total and the opened / acknowledged /
exempt counts (new is the rest). Member-level changes (`apply_moves`) move counts from one column to
another; set-based changes (publication, re-acknowledgement, membership changes) `recount` the affected
rows from the raw rows with one GROUP BY. Both run in the caller's transaction.

Concurrency (PostgreSQL): a member-level writer holds FOR SHARE on the document row and FOR UPDATE on
the receipt; `recount` takes FOR UPDATE on the documents it rebuilds, so it never interleaves with a
single-member change on the same document, and two changes of one member are serialised by the receipt.
Every writer takes its locks in one global order: documents (by id), then receipts (by member id), then
counter rows (by unit id); a batch locks all its receipts before it moves any counter (`apply_moves`).
Exclusive row locks are FOR NO KEY UPDATE (`key_share=True`), never FOR UPDATE: no key ever changes, and a
FOR UPDATE also blocks the KEY SHARE lock that every foreign-key check takes on the referenced row, which
let a reminder (unit locked, then a notification referencing the document) and a recount (document
locked, then counters referencing the unit) deadlock.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (Integer, and_, bindparam, case, delete, exists, false, func, insert, literal, or_, select,
                        update)
from sqlalchemy.orm import lazyload

from content.models import (Document, DocumentAudience, ProgressCounter, ProgressSnapshot, Receipt, Status,
                            mask_to_roles)
from handbook.extensions import db, one_of
from handbook.members import Member, RoleGrant, membership_changed
from handbook.orgunits import OrgUnit, in_subtree
from handbook.timeutil import local_zone

ACTIVE_STATUSES = (Status.PUBLISHED.value, Status.SCHEDULED.value)
COLUMNS = {"opened": "opened", "acknowledged": "acknowledged", "exempt": "exempt"}
LEVEL_COLUMNS = ("l1_id", "l2_id", "l3_id")


def classify(receipt: Receipt | None, ack_version: int) -> str:
    if receipt is None:
        return "new"
    if receipt.acknowledged_version is not None and receipt.acknowledged_version >= ack_version:
        return "acknowledged"
    if receipt.exempted_at is not None:
        return "exempt"
    if receipt.opened_at is not None:
        return "opened"
    return "new"


def acknowledged_condition(ack_version):
    """SQL condition on a (LEFT JOINed) receipt: it acknowledges `ack_version` or a later version."""
    return and_(Receipt.acknowledged_version.is_not(None), Receipt.acknowledged_version >= ack_version)


def state_expression(ack_version, acknowledged_by: datetime | None = None):
    """SQL CASE giving the state of a (LEFT JOINed) receipt; mirrors `classify`. With `acknowledged_by`,
    an acknowledgement counts only if made by then (for the state at a deadline)."""
    acknowledged = acknowledged_condition(ack_version)
    if acknowledged_by is not None:
        acknowledged = and_(acknowledged, Receipt.acknowledged_at <= acknowledged_by)
    return case(
        (acknowledged, literal("acknowledged")),
        (Receipt.exempted_at.is_not(None), literal("exempt")),
        (Receipt.opened_at.is_not(None), literal("opened")),
        else_=literal("new"),
    )


def extended_condition(today):
    """SQL condition on a (LEFT JOINed) receipt: the member has a deadline extension running on `today`
    (a local date): not overdue, nor reminded."""
    return and_(Receipt.extended_until.is_not(None), Receipt.extended_until >= today)


def levels(path: str) -> dict[str, int | None]:
    """'/1/7/93/400/' → l1=7, l2=93, l3=400: ancestors-or-self at depths 1-3."""
    ids = [int(p) for p in path.strip("/").split("/")]
    return {col: (ids[i + 1] if len(ids) > i + 1 else None) for i, col in enumerate(LEVEL_COLUMNS)}


def lock_document(document_id: int) -> Document:
    """The document, re-read under a shared row lock (PostgreSQL): member-level writers hold it, so a
    recount or a material change (which lock the row exclusively) never interleaves with them, and they
    see the `ack_version` that is current once they have the lock."""
    return db.session.scalars(share_locked(select(Document).where(Document.id == document_id))).one()


def share_locked(stmt):
    """`stmt` (selecting documents) re-reading them afresh under a shared row lock on PostgreSQL, without
    their relationships: a writer needs the row, and loads audience or attachments only if it uses them."""
    stmt = stmt.options(lazyload("*")).execution_options(populate_existing=True)
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True, of=Document)
    return stmt


def apply_moves(doc: Document, moves: Iterable[tuple[int, str, str]]) -> None:
    """Move members between states: each move is (unit id, before, after). One UPDATE per unit whose
    counts change, in unit id order: counters are the last rows of the global lock order (document, then
    receipts by member, then counters by unit), so writers never wait for each other in a cycle."""
    if doc.status not in ACTIVE_STATUSES:
        return
    deltas: dict[int, dict[str, int]] = {}
    for unit_id, before, after in moves:
        if before == after:
            continue
        unit = deltas.setdefault(unit_id, {})
        if before in COLUMNS:
            unit[COLUMNS[before]] = unit.get(COLUMNS[before], 0) - 1
        if after in COLUMNS:
            unit[COLUMNS[after]] = unit.get(COLUMNS[after], 0) + 1
    conn = db.session.connection()
    for unit_id in sorted(deltas):
        values = {f"d_{name}": delta for name, delta in sorted(deltas[unit_id].items()) if delta}
        if not values:
            continue
        result = conn.execute(_counter_update(tuple(name[2:] for name in values)),
                              {"k_document_id": doc.id, "k_unit_id": unit_id, **values})
        if result.rowcount == 0:
            # No row yet (a unit that got its first audience member after publication): count it from scratch.
            recount_document(doc, unit_ids=[unit_id])


def counter_move(document_id: int, unit_id: int, before: str, after: str) -> tuple:
    """The UPDATE (statement, parameters) moving one member of `unit_id` from `before` to `after`, for a
    caller that knows the counter row exists (else: `apply_moves`, which counts a missing row)."""
    deltas = {}
    if before in COLUMNS:
        deltas[f"d_{COLUMNS[before]}"] = -1
    if after in COLUMNS:
        deltas[f"d_{COLUMNS[after]}"] = deltas.get(f"d_{COLUMNS[after]}", 0) + 1
    deltas = dict(sorted((k, v) for k, v in deltas.items() if v))
    return (_counter_update(tuple(name[2:] for name in deltas)),
            {"k_document_id": document_id, "k_unit_id": unit_id, **deltas})


@functools.cache
def _counter_update(columns: tuple[str, ...]):
    """UPDATE of one counter row adding `:d_<column>` to each of `columns` (Core, built once per set)."""
    counters = ProgressCounter.__table__
    return (counters.update()
            .where(counters.c.document_id == bindparam("k_document_id"), counters.c.org_unit_id == bindparam("k_unit_id"))
            .values({c: counters.c[c] + bindparam(f"d_{c}", type_=Integer) for c in columns}))


def audience_members(doc: Document, unit_filter=None):
    """SQL condition on Member/OrgUnit (joined): the member is in the document's audience."""
    audience_paths = select(OrgUnit.path).join(DocumentAudience, DocumentAudience.org_unit_id == OrgUnit.id) \
        .where(DocumentAudience.document_id == doc.id)
    paths = list(db.session.scalars(audience_paths))
    conditions = [Member.active.is_(True), or_(*[in_subtree(OrgUnit.path, p) for p in paths]) if paths else false()]
    if doc.roles_mask:
        conditions.append(exists().where(RoleGrant.member_id == Member.id,
                                         RoleGrant.role.in_(mask_to_roles(doc.roles_mask))))
    if unit_filter is not None:
        conditions.append(unit_filter)
    return and_(*conditions)


def _count_rows(doc: Document, unit_ids: list[int] | None, acknowledged_by: datetime | None = None) -> list[dict]:
    """Per member-holding unit: the audience members and how many are in each state (one GROUP BY)."""
    state = state_expression(doc.ack_version, acknowledged_by)

    def count(name):
        return func.sum(case((state == name, 1), else_=0))

    stmt = (
        select(Member.org_unit_id, OrgUnit.path, func.count(), count("opened"), count("acknowledged"),
               count("exempt"))
        .join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .outerjoin(Receipt, and_(Receipt.document_id == doc.id, Receipt.member_id == Member.id))
        .where(audience_members(doc, Member.org_unit_id.in_(unit_ids) if unit_ids is not None else None))
        .group_by(Member.org_unit_id, OrgUnit.path)
    )
    return [{"document_id": doc.id, "org_unit_id": unit_id, **levels(path), "total": total, "opened": opened,
             "acknowledged": acknowledged, "exempt": exempt}
            for unit_id, path, total, opened, acknowledged, exempt in db.session.execute(stmt)]


def _write(model, rows: list[dict]) -> None:
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(model), rows[start:start + 5000])


def recount_document(doc: Document, unit_ids: Iterable[int] | None = None) -> int:
    """Rebuild the document's counters (all units, or only `unit_ids`) from members and receipts."""
    unit_ids = None if unit_ids is None else sorted(set(unit_ids))
    where = [ProgressCounter.document_id == doc.id]
    if unit_ids is not None:
        where.append(ProgressCounter.org_unit_id.in_(unit_ids))
    db.session.execute(delete(ProgressCounter).where(*where))
    if doc.status not in ACTIVE_STATUSES:
        return 0
    rows = _count_rows(doc, unit_ids)
    _write(ProgressCounter, rows)
    return len(rows)


def close_due(at: datetime) -> list[Document]:
    """Freeze the progress of every published document whose deadline has passed by `at` (once each):
    `acknowledged` counts only acknowledgements made by the deadline. Safe to run twice."""
    stmt = (select(Document).where(Document.status == Status.PUBLISHED.value, Document.requires_ack.is_(True),
                                   Document.deadline <= at, Document.closed_at.is_(None))
            .order_by(Document.deadline, Document.id))
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Document, key_share=True)
    docs = list(db.session.scalars(stmt))
    for doc in docs:
        db.session.execute(delete(ProgressSnapshot).where(ProgressSnapshot.document_id == doc.id))
        _write(ProgressSnapshot, _count_rows(doc, None, acknowledged_by=doc.deadline))
        doc.closed_at = at
    db.session.commit()
    return docs


def recount(document_ids: Iterable[int] | None = None, unit_ids: Iterable[int] | None = None) -> int:
    """Rebuild the counters of active documents (all, or some), for all units or only `unit_ids`.

    Used by `handbook recount` (and, through `_recount`, after membership changes); returns rows written.
    """
    return _recount(_lock_active(document_ids), unit_ids)


def _recount(docs: list[Document], unit_ids: Iterable[int] | None) -> int:
    return sum(recount_document(doc, unit_ids) for doc in docs)


def _lock_active(document_ids: Iterable[int] | None = None) -> list[Document]:
    """The active documents (all, or some), locked exclusively in id order (PostgreSQL): no member-level
    change interleaves with a rebuild of their counters."""
    stmt = select(Document).where(Document.status.in_(ACTIVE_STATUSES)).order_by(Document.id)
    if document_ids is not None:
        stmt = stmt.where(Document.id.in_(list(document_ids)))
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Document, key_share=True)
    return list(db.session.scalars(stmt))


@membership_changed.connect
def on_membership_changed(sender, unit_ids: set[int], joined: dict[int, int] | None = None, **_) -> None:
    """Members joined, left or moved between these units (or their roles changed): recount them. New
    members who joined other units are added to those units' counters instead (see `count_joined`)."""
    if not unit_ids and not joined:
        return
    docs = _lock_active()   # first: neither the increments nor the recounts may interleave
    if joined:
        unit_ids = set(unit_ids) | count_joined(joined, docs)
    if unit_ids:
        _recount(docs, unit_ids)


UNIT_CHUNK = 5000   # unit ids per statement (SQLite's limit on parameters)


def count_joined(joined: dict[int, int], docs: list[Document]) -> set[int]:
    """`joined[unit]` members were just created in `unit`, with no receipt and no role: each is `new` for
    every active document whose audience covers the unit and asks for no role, so those counters' totals
    grow by that many, with no need to count the unit's other members again (an import of a whole city
    would otherwise recount every unit of every document). A unit that had no active member before has
    no counter rows to grow: those units are returned, to be recounted. `docs`: the active documents,
    locked by the caller."""
    fresh: set[int] = set()
    units = sorted(joined)
    for start in range(0, len(units), UNIT_CHUNK):
        chunk = units[start:start + UNIT_CHUNK]
        active = dict(db.session.execute(
            select(Member.org_unit_id, func.count()).where(one_of(Member.org_unit_id, chunk), Member.active)
            .group_by(Member.org_unit_id)).all())
        fresh.update(unit for unit in chunk if active.get(unit, 0) <= joined[unit])
    growing = [doc.id for doc in docs if doc.roles_mask == 0]
    if not growing:
        return fresh
    by_count: dict[int, list[int]] = {}
    for unit in units:
        if unit not in fresh:
            by_count.setdefault(joined[unit], []).append(unit)
    for n, group in sorted(by_count.items()):
        for start in range(0, len(group), UNIT_CHUNK):
            db.session.execute(
                update(ProgressCounter)
                .where(one_of(ProgressCounter.org_unit_id, group[start:start + UNIT_CHUNK]),
                       one_of(ProgressCounter.document_id, growing))
                .values(total=ProgressCounter.total + n).execution_options(synchronize_session=False))
    return fresh


# --- reading ---------------------------------------------------------------------------------------

def child_column(model, depth: int):
    """The column of a counter table (`levels()`) holding, for a unit at `depth`, its child's id."""
    return getattr(model, LEVEL_COLUMNS[depth]) if depth < len(LEVEL_COLUMNS) else model.org_unit_id


def scope_condition(model, unit: OrgUnit):
    """SQL condition on a counter table: the row's unit lies in `unit`'s subtree (None at the root)."""
    if unit.depth == 0:
        return None
    if unit.depth <= len(LEVEL_COLUMNS):
        return getattr(model, LEVEL_COLUMNS[unit.depth - 1]) == unit.id
    return model.org_unit_id == unit.id


def _figures(total, opened, acknowledged, exempt, overdue: bool) -> dict:
    total, opened, acknowledged, exempt = (int(v or 0) for v in (total, opened, acknowledged, exempt))
    pending = total - acknowledged - exempt
    return {"total": total, "acknowledged": acknowledged, "opened": opened, "pending": pending,
            "overdue": pending if overdue else 0, "exempt": exempt}


def _breakdown(model, doc: Document, unit: OrgUnit, overdue: bool, children: bool = True) -> dict:
    """Totals for `unit`'s subtree and by its children: one GROUP BY over the rows of `model`."""
    child = child_column(model, unit.depth)
    stmt = (select(child, func.sum(model.total), func.sum(model.opened), func.sum(model.acknowledged),
                   func.sum(model.exempt))
            .where(model.document_id == doc.id).group_by(child))
    scope = scope_condition(model, unit)
    if scope is not None:
        stmt = stmt.where(scope)
    rows = db.session.execute(stmt).all()
    sums = [sum(int(r[i] or 0) for r in rows) for i in range(1, 5)]
    out = {"org_unit": unit.brief(), **_figures(*sums, overdue)}
    if children:
        child_rows = [r for r in rows if r[0] is not None and r[0] != unit.id]
        units = {u.id: u for u in db.session.scalars(
            select(OrgUnit).where(OrgUnit.id.in_([r[0] for r in child_rows])))} if child_rows else {}
        out["children"] = [{"org_unit": units[r[0]].brief(), **_figures(*r[1:], overdue)}
                           for r in sorted(child_rows, key=lambda r: units[r[0]].path) if r[0] in units]
    return out


def unit_progress(doc: Document, unit: OrgUnit, now: datetime, *, children: bool = True) -> dict:
    """Live progress for `unit`'s subtree and each of its children. Past the deadline the pending are
    overdue, but for members whose deadline extension still runs."""
    overdue = bool(doc.requires_ack and doc.deadline is not None and doc.deadline < now)
    out = {**_breakdown(ProgressCounter, doc, unit, overdue, children), "deadline": doc.deadline}
    if overdue:
        extended = _extended_pending(doc, unit, now)
        out["overdue"] -= sum(extended.values())
        for child in out.get("children", []):
            child["overdue"] -= extended.get(child["org_unit"]["id"], 0)
    return out


def _extended_pending(doc: Document, unit: OrgUnit, now: datetime) -> dict[int, int]:
    """{child unit id (the unit's own id for its own members): pending audience members of `unit`'s
    subtree whose extension runs today}. Reads the extensions only: O(extended members). First the
    document's pending extended receipts alone (the partial index of receipts with an extension: none
    at all is the usual answer, and costs one index probe), then only those members' units: a plan that
    starts from the subtree's members, or from the document's receipts, reads millions of rows for a
    city (tests/test_meetings.py checks the plan)."""
    today = now.astimezone(local_zone()).date()
    member_ids = db.session.scalars(
        select(Receipt.member_id)
        .where(Receipt.document_id == doc.id, extended_condition(today), ~acknowledged_condition(doc.ack_version),
               Receipt.exempted_at.is_(None))).all()
    if not member_ids:
        return {}
    paths = db.session.scalars(
        select(OrgUnit.path).select_from(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(Member.id.in_(member_ids), audience_members(doc, in_subtree(OrgUnit.path, unit.path))))
    counts: dict[int, int] = {}
    for path in paths:
        ids = [int(p) for p in path.strip("/").split("/")]
        key = ids[unit.depth + 1] if len(ids) > unit.depth + 1 else unit.id
        counts[key] = counts.get(key, 0) + 1
    return counts


def unit_compliance(doc: Document, unit: OrgUnit) -> dict:
    """Progress at the deadline for `unit` and its children, each with `reached`: every audience member
    acknowledged by the deadline or was exempt."""
    out = _breakdown(ProgressSnapshot, doc, unit, overdue=True)
    for part in [out, *out["children"]]:
        part["reached"] = part["pending"] == 0
        for key in ("opened", "overdue"):
            part.pop(key)
    return out
