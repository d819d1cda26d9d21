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
from push.models import Notification
from tests.conftest import make_app
from tests.factories import in_parallel, login, member, small_tree
from tests.test_acknowledgements import (
    ADMIN,
    API,
    WORLD_MEMBERS,
    Api,
    assert_counters_exact,
    local_today,
    make_world,
)
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
    """Run `call` in a daemon thread (in a copy of the caller's app context); fail, instead of hanging the
    suite, if it takes longer than `seconds`."""
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

def test_postgres_crashing_under_a_stream_of_writes(make_faulty_app, pg: ThrowawayPostgres, tmp_path):
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

    ops: list[tuple[str, Callable]] = [(f"ack {c}", lambda c, client: client.put(
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
    ops = [(name, call, name.split(" ", 1)[-1]) for name, call in ops]

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
    assert result.exit_code != 0
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
