"""Faults of the services the API depends on, on servers of the tests' own (tests/throwaway.py).

- PostgreSQL stopped (immediate mode, i.e. crashed) in the middle of a stream of writes, and a database
  that accepts connections but never answers: every request answers 503 problem+json with Retry-After,
  quickly; `/readyz` says 503; after a restart the same app (no restart of it) serves again; nothing is
  half-written (the progress counters equal a recount from the raw rows, an import is all-or-nothing)
  and a retried write is not counted twice.
- FCM refusing (503, then 429, with Retry-After) for a while: every device still gets the push once.
- Redis killed or frozen while the API and a Celery worker use it: logins keep working and rate limits
  keep limiting in process memory, revoked tokens stay revoked (sessions live in PostgreSQL), publishing
  neither fails nor hangs and its fan-out is sent once Redis is back.

A Celery worker killed in the middle of a fan-out is tests/test_push_worker.py's.
"""
from __future__ import annotations

import csv
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from content.models import Document, Receipt
from handbook.extensions import db
from handbook.members import Member
from push.fakefcm import FakeFcm
from push.models import Notification
from tests.conftest import make_app
from tests.factories import bearer, in_parallel, login, member, small_tree
from tests.test_acknowledgements import (
    ADMIN,
    API,
    WORLD_MEMBERS,
    Api,
    assert_counters_exact,
    local_today,
    make_world,
)
from tests.test_errors import assert_problem
from tests.throwaway import Blackhole, ThrowawayPostgres, throwaway_postgres, throwaway_redis, wait_until

REQUEST_BOUND = 10.0   # seconds: no request may take longer than this, whatever is down
RETRY_AFTER = "5"      # DB_UNAVAILABLE_RETRY_AFTER in the test configuration


# --- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    """One throwaway PostgreSQL cluster for the module; each test gets a database of its own."""
    with throwaway_postgres() as server:
        yield server


@pytest.fixture()
def redis_server():
    with throwaway_redis() as server:
        yield server


@pytest.fixture(autouse=True)
def _give_back_the_shared_extensions():
    """Apps made here rebind the process-wide limiter (and the default Celery app) to their own storage
    and broker; afterwards the rest of the suite gets memory storage and no broker again."""
    yield
    from handbook import throttle
    from handbook.extensions import limiter

    make_app("sqlite://")
    limiter._storage_dead = False
    limiter.reset()
    throttle._fallback.storage.reset()


@pytest.fixture()
def make_faulty_app(pg):
    """`make_faulty_app(**config)`: a fresh database on the throwaway cluster, migrated, and the app on it
    (its app context pushed). Torn down after the test."""
    from flask_migrate import upgrade

    contexts = []

    def build(**overrides):
        url = pg.create_database(f"faults_{uuid.uuid4().hex[:10]}")
        app = make_app(url, **overrides)
        context = app.app_context()
        context.push()
        contexts.append(context)
        upgrade()
        return app

    yield build
    for context in reversed(contexts):
        db.session.remove()
        db.engine.dispose()
        context.pop()


# --- helpers ------------------------------------------------------------------------------------------

@dataclass
class Answer:
    op: str
    status: int
    content_type: str
    retry_after: str | None
    code: str | None
    seconds: float


def answer(op: str, call: Callable) -> Answer:
    started = time.monotonic()
    response = call()
    body = response.get_json(silent=True) or {}
    return Answer(op, response.status_code, response.content_type, response.headers.get("Retry-After"),
                  body.get("code") if isinstance(body, dict) else None, time.monotonic() - started)


def assert_unavailable(a: Answer) -> None:
    """The contract's answer while the database is down (API.md: 503 with Retry-After)."""
    assert (a.status, a.content_type, a.code, a.retry_after) == (
        503, "application/problem+json", "service_unavailable", RETRY_AFTER), a


