"""The fan-out: from one notification to a push on every recipient's devices, exactly once per device.

1. `plan(notification)` claims a due notification, writes its recipients into the inbox in member-id
   order, 5,000 at a time (one INSERT … SELECT each, never the whole audience in memory), and cuts them
   into chunks of `CHUNK_MEMBERS` members. Each chunk is handed to `enqueue` as soon as it is committed,
   so sending starts while planning goes on.
2. `send_chunk(chunk)` claims the chunk under a lease, then sends in batches of ≤ 500 devices: the
   chunk's recipients' devices that have no delivery yet (first sends), or due retries. Before calling
   FCM it commits one write-ahead row for the batch (`PushBatch`, naming its devices), takes the batch
   from the shared rate cap, sends, and then, in one transaction, writes every device's outcome as its
   `Delivery` (one statement on PostgreSQL) and deletes the batch row. A device with a delivery is never
   a first send again; transient errors get `retry` with exponential backoff, jitter and FCM's
   `Retry-After`; dead fids/tokens delete the device. About one row written per device (its delivery)
   instead of three (queued, sending, outcome): docs/performance.md.
3. A chunk whose worker died (lease expired) is taken over by the next `sweep`. A batch row it left
   open is *in doubt*: FCM may or may not have its devices. They are sent again first (a push may be
   lost otherwise) with the same collapse key, tag and notification id, so the phone replaces rather
   than adds; `resent` counts them. Only a batch that was in flight at the moment of the crash can be in
   doubt. (Deliveries left `sending` by a worker from before migration 0010 are in doubt the same way.)
4. When every chunk is done, the notification is `done` with its counters.

The functions are synchronous and commit their own work; `push.tasks` runs them on Celery, and
`run_due(inline=True)` (CLI, embedded mode) runs them in the calling process.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, text, true, update

from content.models import Document, Receipt
from content.progress import acknowledged_condition, audience_members, extended_condition
from handbook.extensions import db, one_of, upsert
from handbook.members import Member, Role, RoleGrant
from handbook.orgunits import OrgUnit, in_subtree
from handbook.timeutil import local_zone, utcnow
from push.fcm import FAILED, INVALID, RETRY, SENT, get_backend
from push.messages import Target, build_many
from push.models import (MEETING_KINDS, ChunkState, Delivery, DeliveryState, Device, InboxItem, Notification,
                         NotificationKind, NotificationState, PushBatch, PushChunk)
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
    """The FCM rate cap of these settings (config.py sets all three), one per process and settings: shared
    through Redis by every worker when REDIS_URL is set."""
    config = current_app.config
    key = (config["FCM_RATE_PER_MINUTE"], config["REDIS_URL"], config["REDIS_TIMEOUT_SECONDS"])
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
    """Seconds before a device's next try: FCM's Retry-After, or else a random time in the upper half of
    a ceiling that doubles with each attempt up to PUSH_RETRY_MAX_SECONDS (config.py sets both settings)."""
    config = current_app.config
    base = config["PUSH_RETRY_BASE_SECONDS"]
    ceiling = min(config["PUSH_RETRY_MAX_SECONDS"], base * 2 ** max(0, attempts - 1))
    return max(retry_after or 0.0, ceiling / 2 + random.uniform(0, ceiling / 2))


def _bump(notification_id: int, **counts: int) -> None:
    values = {name: getattr(Notification, name) + n for name, n in counts.items() if n}
    if values:
        db.session.execute(update(Notification).where(Notification.id == notification_id).values(**values)
                           .execution_options(synchronize_session=False))


def _skip_settled(notification: Notification, doc: Document, chunk: PushChunk, now: datetime) -> None:
    """Reminder kinds: whoever acknowledged, was briefed or exempted (or, but for a re-acknowledgement, got
    an extension) since planning needs no push: a `skipped` delivery for each of their devices not sent to
    yet, and their retries are dropped."""
    settled_member = _acted(doc, Device.member_id)
    settled = _acted(doc, Delivery.member_id)
    if notification.kind != NotificationKind.REACK.value:   # a new version is news even when extended
        settled_member = or_(settled_member, _extended(doc, Device.member_id))
        settled = or_(settled, _extended(doc, Delivery.member_id))
    # (the devices of a batch left in doubt are its own: it is sent again as it was)
    in_doubt = [d for devices in db.session.scalars(select(PushBatch.devices).where(PushBatch.chunk_id == chunk.id))
                for d, _ in devices]
    devices = (select(literal(notification.id), Device.id, literal(chunk.id), Device.member_id,
                      literal(DeliveryState.SKIPPED.value), literal(0), literal(0), literal(now))
               .join(InboxItem, and_(InboxItem.member_id == Device.member_id,
                                     InboxItem.notification_id == notification.id))
               .where(InboxItem.member_id.between(chunk.first_member_id, chunk.last_member_id), settled_member,
                      Device.id.not_in(in_doubt) if in_doubt else true()))
    # (RETURNING, because psycopg reports no rowcount for INSERT … SELECT … ON CONFLICT)
    created = db.session.execute(
        upsert(Delivery).from_select(["notification_id", "device_id", "chunk_id", "member_id", "state", "attempts",
                                       "claim", "updated_at"], devices)
        .on_conflict_do_nothing(index_elements=["notification_id", "device_id"])
        .returning(Delivery.device_id)).all()
    _bump(notification.id, devices=len(created))
    db.session.execute(
        update(Delivery).where(Delivery.chunk_id == chunk.id, Delivery.notification_id == notification.id,
                               Delivery.state.in_([DeliveryState.QUEUED.value, DeliveryState.RETRY.value]), settled)
        .values(state=DeliveryState.SKIPPED.value, updated_at=now).execution_options(synchronize_session=False))
    db.session.commit()


_TARGET = (Device.fid, Device.token, Device.platform, Device.locale, InboxItem.data)


def _fresh(notification_id: int, chunk: PushChunk, size: int) -> list:
    """Devices of the chunk's recipients that have no delivery yet, in device-id order: first sends."""
    return list(db.session.execute(
        select(Device.id.label("device_id"), Device.member_id, literal(DeliveryState.QUEUED.value).label("state"),
               literal(0).label("attempts"), *_TARGET)
        .join(InboxItem, and_(InboxItem.member_id == Device.member_id, InboxItem.notification_id == notification_id))
        .where(InboxItem.member_id.between(chunk.first_member_id, chunk.last_member_id),
               ~exists().where(Delivery.notification_id == notification_id, Delivery.device_id == Device.id))
        .order_by(Device.id).limit(size)))


