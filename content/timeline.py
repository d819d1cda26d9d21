"""Acknowledgements over time: a document's progress in a unit's subtree, day by day, against its deadline.

Cost O(units × days) to build and O(days) + one live read to show, never O(members), and nothing on the
acknowledgement's path: once a day `run_due` (`take_due`) sums the live per-unit counters
(`progress_counters`) up the tree and stores one row per (document, unit with audience members, day) in
`progress_daily`; `progress_daily_runs` records which (document, day) was taken, so a second run, or a
second worker, does nothing. Today's point is read live from the counters (the progress page's own read).

How stale a past day may be: the row for day D is the counters as the first `run_due` of day D+1 (local
time, HANDBOOK_TIMEZONE) found them, taken only within PROGRESS_DAILY_GRACE_HOURS (6) after midnight (else the day stays a
gap rather than show a later count under its date). With a worker running that is within a tick
(PUSH_TICK_SECONDS) of midnight, plus the time the batch before it took; acknowledgements made between
midnight and the snapshot count for D. Days when no worker ran are gaps; the chart skips them.
A material change (re-acknowledgement) shows as the drop it is.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import insert, select

from content.followup import followed_document, resolve_unit
from content.models import Document, ProgressCounter, ProgressDaily, ProgressDailyRun, Status
from content.progress import unit_progress
from handbook.extensions import db, upsert
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.timeutil import as_utc, local_zone, utcnow

DAILY_BATCH = 20                    # documents per run_due: a tick stays short; the rest go next tick
DAYS_AFTER_DEADLINE = 14            # late acknowledgements are charted this many days past the deadline


def local_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(local_zone()).date()


def _due_documents(day: date, limit: int) -> list[Document]:
    """Published documents asking for acknowledgement that were out on `day`, not past their charted
    window, whose `day` is not taken yet (the oldest first)."""
    zone = local_zone()
    end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    taken = select(ProgressDailyRun.document_id).where(ProgressDailyRun.day == day)
    stmt = (select(Document).where(
        Document.status == Status.PUBLISHED.value, Document.requires_ack.is_(True),
        Document.published_at < end_of_day,
        Document.deadline >= end_of_day - timedelta(days=DAYS_AFTER_DEADLINE + 1),
        Document.id.not_in(taken)).order_by(Document.id).limit(limit))
    return list(db.session.scalars(stmt))


def subtree_sums(document_id: int) -> dict[int, list[int]]:
    """{unit id: [total, opened, acknowledged, exempt]} for every unit that has audience members in its
    subtree, from the document's counters (one row per member-holding unit) and their units' paths."""
    sums: dict[int, list[int]] = {}
    rows = db.session.execute(
        select(OrgUnit.path, ProgressCounter.total, ProgressCounter.opened, ProgressCounter.acknowledged,
               ProgressCounter.exempt)
        .join(OrgUnit, OrgUnit.id == ProgressCounter.org_unit_id)
        .where(ProgressCounter.document_id == document_id))
    for path, *figures in rows:
        if not figures[0]:
            continue
        for unit_id in path.strip("/").split("/"):
            unit_sums = sums.get(int(unit_id))
            if unit_sums is None:
                sums[int(unit_id)] = list(figures)
            else:
                for i, value in enumerate(figures):
                    unit_sums[i] += value
    return sums


def take(doc: Document, day: date, now: datetime) -> int | None:
    """Store the document's progress for `day` (the counters now), once: None when it was already taken.
    One transaction; the run row is written first, so a concurrent run waits for it and then skips."""
    claimed = db.session.execute(upsert(ProgressDailyRun).values(
        document_id=doc.id, day=day, taken_at=now, units=0).on_conflict_do_nothing())
    if claimed.rowcount == 0:
        db.session.rollback()
        return None
    sums = subtree_sums(doc.id)
    rows = [{"document_id": doc.id, "org_unit_id": unit_id, "day": day, "total": f[0], "opened": f[1],
             "acknowledged": f[2], "exempt": f[3]} for unit_id, f in sorted(sums.items())]
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(ProgressDaily), rows[start:start + 5000])
    db.session.execute(ProgressDailyRun.__table__.update().where(
        ProgressDailyRun.document_id == doc.id, ProgressDailyRun.day == day).values(units=len(rows)))
    db.session.commit()
    return len(rows)


def take_due(now: datetime | None = None, *, limit: int = DAILY_BATCH) -> list[tuple[Document, date, int]]:
    """Called by `run_due`: take yesterday's point (local time) of up to `limit` documents not taken yet.
    Only within PROGRESS_DAILY_GRACE_HOURS of midnight; later, yesterday stays a gap. Returns what was taken."""
    now = as_utc(now) if now is not None else utcnow()
    today = local_day(now)
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=local_zone())
    if now - midnight > timedelta(hours=current_app.config["PROGRESS_DAILY_GRACE_HOURS"]):
        return []
    day = today - timedelta(days=1)
    done = []
    for doc in _due_documents(day, limit):
        units = take(doc, day, now)
        if units is not None:
            done.append((doc, day, units))
    return done


# --- reading ---------------------------------------------------------------------------------------

def _point(day: date, total: int, opened: int, acknowledged: int, exempt: int, live: bool) -> dict:
    total, opened, acknowledged, exempt = (int(v or 0) for v in (total, opened, acknowledged, exempt))
    return {"day": day, "total": total, "acknowledged": acknowledged, "opened": opened, "exempt": exempt,
            "pending": total - acknowledged - exempt, "live": live}


def unit_series(doc: Document, unit: OrgUnit, now: datetime, today: dict | None = None) -> dict:
    """The stored days of `unit`'s subtree (one primary-key range read) and today's point, live from the
    counters (`today`: the unit's progress when the caller has just read it, else read here)."""
    stored = db.session.execute(
        select(ProgressDaily.day, ProgressDaily.total, ProgressDaily.opened, ProgressDaily.acknowledged,
               ProgressDaily.exempt)
        .where(ProgressDaily.document_id == doc.id, ProgressDaily.org_unit_id == unit.id)
        .order_by(ProgressDaily.day)).all()
    current = local_day(now)
    days = [_point(*row, live=False) for row in stored if row[0] < current]
    if doc.published_at is not None and local_day(doc.published_at) <= current:
        figures = today if today is not None else unit_progress(doc, unit, now, children=False)
        days.append(_point(current, figures["total"], figures["opened"], figures["acknowledged"],
                           figures["exempt"], live=True))
    return {"org_unit": unit.brief(),
            "published_on": local_day(doc.published_at) if doc.published_at is not None else None,
            "deadline": doc.deadline, "deadline_day": local_day(doc.deadline) if doc.deadline else None,
            "as_of": now, "days": days}


def progress_over_time(viewer: Member, document_id: int, org_unit_id: int | None) -> dict:
    """GET /documents/{id}/progress/daily: same access as the progress (403 for a unit outside the
    caller's scope, 404 for a document that does not reach it)."""
    unit = resolve_unit(viewer, org_unit_id)
    doc = followed_document(viewer, document_id, unit)
    return unit_series(doc, unit, utcnow())