def bounded(call: Callable, seconds: float, what: str):
    """Run `call` in a daemon thread (in an app context of the caller's app, if any); fail, instead of
    hanging the suite, if it takes longer than `seconds`."""
    from flask import current_app

    app = current_app._get_current_object() if has_app_context() else None
    result: dict = {}

    def run():
        try:
            if app is None:
                result["value"] = call()
            else:
                with app.app_context():
                    try:
                        result["value"] = call()
                    finally:
                        db.session.remove()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{what} did not answer within {seconds} s (it hangs)")
    if "error" in result:
        raise result["error"]
    return result["value"]


def crowd_world(api: Api, extra: int) -> list[str]:
    """tests/test_acknowledgements.py's 12 members plus `extra` members spread over b1, b2 and cbcs."""
    make_world(api.tree)
    cards = [f"F{i:03d}" for i in range(extra)]
    for i, card in enumerate(cards):
        member(card, api.tree[("b1", "b2", "cbcs")[i % 3]], name=f"Đảng viên {i}")
    return cards


def draft(api: Api, title: str) -> int:
    created = api.client.post(ADMIN, headers=api.auth("BT"), json={
        "kind": "directive", "number": "25-CT/TU", "title": title, "summary": "Tóm tắt",
        "body_html": "<p>Nội dung</p>", "issuing_body": "Ban Thường vụ Thành ủy", "issued_on": "2023-08-07",
        "requires_ack": True, "audience": {"org_units": [api.tree["city"].id]}})
    assert created.status_code == 201, created.get_data(as_text=True)
    return created.json["id"]


def members_csv(path: Path, rows: int, prefix: str) -> str:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["card_number", "full_name", "phone", "org_unit_code", "roles", "password"])
        units = ("HN.BD.DB.1", "HN.BD.DB.2", "HN.DD.CB")
        writer.writerows([f"{prefix}{i:06d}", f"Nhập Văn {i}", "", units[i % 3], "", ""] for i in range(rows))
    return str(path)


def count_cards(prefix: str) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Member).where(Member.card_number.like(f"{prefix}%")))


# === PostgreSQL ===========================================================================================