def _due(notification_id: int, chunk_id: int, attempt: int, now: datetime, size: int) -> list:
    """Deliveries to send again now: due retries (and, from before 0012_push_batches, rows created
    `queued`, or left `sending` by a dead worker: in doubt)."""
    return list(db.session.execute(
        select(Delivery.device_id, Delivery.member_id, Delivery.state, Delivery.attempts, *_TARGET)
        # A phone that moved to another member since is no longer this recipient's: it counts as gone.
        .outerjoin(Device, and_(Device.id == Delivery.device_id, Device.member_id == Delivery.member_id))
        .join(InboxItem, and_(InboxItem.notification_id == Delivery.notification_id,
                              InboxItem.member_id == Delivery.member_id))
        .where(Delivery.notification_id == notification_id, Delivery.chunk_id == chunk_id, or_(
            Delivery.state == DeliveryState.QUEUED.value,
            and_(Delivery.state == DeliveryState.RETRY.value, Delivery.not_before <= now),
            and_(Delivery.state == DeliveryState.SENDING.value, Delivery.claim < attempt)))
        .order_by(Delivery.device_id).limit(size)))


def _in_doubt(notification_id: int, chunk_id: int, attempt: int) -> tuple[PushBatch | None, list, list]:
    """The oldest batch of the chunk that a dead worker left open (it may or may not have reached FCM):
    the batch, its devices still there (with their targets), and those gone since (deleted, or moved to
    another member)."""
    batch = db.session.scalar(select(PushBatch).where(PushBatch.chunk_id == chunk_id, PushBatch.claim < attempt)
                              .order_by(PushBatch.id).limit(1))
    if batch is None:
        return None, [], []
    owners = {device_id: member_id for device_id, member_id in batch.devices}
    found = {r.device_id: r for r in db.session.execute(
        select(Device.id.label("device_id"), Device.member_id, literal(DeliveryState.SENDING.value).label("state"),
               func.coalesce(Delivery.attempts, 0).label("attempts"), *_TARGET)
        .join(InboxItem, and_(InboxItem.member_id == Device.member_id, InboxItem.notification_id == notification_id))
        .outerjoin(Delivery, and_(Delivery.notification_id == notification_id, Delivery.device_id == Device.id))
        .where(one_of(Device.id, list(owners))))}
    rows = [found[d] for d in sorted(owners) if d in found and found[d].member_id == owners[d]]
    gone = [_Gone(d, owners[d]) for d in sorted(owners) if d not in found or found[d].member_id != owners[d]]
    return batch, rows, gone


