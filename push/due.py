"""Everything that falls due at an instant: scheduled publications, deadlines that close (progress frozen
for the compliance view), reminders and escalations, notifications to send, fan-outs to resume, stale
devices to forget.

The worker (Celery beat) calls `run_due()` continuously and hands the sending to Celery tasks;
`flask --app wsgi handbook push run-due --at T` and the embedded worker call it with `inline=True`,
which sends in the calling process. Every step is idempotent and every piece of work is claimed
atomically, so running it twice, or in several processes at once, sends nothing twice.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete

from content.documents import publish_due
from content.models import Document
from content.progress import close_due
from handbook.extensions import db
from handbook.timeutil import as_utc, utcnow
from push import fanout
from push.models import Device, Notification
from push.schedule import cancel_expired, cancel_started_meeting_reminders, due_notifications, schedule_due

DEVICE_MAX_IDLE = timedelta(days=270)


def _name(doc) -> str:
    return f"{doc.id}: {doc.number + ' ' if doc.number else ''}{doc.title}"


def prune_devices() -> int:
    """Forget devices not seen for 270 days (the app refreshes its registration at every start). Measured
    from the real clock, never from `--at`: a run for a future instant must not delete live phones."""
    result = db.session.execute(delete(Device).where(Device.last_seen_at < utcnow() - DEVICE_MAX_IDLE))
    db.session.commit()
    return result.rowcount


def _describe(notification_id: int) -> str:
    n = db.session.get(Notification, notification_id, populate_existing=True)
    about = f"meeting {n.meeting_id}" if n.meeting_id else f"document {_name(db.session.get(Document, n.document_id))}"
    return (f"notification {n.id} ({n.kind}, {about}): {n.state}, {n.recipients} recipients, "
            f"{n.devices} devices, {n.sent} sent, {n.failed} failed, {n.invalid_tokens} invalid tokens"
            + (f", {n.resent} sent again after a worker died" if n.resent else ""))


def run_due(at: datetime | None = None, *, inline: bool = True,
            enqueue_plan: Callable[[int], None] | None = None,
            enqueue_chunk: Callable[[int], None] | None = None) -> list[str]:
    """Do what is due at `at` (default now); one line per thing done.

    Inline, fan-outs run here, chunk after chunk, until nothing is runnable now (chunks waiting for a
    retry are left to a later run). Otherwise plans and chunks go to `enqueue_plan` / `enqueue_chunk`.
    """
    at = as_utc(at) if at is not None else utcnow()
    lines = [f"published document {_name(doc)}" for doc in publish_due(at)]
    lines += [f"closed document {_name(doc)} (progress frozen at its deadline)" for doc in close_due(at)]
    lines += [f"scheduled {kind} {key} for document {doc_id}" for kind, key, doc_id in schedule_due(at)]
    lines += [f"cancelled {kind} {n} of document {doc_id}: its deadline has passed"
              for n, kind, doc_id in cancel_expired(at)]
    lines += [f"cancelled meeting reminder {n} of meeting {m}: the meeting has started"
              for n, m in cancel_started_meeting_reminders(at)]
    now = utcnow()
    to_plan = due_notifications(at) + fanout.stalled_plans(now)
    if not inline:
        for notification_id in to_plan:
            enqueue_plan(notification_id)
        for chunk_id in fanout.runnable_chunks(now, grace=fanout.lease_duration()):
            enqueue_chunk(chunk_id)
        lines += [f"queued notification {n}" for n in to_plan]
    else:
        touched = set()
        for notification_id in to_plan:
            chunks: list[int] = []
            if fanout.plan(notification_id, chunks.append) is not None:
                touched.add(notification_id)
            for chunk_id in chunks:
                fanout.send_chunk(chunk_id)
        while chunk_ids := fanout.runnable_chunks(utcnow()):
            tallies = [t for t in map(fanout.send_chunk, chunk_ids) if t is not None]
            touched.update(t["notification_id"] for t in tallies)
            if not tallies:
                break
        lines += [_describe(n) for n in sorted(touched)]
    from content import adoption, timeline

    adoption.refresh_if_stale(now)   # housekeeping, like the pruning below: no line of its own
    timeline.take_due(now)           # yesterday's progress per unit, once per document (the real clock)
    pruned = prune_devices()
    if pruned:
        lines.append(f"forgot {pruned} devices not seen for {DEVICE_MAX_IDLE.days} days")
    from push.retention import prune_due

    retained = prune_due()   # a bounded share each tick (push/retention.py); measured from the real clock
    if retained.total():
        lines.append(retained.describe())
    return lines
