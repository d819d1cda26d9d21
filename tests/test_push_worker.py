"""The fan-out on real Celery workers (separate processes) with the Redis broker, sending through
firebase-admin to the project's fake FCM: a publication reaches every device once, and a worker killed
(SIGKILL) in the middle of a fan-out loses no device.

Each test uses its own queue name, so parallel runs on one Redis do not take each other's tasks. Redis is
required in CI and skipped elsewhere when it is not running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, insert, select

from handbook.extensions import db
from handbook.members import Member
from push.fakefcm import FakeFcm
from push.models import Delivery, Device, Notification, PushBatch
from tests.conftest import REDIS_URL, make_app, require_redis
from tests.factories import bearer, login, member, small_tree

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"


@pytest.fixture()
def broker(app):
    require_redis()
    queue = f"handbook-test-{uuid.uuid4().hex[:8]}"
    yield queue
    redis.Redis.from_url(REDIS_URL).delete(queue)
    app.extensions["celery"].set_default()  # the suite's app (no broker) is the default again


@pytest.fixture()
def fake():
    with FakeFcm() as server:
        yield server


class Workers:
    """`celery -A push.worker:celery worker --beat` processes on the test's database, queue and fake FCM."""

    def __init__(self, database_url: str, queue: str, fcm_url: str, tmp: Path):
        self.env = {**os.environ, "HANDBOOK_ENV": "development", "DATABASE_URL": database_url,
                    "SECRET_KEY": "worker-test-secret", "JWT_SECRET_KEY": "worker-test-jwt-secret-0123456789abcdef",
                    "REDIS_URL": REDIS_URL, "CELERY_QUEUE": queue, "PUSH_BACKEND": "fcm", "FCM_ENDPOINT": fcm_url,
                    "FCM_PROJECT_ID": "so-tay-test", "QUIET_HOURS": "", "PUSH_TICK_SECONDS": "1",
                    "PUSH_LEASE_SECONDS": "3", "FCM_TIMEOUT_SECONDS": "2", "PUSH_RETRY_BASE_SECONDS": "0.1", "LOG_FORMAT": "text",
                    "LOG_LEVEL": "WARNING"}
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen:
        n = len(self.processes)
        log = open(self.tmp / f"worker-{n}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "push.worker:celery", "worker", "--beat",
             f"--schedule={self.tmp / f'beat-{n}'}", f"--concurrency={concurrency}", "--loglevel=WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname=test{n}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool children, at once
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("worker-*.log")))


@pytest.fixture()
def workers(database_url, broker, fake, tmp_path):
    pool = Workers(database_url, broker, fake.url, tmp_path)
    yield pool
    pool.stop_all()


def crowd(count: int) -> dict:
    """`count` members spread over two branches, one phone each, and BT, the publisher."""
    tree = small_tree()
    member("BT", tree["b1"], roles=[("publisher", tree["city"])])
    rows = [{"card_number": f"W{i:05d}", "full_name": f"Đảng viên {i}", "org_unit_id": tree["b1" if i % 2 else "b2"].id,
             "active": True} for i in range(count)]
    db.session.execute(insert(Member), rows)
    ids = db.session.scalars(select(Member.id).where(Member.card_number.like("W%"))).all()
    db.session.execute(insert(Device), [{"member_id": m, "fid": f"fid-{m}", "platform": "android"} for m in ids])
    db.session.commit()
    return tree


def publish_through_the_broker(database_url: str, queue: str, tree: dict) -> int:
    """Publish with an app configured like production (Redis broker): the commit rings Celery."""
    producer = make_app(database_url, REDIS_URL=REDIS_URL, CELERY_QUEUE=queue)
    with producer.app_context():
        client = producer.test_client()
        auth = bearer(login(client, "BT").json["access_token"])
        created = client.post(f"{API}/admin/documents", headers=auth, json={
            "kind": "directive", "number": "24-CT/TU", "title": "Chỉ thị về tăng cường kỷ luật, kỷ cương",
            "summary": "", "body_html": "<p>Nội dung</p>", "issuing_body": "Thành ủy", "issued_on": "2023-08-07",
            "requires_ack": True, "audience": {"org_units": [tree["city"].id]}})
        assert created.status_code == 201, created.get_data(as_text=True)
        published = client.post(f"{API}/admin/documents/{created.json['id']}/publish", json={}, headers=auth)
        assert published.status_code == 200, published.get_data(as_text=True)
        db.session.remove()
        return published.json["notification_id"]


def wait_until(condition, timeout: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n--- worker logs ---\n{workers.logs()[-4000:]}")
        time.sleep(0.1)


def state_of(notification_id: int) -> Notification:
    db.session.expire_all()
    return db.session.get(Notification, notification_id)


def test_a_celery_worker_fans_out_a_publication_once_per_device(app, database_url, broker, fake, workers):
    tree = crowd(1200)
    workers.start(concurrency=2)
    notification_id = publish_through_the_broker(database_url, broker, tree)
    wait_until(lambda: state_of(notification_id).state == "done", 90, "the fan-out to finish", workers)
    n = state_of(notification_id)
    assert (n.recipients, n.devices, n.sent, n.failed, n.resent) == (1201, 1200, 1200, 0, 0)
    per_target = fake.stats()["accepted_by_target"]
    assert len(per_target) == 1200 and set(per_target.values()) == {1}
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sent")) == 1200


def test_a_worker_killed_mid_fan_out_loses_no_device(app, database_url, broker, fake, workers):
    """SIGKILL the worker while batches are in flight, start another: every device gets the push. Only a
    batch that was in flight when the worker died can be sent twice (FCM may or may not have taken it;
    the copies carry the same collapse key and tag, so the phone shows one); `resent` counts them."""
    tree = crowd(1500)
    fake.set_default(latency=0.25)
    first = workers.start(concurrency=1)
    notification_id = publish_through_the_broker(database_url, broker, tree)
    wait_until(lambda: fake.accepted_count() >= 600, 90, "the fan-out to be under way", workers)
    workers.kill(first)
    db.session.expire_all()
    # In doubt: the devices named by the batches the dead worker left open (its write-ahead records).
    in_doubt = db.session.scalar(select(func.coalesce(func.sum(PushBatch.size), 0)).where(
        PushBatch.notification_id == notification_id))
    accepted_at_kill = fake.accepted_count()
    assert accepted_at_kill < 1500, "the worker finished before it was killed: nothing was tested"
    fake.set_default(latency=0.0)
    workers.start(concurrency=2)
    wait_until(lambda: state_of(notification_id).state == "done", 90, "the fan-out to finish", workers)
    n = state_of(notification_id)
    per_target = fake.stats()["accepted_by_target"]
    assert len(per_target) == 1500                      # nobody skipped
    twice = sorted(t for t, c in per_target.items() if c == 2)
    assert max(per_target.values()) <= 2
    assert len(twice) <= n.resent == in_doubt <= 500     # only the in-flight batch, at most once more
    assert (n.sent, n.failed) == (1500, 0)
    for target in twice:  # the same push (only its TTL is shorter): the phone replaces it, does not add it
        first, again = ({"data": m["message"]["data"], "notification": m["message"]["notification"],
                         "android": m["message"]["android"]["notification"],
                         "collapse": m["message"]["android"]["collapse_key"],
                         "apns": m["message"]["apns"]["headers"]["apns-collapse-id"]}
                        for m in fake.messages(target))
        assert first == again