@dataclass(frozen=True)
class _Gone:
    device_id: int
    member_id: int
    attempts: int = 0


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
    if notification.kind in ASKS_PENDING:
        _skip_settled(notification, doc, chunk, now)
    backend = backend or get_backend(current_app.config)
    zone = local_zone()
    channel = _setting("PUSH_ANDROID_CHANNEL", "directives")
    max_attempts = _setting("PUSH_MAX_ATTEMPTS", 8)
    size = batch_size()
    while True:
        batch, rows, gone = _in_doubt(notification.id, chunk.id, attempt)
        first_sends = False
        if batch is None:
            rows = _due(notification.id, chunk.id, attempt, utcnow(), size)
            if not rows:
                rows, first_sends = _fresh(notification.id, chunk, size), True
            if not rows:
                break
            gone = [r for r in rows if r.fid is None and r.token is None]  # deleted or moved since
            rows = [r for r in rows if r.fid is not None or r.token is not None]
        if not rows:   # nothing left to send in this batch: its devices are all gone
            _write_outcomes(notification, chunk, attempt, [], [], 0, max_attempts, gone, utcnow())
            if batch is not None:
                db.session.delete(batch)
            db.session.commit()
            tally["skipped"] += len(gone)
            continue
        limiter().acquire(len(rows))
        sent_at = utcnow()
        if not _renew(chunk.id, attempt, sent_at):
            log.warning("push: chunk %s was taken over (lease lapsed); leaving it to its new worker", chunk.id)
            db.session.rollback()
            return tally
        messages = build_many(notification, doc, [(Target(r.device_id, r.fid, r.token, r.platform, r.locale), r.data)
                                                  for r in rows], zone, sent_at, channel_id=channel)
        # Write-ahead: one row naming the batch's devices, committed before FCM is called. A crash from here
        # to the outcomes' commit leaves it open: its devices are in doubt, and sent again by the next runner.
        in_doubt = sum(1 for r in rows if r.state == DeliveryState.SENDING.value)
        if batch is not None:
            batch.claim, batch.tries = attempt, batch.tries + 1
        else:
            batch = PushBatch(notification_id=notification.id, chunk_id=chunk.id, claim=attempt, tries=1,
                              retry=not first_sends, size=len(rows),
                              devices=[[r.device_id, r.member_id] for r in rows], created_at=sent_at)
            db.session.add(batch)
            if first_sends:
                _bump(notification.id, devices=len(rows))
        _bump(notification.id, resent=in_doubt)
        db.session.commit()
        tally["resent"] += in_doubt
        outcomes = backend.send(messages)
        _write_outcomes(notification, chunk, attempt, rows, outcomes, batch.tries, max_attempts, gone, utcnow(),
                        tally)
        db.session.delete(batch)
        db.session.commit()
        tally["skipped"] += len(gone)
    _finish_chunk(chunk, notification, utcnow())
    return tally


