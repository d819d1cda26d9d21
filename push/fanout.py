"""The fan-out: from one notification to a push on every recipient's devices, exactly once per device.

1. `plan(notification)` claims a due notification, writes its recipients into the inbox in member-id
   order, 5,000 at a time (one INSERT … SELECT each, never the whole audience in memory), and cuts them
   into chunks of `CHUNK_MEMBERS` members. Each chunk is handed to `enqueue` as soon as it is committed,
   so sending starts while planning goes on.
2. `send_chunk(chunk)` claims the chunk under a lease, creates one `Delivery` per (notification, device)
   (INSERT … ON CONFLICT DO NOTHING: idempotent), then sends in batches of ≤ 500: it marks the batch
   `sending` and commits *before* calling FCM (write-ahead), takes the batch from the shared rate cap,
   sends, and records every outcome. Sent rows are never sent again; transient errors get `retry` with
   exponential backoff, jitter and FCM's `Retry-After`; dead fids/tokens delete the device.
3. A chunk whose worker died (lease expired) is taken over by the next `sweep`. Rows it left `sending`
   are *in doubt*: FCM may or may not have them. They are sent again (a push may be lost otherwise) with
   the same collapse key, tag and notification id, so the phone replaces rather than adds; `resent`
   counts them. Only a batch that was in flight at the moment of the crash can be in doubt.
4. When every chunk is done, the notification is `done` with its counters.

The functions are synchronous and commit their own work; `push.tasks` runs them on Celery, and
`run_due(inline=True)` (CLI, embedded mode) runs them in the calling process.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, delete, exists, func, insert, literal, or_, select, update

from content.models import Document, Receipt
from content.progress import acknowledged_condition, audience_members, extended_condition
from handbook.extensions import db, upsert
from handbook.members import Member, Role, RoleGrant
from handbook.orgunits import OrgUnit, in_subtree
from handbook.timeutil import local_zone, utcnow
from push.fcm import FAILED, INVALID, RETRY, SENT, get_backend
from push.messages import Target, build
from push.models import (MEETING_KINDS, ChunkState, Delivery, DeliveryState, Device, InboxItem, Notification,
                         NotificationKind, NotificationState, PushChunk)
from push.ratelimit import RateLimiter

log = logging.getLogger("handbook.push")

CHUNK_MEMBERS = 500
PLAN_BATCH = 5000
SEND_BATCH = 500          # FCM: at most 500 messages per send call
ESCALATION_NAMES = 30     # names listed per unit in a secretary's inbox
# Kinds that ask members to act: whoever acknowledged (or was excused) meanwhile is not asked.
ASKS_PENDING = (NotificationKind.REACK.value, NotificationKind.REMINDER.value, NotificationKind.MANUAL.value)


def _setting(name: str, default):
    return current_app.config.get(name, default)


_limiters: dict[tuple, RateLimiter] = {}


def limiter() -> RateLimiter:
    key = (_setting("FCM_RATE_PER_MINUTE", 600000), _setting("REDIS_URL", None),
           _setting("REDIS_TIMEOUT_SECONDS", 5.0))
    if key not in _limiters:
        rate, redis_url, timeout = key
        _limiters[key] = RateLimiter(rate, redis_url, timeout=timeout)
    return _limiters[key]


# --- who receives what ------------------------------------------------------------------------------

def _acted(doc: Document, member_id):
    """SQL: the member (`member_id`, a column) acknowledged the current version, in the app or by briefing,
    or is exempt."""
    return exists().where(Receipt.document_id == doc.id, Receipt.member_id == member_id,
                          or_(acknowledged_condition(doc.ack_version), Receipt.exempted_at.is_not(None)))


def pending_condition(doc: Document):
    """SQL condition on Member: neither acknowledged (in the app or by briefing) nor exempt."""
    return ~_acted(doc, Member.id)


def _extended(doc: Document, member_id):
    """SQL: the member (`member_id`, a column) has a deadline extension running today."""
    today = utcnow().astimezone(local_zone()).date()
    return exists().where(Receipt.document_id == doc.id, Receipt.member_id == member_id, extended_condition(today))


def remindable_condition(doc: Document):
    """SQL condition on Member: pending, and without a deadline extension running: whom reminders,
    manual reminders and escalations are about."""
    return and_(pending_condition(doc), ~_extended(doc, Member.id))


def unit_pending_condition(doc: Document, unit: OrgUnit):
    """SQL condition on Member/OrgUnit (joined): remindable audience members in the unit's subtree."""
    return audience_members(doc, and_(remindable_condition(doc), in_subtree(OrgUnit.path, unit.path)))


