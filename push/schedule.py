"""When notifications fall due: reminders and escalations on their days, manual reminders, quiet hours.

- Reminders go `REMINDER_DAYS` after the start of the acknowledgement round (the publication, or the
  material change that asked everyone again) to members still pending, and never after the deadline.
- Escalations go `ESCALATION_DAYS` after it to the secretaries of units with pending members.
- Each is written once, keyed by round and day (`reminder:v2:d7`), so running twice creates nothing new.
  When several days are overdue at once (the worker was down), only the latest goes out; the earlier
  ones are recorded as cancelled.
- Quiet hours (`QUIET_HOURS`, local time, may span midnight) hold every notification that is not
  urgent until the window ends; what is already being sent finishes.
- A secretary's manual reminder goes to the pending members of one unit, at most once per unit and
  document in 24 hours.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from content.access import went_out
from content.acknowledgements import BRIEFING_ROLES, followed_for_briefing
from content.models import Document, DocumentVersion, Status
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db, upsert
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.permissions import forbidden, has_role_over, not_found
from handbook.timeutil import as_utc, local_zone, utcnow
from push.fanout import unit_pending_condition
from push.models import Notification, NotificationKind, NotificationState

MANUAL_INTERVAL = timedelta(hours=24)


# --- quiet hours -------------------------------------------------------------------------------------

def quiet_window(spec: str | None = None) -> tuple[time, time] | None:
    """'21:00-07:00' → (21:00, 07:00); empty → None. `create_app` checks the setting at start-up."""
    spec = current_app.config["QUIET_HOURS"] if spec is None else spec   # config.py always sets it
    if not spec or not spec.strip():
        return None
    try:
        start, end = (datetime.strptime(part.strip(), "%H:%M").time() for part in spec.split("-"))
    except ValueError:
        raise ValueError(f"QUIET_HOURS must look like 21:00-07:00 (HH:MM-HH:MM), not {spec!r}") from None
    return None if start == end else (start, end)


def is_quiet(at: datetime, window: tuple[time, time] | None = None) -> bool:
    window = window if window is not None else quiet_window()
    if window is None:
        return False
    start, end = window
    local = as_utc(at).astimezone(local_zone()).time().replace(tzinfo=None)
    return start <= local < end if start < end else (local >= start or local < end)


def quiet_ends(at: datetime) -> datetime:
    """The first instant at or after `at` outside quiet hours."""
    window = quiet_window()
    if window is None or not is_quiet(at, window):
        return at
    zone = local_zone()
    local = as_utc(at).astimezone(zone)
    end = datetime.combine(local.date(), window[1], tzinfo=zone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), window[1], tzinfo=zone)
    return as_utc(end)


# --- reminders and escalations -----------------------------------------------------------------------

def _round_starts(docs: list[Document]) -> dict[int, datetime]:
    """When each document's current acknowledgement round began: its publication for version 1, else the
    version that asked for acknowledgement again."""
    later = {d.id: d.ack_version for d in docs if d.ack_version > 1}
    starts = {d.id: as_utc(d.published_at) for d in docs}
    if later:
        for doc_id, version, created_at in db.session.execute(
                select(DocumentVersion.document_id, DocumentVersion.version, DocumentVersion.created_at)
                .where(DocumentVersion.document_id.in_(later))):
            if later[doc_id] == version:
                starts[doc_id] = as_utc(created_at)
    return starts


def schedule_due(at: datetime) -> list[tuple[str, str, int]]:
    """Create the reminders and escalations due at `at` (idempotent, also between concurrent runners:
    INSERT … ON CONFLICT DO NOTHING on (document, key)). Returns (kind, key, document id) of those
    created to be sent."""
    reminder_days = sorted(current_app.config["REMINDER_DAYS"])   # config.py always sets both ([]: none)
    escalation_days = sorted(current_app.config["ESCALATION_DAYS"])
    if not reminder_days and not escalation_days:
        return []
    horizon = max(reminder_days + escalation_days)
    # The current round began at most `ack_days` before the deadline, so a deadline older than the
    # horizon (plus the longest plausible round) has nothing left to schedule.
    docs = list(db.session.scalars(select(Document).where(
        Document.status == Status.PUBLISHED.value, Document.requires_ack.is_(True),
        Document.published_at <= at, Document.deadline >= at - timedelta(days=horizon + 400))))
    if not docs:
        return []
    starts = _round_starts(docs)
    known = set(db.session.execute(select(Notification.document_id, Notification.dedupe_key).where(
        Notification.document_id.in_([d.id for d in docs]), Notification.dedupe_key.is_not(None))))
    created = []
    for doc in docs:
        start = starts[doc.id]
        for kind, days in ((NotificationKind.REMINDER, reminder_days), (NotificationKind.ESCALATION, escalation_days)):
            due = [d for d in days if start + timedelta(days=d) <= at]
            if kind == NotificationKind.REMINDER and doc.deadline is not None and at > as_utc(doc.deadline):
                due_now = []  # no reminders once the deadline has passed
            else:
                due_now = due[-1:]
            for day in due:
                key = f"{kind.value}:v{doc.ack_version}:d{day}"
                if (doc.id, key) in known:
                    continue
                live = day in due_now
                inserted = db.session.execute(
                    upsert(Notification).values(
                        kind=kind.value, document_id=doc.id, org_unit_id=doc.owner_unit_id, dedupe_key=key,
                        due_at=start + timedelta(days=day), created_at=utcnow(),
                        state=(NotificationState.PENDING if live else NotificationState.CANCELLED).value,
                        finished_at=None if live else at)
                    .on_conflict_do_nothing(index_elements=["document_id", "dedupe_key"])
                    .returning(Notification.id)).first()
                if live and inserted is not None:
                    created.append((kind.value, key, doc.id))
    db.session.commit()
    return created


def cancel_expired(at: datetime) -> list[tuple[int, str, int]]:
    """Reminders still waiting (quiet hours held them) when the deadline they name has passed are not
    sent any more."""
    expired = list(db.session.execute(
        select(Notification.id, Notification.kind, Notification.document_id)
        .join(Document, Document.id == Notification.document_id)
        .where(Notification.state == NotificationState.PENDING.value, Notification.due_at <= at,
               Notification.kind.in_([NotificationKind.REMINDER.value, NotificationKind.MANUAL.value]),
               Document.deadline < at)))
    if expired:
        db.session.execute(update(Notification).where(Notification.id.in_([e[0] for e in expired]),
                                                      Notification.state == NotificationState.PENDING.value)
                           .values(state=NotificationState.CANCELLED.value, finished_at=at)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return [tuple(e) for e in expired]


def cancel_started_meeting_reminders(at: datetime) -> list[tuple[int, int]]:
    """Meeting reminders still waiting (quiet hours held them) when their meeting has started are not sent."""
    from content.models import Meeting

    stale = list(db.session.execute(
        select(Notification.id, Notification.meeting_id).join(Meeting, Meeting.id == Notification.meeting_id)
        .where(Notification.state == NotificationState.PENDING.value,
               Notification.kind == NotificationKind.MEETING_REMINDER.value, Meeting.starts_at <= at)))
    if stale:
        db.session.execute(update(Notification).where(Notification.id.in_([n for n, _ in stale]),
                                                      Notification.state == NotificationState.PENDING.value)
                           .values(state=NotificationState.CANCELLED.value, finished_at=at)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return [tuple(row) for row in stale]


def due_notifications(at: datetime, limit: int = 100) -> list[int]:
    """Pending notifications due at `at`; outside quiet hours all of them, inside only urgent ones."""
    stmt = select(Notification.id).where(Notification.state == NotificationState.PENDING.value,
                                         Notification.due_at <= at)
    if is_quiet(at):
        stmt = stmt.where(Notification.urgent.is_(True))
    return list(db.session.scalars(stmt.order_by(Notification.due_at, Notification.id).limit(limit)))


# --- manual reminders --------------------------------------------------------------------------------

def remind(actor: Member, document_id: int, org_unit_id: int, *, now: datetime | None = None) -> dict:
    """POST /documents/{id}/reminders: push the pending members of one unit (its subtree). `now`: the
    request's time (utcnow(); given by tests, as `run_due(at)` is)."""
    doc = followed_for_briefing(actor, document_id)
    now = utcnow() if now is None else now
    if not went_out(doc, now):   # as content.access sees it: members cannot open it yet, nothing to remind of
        raise ProblemError("document_not_out", 409)
    if not doc.requires_ack:
        raise ProblemError("ack_not_required", 409)
    unit_stmt = select(OrgUnit).where(OrgUnit.id == org_unit_id)
    if db.session.get_bind().dialect.name == "postgresql":
        # Serialises reminders for one unit (the 24-hour rule holds). NO KEY UPDATE, not UPDATE: a recount
        # inserting counters for this unit takes KEY SHARE on it (foreign key) while holding its document.
        unit_stmt = unit_stmt.with_for_update(key_share=True)
    unit = db.session.scalar(unit_stmt)
    if unit is None:
        raise not_found()
    if not has_role_over(actor, unit, BRIEFING_ROLES):
        raise forbidden()
    notification = Notification(kind=NotificationKind.MANUAL.value, document_id=doc.id, org_unit_id=unit.id,
                                created_by=actor.id, created_at=now, due_at=now)
    db.session.add(notification)
    db.session.flush()
    earlier = db.session.scalar(select(func.min(Notification.created_at)).where(
        Notification.kind == NotificationKind.MANUAL.value, Notification.document_id == doc.id,
        Notification.org_unit_id == unit.id, Notification.id != notification.id,
        Notification.created_at > now - MANUAL_INTERVAL))
    if earlier is not None:
        db.session.rollback()
        retry_after = max(1, int((as_utc(earlier) + MANUAL_INTERVAL - now).total_seconds()) + 1)
        retry_at = (now + timedelta(seconds=retry_after)).astimezone(local_zone()).replace(microsecond=0)
        raise ProblemError("reminder_too_soon", 429, headers={"Retry-After": str(retry_after)},
                           retry_at=f"{retry_at:%H:%M} {retry_at:%d/%m/%Y}",
                           extra={"retry_after": retry_after, "retry_at": retry_at.isoformat()})
    recipients = db.session.scalar(
        select(func.count()).select_from(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(unit_pending_condition(doc, unit)))
    audit.record("notification.manual", actor_id=actor.id, target_type="document", target_id=doc.id,
                 org_unit_id=unit.id, notification_id=notification.id, recipients=recipients)
    db.session.commit()
    return {"notification_id": notification.id, "recipients": recipients, "due_at": quiet_ends(now)}


def check_config(config) -> None:
    """Refuse to start with settings that would make every run fail later (a mistyped QUIET_HOURS)."""
    quiet_window(config.get("QUIET_HOURS") or "")
