"""Background work on Celery: the periodic `run_due`, fan-out planning and chunk sending.

With a broker (`CELERY_BROKER_URL`, else `REDIS_URL`) the API only writes notifications and rings
Celery; workers (`celery -A push.worker:celery worker --beat`) do the sending, as many as you like, on as
many machines. Without one (the embedded default) the same domain functions run in the API process on a
background thread (`push.embedded`) and in `flask --app wsgi handbook push run-due`.

Tasks are doorbells, not the source of truth: the database says what is due and what is left, each
piece of work is claimed atomically, and `run_due` re-queues whatever a dead worker dropped. A task
that runs twice therefore sends nothing twice.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from datetime import datetime

from celery import Celery, Task, shared_task
from celery.signals import worker_process_init
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from handbook.timeutil import as_utc, utcnow

log = logging.getLogger("handbook.push")


def broker_url(config) -> str | None:
    return config.get("CELERY_BROKER_URL") or config.get("REDIS_URL")


def init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    broker = broker_url(app.config)
    celery.conf.update(
        broker_url=broker or "memory://",
        task_default_queue=app.config.get("CELERY_QUEUE", "handbook"),
        task_ignore_result=True,
        task_acks_late=True,                 # a task whose worker dies is delivered again …
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,        # … and a busy worker does not hoard chunks
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        broker_connection_retry_on_startup=True,
        # kombu's Redis transport waits forever on a Redis that stops answering without closing the
        # connection (its default socket timeouts are None); bound every broker operation.
        broker_transport_options={"visibility_timeout": app.config.get("PUSH_LEASE_SECONDS", 120) * 10,
                                  "socket_timeout": app.config.get("REDIS_TIMEOUT_SECONDS", 5.0),
                                  "socket_connect_timeout": app.config.get("REDIS_TIMEOUT_SECONDS", 5.0)},
        beat_schedule={"push-run-due": {"task": "push.run_due",
                                        "schedule": float(app.config.get("PUSH_TICK_SECONDS", 15))}},
        timezone="UTC",
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_) -> None:
    """A prefork child must not share the parent's database connections."""
    from handbook.extensions import db
    from push import worker

    with worker.flask_app.app_context():
        db.engine.dispose(close=False)


@shared_task(name="push.run_due")
def run_due_task(at: str | None = None) -> None:
    from push.due import run_due

    moment = as_utc(datetime.fromisoformat(at)) if at else None
    for line in run_due(moment, inline=False, enqueue_plan=plan_task.delay, enqueue_chunk=send_chunk_task.delay):
        log.info("run-due: %s", line)


@shared_task(name="push.plan")
def plan_task(notification_id: int) -> None:
    from push import fanout

    fanout.plan(notification_id, enqueue=send_chunk_task.delay)


@shared_task(name="push.send_chunk")
def send_chunk_task(chunk_id: int) -> None:
    from push import fanout

    if fanout.send_chunk(chunk_id) is None:
        return
    retry_at = fanout.next_retry_at(chunk_id)
    if retry_at is not None:
        send_chunk_task.apply_async((chunk_id,), countdown=max(0.0, (retry_at - utcnow()).total_seconds()))


def uses_broker() -> bool:
    return bool(broker_url(current_app.config))


def kick() -> None:
    """Something is due now: have it sent without waiting for the next tick."""
    if uses_broker():
        _doorbell.ring(current_app.extensions["celery"])
    else:
        from push import embedded

        embedded.wake()


class _Doorbell:
    """Queues `push.run_due` from a thread of its own, so that the request that committed never waits for
    the broker: with Redis down or frozen, publishing still answers at once; the notification is in
    PostgreSQL and the next tick (or `handbook push run-due`) sends it. Rings that pile up while one is
    being sent are sent once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[int, Celery] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ring(self, celery: Celery) -> None:
        with self._lock:
            self._pending[id(celery)] = celery
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # (after a fork the parent's thread does not exist here)
                self._thread = threading.Thread(target=self._run, name="push-doorbell", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._send_pending()

    def _send_pending(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for celery in pending:
            try:
                celery.send_task("push.run_due")
            except Exception as error:  # noqa: BLE001 - the broker is down: the next tick will send it
                log.warning("push: could not queue run-due (%s); the next tick will", error)

    def flush(self, timeout: float) -> None:
        """At exit: send what is still pending (a CLI command that published just before it ends)."""
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            finisher = threading.Thread(target=self._send_pending, daemon=True)
            finisher.start()
            finisher.join(timeout)


_doorbell = _Doorbell()
atexit.register(lambda: _doorbell.flush(timeout=5.0))


# Publishing, a material change or a manual reminder commits a notification that is due now: ring once the
# transaction has committed (never before, or the worker could look before the row exists).
_DUE_NOW = "push.due_now"


@event.listens_for(Session, "after_flush")
def _note_due_notifications(session, _context) -> None:
    from push.models import Notification, NotificationState

    now = utcnow()
    if any(isinstance(o, Notification) and o.state == NotificationState.PENDING.value and o.due_at is not None
           and as_utc(o.due_at) <= now for o in session.new):
        session.info[_DUE_NOW] = True


@event.listens_for(Session, "after_commit")
def _ring(session) -> None:
    if session.info.pop(_DUE_NOW, False) and has_app_context():
        kick()


@event.listens_for(Session, "after_rollback")
def _forget(session) -> None:
    session.info.pop(_DUE_NOW, None)
