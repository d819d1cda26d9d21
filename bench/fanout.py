"""The `fanout` figure: a city-wide publication until the fake FCM has accepted every message.

Real path: Celery workers (`celery -A push.worker:celery worker --beat`, Redis broker) send through
firebase-admin to the project's fake FCM running in its own process; the publication is committed by
an app configured like production, whose commit rings Celery. The clock runs from that commit until the
fake has accepted one message per device. Peak worker memory is the largest VmHWM among the worker's
processes.

Beside it: the CPU time (user + sys) of the worker's processes per delivered message (read from /proc
when the publication is committed and when the last message is in), and what the database did per
message (PostgreSQL's own counters for the bench database: transactions, rows inserted, updated,
deleted).

Baselines, same run (bench/transports.py): firebase-admin alone (`messaging.send_each`, batches of 500,
as many processes as the workers have) sending the same number of messages to the same fake, with no
application logic; and the project's transport alone (`FCM_TRANSPORT`, default `direct`) likewise.

`python -m bench.fanout --database-url URL [--members N]` runs it alone against a database that the
harness (bench/run.py) has filled (members with one device each).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_PROCESSES = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def _get(ctx, name: str, default=None):
    return ctx.get(name, default) if isinstance(ctx, dict) else getattr(ctx, name, default)


def _start_fake(port: int) -> tuple[subprocess.Popen, str]:
    fake = subprocess.Popen([sys.executable, "-m", "push.fakefcm", "--port", str(port), "--max-bodies", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    url = fake.stdout.readline().strip()
    if not url.startswith("http://"):
        raise RuntimeError(f"the fake FCM did not start: {url!r}")
    return fake, url


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_fake/stats?targets=0", timeout=10) as response:
        return json.load(response)


def _reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_fake/reset", data=b"{}", method="POST"), timeout=10)


def _peak_rss_mb(pid: int) -> float:
    """Largest VmHWM (peak resident set) of a process and its children, in MB."""
    peaks = []
    for task in [pid] + _children(pid):
        try:
            status = Path(f"/proc/{task}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks, default=0.0), 1)


def _children(pid: int) -> list[int]:
    try:
        found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [c for p in found for c in _children(p)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its (living) children, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for task in [pid] + _children(pid):
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / ticks


def _database_counters(database_url: str) -> dict:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return dict(zip(("commits", "inserted", "updated", "deleted"), row, strict=True))


# --- the real fan-out --------------------------------------------------------------------------------

def _publish(database_url: str, queue: str, app=None) -> tuple[int, float]:
    """A city-wide directive published by the demo's board account, through an app with the broker."""
    from handbook import create_app

    app = app or create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": REDIS_URL, "CELERY_QUEUE": queue,
                             "QUIET_HOURS": "", "EMBEDDED_WORKER": False, "SECRET_KEY": "bench",
                             "JWT_SECRET_KEY": "bench" * 8})
    with app.app_context():
        from sqlalchemy import select

        from content import documents
        from handbook.extensions import db
        from handbook.members import Member
        from handbook.orgunits import OrgUnit

        board = db.session.scalar(select(Member).where(Member.card_number == "01000001"))
        city = db.session.scalar(select(OrgUnit).where(OrgUnit.parent_id.is_(None)))
        doc = documents.create_document(board, {
            "kind": "directive", "number": f"BENCH-{uuid.uuid4().hex[:6]}", "title": "Chỉ thị đo tải phát hành",
            "summary": "", "body_html": "<p>Nội dung</p>", "issuing_body": "Ban Thường vụ Thành ủy",
            "requires_ack": True, "audience": {"org_units": [city.id]}})
        started = time.monotonic()
        result = documents.publish_document(board, doc.id)  # its commit rings Celery
        db.session.remove()
        db.engine.dispose()
        return result["notification_id"], started