def test_postgres_crashing_under_a_stream_of_writes(make_faulty_app, pg: ThrowawayPostgres):
    """Acknowledgements by many members, briefings, an offline sync and a publication, from four clients at
    once, while PostgreSQL is stopped in immediate mode (a crash) and started again: every answer is 200
    or a quick 503 with Retry-After; the same app serves again after the restart; the writes answered 200
    survived the crash; nothing is half-written; retrying what failed succeeds and counts nothing twice."""
    app = make_faulty_app()
    api = Api(app.test_client(), small_tree())
    cards = crowd_world(api, 30)
    doc = api.publish()
    later = draft(api, "Kế hoạch thực hiện")
    for card in [*WORLD_MEMBERS, *cards]:
        api.auth(card)  # log everyone in while the database is up
    ids = {card: api.id(card) for card in [*WORLD_MEMBERS, *cards]}
    db.session.remove()

    ops: list = [(f"ack {c}", lambda c, client: client.put(
        f"{API}/documents/{doc}/acknowledgement", json={"version": 1}, headers=api.auth(c))) for c in cards]
    briefings = {"S1": ["M2", "CB"], "S2": ["M3", "M4"], "SD": ["M5", "M6"]}
    ops[5:5] = [(f"brief {s}", lambda s, client: client.post(
        f"{API}/documents/{doc}/acknowledgements", headers=api.auth(s),
        json={"member_ids": [ids[m] for m in briefings[s]], "method": "briefing",
              "held_on": local_today().isoformat()})) for s in briefings]
    ops[12:12] = [("sync M1", lambda _, client: client.post(
        f"{API}/me/acknowledgements/sync", headers=api.auth("M1"),
        json={"items": [{"document_id": doc, "version": 1, "acknowledged_at": datetime.now(UTC).isoformat()}]}))]
    ops[18:18] = [("publish", lambda _, client: client.post(f"{ADMIN}/{later}/publish", json={},
                                                           headers=api.auth("BT")))]
    ops = [(name, call, name.split(" ", 1)[-1]) for name, call in ops]  # (name, call(key, client), key)

    answers: list[Answer] = []
    pending = list(ops)
    lock = threading.Lock()

    def client_loop():
        with app.app_context():
            client = app.test_client()
            while True:
                with lock:
                    if not pending:
                        break
                    name, call, key = pending.pop(0)
                got = answer(name, lambda call=call, key=key: call(key, client))
                with lock:
                    answers.append(got)
                time.sleep(0.03)
            db.session.remove()

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(answers) >= 10, 30, "the first answers")
    pg.stop("immediate")
    stopped_at = len(answers)
    wait_until(lambda: len(answers) >= stopped_at + 8 or not pending, 30, "answers during the outage")
    pg.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client hung"

    assert len(answers) == len(ops)
    for a in answers:
        assert a.status in (200, 503), a
        assert a.seconds < REQUEST_BOUND, a
        if a.status == 503:
            assert_unavailable(a)
    refused = [a.op for a in answers if a.status == 503]
    assert refused, "no request met the outage: nothing was tested"
    done_before_crash = {a.op for a in answers[:stopped_at] if a.status == 200}
    assert done_before_crash, "no write succeeded before the crash: nothing was tested"

    # The same app serves again by itself: its first request after the restart succeeds.
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    # What was answered 200 before the crash is still there (durability of an answered commit).
    for a in answers:
        if a.status == 200 and a.op.startswith("ack "):
            receipt = db.session.get(Receipt, (doc, ids[a.op[4:]]))
            assert receipt is not None and receipt.acknowledged_version == 1, a.op
    assert_counters_exact()  # nothing half-written: counters equal a recount of the raw rows

    # The clients retry what failed; a retried write is applied once.
    by_name = {name: (call, key) for name, call, key in ops}
    for name in refused:
        call, key = by_name[name]
        assert call(key, client).status_code == 200, name
    acknowledged_at = {c: db.session.get(Receipt, (doc, ids[c])).acknowledged_at for c in cards}
    for c in cards[:3]:  # and a write that had succeeded, sent again, changes nothing
        assert api.ack(c, doc).status_code == 200
    db.session.expire_all()
    assert {c: db.session.get(Receipt, (doc, ids[c])).acknowledged_at for c in cards} == acknowledged_at
    assert_counters_exact()
    progress = api.figures("BT", doc)
    briefed = sum(len(m) for m in briefings.values())
    assert (progress["total"], progress["acknowledged"]) == (42, len(cards) + briefed + 1)  # + M1's sync
    assert db.session.scalar(select(func.count()).select_from(Receipt).where(
        Receipt.document_id == doc, Receipt.acknowledged_version.is_not(None))) == len(cards) + briefed + 1
    published = db.session.scalars(select(Notification).where(Notification.document_id == later)).all()
    assert [n.kind for n in published] == ["published"]
    assert db.session.get(Document, later).status == "published"


