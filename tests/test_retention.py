"""Retention (push/retention.py) on SQLite and PostgreSQL: old rows go, recent and needed ones stay, the
batch bound holds, a second run finds nothing. The world is tests/test_push.py's (12 devices), its
fan-outs real (firebase-admin to the fake FCM); "later" is a `now` passed to the prune."""
from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select, update

from handbook.auth import AuthSession, RefreshToken
from handbook.extensions import db
from handbook.timeutil import utcnow
from push.due import run_due
from push.models import Delivery, InboxItem, Notification, PushChunk
from push.retention import prune
from tests.test_push import notification


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_deliveries_and_chunks_of_finished_notifications_go_after_retention_inbox_items_later(world, fcm):
    doc_id = world.publish("city")
    run_due()
    n = notification("published", doc_id)
    assert n.state == "done" and count(Delivery) == 12 and count(InboxItem) == 12 and count(PushChunk) == 1
    assert prune().total() == 0                                   # nothing is old yet
    assert prune(utcnow() + timedelta(days=29)).total() == 0     # DELIVERY_RETENTION_DAYS = 30
    later = prune(utcnow() + timedelta(days=31))
    assert (later.deliveries, later.chunks, later.inbox_items, later.done) == (12, 1, 0, True)
    assert count(Delivery) == 0 and count(PushChunk) == 0 and count(InboxItem) == 12  # unread, younger than 180 days
    n = notification("published", doc_id)
    assert (n.state, n.recipients, n.devices, n.sent) == ("done", 12, 12, 12)   # its figures stay
    assert prune(utcnow() + timedelta(days=31)).total() == 0     # idempotent
    much_later = prune(utcnow() + timedelta(days=181))
    assert much_later.inbox_items == 12 and count(InboxItem) == 0
    assert count(Notification, Notification.id == n.id) == 1     # the notification itself is kept


def test_a_notification_that_can_still_send_keeps_everything_however_old(world, fcm, app):
    """A device waits for a retry: its delivery guards the pending send, the inbox is the fan-out's list."""
    fcm.set_rule(target="fid-M3", error="UNAVAILABLE")
    app.config["PUSH_RETRY_BASE_SECONDS"] = 600   # the retry falls due minutes from now
    try:
        doc_id = world.publish("city")
        run_due()
    finally:
        app.config["PUSH_RETRY_BASE_SECONDS"] = 0.05
    n = notification("published", doc_id)
    assert n.state == "sending" and count(Delivery, Delivery.state == "retry") == 1
    pruned = prune(utcnow() + timedelta(days=400))
    assert (pruned.deliveries, pruned.chunks, pruned.inbox_items) == (0, 0, 0)
    assert count(Delivery) == 12 and count(InboxItem) == 12 and count(PushChunk) == 1


def test_the_batch_bound_is_respected_and_the_rest_waits_for_the_next_run(world, fcm):
    doc_id = world.publish("city")
    run_due()
    assert notification("published", doc_id).state == "done"
    later = utcnow() + timedelta(days=31)
    first = prune(later, max_batches=2, batch=5)
    assert (first.deliveries, first.batches, first.done) == (10, 2, False)
    assert count(Delivery) == 2
    second = prune(later, max_batches=2, batch=5)
    assert (second.deliveries, second.chunks, second.done) == (2, 1, True)
    assert prune(later, max_batches=2, batch=5).total() == 0


def _session(member_id: int, *, created_days_ago: int, revoked_days_ago: int | None = None,
             token_expired_days_ago: int | None = None) -> str:
    now = utcnow()
    session = AuthSession(id=secrets.token_hex(16), member_id=member_id, created_at=now - timedelta(days=created_days_ago),
                          revoked_at=None if revoked_days_ago is None else now - timedelta(days=revoked_days_ago))
    db.session.add(session)
    if token_expired_days_ago is not None:
        db.session.add(RefreshToken(jti=secrets.token_hex(16), session_id=session.id,
                                    issued_at=now - timedelta(days=created_days_ago),
                                    expires_at=now - timedelta(days=token_expired_days_ago)))
    db.session.commit()
    return session.id


def test_sessions_ended_long_ago_go_the_signed_in_and_recent_ones_stay(world, app):
    member = world.id("M3")
    signed_in = count(AuthSession, AuthSession.member_id == member)   # world logged M3 in: a live session
    assert signed_in >= 1
    old_revoked = _session(member, created_days_ago=200, revoked_days_ago=150, token_expired_days_ago=120)
    old_idle = _session(member, created_days_ago=120, token_expired_days_ago=91)
    recent_revoked = _session(member, created_days_ago=40, revoked_days_ago=35, token_expired_days_ago=10)
    # Signed in for a long time: created 300 days ago, its refresh token still valid.
    long_lived = _session(member, created_days_ago=300)
    db.session.add(RefreshToken(jti=secrets.token_hex(16), session_id=long_lived, expires_at=utcnow() + timedelta(days=5)))
    db.session.execute(update(AuthSession).where(AuthSession.id == long_lived)
                       .values(refreshed_at=utcnow() - timedelta(days=200)))
    db.session.commit()
    pruned = prune()
    assert (pruned.refresh_tokens, pruned.sessions) == (2, 2)       # SESSION_RETENTION_DAYS = 90
    left = set(db.session.scalars(select(AuthSession.id).where(AuthSession.member_id == member)))
    assert old_revoked not in left and old_idle not in left
    assert {recent_revoked, long_lived} <= left and len(left) == signed_in + 2
    assert world.client.get("/api/v1/me", headers=world.auth("M3")).status_code == 200   # still signed in
    assert prune().total() == 0


def test_the_cli_prunes_and_run_due_does_a_bounded_share(world, fcm, app):
    doc_id = world.publish("city")
    run_due()
    db.session.execute(update(Notification).where(Notification.id == notification("published", doc_id).id)
                       .values(finished_at=utcnow() - timedelta(days=31)))
    db.session.commit()
    app.config.update(RETENTION_BATCH=5, RETENTION_BATCHES_PER_RUN=1)
    try:
        lines = run_due()
        assert "pruned 5 deliveries, 0 fan-out chunks, 0 inbox items, 0 refresh tokens and 0 sessions " \
               "(more left for the next run)" in lines
        assert count(Delivery) == 7
        result = app.test_cli_runner().invoke(args=["handbook", "push", "prune"])
        assert result.exit_code == 0, result.output
        assert "Pruned 7 deliveries, 1 fan-out chunks" in result.output
    finally:
        app.config.update(RETENTION_BATCH=5000, RETENTION_BATCHES_PER_RUN=10)
    assert count(Delivery) == 0
