"""The `fanout` figure: a city-wide publication until the fake FCM has accepted every message.

Real path: Celery workers (`celery -A push.worker:celery worker --beat`, Redis broker) send through
firebase-admin to the project's fake FCM running in its own process; the publication is committed by
an app configured like production, whose commit rings Celery. The clock runs from that commit until the
fake has accepted one message per device. Peak worker memory is the largest VmHWM among the worker's
processes.

Baseline, same run: firebase-admin alone (`messaging.send_each`, batches of 500, as many processes as
the workers have) sending the same number of messages to the same fake, with no application logic.

`python -m bench.fanout --database-url URL [--members N]` runs it alone against a database that the
harness (bench/run.py) has filled (members with one device each).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
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


# --- baseline: firebase-admin alone ------------------------------------------------------------------

def _baseline_worker(args: tuple[str, int, int]) -> int:
    url, first, count = args
    import warnings

    import firebase_admin
    from firebase_admin import messaging

    from push.fcm import _configure_service, _LocalFirebaseCredential

    app = firebase_admin.initialize_app(_LocalFirebaseCredential(), {"projectId": "bench"}, name=f"bench-{first}")
    _configure_service(messaging._get_messaging_service(app), url, 30)  # the same client set-up, no logic
    sent = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in range(first, first + count, 500):
            batch = [messaging.Message(fid=f"baseline-{i}", data={"document_id": "1", "kind": "published"},
                                       notification=messaging.Notification(title="Chỉ thị 24-CT/TU: văn bản mới",
                                                                           body="Chỉ thị về kỷ luật, kỷ cương"))
                     for i in range(start, min(start + 500, first + count))]
            sent += messaging.send_each(batch, app=app).success_count
    return sent


def baseline(url: str, messages: int) -> dict:
    share = -(-messages // WORKER_PROCESSES)
    parts = [(url, i * share, min(share, messages - i * share)) for i in range(WORKER_PROCESSES)]
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(WORKER_PROCESSES) as pool:
        sent = sum(pool.map(_baseline_worker, parts))
    seconds = time.monotonic() - started
    return {"messages": sent, "seconds": round(seconds, 2), "per_second": round(sent / seconds)}


# --- the real fan-out --------------------------------------------------------------------------------

def _publish(database_url: str, queue: str) -> tuple[int, float]:
    """A city-wide directive published by the demo's board account, through an app with the broker."""
    from handbook import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": REDIS_URL, "CELERY_QUEUE": queue,
                      "QUIET_HOURS": "", "EMBEDDED_WORKER": False, "SECRET_KEY": "bench", "JWT_SECRET_KEY": "bench" * 8})
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
        notification_id, started = _publish(database_url, queue)
        accepted, peak = 0, 0.0
        while accepted < expected and time.monotonic() - started < timeout:
            time.sleep(0.25)
            accepted = _stats(fake_url)["accepted"]
            peak = max(peak, _peak_rss_mb(worker.pid))
        seconds = time.monotonic() - started
        return {"notification_id": notification_id, "messages": accepted, "expected": expected,
                "seconds": round(seconds, 2), "per_second": round(accepted / seconds),
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
    try:
        base = baseline(url, expected)
        _reset(url)
        real = fanout(database_url, url, scratch, expected, timeout)
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(10)
    real["baseline_per_second"] = base["per_second"]
    real["baseline_seconds"] = base["seconds"]
    real["ratio_to_baseline"] = round(real["per_second"] / base["per_second"], 2) if base["per_second"] else None
    return real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/handbook_bench"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run({"database_url": args.database_url, "quick": args.quick}), indent=2))


if __name__ == "__main__":
    main()