def test_every_kind_of_request_during_an_outage_is_a_quick_503(make_faulty_app, pg: ThrowawayPostgres,
                                                              tmp_path):
    """With PostgreSQL down: reads, writes, logins, the import and /readyz all fail fast and cleanly;
    /healthz still answers (alive, not ready); after the restart the same app and the same tokens work."""
    app = make_faulty_app()
    api = Api(app.test_client(), small_tree())
    make_world(api.tree)
    doc = api.publish()
    later = draft(api, "Kế hoạch thực hiện")
    for card in ("M1", "S1", "BT"):
        api.auth(card)
    m2 = api.id("M2")
    path = members_csv(tmp_path / "members.csv", 50, "OUT")
    db.session.remove()

    pg.stop("immediate")
    client = app.test_client()
    probes = {
        "readyz": lambda: client.get("/readyz"),
        "login": lambda: login(client, "M3"),
        "feed": lambda: client.get(f"{API}/documents", headers=api.auth("M1")),
        "me": lambda: client.get(f"{API}/me", headers=api.auth("M1")),
        "acknowledge": lambda: api.ack("M1", doc),
        "briefing": lambda: api.brief("S1", doc, [m2]),
        "publish": lambda: client.post(f"{ADMIN}/{later}/publish", json={}, headers=api.auth("BT")),
        "progress": lambda: api.progress("BT", doc),
        "logout": lambda: client.post(f"{API}/auth/logout", headers=api.auth("S1")),
    }
    for name, call in probes.items():
        assert_unavailable(bounded(lambda name=name, call=call: answer(name, call), REQUEST_BOUND, name))
    assert client.get("/healthz").status_code == 200
    result = bounded(lambda: app.test_cli_runner().invoke(args=["handbook", "import-members", path]),
                     REQUEST_BOUND, "the import")
    assert result.exit_code == 1 and "database unavailable" in result.output, result.output
    assert "Traceback" not in result.output
    pg.start()

    assert client.get("/readyz").status_code == 200
    assert count_cards("OUT") == 0
    assert api.ack("M1", doc).status_code == 200
    assert api.brief("S1", doc, [m2]).status_code == 200
    assert client.post(f"{ADMIN}/{later}/publish", json={}, headers=api.auth("BT")).status_code == 200
    assert client.post(f"{API}/auth/logout", headers=api.auth("S1")).status_code == 204
    assert client.get(f"{API}/me", headers=api.auth("S1")).status_code == 401
    result = app.test_cli_runner().invoke(args=["handbook", "import-members", path])
    assert result.exit_code == 0, result.output
    assert count_cards("OUT") == 50
    assert_counters_exact()


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_a_restart_between_two_requests_is_invisible(make_faulty_app, pg: ThrowawayPostgres, mode):
    """PostgreSQL restarts while the app is idle (a night-time restart, a failover): the pooled connections
    are dead, and the next request must not be the one that finds out (pool pre-ping)."""
    app = make_faulty_app()
    api = Api(app.test_client(), small_tree())
    make_world(api.tree)
    doc = api.publish()
    api.auth("M1")
    # Several pooled connections, all of them about to die.
    assert in_parallel(app, 3, lambda client: client.get(f"{API}/documents", headers=api.auth("M1"))) == [200] * 3
    db.session.remove()
    pg.stop(mode)
    pg.start()
    assert api.ack("M1", doc).status_code == 200
    assert api.client.get("/readyz").status_code == 200


def test_an_import_cut_by_a_postgres_crash_is_all_or_nothing(make_faulty_app, pg: ThrowawayPostgres, tmp_path):
    """PostgreSQL crashes while a members import has written part of its rows: none of them is kept,
    and importing the file again afterwards imports it whole, counters included."""
    from handbook.imports import import_members

    app = make_faulty_app()
    api = Api(app.test_client(), small_tree())
    make_world(api.tree)
    doc = api.publish()
    db.session.remove()
    path = members_csv(tmp_path / "members.csv", 12000, "IMP")
    database = db.engine.url.database
    outcome: dict = {}

    def run_import():
        with app.app_context():
            try:
                outcome["report"] = import_members(path)
            except Exception as error:  # noqa: BLE001 - the crash; recorded for the assertions
                outcome["error"] = error
            finally:
                db.session.remove()

    importer = threading.Thread(target=run_import, daemon=True)
    with pg.connect() as watcher:
        importer.start()
        wait_until(lambda: watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_xid IS NOT NULL",
            (database,)).fetchone()[0] > 0 or not importer.is_alive(), 60, "the import to write", interval=0.005)
    pg.crash()
    importer.join(REQUEST_BOUND)
    assert not importer.is_alive(), "the import hangs"
    assert "report" not in outcome, "the import finished before the crash: nothing was tested"
    assert isinstance(outcome["error"], OperationalError), outcome["error"]
    pg.start()
    assert count_cards("IMP") == 0  # all or nothing
    report = import_members(path)
    assert report.ok and report.created == 12000
    assert count_cards("IMP") == 12000
    assert_counters_exact()
    assert api.figures("BT", doc)["total"] == 12012