def fanout(database_url: str, fake_url: str, scratch: Path, expected: int, timeout: float) -> dict:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HANDBOOK_ENV": "production", "SECRET_KEY": "bench", "JWT_SECRET_KEY": "bench" * 8,
           "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "CELERY_QUEUE": queue, "PUSH_BACKEND": "fcm",
           "FCM_ENDPOINT": fake_url, "FCM_PROJECT_ID": "bench", "QUIET_HOURS": "", "LOG_LEVEL": "WARNING",
           "PUSH_TICK_SECONDS": "2",
           # No reminder or escalation of the demo's back-dated documents may fall due while we measure.
           "REMINDER_DAYS": "9999", "ESCALATION_DAYS": "9999"}
    log = open(scratch / "fanout-worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "push.worker:celery", "worker", "--beat",
         f"--schedule={scratch / 'beat-schedule'}", f"--concurrency={WORKER_PROCESSES}", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(3)  # the worker connects to Redis and forks its pool
        time.sleep(1.0)  # (PostgreSQL publishes its counters about once a second)
        database_before, cpu_before = _database_counters(database_url), _cpu_seconds(worker.pid)
        notification_id, started = _publish(database_url, queue)
        accepted, peak, cpu = 0, 0.0, cpu_before
        while accepted < expected and time.monotonic() - started < timeout:
            time.sleep(0.25)
            cpu = _cpu_seconds(worker.pid)
            accepted = _stats(fake_url)["accepted"]
            peak = max(peak, _peak_rss_mb(worker.pid))
        seconds = time.monotonic() - started
        time.sleep(11)   # an idle backend publishes its last counters within 10 s (PostgreSQL 15)
        database = {k: v - database_before[k] for k, v in _database_counters(database_url).items()}
        per = max(accepted, 1)
        return {"notification_id": notification_id, "messages": accepted, "expected": expected,
                "seconds": round(seconds, 2), "per_second": round(accepted / seconds),
                "cpu_us_per_message": round((cpu - cpu_before) / per * 1e6),
                "db_commits_per_1000": round(database["commits"] / per * 1000, 1),
                "db_rows_written_per_message": round(
                    (database["inserted"] + database["updated"] + database["deleted"]) / per, 2),
                "peak_worker_rss_mb": peak, "worker_processes": WORKER_PROCESSES,
                "complete": accepted >= expected}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()


def _prepare(database_url: str) -> int:
    """Cancel what is still pending in the bench database (the demo's back-dated publications), so only
    this publication is measured; the number of devices it must reach."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("UPDATE notifications SET state = 'cancelled', finished_at = now() "
                     "WHERE state IN ('pending', 'sending')")
        return conn.execute("SELECT count(*) FROM devices d JOIN members m ON m.id = d.member_id "
                            "WHERE m.active").fetchone()[0]


def run(ctx) -> dict:
    database_url = _get(ctx, "database_url")
    scratch = Path(_get(ctx, "scratch") or tempfile.mkdtemp(prefix="bench-fanout-"))
    timeout = 900.0 if not _get(ctx, "quick", False) else 170.0
    expected = _prepare(database_url)
    fake, url = _start_fake(int(os.environ.get("BENCH_FAKE_FCM_PORT", "9787")))
    from bench.transports import measure

    transport = os.environ.get("FCM_TRANSPORT") or "direct"
    try:
        base = measure("alone", url, expected, WORKER_PROCESSES)
        _reset(url)
        alone = measure(transport, url, expected, WORKER_PROCESSES)
        _reset(url)
        real = fanout(database_url, url, scratch, expected, timeout)
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(10)
    real["transport"] = transport
    real["baseline_per_second"] = base["per_second"]
    real["baseline_seconds"] = base["seconds"]
    real["baseline_cpu_us_per_message"] = base["cpu_us_per_message"]
    real["ratio_to_baseline"] = round(real["per_second"] / base["per_second"], 2) if base["per_second"] else None
    # The same transport with no application logic (no database, no Celery): what the rest costs.
    real["transport_alone_per_second"] = alone["per_second"]
    real["transport_alone_cpu_us_per_message"] = alone["cpu_us_per_message"]
    return real


def profile(database_url: str, chunks: int = 20) -> dict:
    """In one process, no Celery: plan a city-wide publication, then send `chunks` chunks through the
    configured transport to the fake, counting the database statements and profiling (cProfile)."""
    import cProfile
    import io
    import pstats

    from sqlalchemy import event

    from handbook import create_app

    fake, url = _start_fake(int(os.environ.get("BENCH_FAKE_FCM_PORT", "9787")))
    _prepare(database_url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "QUIET_HOURS": "", "EMBEDDED_WORKER": False,
                      "SECRET_KEY": "bench", "JWT_SECRET_KEY": "bench" * 8, "PUSH_BACKEND": "fcm",
                      "FCM_ENDPOINT": url, "FCM_PROJECT_ID": "bench",
                      "FCM_TRANSPORT": os.environ.get("FCM_TRANSPORT") or "direct"})
    try:
        with app.app_context():
            from handbook.extensions import db
            from push import fanout

            planned: list[int] = []
            notification_id, _ = _publish(database_url, f"profile-{uuid.uuid4().hex[:6]}", app=app)
            db.session.remove()
            fanout.plan(notification_id, planned.append)
            statements = {"n": 0, "seconds": 0.0}

            def before(conn, cursor, statement, parameters, context, executemany):
                conn.info["started"] = time.perf_counter()

            def after(conn, cursor, statement, parameters, context, executemany):
                statements["n"] += 1
                statements["seconds"] += time.perf_counter() - conn.info.pop("started")

            event.listen(db.engine, "before_cursor_execute", before)
            event.listen(db.engine, "after_cursor_execute", after)
            fanout.send_chunk(planned[0])  # warm: connections, imports
            statements.update(n=0, seconds=0.0)
            profiler, sent = cProfile.Profile(), 0
            cpu, started = time.process_time(), time.monotonic()
            profiler.enable()
            for chunk_id in planned[1:chunks + 1]:
                sent += fanout.send_chunk(chunk_id)["sent"]
            profiler.disable()
            cpu, seconds = time.process_time() - cpu, time.monotonic() - started
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            return {"messages": sent, "chunks": len(planned[1:chunks + 1]), "cpu_us_per_message": round(cpu / sent * 1e6),
                    "seconds": round(seconds, 2), "statements_per_chunk": round(statements["n"] / chunks, 1),
                    "statement_ms_per_chunk": round(statements["seconds"] * 1000 / chunks, 1),
                    "profile": out.getvalue()}
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/handbook_bench"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="in one process, no Celery: statements and cProfile of sending 20 chunks")
    args = parser.parse_args()
    if args.profile:
        result = profile(args.database_url)
        print(result.pop("profile"))
        print(json.dumps(result, indent=2))
        return
    print(json.dumps(run({"database_url": args.database_url, "quick": args.quick}), indent=2))


if __name__ == "__main__":
    main()
