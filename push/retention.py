"""Retention: deliveries, inbox items, fan-out chunks and login sessions stay proportional to the members,
not to history.

What goes, and what never does:
- deliveries and fan-out chunks of a notification that is over (`done` or `cancelled`, with no chunk left
  to run and no batch in flight) and finished more than `DELIVERY_RETENTION_DAYS` ago. A delivery is the
  exactly-once record only while its notification can still send; a finished one never sends again
  (the notification keeps its counters: recipients, devices, sent, failed, invalid tokens, resent).
- inbox items older than `INBOX_RETENTION_DAYS`, read or not, of notifications that are over. Younger
  ones stay, read or unread, and so does everything of a notification still sending (the fan-out walks
  its recipients through the inbox).
- refresh tokens expired more than `SESSION_RETENTION_DAYS` ago, and sessions with no token left that
  ended (revoked, or last refreshed) more than that ago, and never within a refresh token's lifetime or
  the adoption figure's activity window (content/adoption.py): a member who is signed in keeps the
  session, and an old reused refresh token is still refused by its expiry.
- the audit trail and the notifications themselves are never touched.

Everything is deleted in batches of `RETENTION_BATCH` rows, each its own short transaction (by primary
key, chosen by an index), so the prune never holds long locks; `run_due` does at most
`RETENTION_BATCHES_PER_RUN` batches a tick, `flask --app wsgi handbook push prune` runs until done.
Idempotent: a second run finds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, func, or_, select

from handbook.extensions import db
from handbook.timeutil import utcnow
from push.models import ChunkState, Delivery, InboxItem, Notification, NotificationState, PushBatch, PushChunk


@dataclass
class Pruned:
    deliveries: int = 0
    chunks: int = 0
    inbox_items: int = 0
    refresh_tokens: int = 0
    sessions: int = 0
    batches: int = 0                       # transactions it took
    done: bool = True                      # False: stopped at the batch budget, more is left

    def total(self) -> int:
        return self.deliveries + self.chunks + self.inbox_items + self.refresh_tokens + self.sessions

    def describe(self) -> str:
        return (f"pruned {self.deliveries} deliveries, {self.chunks} fan-out chunks, {self.inbox_items} inbox items, "
                f"{self.refresh_tokens} refresh tokens and {self.sessions} sessions"
                + ("" if self.done else " (more left for the next run)"))


def _days(name: str, default: int) -> timedelta:
    return timedelta(days=int(current_app.config.get(name, default)))


def _over(cutoff: datetime):
    """SQL on Notification: over (done or cancelled, nothing left to run or in flight), finished before `cutoff`."""
    return and_(Notification.state.in_([NotificationState.DONE.value, NotificationState.CANCELLED.value]),
                func.coalesce(Notification.finished_at, Notification.due_at) < cutoff,
                ~exists().where(PushChunk.notification_id == Notification.id, PushChunk.state != ChunkState.DONE.value),
                ~exists().where(PushBatch.notification_id == Notification.id))


class _Budget:
    """How many more batches may be deleted (None: no bound). Looking for rows costs nothing of it."""

    def __init__(self, batches: int | None) -> None:
        self.left = batches

    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0

    def spend(self) -> None:
        if self.left is not None:
            self.left -= 1


def _drain(result: Pruned, budget: _Budget, name: str, pick, delete_of) -> bool:
    """Delete the rows `pick` (a SELECT of up to one batch of primary keys) chooses, one transaction a
    batch, until it chooses none (True) or the budget is spent while rows are left (False)."""
    while True:
        ids = list(db.session.scalars(pick))
        db.session.rollback()   # (no transaction left open between batches)
        if not ids:
            return True
        if budget.exhausted():
            return False
        db.session.execute(delete_of(ids).execution_options(synchronize_session=False))
        db.session.commit()
        budget.spend()
        setattr(result, name, getattr(result, name) + len(ids))
        result.batches += 1


def prune(now: datetime | None = None, *, max_batches: int | None = None, batch: int | None = None) -> Pruned:
    """Delete what retention lets go (module docstring), `batch` rows a transaction, at most `max_batches`
    transactions (None: until done). Measured from `now` (default the real clock)."""
    now = now or utcnow()
    size = int(batch or current_app.config.get("RETENTION_BATCH", 5000))
    budget, result = _Budget(max_batches), Pruned()
    delivery_cutoff = now - _days("DELIVERY_RETENTION_DAYS", 30)
    inbox_cutoff = now - _days("INBOX_RETENTION_DAYS", 180)
    finished = list(db.session.scalars(select(Notification.id).where(_over(delivery_cutoff)).order_by(Notification.id)))
    for notification_id in finished:
        # Deliveries by primary key (notification, device), then the chunks, a batch at a time.
        deliveries = (select(Delivery.device_id).where(Delivery.notification_id == notification_id)
                      .order_by(Delivery.device_id).limit(size))
        chunks = select(PushChunk.id).where(PushChunk.notification_id == notification_id).order_by(PushChunk.id).limit(size)
        if not (_drain(result, budget, "deliveries", deliveries,
                       lambda ids, n=notification_id: delete(Delivery).where(Delivery.notification_id == n,
                                                                              Delivery.device_id.in_(ids)))
                and _drain(result, budget, "chunks", chunks, lambda ids: delete(PushChunk).where(PushChunk.id.in_(ids)))):
            result.done = False
            return result
    over = select(Notification.id).where(_over(inbox_cutoff)).scalar_subquery()
    items = (select(InboxItem.id).where(InboxItem.notification_id.in_(over), InboxItem.created_at < inbox_cutoff)
             .order_by(InboxItem.id).limit(size))
    if not _drain(result, budget, "inbox_items", items, lambda ids: delete(InboxItem).where(InboxItem.id.in_(ids))):
        result.done = False
        return result
    if not prune_sessions(now, result, budget, size):
        result.done = False
    return result


def prune_sessions(now: datetime, result: Pruned, budget: _Budget, size: int) -> bool:
    """Refresh tokens and ended sessions past retention (module docstring), in batches."""
    from content.adoption import ACTIVE_DAYS
    from handbook.auth import AuthSession, RefreshToken

    keep = max(_days("SESSION_RETENTION_DAYS", 90), current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
               timedelta(days=ACTIVE_DAYS))
    horizon = now - keep
    tokens = (select(RefreshToken.jti).where(RefreshToken.expires_at < horizon).order_by(RefreshToken.jti).limit(size))
    if not _drain(result, budget, "refresh_tokens", tokens,
                  lambda ids: delete(RefreshToken).where(RefreshToken.jti.in_(ids))):
        return False
    live = exists().where(RefreshToken.session_id == AuthSession.id)
    ended = or_(AuthSession.revoked_at < horizon,
                func.coalesce(AuthSession.refreshed_at, AuthSession.created_at) < horizon)
    sessions = select(AuthSession.id).where(~live, ended).order_by(AuthSession.id).limit(size)
    return _drain(result, budget, "sessions", sessions, lambda ids: delete(AuthSession).where(AuthSession.id.in_(ids)))


def prune_due(now: datetime | None = None) -> Pruned:
    """The bounded share `run_due` does each tick."""
    return prune(now, max_batches=int(current_app.config.get("RETENTION_BATCHES_PER_RUN", 10)))