def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout():
    """A PostgreSQL host that takes connections and never answers (frozen, half-open path): requests give
    up after the connect timeout with a 503, instead of hanging a worker for good."""
    from config import Config

    shipped = Config.SQLALCHEMY_ENGINE_OPTIONS.get("connect_args", {}).get("connect_timeout")
    assert shipped is not None and shipped <= 10, "no connect timeout for PostgreSQL connections"
    timeout = 2  # psycopg's smallest; the shipped one is longer, and this test would only wait longer
    with Blackhole() as hole:
        app = make_app(f"postgresql+psycopg://postgres@127.0.0.1:{hole.port}/handbook",
                       SQLALCHEMY_ENGINE_OPTIONS={**Config.SQLALCHEMY_ENGINE_OPTIONS,
                                                  "connect_args": {"connect_timeout": timeout}})
        client = app.test_client()
        started = time.monotonic()
        assert_unavailable(bounded(lambda: answer("readyz", lambda: client.get("/readyz")),
                                   timeout + REQUEST_BOUND, "/readyz"))
        assert time.monotonic() - started < timeout + 3
        with app.app_context():
            db.engine.dispose()


# === FCM ==================================================================================================

def test_fcm_refusing_for_a_while_then_every_device_gets_the_push_exactly_once(make_faulty_app):
    """FCM answers 503 with Retry-After: 1 to its first 200 requests, whatever their device (a count, not a
    time: a loaded machine may take more than a second to log in and publish), then 429 with Retry-After: 1
    to the first attempt at each device, then accepts: a publication to 510 devices (two chunks) through the
    real firebase-admin reaches every device exactly once, nobody is given up, and nobody is hammered
    (Retry-After is honoured: a few attempts per device, not one every retry interval)."""
    from push.due import run_due
    from tests.test_push_worker import crowd

    with FakeFcm() as fake:
        app = make_faulty_app(PUSH_BACKEND="fcm", FCM_ENDPOINT=fake.url, FCM_PROJECT_ID="so-tay-test")
        client = app.test_client()
        tree = crowd(510)
        started = time.monotonic()
        fake.storm("UNAVAILABLE", requests=200, retry_after=1)
        fake.set_default(error="QUOTA_EXCEEDED", times=1, retry_after=1)
        auth = bearer(login(client, "BT").json["access_token"])
        created = client.post(ADMIN, headers=auth, json={
            "kind": "directive", "number": "24-CT/TU", "title": "Chỉ thị về tăng cường kỷ luật", "summary": "",
            "body_html": "<p>Nội dung</p>", "issuing_body": "Thành ủy", "issued_on": "2023-08-07",
            "requires_ack": True, "audience": {"org_units": [tree["city"].id]}})
        published = client.post(f"{ADMIN}/{created.json['id']}/publish", json={}, headers=auth)
        assert published.status_code == 200, published.get_data(as_text=True)
        notification_id = published.json["notification_id"]

        def done() -> bool:
            run_due()
            db.session.expire_all()
            return db.session.get(Notification, notification_id).state == "done"

        wait_until(done, 60, "the fan-out to finish", interval=0.2)
        elapsed = time.monotonic() - started
        per_target = fake.stats()["accepted_by_target"]
        attempts = fake.attempts()
    n = db.session.get(Notification, notification_id)
    assert (n.devices, n.sent, n.failed, n.invalid_tokens) == (510, 510, 0, 0)
    assert elapsed >= 2.0  # a 503 asking for a second more, then a 429 asking for one more
    assert len(per_target) == 510 and set(per_target.values()) == {1}
    statuses: dict[str, list[int]] = {}
    for target, status in attempts:
        statuses.setdefault(target, []).append(status)
    assert len(statuses) == 510
    for target, seen in statuses.items():
        assert seen[-1] == 200 and seen.count(200) == 1, (target, seen)
        assert seen.count(429) == 1, (target, seen)        # each was refused, and asked again once
        assert len(seen) <= 4, (target, seen)              # ≤ 2 in the storm, the 429, the success
    assert sum(seen.count(503) for seen in statuses.values()) == 200


# === Redis ================================================================================================