def recipients_condition(notification: Notification, doc: Document):
    """SQL condition on Member/OrgUnit (joined): who gets this notification (not for escalations)."""
    kind = notification.kind
    if kind == NotificationKind.PUBLISHED.value:
        return audience_members(doc)
    if kind == NotificationKind.REACK.value:
        return audience_members(doc, pending_condition(doc))
    if kind == NotificationKind.REMINDER.value:
        return audience_members(doc, remindable_condition(doc))
    if kind == NotificationKind.MANUAL.value:
        return unit_pending_condition(doc, db.session.get(OrgUnit, notification.org_unit_id))
    if kind in MEETING_KINDS:
        from content.meetings import notified_condition

        return notified_condition(notification.meeting_id, kind)
    if kind == NotificationKind.ANSWER.value:
        return and_(Member.id == notification.recipient_id, Member.active.is_(True))
    raise ValueError(f"no recipient rule for {kind}")


def subject_of(notification: Notification):
    """What a notification is about: its document, or (meeting notifications) its meeting."""
    if notification.meeting_id is not None:
        from content.models import Meeting

        return db.session.get(Meeting, notification.meeting_id)
    return db.session.get(Document, notification.document_id)


def _escalation_inbox(notification: Notification, doc: Document, now: datetime) -> int:
    """Each secretary gets one inbox item listing their units' pending members (names capped per unit).
    A unit without a secretary of its own goes to the nearest ancestor that has one."""
    secretaries: dict[int, list[int]] = {}
    for unit_id, member_id in db.session.execute(
            select(RoleGrant.org_unit_id, RoleGrant.member_id).join(Member, Member.id == RoleGrant.member_id)
            .where(RoleGrant.role == Role.SECRETARY.value, Member.active.is_(True))):
        secretaries.setdefault(unit_id, []).append(member_id)
    per_secretary: dict[int, list[dict]] = {}
    rows = db.session.execute(
        select(OrgUnit.id, OrgUnit.code, OrgUnit.name, OrgUnit.path, Member.full_name)
        .select_from(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(audience_members(doc, remindable_condition(doc)))
        .order_by(OrgUnit.id, Member.full_name, Member.id)
        .execution_options(yield_per=PLAN_BATCH))
    current = None
    for unit_id, code, name, path, full_name in rows:
        if current is None or current["id"] != unit_id:
            current = {"id": unit_id, "code": code, "name": name, "pending": 0, "names": []}
            chain = [int(p) for p in path.strip("/").split("/")][::-1]
            holder = next((u for u in chain if u in secretaries), None)
            for secretary in secretaries.get(holder, []):
                per_secretary.setdefault(secretary, []).append(current)
        current["pending"] += 1
        if len(current["names"]) < ESCALATION_NAMES:
            current["names"].append(full_name)
    items = [{"notification_id": notification.id, "member_id": m, "created_at": now, "data": {"units": units}}
             for m, units in sorted(per_secretary.items())]
    for start in range(0, len(items), PLAN_BATCH):
        db.session.execute(insert(InboxItem), items[start:start + PLAN_BATCH])
    return len(items)


# --- planning ---------------------------------------------------------------------------------------

def claim_for_planning(notification_id: int, now: datetime) -> Notification | None:
    """Take a due notification (or one whose planner died) for planning; None if someone else has it."""
    lease = lease_duration()
    result = db.session.execute(
        update(Notification).where(
            Notification.id == notification_id, Notification.planned_at.is_(None),
            or_(Notification.state == NotificationState.PENDING.value,
                and_(Notification.state == NotificationState.SENDING.value,
                     or_(Notification.lease_until.is_(None), Notification.lease_until < now))))
        .values(state=NotificationState.SENDING.value, lease_until=now + lease,
                started_at=func.coalesce(Notification.started_at, now))
        .execution_options(synchronize_session=False))
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.get(Notification, notification_id, populate_existing=True)


def plan(notification_id: int, enqueue: Callable[[int], None]) -> Notification | None:
    """Materialise the recipients and cut them into chunks; each chunk id goes to `enqueue` once committed."""
    now = utcnow()
    notification = claim_for_planning(notification_id, now)
    if notification is None:
        return None
    doc = subject_of(notification)
    lease = lease_duration()
    escalation = notification.kind == NotificationKind.ESCALATION.value
    if escalation and not db.session.scalar(select(exists().where(InboxItem.notification_id == notification.id))):
        notification.recipients = _escalation_inbox(notification, doc, now)  # all or nothing: one commit
        db.session.commit()
    condition = None if escalation else recipients_condition(notification, doc)
    while True:
        cursor = notification.plan_cursor
        if escalation:
            ids = list(db.session.scalars(
                select(InboxItem.member_id).where(InboxItem.notification_id == notification.id,
                                                  InboxItem.member_id > cursor)
                .order_by(InboxItem.member_id).limit(PLAN_BATCH)))
        else:
            chosen = (select(literal(notification.id), Member.id, literal(now))
                      .select_from(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                      .where(condition, Member.id > cursor).order_by(Member.id).limit(PLAN_BATCH))
            ids = sorted(db.session.scalars(
                upsert(InboxItem).from_select(["notification_id", "member_id", "created_at"], chosen)
                .on_conflict_do_nothing(index_elements=["notification_id", "member_id"])
                .returning(InboxItem.member_id)))
            notification.recipients += len(ids)
        if not ids:
            break
        chunks = [PushChunk(notification_id=notification.id, first_member_id=part[0], last_member_id=part[-1],
                            not_before=now)
                  for part in (ids[i:i + CHUNK_MEMBERS] for i in range(0, len(ids), CHUNK_MEMBERS))]
        db.session.add_all(chunks)
        notification.plan_cursor = ids[-1]
        still_ours = db.session.execute(
            update(Notification).where(Notification.id == notification.id,
                                       Notification.state == NotificationState.SENDING.value)
            .values(lease_until=utcnow() + lease).execution_options(synchronize_session=False)).rowcount == 1
        if not still_ours:  # cancelled (withdrawn) meanwhile: stop filling inboxes
            db.session.rollback()
            return None
        db.session.commit()
        for chunk in chunks:
            enqueue(chunk.id)
    notification.planned_at = utcnow()
    db.session.commit()
    finish_if_complete(notification.id)
    return notification


def finish_if_complete(notification_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(Notification).where(
            Notification.id == notification_id, Notification.state == NotificationState.SENDING.value,
            Notification.planned_at.is_not(None),
            ~exists().where(PushChunk.notification_id == notification_id, PushChunk.state != ChunkState.DONE.value))
        .values(state=NotificationState.DONE.value, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


# --- sending ----------------------------------------------------------------------------------------

def batch_size() -> int:
    """≤ 500 messages, and few enough that waiting for the rate cap stays well inside the lease."""
    per_second = _setting("FCM_RATE_PER_MINUTE", 600000) / 60
    return max(1, min(SEND_BATCH, int(per_second * lease_duration().total_seconds() / 4)))


def lease_duration() -> timedelta:
    """How long a chunk's worker is trusted without news. It renews it before every batch; it must
    outlast one batch (bounded by the FCM request timeout), or a live worker would be taken over."""
    return timedelta(seconds=max(_setting("PUSH_LEASE_SECONDS", 120), _setting("FCM_TIMEOUT_SECONDS", 30) + 5))


def _claim_chunk(chunk_id: int, now: datetime) -> int | None:
    lease = lease_duration()
    result = db.session.execute(
        update(PushChunk).where(PushChunk.id == chunk_id, or_(
            PushChunk.state == ChunkState.PENDING.value,
            and_(PushChunk.state == ChunkState.RETRY.value, PushChunk.not_before <= now),
            and_(PushChunk.state == ChunkState.RUNNING.value, PushChunk.lease_until < now)))
        .values(state=ChunkState.RUNNING.value, attempts=PushChunk.attempts + 1, lease_until=now + lease)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.scalar(select(PushChunk.attempts).where(PushChunk.id == chunk_id))


def _renew(chunk_id: int, attempt: int, now: datetime) -> bool:
    """Extend our lease on the chunk (not committed here); False if another worker has taken it."""
    result = db.session.execute(
        update(PushChunk).where(PushChunk.id == chunk_id, PushChunk.attempts == attempt,
                                PushChunk.state == ChunkState.RUNNING.value)
        .values(lease_until=now + lease_duration()).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _backoff(attempts: int, retry_after: float | None) -> float:
    base = _setting("PUSH_RETRY_BASE_SECONDS", 2.0)
    ceiling = min(_setting("PUSH_RETRY_MAX_SECONDS", 600.0), base * 2 ** max(0, attempts - 1))
    return max(retry_after or 0.0, ceiling / 2 + random.uniform(0, ceiling / 2))


def _bump(notification_id: int, **counts: int) -> None:
    values = {name: getattr(Notification, name) + n for name, n in counts.items() if n}
    if values:
        db.session.execute(update(Notification).where(Notification.id == notification_id).values(**values)
                           .execution_options(synchronize_session=False))


def _create_deliveries(notification: Notification, doc: Document, chunk: PushChunk, now: datetime) -> None:
    """One `queued` delivery per device of the chunk's recipients (idempotent), and `skipped` for those
    who no longer need a reminder (acknowledged, briefed or exempted since the reminder was planned)."""
    devices = (select(literal(notification.id), Device.id, literal(chunk.id), Device.member_id,
                      literal(DeliveryState.QUEUED.value), literal(0), literal(0), literal(now))
               .join(InboxItem, and_(InboxItem.member_id == Device.member_id,
                                     InboxItem.notification_id == notification.id))
               .where(InboxItem.member_id.between(chunk.first_member_id, chunk.last_member_id)))
    # (RETURNING, because psycopg reports no rowcount for INSERT … SELECT … ON CONFLICT)
    created = db.session.execute(
        upsert(Delivery).from_select(["notification_id", "device_id", "chunk_id", "member_id", "state", "attempts",
                                       "claim", "updated_at"], devices)
        .on_conflict_do_nothing(index_elements=["notification_id", "device_id"])
        .returning(Delivery.device_id)).all()
    _bump(notification.id, devices=len(created))
    if notification.kind in ASKS_PENDING:
        settled = _acted(doc, Delivery.member_id)
        if notification.kind != NotificationKind.REACK.value:   # a new version is news even when extended
            settled = or_(settled, _extended(doc, Delivery.member_id))
        db.session.execute(
            update(Delivery).where(Delivery.chunk_id == chunk.id, Delivery.notification_id == notification.id,
                                   Delivery.state.in_([DeliveryState.QUEUED.value, DeliveryState.RETRY.value]),
                                   settled)
            .values(state=DeliveryState.SKIPPED.value, updated_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def _next_batch(notification_id: int, chunk_id: int, attempt: int, now: datetime, size: int) -> list:
    """Rows to send now: queued, due retries, and rows a dead worker left `sending` (in doubt)."""
    return list(db.session.execute(
        select(Delivery.device_id, Delivery.member_id, Delivery.state, Delivery.attempts, Device.fid, Device.token,
               Device.platform, Device.locale, InboxItem.data)
        # A phone that moved to another member since is no longer this recipient's: it counts as gone.
        .outerjoin(Device, and_(Device.id == Delivery.device_id, Device.member_id == Delivery.member_id))
        .join(InboxItem, and_(InboxItem.notification_id == Delivery.notification_id,
                              InboxItem.member_id == Delivery.member_id))
        .where(Delivery.notification_id == notification_id, Delivery.chunk_id == chunk_id, or_(
            Delivery.state == DeliveryState.QUEUED.value,
            and_(Delivery.state == DeliveryState.RETRY.value, Delivery.not_before <= now),
            and_(Delivery.state == DeliveryState.SENDING.value, Delivery.claim < attempt)))
        .order_by(Delivery.device_id).limit(size)))


def _set(notification_id: int, device_ids: list[int], **values) -> None:
    if device_ids:
        db.session.execute(update(Delivery).where(Delivery.notification_id == notification_id,
                                                  Delivery.device_id.in_(device_ids))
                           .values(**values).execution_options(synchronize_session=False))


def send_chunk(chunk_id: int, backend=None) -> dict | None:
    """Send what is left of one chunk. Returns its tally, or None when the chunk was not ours to take."""
    now = utcnow()
    attempt = _claim_chunk(chunk_id, now)
    if attempt is None:
        return None
    chunk = db.session.get(PushChunk, chunk_id, populate_existing=True)
    notification = db.session.get(Notification, chunk.notification_id, populate_existing=True)
    doc = subject_of(notification)
    tally = {"notification_id": notification.id, "sent": 0, "retry": 0, "failed": 0, "invalid": 0, "resent": 0,
             "skipped": 0}
    if notification.state == NotificationState.CANCELLED.value:
        _set_chunk_done(chunk, notification, now, cancelled=True)
        return tally
    _create_deliveries(notification, doc, chunk, now)
    backend = backend or get_backend(current_app.config)
    zone = local_zone()
    channel = _setting("PUSH_ANDROID_CHANNEL", "directives")
    max_attempts = _setting("PUSH_MAX_ATTEMPTS", 8)
    size = batch_size()
    while rows := _next_batch(notification.id, chunk.id, attempt, utcnow(), size):
        gone = [r.device_id for r in rows if r.fid is None and r.token is None]  # deleted or moved since
        _set(notification.id, gone, state=DeliveryState.SKIPPED.value, updated_at=utcnow())
        tally["skipped"] += len(gone)
        rows = [r for r in rows if r.fid is not None or r.token is not None]
        if not rows:
            db.session.commit()
            continue
        in_doubt = sum(1 for r in rows if r.state == DeliveryState.SENDING.value)
        limiter().acquire(len(rows))
        sent_at = utcnow()
        if not _renew(chunk.id, attempt, sent_at):
            log.warning("push: chunk %s was taken over (lease lapsed); leaving it to its new worker", chunk.id)
            db.session.rollback()
            return tally
        messages = [build(notification, doc, Target(r.device_id, r.fid, r.token, r.platform, r.locale), zone,
                          sent_at, channel_id=channel, data=r.data) for r in rows]
        # Write-ahead: from here a crash leaves these rows `sending` (in doubt), never `queued`.
        _set(notification.id, [r.device_id for r in rows], state=DeliveryState.SENDING.value, claim=attempt,
             attempts=Delivery.attempts + 1, updated_at=sent_at)
        _bump(notification.id, resent=in_doubt)
        db.session.commit()
        tally["resent"] += in_doubt
        outcomes = backend.send(messages)
        _record(notification, rows, outcomes, tally, max_attempts)
    _finish_chunk(chunk, notification, utcnow())
    return tally


def _record(notification: Notification, rows: list, outcomes: list, tally: dict, max_attempts: int) -> None:
    """Store every outcome of a batch (one executemany), delete dead registrations, bump the counters."""
    now = utcnow()
    states = {SENT: DeliveryState.SENT, RETRY: DeliveryState.RETRY, FAILED: DeliveryState.FAILED,
              INVALID: DeliveryState.INVALID}
    counts = dict.fromkeys(states, 0)
    params, pause = [], 0.0
    for row, outcome in zip(rows, outcomes, strict=True):
        status = FAILED if outcome.status == RETRY and row.attempts + 1 >= max_attempts else outcome.status
        counts[status] += 1
        retry_at = None
        if status == RETRY:
            retry_at = now + timedelta(seconds=_backoff(row.attempts + 1, outcome.retry_after))
            pause = max(pause, outcome.retry_after or 0.0)
        params.append({"b_device": row.device_id, "b_state": states[status].value, "b_error": outcome.error,
                       "b_message": outcome.message_id, "b_not_before": retry_at})
        if status == INVALID:
            # Only the registration FCM rejected: the phone may have sent a fresh token since.
            db.session.execute(delete(Device).where(Device.id == row.device_id,
                                                    func.coalesce(Device.fid, "") == (row.fid or ""),
                                                    func.coalesce(Device.token, "") == (row.token or "")))
    table = Delivery.__table__
    db.session.execute(
        update(table).where(table.c.notification_id == notification.id, table.c.device_id == bindparam("b_device"))
        .values(state=bindparam("b_state"), error=bindparam("b_error"), message_id=bindparam("b_message"),
                not_before=bindparam("b_not_before"), updated_at=now), params)
    _bump(notification.id, sent=counts[SENT], failed=counts[FAILED], invalid_tokens=counts[INVALID])
    db.session.commit()
    tally["sent"] += counts[SENT]
    tally["failed"] += counts[FAILED]
    tally["invalid"] += counts[INVALID]
    tally["retry"] += counts[RETRY]
    if pause:
        limiter().pause(pause)  # FCM asked everyone to slow down, not just this chunk


def _finish_chunk(chunk: PushChunk, notification: Notification, now: datetime) -> None:
    next_retry = db.session.scalar(select(func.min(Delivery.not_before)).where(
        Delivery.notification_id == notification.id, Delivery.chunk_id == chunk.id,
        Delivery.state == DeliveryState.RETRY.value))
    if next_retry is None:
        _set_chunk_done(chunk, notification, now)
        return
    db.session.execute(update(PushChunk).where(PushChunk.id == chunk.id)
                       .values(state=ChunkState.RETRY.value, not_before=next_retry, lease_until=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _set_chunk_done(chunk: PushChunk, notification: Notification, now: datetime, cancelled: bool = False) -> None:
    if cancelled:
        db.session.execute(update(Delivery).where(
            Delivery.chunk_id == chunk.id, Delivery.notification_id == notification.id,
            Delivery.state.in_([DeliveryState.QUEUED.value, DeliveryState.RETRY.value]))
            .values(state=DeliveryState.SKIPPED.value, updated_at=now).execution_options(synchronize_session=False))
    db.session.execute(update(PushChunk).where(PushChunk.id == chunk.id)
                       .values(state=ChunkState.DONE.value, lease_until=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    finish_if_complete(notification.id)


def next_retry_at(chunk_id: int) -> datetime | None:
    """When a chunk left in `retry` wants to run again (for the Celery countdown)."""
    return db.session.scalar(select(PushChunk.not_before).where(PushChunk.id == chunk_id,
                                                                PushChunk.state == ChunkState.RETRY.value))


# --- recovery ---------------------------------------------------------------------------------------

def runnable_chunks(now: datetime, *, grace: timedelta = timedelta(0), limit: int = 1000) -> list[int]:
    """Chunks that should be running and are not: never started, due for a retry, or their worker's lease
    ran out. `grace` leaves time to chunks already queued in Celery before they count as lost."""
    return list(db.session.scalars(
        select(PushChunk.id).where(or_(
            and_(PushChunk.state == ChunkState.PENDING.value, PushChunk.not_before <= now - grace),
            and_(PushChunk.state == ChunkState.RETRY.value, PushChunk.not_before <= now - grace),
            and_(PushChunk.state == ChunkState.RUNNING.value, PushChunk.lease_until < now)))
        .order_by(PushChunk.id).limit(limit)))


def stalled_plans(now: datetime) -> list[int]:
    """Notifications whose planner died before it finished."""
    return list(db.session.scalars(select(Notification.id).where(
        Notification.state == NotificationState.SENDING.value, Notification.planned_at.is_(None),
        or_(Notification.lease_until.is_(None), Notification.lease_until < now))))