def _write_outcomes(notification: Notification, chunk: PushChunk, attempt: int, rows: list, outcomes: list,
                    tries: int, max_attempts: int, gone: list, now: datetime, tally: dict | None = None) -> None:
    """Store every outcome of a batch in one write (a delivery per device, created or updated), `skipped`
    for the devices gone since, delete dead registrations, bump the counters. Not committed here."""
    states = {SENT: DeliveryState.SENT, RETRY: DeliveryState.RETRY, FAILED: DeliveryState.FAILED,
              INVALID: DeliveryState.INVALID}
    counts = dict.fromkeys(states, 0)
    values, pause = [], 0.0
    for row, outcome in zip(rows, outcomes, strict=True):
        attempts = row.attempts + tries
        status = FAILED if outcome.status == RETRY and attempts >= max_attempts else outcome.status
        counts[status] += 1
        retry_at = None
        if status == RETRY:
            retry_at = now + timedelta(seconds=_backoff(attempts, outcome.retry_after))
            pause = max(pause, outcome.retry_after or 0.0)
        values.append((row.device_id, row.member_id, states[status].value, attempts, retry_at, outcome.error,
                       outcome.message_id))
        if status == INVALID:
            # Only the registration FCM rejected: the phone may have sent a fresh token since.
            db.session.execute(delete(Device).where(Device.id == row.device_id,
                                                    func.coalesce(Device.fid, "") == (row.fid or ""),
                                                    func.coalesce(Device.token, "") == (row.token or "")))
    values += [(g.device_id, g.member_id, DeliveryState.SKIPPED.value, g.attempts, None, None, None) for g in gone]
    _upsert_deliveries(notification.id, chunk.id, attempt, values, now)
    _bump(notification.id, sent=counts[SENT], failed=counts[FAILED], invalid_tokens=counts[INVALID])
    if tally is not None:
        tally["sent"] += counts[SENT]
        tally["failed"] += counts[FAILED]
        tally["invalid"] += counts[INVALID]
        tally["retry"] += counts[RETRY]
    if pause:
        limiter().pause(pause)  # FCM asked everyone to slow down, not just this chunk


_UPSERT_PG = text("""
    INSERT INTO deliveries (notification_id, device_id, chunk_id, member_id, state, attempts, claim, not_before,
                            error, message_id, updated_at)
    SELECT :n, t.device_id, :chunk, t.member_id, t.state, t.attempts, :claim, t.not_before, t.error, t.message_id, :now
    FROM unnest(CAST(:devices AS integer[]), CAST(:members AS integer[]), CAST(:states AS varchar[]),
                CAST(:attempts AS integer[]), CAST(:not_befores AS timestamptz[]), CAST(:errors AS varchar[]),
                CAST(:message_ids AS varchar[])) AS t(device_id, member_id, state, attempts, not_before, error, message_id)
    ON CONFLICT (notification_id, device_id) DO UPDATE SET
        state = excluded.state, attempts = excluded.attempts, claim = excluded.claim, not_before = excluded.not_before,
        error = excluded.error, message_id = excluded.message_id, updated_at = excluded.updated_at""")


def _upsert_deliveries(notification_id: int, chunk_id: int, attempt: int, values: list[tuple], now: datetime) -> None:
    """One delivery per (device, member, state, attempts, not_before, error, message_id): on PostgreSQL one
    statement (arrays, unnest) whatever the batch size; elsewhere an executemany."""
    if not values:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        columns = list(zip(*values, strict=True))
        db.session.execute(_UPSERT_PG, {
            "n": notification_id, "chunk": chunk_id, "claim": attempt, "now": now, "devices": list(columns[0]),
            "members": list(columns[1]), "states": list(columns[2]), "attempts": list(columns[3]),
            "not_befores": list(columns[4]), "errors": list(columns[5]), "message_ids": list(columns[6])})
        return
    statement = upsert(Delivery)
    statement = statement.on_conflict_do_update(
        index_elements=["notification_id", "device_id"],
        set_={name: getattr(statement.excluded, name)
              for name in ("state", "attempts", "claim", "not_before", "error", "message_id", "updated_at")})
    db.session.execute(statement, [
        {"notification_id": notification_id, "device_id": d, "chunk_id": chunk_id, "member_id": m, "state": st,
         "attempts": a, "claim": attempt, "not_before": nb, "error": e, "message_id": mid, "updated_at": now}
        for d, m, st, a, nb, e, mid in values])


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
        db.session.execute(delete(PushBatch).where(PushBatch.chunk_id == chunk.id))
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