def test_redis_killed_mid_use_limits_fall_back_to_memory_and_revocation_holds(make_faulty_app, redis_server):
    """Login throttles live in Redis until it is killed; then logins keep working, both the per-account
    budget and the per-IP limit keep limiting (in process memory), a token revoked before the outage
    stays revoked and a logout during it takes effect (sessions live in PostgreSQL, not Redis)."""
    app = make_faulty_app(REDIS_URL=redis_server.url, LOGIN_LIMIT_PER_IP="10 per minute")
    client = app.test_client()
    make_world(small_tree())
    s1 = bearer(login(client, "S1").json["access_token"])
    assert client.post(f"{API}/auth/logout", headers=s1).status_code == 204
    assert_problem(client.get(f"{API}/me", headers=s1), 401, "token_revoked")
    for _ in range(2):
        assert login(client, "M1", "wrong").status_code == 401
    keys = b" ".join(redis_server.client().keys("*"))
    assert b"login-ip" in keys and b"login-account" in keys  # the limits were in Redis

    redis_server.kill()
    m2 = bounded(lambda: login(client, "M2"), REQUEST_BOUND, "a login with Redis down")  # 1st on this IP
    assert m2.status_code == 200, m2.get_data(as_text=True)
    m2 = bearer(m2.json["access_token"])
    assert client.get(f"{API}/me", headers=m2).status_code == 200
    assert_problem(client.get(f"{API}/me", headers=s1), 401, "token_revoked")
    assert client.post(f"{API}/auth/logout", headers=m2).status_code == 204
    assert_problem(client.get(f"{API}/me", headers=m2), 401, "token_revoked")
    for _ in range(5):                                                     # 2nd to 6th
        assert login(client, "M3", "wrong").status_code == 401
    throttled = login(client, "M3")                                        # 7th: M3's budget is spent
    assert_problem(throttled, 429, "rate_limited")
    assert int(throttled.headers["Retry-After"]) > 0
    for card in ("S2", "SD", "CD"):                                        # 8th to 10th
        assert login(client, card).status_code == 200
    assert_problem(login(client, "M4"), 429, "rate_limited")               # 11th: over the IP limit


def test_a_frozen_redis_costs_seconds_never_a_hang(make_faulty_app, redis_server):
    """Redis stops answering without closing its connections (SIGSTOP: a frozen host, a half-open
    network path): a login waits for the Redis timeout and carries on in process memory, publishing
    does not wait for the broker, and `handbook push run-due` sends (the rate cap falls back to the
    process)."""
    from config import Config
    from push import fanout
    from tests.test_push_worker import crowd

    shipped = Config.REDIS_TIMEOUT_SECONDS
    assert 0 < shipped <= 5
    assert Config.RATELIMIT_STORAGE_OPTIONS == {"socket_timeout": shipped, "socket_connect_timeout": shipped}
    timeout = 1.0  # shorter than the shipped one, so that the test waits less
    with FakeFcm() as fake:
        app = make_faulty_app(REDIS_URL=redis_server.url, PUSH_BACKEND="fcm", FCM_ENDPOINT=fake.url,
                              FCM_PROJECT_ID="so-tay-test", REDIS_TIMEOUT_SECONDS=timeout,
                              RATELIMIT_STORAGE_OPTIONS={"socket_timeout": timeout, "socket_connect_timeout": timeout})
        client = app.test_client()
        tree = crowd(20)
        api = Api(client, tree)
        doc = draft(api, "Thông báo khẩn")
        assert redis_server.client().keys("*handbook-rl*")  # the limits live in Redis
        access = _Records()
        logging.getLogger("handbook.access").addHandler(access)
        redis_server.freeze()
        try:
            started = time.monotonic()
            assert bounded(lambda: login(client, "BT"), REQUEST_BOUND, "a login").status_code == 200
            assert time.monotonic() - started < 2 * timeout + 1.5
            started = time.monotonic()
            published = bounded(lambda: client.post(f"{ADMIN}/{doc}/publish", json={}, headers=api.auth("BT")),
                                REQUEST_BOUND, "publishing")
            assert published.status_code == 200, published.get_data(as_text=True)
            # It did not wait for the broker: the view's own time (the access log's, which starts after the
            # rate limiter's hook) is under one Redis timeout. The wall time may also hold one health check
            # of the limiter's storage (flask-limiter re-probes a dead storage on a backoff timer that
            # other tests' requests have moved): at most one timeout more, never a hang.
            assert time.monotonic() - started < 2 * timeout + 1.5
            (logged,) = [r for r in access.records if getattr(r, "path", "").endswith(f"/{doc}/publish")]
            assert logged.duration_ms < timeout * 1000
            result = bounded(lambda: app.test_cli_runner().invoke(args=["handbook", "push", "run-due"]),
                             REQUEST_BOUND, "handbook push run-due")
            assert result.exit_code == 0, result.output
            assert fake.accepted_count() == 20 and len(fake.stats()["accepted_by_target"]) == 20
            # The rate cap paid the timeout once during that run; now it does not ask Redis for a while.
            started = time.monotonic()
            bounded(lambda: fanout.limiter().acquire(1), REQUEST_BOUND, "the rate cap")
            assert time.monotonic() - started < timeout / 2
        finally:
            logging.getLogger("handbook.access").removeHandler(access)
            redis_server.thaw()


class _Records(logging.Handler):
    """Keeps the records logged to it (the access log's, here: each request's own duration)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_publishing_while_redis_is_down_loses_no_push(make_faulty_app, redis_server, tmp_path):
    """A Celery worker runs on the throwaway Redis; Redis is killed. A publication then answers 200 (the
    publication and its notification are committed; the broker is told later), `handbook push run-due`
    sends it without Redis; a second publication waits in PostgreSQL until Redis is back, when the
    running worker sends it by itself. Every device gets each push exactly once."""
    from tests.test_push_worker import Workers, crowd

    queue = f"handbook-faults-{uuid.uuid4().hex[:8]}"
    with FakeFcm() as fake:
        app = make_faulty_app(REDIS_URL=redis_server.url, CELERY_QUEUE=queue, PUSH_BACKEND="fcm",
                              FCM_ENDPOINT=fake.url, FCM_PROJECT_ID="so-tay-test")
        client = app.test_client()
        tree = crowd(40)
        api = Api(client, tree)
        first, second = draft(api, "Văn bản thứ nhất"), draft(api, "Văn bản thứ hai")
        workers = Workers(db.engine.url.render_as_string(hide_password=False), queue, fake.url, tmp_path)
        workers.env["REDIS_URL"] = redis_server.url
        db.session.remove()
        try:
            workers.start(concurrency=1)
            binding = f"_kombu.binding.{queue}".encode()
            wait_until(lambda: redis_server.client().exists(binding), 60, "the worker to listen on Redis")
            redis_server.kill()

            def publish(doc_id: int) -> int:
                response = bounded(lambda: client.post(f"{ADMIN}/{doc_id}/publish", json={}, headers=api.auth("BT")),
                                   REQUEST_BOUND, "publishing")
                assert response.status_code == 200, response.get_data(as_text=True)
                return response.json["notification_id"]

            def state(notification_id: int) -> str:
                db.session.rollback()
                return db.session.get(Notification, notification_id, populate_existing=True).state

            one = publish(first)
            assert state(one) == "pending" and fake.accepted_count() == 0
            result = bounded(lambda: app.test_cli_runner().invoke(args=["handbook", "push", "run-due"]),
                             REQUEST_BOUND, "handbook push run-due")
            assert result.exit_code == 0, result.output
            assert state(one) == "done" and fake.accepted_count() == 40

            two = publish(second)
            time.sleep(1.2)  # the worker's tick comes and goes: it cannot reach the broker
            assert state(two) == "pending"
            redis_server.start()
            try:
                wait_until(lambda: state(two) == "done", 60, "the worker to send the second publication")
            except TimeoutError:
                pytest.fail(f"the worker did not send after Redis came back\n{workers.logs()[-4000:]}")
        finally:
            workers.stop_all()
        messages = fake.messages()
    for notification_id in (one, two):
        targets = [m["target"] for m in messages if m["message"]["data"]["notification_id"] == str(notification_id)]
        assert len(targets) == 40 and len(set(targets)) == 40, notification_id
    assert len(messages) == 80
