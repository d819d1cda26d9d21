"""The benchmark (issue 6): `python -m bench.run --members N [--quick] [--scaling N,N|none] [--out DIR]`.

1. Builds a dedicated PostgreSQL database (`BENCH_DATABASE_URL`, default
   postgresql://postgres@127.0.0.1:5432/handbook_bench; dropped and recreated) with the project's own
   commands (`db upgrade`, `handbook demo --members N`), then scales it with raw SQL: ~200 published
   documents, ~23 acknowledgement receipts and one device per member, and `handbook recount`.
2. Serves the API with gunicorn (2 workers, production settings) next to a bare Flask app
   (bench/baseline_app.py) that answers JSON bodies of the same size.
3. Drives them with wrk (bench/wrk.lua, rotating many members' tokens) and compares every figure with
   a baseline: the bare app for reading, the obvious SQL (psycopg) for progress, raw INSERTs for
   acknowledgements.
   Reads the API workers' resident memory after that load.
4. Times `handbook import-members` on an N-row CSV, and calls bench/fanout.py's `run(ctx)` if present.
5. Scaling: feed and city-progress latency at this size and at each `--scaling` size (each on its own
   database, built the same way and dropped afterwards), plotted to bench/results/scaling.png.
6. Writes bench/results/latest.json and latest.md.

Every process it starts is stopped on the way out, errors included; every step is bounded in time.
Logins are not measured, so the servers hash passwords with a cheap argon2id cost (CHEAP_ARGON2) to log
in hundreds of members quickly; nothing else differs from production settings.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench import data
from bench.load import (ROOT, Processes, console_cookie, ensure_wrk, gunicorn, insert_rate, log, login_all, request,
                        sql_latency, worker_rss_mb, wrk, write_requests)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/handbook_bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
FLASK = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi"]
PASSWORD = "bench-password-2024"
CHEAP_ARGON2 = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "1024", "ARGON2_PARALLELISM": "1"}
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))   # gunicorn workers, for the API and the baseline alike
THREADS, CONNECTIONS = 2, 32
LATENCY_CONNECTIONS = 2     # follow-up figures: one request per worker at a time, like the SQL baseline


@dataclass
class Settings:
    members: int
    quick: bool
    out: Path
    database_url: str
    seconds: int = 10           # one wrk run
    sql_seconds: int = 5        # one direct-SQL baseline
    logins: int = 200
    scaling: tuple[int, ...] = ()   # further sizes for the scaling figure (each built and measured)
    only: frozenset[str] = frozenset()   # figure groups to run; empty: all
    reuse: bool = False         # measure on the database an earlier run built

    @property
    def scale(self) -> float:   # step time limits grow with N (and with BENCH_STEP_SCALE on a busy machine)
        return max(1.0, self.members / 20_000) * float(os.environ.get("BENCH_STEP_SCALE", "1"))


@dataclass
class FanoutContext:
    """What bench/fanout.py's `run(ctx)` gets."""

    database_url: str
    members: int
    quick: bool
    root: Path                  # the project root
    scratch: Path               # a scratch directory, removed afterwards
    env: dict = field(repr=False, default_factory=dict)   # environment for the app's CLI / servers


class StepTimeout(Exception):
    pass


@contextmanager
def step(name: str, seconds: float):
    """Log a step and bound it in time (SIGALRM; nested steps keep the outer budget)."""
    def expire(signum, frame):
        raise StepTimeout(f"{name}: no result within {seconds:.0f} s")

    outer_left = signal.alarm(0)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(max(1, int(min(seconds, outer_left) if outer_left else seconds)))
    started = time.monotonic()
    log(f"{name} ...")
    try:
        yield
        log(f"{name}: {time.monotonic() - started:.1f} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.alarm(max(1, int(outer_left - (time.monotonic() - started))))


def app_env(settings: Settings) -> dict:
    """Environment of every app process (CLI and gunicorn): production settings on the bench database."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "FCM_ENDPOINT")}
    env.update(HANDBOOK_ENV="production", SECRET_KEY=secrets.token_urlsafe(48),
               JWT_SECRET_KEY=secrets.token_urlsafe(48), DATABASE_URL=settings.database_url, LOG_LEVEL="WARNING",
               QUIET_HOURS="", EMBEDDED_WORKER="false", PUSH_BACKEND="log",
               LOGIN_LIMIT_PER_IP="1000000 per minute", **CHEAP_ARGON2)
    return env


def cli(args: list[str], env: dict, timeout: float, stdin: str | None = None) -> str:
    """Run a command of the project; its output, or an error with the end of its output."""
    done = subprocess.run(args, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


# --- the database ----------------------------------------------------------------------------------

# Hashes stdin's password with the app's own hash_password (under app_env's argon2 cost).
_HASH_PASSWORD = """import sys
from handbook import create_app
from handbook.auth import hash_password
with create_app().app_context():
    print(hash_password(sys.stdin.read()))
"""

def build_database(settings: Settings, env: dict) -> data.Cast:
    url, scale = settings.database_url, settings.scale
    with step("create database", 300):   # DROP … WITH (FORCE) waits for a checkpoint on a busy disk
        data.recreate_database(url)
    with step("flask db upgrade", 120):
        cli(FLASK + ["db", "upgrade"], env, 120)
    # (a shared machine can take several times as long as an idle one: the step's budget allows for it)
    with step(f"flask handbook demo --members {settings.members}", 400 * scale):
        out = cli(FLASK + ["handbook", "demo", "--members", str(settings.members)], env, 400 * scale)
        log("  " + next((line for line in out.splitlines() if line.startswith("Demo:")), out.strip()[:200]))
    with data.connect(url) as conn:
        rng = random.Random(2024)
        with step("add documents", 60):
            log(f"  {data.add_documents(conn, rng)} documents added")
        with step("add receipts", 60 * scale):
            log(f"  {data.add_receipts(conn, settings.members):,} receipts")
        with step("add devices", 30 * scale):
            log(f"  {data.add_devices(conn):,} devices")
        with step("add quiz results", 30 * scale):
            log(f"  {data.add_quiz_results(conn):,} quiz results")
    with step("flask handbook recount", 120 * scale):
        log("  " + cli(FLASK + ["handbook", "recount"], env, 120 * scale).strip())
    with step("flask handbook recount-quizzes", 60 * scale):
        log("  " + cli(FLASK + ["handbook", "recount-quizzes"], env, 60 * scale).strip())
    with data.connect(url) as conn:
        with step("add quiz question statistics", 30 * scale):
            log(f"  {data.add_quiz_question_stats(conn):,} question statistics rows")
        with step("snapshots of closed documents, VACUUM ANALYZE", 60 * scale):
            data.freeze_closed(conn)
            data.vacuum(conn)
        with step("sample members", 60):
            password_hash = cli([PYTHON, "-c", _HASH_PASSWORD], env, 60, stdin=PASSWORD).strip()
            return data.choose_cast(conn, settings.logins, password_hash)


def reuse_database(settings: Settings, env: dict) -> data.Cast:
    """--reuse-database: measure on the bench database an earlier run built (same size), without
    rebuilding it (the build takes ~20 minutes at 440,000 members)."""
    with data.connect(settings.database_url) as conn, step("sample members", 60):
        password_hash = cli([PYTHON, "-c", _HASH_PASSWORD], env, 60, stdin=PASSWORD).strip()
        return data.choose_cast(conn, settings.logins, password_hash)


# --- figures ---------------------------------------------------------------------------------------

@dataclass
class Servers:
    api: str
    baseline: str
    tokens: dict[str, str]          # card number → access token
    cast: data.Cast
    api_pid: int = 0                # the API's gunicorn master (its children are the workers)
    baseline_pid: int = 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pids) -> dict[int, float]:
    """user + sys CPU seconds of each process, from /proc (processes that ended are left out)."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS   # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return out


def _runqueue_wait_of(pids) -> dict[int, float]:
    """Seconds each process spent runnable but waiting for a core (/proc/PID/schedstat, 2nd field): the
    time a busy machine, not the process's own work or I/O, cost it."""
    out = {}
    for pid in pids:
        try:
            out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return out


def _children(master_pid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master_pid:
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def _backends(database_url: str) -> list[int]:
    with data.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                           " AND pid <> pg_backend_pid()")]


@contextmanager
def cpu_account(settings: Settings, master_pid: int):
    """CPU seconds spent during the block by the gunicorn workers of `master_pid` and by PostgreSQL's
    backends of the bench database (the app's pooled connections: a backend that starts during the block
    counts from zero, one that ends is lost; the pools keep theirs). Yields a dict filled on exit."""
    out: dict = {}
    workers = _children(master_pid) if master_pid else []
    before_w, before_b = _cpu_of(workers), _cpu_of(_backends(settings.database_url))
    before_q = _runqueue_wait_of(workers)
    yield out
    after_w, after_b = _cpu_of(workers), _cpu_of(_backends(settings.database_url))
    after_q = _runqueue_wait_of(workers)
    out["workers_cpu_s"] = round(sum(v - before_w.get(p, 0.0) for p, v in after_w.items()), 3)
    out["postgres_cpu_s"] = round(sum(v - before_b.get(p, 0.0) for p, v in after_b.items()), 3)
    out["workers_runqueue_s"] = round(sum(v - before_q.get(p, 0.0) for p, v in after_q.items()), 3)


def _baseline_cpu(out: dict, cpu: dict, requests: float) -> None:
    if requests > 0 and cpu:
        out["baseline_workers_cpu_ms"] = round(cpu["workers_cpu_s"] * 1000 / requests, 3)


def _per_request_cpu(out: dict, cpu: dict, requests: float) -> None:
    """CPU per request (ms) of the workers and of PostgreSQL's backends, from `cpu_account`."""
    if requests > 0 and cpu:
        out["workers_cpu_ms"] = round(cpu["workers_cpu_s"] * 1000 / requests, 3)
        out["postgres_cpu_ms"] = round(cpu["postgres_cpu_s"] * 1000 / requests, 3)
        out["workers_runqueue_ms"] = round(cpu["workers_runqueue_s"] * 1000 / requests, 3)


def _member_tokens(servers: Servers) -> list[str]:
    return [servers.tokens[card] for _, card in servers.cast.members if card in servers.tokens]


def _probe(base: str, line: tuple) -> int:
    """Send one request of a wrk file first: a figure made of errors is no figure."""
    method, path, token, *body = line
    status, payload = request(method, base + path, token=token, body=json.loads(body[0]) if body else None)
    if status >= 400:
        raise RuntimeError(f"{method} {path} answered {status}: {payload[:300]!r}")
    return len(payload)


def _throughput(settings: Settings, base: str, lines: list[tuple], path: Path) -> dict:
    return wrk(base, write_requests(path, lines), threads=THREADS, connections=CONNECTIONS, seconds=settings.seconds)


def fig_reading(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """read_feed and read_document against the bare app answering bodies of the same size."""
    tokens = _member_tokens(servers)
    documents = servers.cast.city_documents[:20]
    cases = {
        "read_feed": ("feed", [("GET", "/api/v1/documents", t) for t in tokens]),
        "read_document": ("document", [("GET", f"/api/v1/documents/{documents[i % len(documents)]}",
                                        tokens[i % len(tokens)]) for i in range(max(len(tokens), 1000))]),
    }
    out = {}
    for key, (name, lines) in cases.items():
        size = _probe(servers.api, lines[0])
        with step(f"{key}: wrk on the API", settings.seconds + 60), cpu_account(settings, servers.api_pid) as cpu:
            result = _throughput(settings, servers.api, lines, scratch / f"{key}.txt")
        base_lines = [("GET", f"/{name}", token) for _, _, token in lines]
        baseline_size = _probe(servers.baseline, base_lines[0])
        with step(f"{key}: wrk on the bare Flask app", settings.seconds + 60), \
                cpu_account(settings, servers.baseline_pid) as base_cpu:
            baseline = _throughput(settings, servers.baseline, base_lines, scratch / f"{key}-baseline.txt")
        out[key] = {**_pick(result, "rps", "median_ms", "p99_ms"), "baseline_rps": baseline["rps"],
                    "baseline_median_ms": baseline["median_ms"], "baseline_p99_ms": baseline["p99_ms"],
                    "body_bytes": size, "baseline_body_bytes": baseline_size, "errors": result["errors"],
                    "threads": result["threads"], "connections": result["connections"]}
        _per_request_cpu(out[key], cpu, result["requests"])
        _baseline_cpu(out[key], base_cpu, baseline["requests"])
        log(f"  {key}: {out[key]['rps']:.0f} req/s (bare Flask {baseline['rps']:.0f}), "
            f"median {out[key]['median_ms']:.1f} ms, p99 {out[key]['p99_ms']:.1f} ms; CPU a request: workers "
            f"{out[key].get('workers_cpu_ms')} ms, PostgreSQL {out[key].get('postgres_cpu_ms')} ms "
            f"(bare Flask {out[key].get('baseline_workers_cpu_ms')} ms)")
    out["feed_304"] = _feed_not_modified(settings, servers, scratch, tokens)
    out["wire_bytes"] = _wire_bytes(servers, tokens[0], documents[0])
    return out


def _fetch(url: str, token: str, **headers) -> tuple[int, dict, bytes]:
    """One GET as it comes over the wire (no decompression): status, headers, body bytes."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                               **{k.replace("_", "-"): v for k, v in headers.items()}})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _feed_not_modified(settings: Settings, servers: Servers, scratch: Path, tokens: list[str]) -> dict:
    """A phone polling an unchanged feed: each member's GET /documents with the ETag it was given
    (If-None-Match → 304), against the bare Flask app answering its own 304."""
    tags = {token: _fetch(servers.api + "/api/v1/documents", token)[1]["ETag"] for token in tokens}
    lines = [("GET", "/api/v1/documents", token, "inm=" + tags[token]) for token in tokens]
    status = _fetch(servers.api + "/api/v1/documents", tokens[0], If_None_Match=tags[tokens[0]])[0]
    if status != 304:
        raise RuntimeError(f"GET /api/v1/documents with its ETag answered {status}, not 304")
    with step("feed_304: wrk on the API", settings.seconds + 60), cpu_account(settings, servers.api_pid) as cpu:
        result = _throughput(settings, servers.api, lines, scratch / "feed_304.txt")
    bare_tag = _fetch(servers.baseline + "/feed", tokens[0])[1]["ETag"]
    base_lines = [("GET", "/feed", token, "inm=" + bare_tag) for token in tokens]
    if _fetch(servers.baseline + "/feed", tokens[0], If_None_Match=bare_tag)[0] != 304:
        raise RuntimeError("the bare Flask app did not answer 304")
    with step("feed_304: wrk on the bare Flask app", settings.seconds + 60), \
            cpu_account(settings, servers.baseline_pid) as base_cpu:
        baseline = _throughput(settings, servers.baseline, base_lines, scratch / "feed_304-baseline.txt")
    out = {**_pick(result, "rps", "median_ms", "p99_ms"), "baseline_rps": baseline["rps"],
           "baseline_median_ms": baseline["median_ms"], "baseline_p99_ms": baseline["p99_ms"],
           "errors": result["errors"], "threads": result["threads"], "connections": result["connections"]}
    _per_request_cpu(out, cpu, result["requests"])
    _baseline_cpu(out, base_cpu, baseline["requests"])
    log(f"  feed_304: {out['rps']:.0f} req/s (bare Flask 304 {baseline['rps']:.0f}), median {out['median_ms']:.1f} ms; "
        f"CPU a request: workers {out.get('workers_cpu_ms')} ms, PostgreSQL {out.get('postgres_cpu_ms')} ms "
        f"(bare Flask {out.get('baseline_workers_cpu_ms')} ms)")
    return out


def _wire_bytes(servers: Servers, token: str, document: int) -> dict:
    """Body bytes on the wire of a feed page and a document, as each Accept-Encoding gets them."""
    out = {}
    for name, path in (("feed", "/api/v1/documents"), ("document", f"/api/v1/documents/{document}")):
        sizes = {}
        for encoding in ("identity", "gzip", "br"):
            status, headers, body = _fetch(servers.api + path, token, Accept_Encoding=encoding)
            # A body under COMPRESS_MIN_SIZE (1,024 B by default) goes out as it is, whatever is accepted.
            small = sizes.get("identity", 1 << 30) < 1024
            if status != 200 or headers.get("Content-Encoding", "identity") not in (encoding, "identity" if small else None):
                raise RuntimeError(f"GET {path} with Accept-Encoding {encoding}: {status}, "
                                   f"{headers.get('Content-Encoding')}")
            sizes[encoding] = len(body)
        out[name] = sizes
        log(f"  wire bytes, {name}: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))
    return out


_OBVIOUS_SQL = """
    SELECT count(*) AS total,
           count(*) FILTER (WHERE r.acknowledged_version >= 1) AS acknowledged,
           count(*) FILTER (WHERE r.opened_at IS NOT NULL) AS opened
    FROM members m JOIN org_units u ON u.id = m.org_unit_id
    LEFT JOIN receipts r ON r.document_id = %s AND r.member_id = m.id
    WHERE m.active AND u.path >= %s AND u.path < %s"""


def fig_follow_up(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """Progress for the city, the largest district and its largest branch, and that branch's pending
    members, as the city admin; each against the obvious COUNT over receipts in the unit's subtree."""
    cast = servers.cast
    cases = {
        "progress_city": (f"/progress?org_unit={cast.root_id}", cast.root_id),
        "progress_district": (f"/progress?org_unit={cast.district_id}", cast.district_id),
        "progress_branch": (f"/progress?org_unit={cast.branch_id}", cast.branch_id),
        "members_pending_branch": (f"/members?org_unit={cast.branch_id}&state=pending", cast.branch_id),
    }
    return {key: _follow_up(settings, servers, scratch, key, query, unit_id)
            for key, (query, unit_id) in cases.items()}


def _follow_up(settings: Settings, servers: Servers, scratch: Path, key: str, query: str, unit_id: int) -> dict:
    """One follow-up figure: latency with one request per worker at a time, beside the obvious SQL."""
    document = servers.cast.city_documents[0]
    with data.connect(settings.database_url) as conn:
        lo, hi = data.subtree_bounds(conn, unit_id)
    out = _page_latency(settings, servers, scratch, key, f"/api/v1/documents/{document}{query}",
                        _OBVIOUS_SQL, (document, lo, hi))
    return {**out, "document_id": document, "org_unit_id": unit_id}


def _page_latency(settings: Settings, servers: Servers, scratch: Path, key: str, path: str, sql: str,
                  params: tuple) -> dict:
    """The latency of one GET as the city admin (one request per worker at a time), beside `sql`."""
    lines = [("GET", path, servers.tokens[servers.cast.admin_card])]
    _probe(servers.api, lines[0])
    with step(f"{key}: wrk on the API", settings.seconds + 60):
        result = wrk(servers.api, write_requests(scratch / f"{key}.txt", lines), threads=LATENCY_CONNECTIONS,
                     connections=LATENCY_CONNECTIONS, seconds=settings.seconds)
    with step(f"{key}: the obvious SQL", settings.sql_seconds * 3 + 120):
        baseline = sql_latency(settings.database_url, sql, params, concurrency=LATENCY_CONNECTIONS,
                               seconds=settings.sql_seconds)
    log(f"  {key}: p95 {result['p95_ms']:.1f} ms, median {result['median_ms']:.1f} ms "
        f"(obvious SQL p95 {baseline['p95_ms']:.1f} ms)")
    return {**_pick(result, "p95_ms", "median_ms", "rps"), "baseline_ms": baseline["p95_ms"],
            "baseline_median_ms": baseline["median_ms"], "errors": result["errors"],
            "connections": result["connections"]}


# The obvious ways to answer the two city-wide pages without their roll-ups: the month's meetings per
# district, and adoption per unit straight from members, sessions and devices (O(members)).
_OBVIOUS_MEETINGS_SQL = """
    SELECT split_part(u.path, '/', 3) AS district, count(*), sum(m.present), sum(m.invited)
    FROM meetings m JOIN org_units u ON u.id = m.org_unit_id
    WHERE m.status = 'closed' AND m.starts_at >= %s AND m.starts_at < %s
    GROUP BY 1"""
_OBVIOUS_ADOPTION_SQL = """
    SELECT m.org_unit_id, count(*), count(*) FILTER (WHERE m.first_signed_in_at IS NOT NULL),
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM devices d WHERE d.member_id = m.id)),
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM auth_sessions s WHERE s.member_id = m.id
                                          AND coalesce(s.refreshed_at, s.created_at) > now() - interval '30 days'))
    FROM members m WHERE m.active GROUP BY m.org_unit_id"""


def fig_meetings_adoption(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """The city's monthly meeting roll-up (last month, every branch) and the city's adoption page (issue
    15: ≤ 50 ms p95 each), beside the obvious SQL each avoids."""
    root = servers.cast.root_id
    first = date.today().replace(day=1)
    month_start = (first - timedelta(days=1)).replace(day=1)
    month = month_start.strftime("%Y-%m")
    return {
        "meetings_stats_city": _page_latency(
            settings, servers, scratch, "meetings_stats_city", f"/api/v1/org-units/{root}/meetings/stats?month={month}",
            _OBVIOUS_MEETINGS_SQL, (month_start.isoformat(), first.isoformat())),
        "adoption_city": _page_latency(
            settings, servers, scratch, "adoption_city", f"/api/v1/org-units/{root}/adoption",
            _OBVIOUS_ADOPTION_SQL, ()),
    }


# Takes the daily progress points of document argv[1] for the local days argv[2:] (ISO dates), with the
# domain's own snapshot (content.timeline.take), as `run_due` would have on each of those nights.
_TAKE_DAYS = """import sys
from datetime import date
from handbook import create_app
from handbook.extensions import db
from handbook.timeutil import utcnow
from content import timeline
from content.models import Document
with create_app().app_context():
    units = 0
    for day in sys.argv[2:]:
        units = timeline.take(db.session.get(Document, int(sys.argv[1])), date.fromisoformat(day), utcnow()) or units
    print(units)
"""
TIMELINE_DAYS = 13
# The obvious way to draw acknowledgements over time without the daily points: every receipt of the
# document in the subtree, grouped by local day (O(members)).
_OBVIOUS_TIMELINE_SQL = """
    SELECT date(r.acknowledged_at AT TIME ZONE 'Asia/Ho_Chi_Minh') AS day, count(*)
    FROM receipts r JOIN members m ON m.id = r.member_id JOIN org_units u ON u.id = m.org_unit_id
    WHERE r.document_id = %s AND r.acknowledged_version >= 1 AND m.active AND u.path >= %s AND u.path < %s
    GROUP BY 1 ORDER BY 1"""


def _timeline_history(settings: Settings, document: int) -> int:
    """Give the city document TIMELINE_DAYS past days: its publication (and deadline) moved that many days
    back, and one daily point per past day taken from the counters as `run_due` takes them (the counts of
    every day are today's; only the cost matters here). Returns the units per day."""
    with data.connect(settings.database_url) as conn:
        conn.execute("UPDATE documents SET published_at = published_at - make_interval(days => %s),"
                     " deadline = deadline - make_interval(days => %s) WHERE id = %s",
                     (TIMELINE_DAYS, TIMELINE_DAYS, document))
        today = conn.execute("SELECT (now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date").fetchone()[0]
    days = [(today - timedelta(days=n)).isoformat() for n in range(TIMELINE_DAYS, 0, -1)]
    with step(f"daily progress of document {document}: {len(days)} days", 300 * settings.scale):
        return int(cli([PYTHON, "-c", _TAKE_DAYS, str(document), *days], app_env(settings), 300 * settings.scale))


def _console_latency(servers: Servers, scratch: Path, settings: Settings, key: str, path: str, lines) -> dict:
    size = _probe_page(servers.api, path, lines[0][2]) if lines[0][2].startswith("cookie=") else None
    with step(f"{key}: wrk", settings.seconds + 60):
        result = wrk(servers.api, write_requests(scratch / f"{key}.txt", lines), threads=LATENCY_CONNECTIONS,
                     connections=LATENCY_CONNECTIONS, seconds=settings.seconds)
    return {**_pick(result, "p95_ms", "median_ms", "rps"), "body_bytes": size, "errors": result["errors"],
            "connections": result["connections"]}


# The obvious way to answer the city's quiz results without the per-unit counters: every member's result
# joined to their unit, grouped by district (O(members who took it)).
_OBVIOUS_QUIZ_SQL = """
    SELECT split_part(u.path, '/', 3) AS district, count(*), count(*) FILTER (WHERE r.passed), avg(r.best_score)
    FROM quiz_results r JOIN members m ON m.id = r.member_id JOIN org_units u ON u.id = m.org_unit_id
    WHERE r.quiz_id = %s AND r.attempts > 0 AND m.active
    GROUP BY 1"""


def fig_quizzes(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """The city-wide quiz's results for the whole city (issue 17: took, passed, average and hardest
    questions, per district; ≤ 50 ms p95 like the other roll-ups), beside the obvious SQL it avoids."""
    with data.connect(settings.database_url) as conn:
        quiz = data.city_quiz(conn)
        if quiz is None:
            raise RuntimeError("no city-wide quiz in the bench database (handbook demo loads one)")
        takers = conn.execute("SELECT count(*) FROM quiz_results WHERE quiz_id = %s", (quiz,)).fetchone()[0]
    root = servers.cast.root_id
    out = _page_latency(settings, servers, scratch, "quiz_results_city",
                        f"/api/v1/quizzes/{quiz}/results?org_unit={root}", _OBVIOUS_QUIZ_SQL, (quiz,))
    return {"quiz_results_city": {**out, "quiz_id": quiz, "results": takers}}


def fig_console(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """The console's pages (HTML, signed in with the session cookie) for a city-wide directive, as the
    city admin, one request per worker at a time like the follow-up figures, each beside the API call it
    wraps measured in the same run (target, issue 14: p95 <= 100 ms each):
    - console_branch_page: the largest branch (progress, reminder window, the first 50 members with their
      states), beside GET .../members?org_unit=<branch>&limit=50;
    - console_district_page: the committee's progress page of the largest district (progress, the chart of
      its child units, acknowledgements over time), beside GET .../progress?org_unit=<district>;
    - console_city_timeline: the city's acknowledgements-over-time page (TIMELINE_DAYS daily points and
      today live), beside GET .../progress/daily?org_unit=<city>; and that API call beside the obvious SQL
      (every receipt of the city grouped by day)."""
    cast = servers.cast
    cookie = "cookie=" + console_cookie(servers.api, cast.admin_card, PASSWORD)
    token = servers.tokens[cast.admin_card]
    document = cast.city_documents[0]
    units = _timeline_history(settings, document)
    log(f"  document {document}: {TIMELINE_DAYS} past days of {units:,} units each")
    api = f"/api/v1/documents/{document}"
    cases = {
        "console_branch_page": (f"/documents/{document}/follow?unit={cast.branch_id}",
                                f"{api}/members?org_unit={cast.branch_id}&limit=50"),
        "console_district_page": (f"/documents/{document}/follow?unit={cast.district_id}",
                                  f"{api}/progress?org_unit={cast.district_id}"),
        "console_city_timeline": (f"/documents/{document}/timeline?unit={cast.root_id}",
                                  f"{api}/progress/daily?org_unit={cast.root_id}"),
    }
    out = {}
    for key, (page, wrapped) in cases.items():
        figure = _console_latency(servers, scratch, settings, key, page, [("GET", page, cookie)])
        _probe(servers.api, ("GET", wrapped, token))
        base = _console_latency(servers, scratch, settings, f"{key}_api", wrapped, [("GET", wrapped, token)])
        out[key] = {**figure, "baseline_ms": base["p95_ms"], "baseline_median_ms": base["median_ms"],
                    "baseline": "GET " + wrapped.split("?")[0].removeprefix(api) + " (the API call it wraps)",
                    "document_id": document}
        log(f"  {key}: p95 {figure['p95_ms']:.1f} ms, median {figure['median_ms']:.1f} ms, "
            f"{figure['body_bytes']:,} B (API p95 {base['p95_ms']:.1f} ms)")
    with data.connect(settings.database_url) as conn:
        lo, hi = data.subtree_bounds(conn, cast.root_id)
    out["progress_daily_city"] = _page_latency(settings, servers, scratch, "progress_daily_city",
                                               f"{api}/progress/daily?org_unit={cast.root_id}",
                                               _OBVIOUS_TIMELINE_SQL, (document, lo, hi))
    return out


def _probe_page(base: str, path: str, cookie: str) -> int:
    import urllib.request

    req = urllib.request.Request(base + path, headers={"Cookie": cookie.removeprefix("cookie=")})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
        if resp.status != 200 or resp.url.rstrip("/").endswith("/login"):
            raise RuntimeError(f"GET {path} answered {resp.status} at {resp.url}")
    return len(body)


def fig_acknowledge(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """PUT .../acknowledgement by many members, each (member, document) pair once, against as many raw
    single-row INSERTs with the same concurrency."""
    token_of = {member_id: servers.tokens[card] for member_id, card in servers.cast.members if card in servers.tokens}
    with data.connect(settings.database_url) as conn:
        pairs = data.unacknowledged_pairs(conn, list(token_of), limit=60_000)
    lines = [("PUT", f"/api/v1/documents/{document}/acknowledgement", token_of[member], json.dumps({"version": v}))
             for member, document, v in pairs]
    _probe(servers.api, lines.pop())
    with step("acknowledge: wrk on the API", settings.seconds + 60), cpu_account(settings, servers.api_pid) as cpu:
        result = _throughput(settings, servers.api, lines, scratch / "acknowledge.txt")
    acknowledged = int(result["ok_rps"] * result["seconds"])
    with step("acknowledge: raw INSERTs", 120 * settings.scale):
        baseline = insert_rate(settings.database_url, max(acknowledged, 100), concurrency=CONNECTIONS)
    out = {"rps": result["ok_rps"], "p99_ms": result["p99_ms"], "median_ms": result["median_ms"],
           "baseline_rps": baseline["rps"], "acknowledgements": acknowledged, "distinct_pairs": len(lines),
           "errors": result["errors"], "threads": result["threads"], "connections": result["connections"]}
    _per_request_cpu(out, cpu, result["requests"])
    if cpu:   # busy share of the two resources a sync worker can wait on: CPU (all cores) and itself
        out["cpu_cores_used"] = round((cpu["workers_cpu_s"] + cpu["postgres_cpu_s"]) / result["seconds"], 2)
    log(f"  acknowledge: {out['rps']:.0f} ack/s, p99 {out['p99_ms']:.1f} ms (raw INSERTs {baseline['rps']:.0f}/s); "
        f"CPU an ack: workers {out.get('workers_cpu_ms')} ms, PostgreSQL {out.get('postgres_cpu_ms')} ms, "
        f"{out.get('cpu_cores_used')} cores busy; a worker waited {out.get('workers_runqueue_ms')} ms an ack for a core")
    return {"acknowledge": out}


_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô", "Dương", "Lý"]
_MIDDLES = ["Văn", "Thị", "Đức", "Minh", "Thu", "Quang", "Ngọc", "Hữu", "Thanh", "Xuân"]
_GIVEN = ["An", "Bình", "Chi", "Dũng", "Hà", "Hải", "Hằng", "Hùng", "Lan", "Linh", "Nam", "Phương", "Quân",
          "Sơn", "Thảo", "Trang", "Tuấn", "Việt", "Yến", "Đạt"]


def write_members_csv(path: Path, unit_codes: list[str], count: int) -> Path:
    """`count` new members (card numbers 02xxxxxx, phones 092xxxxxxx) spread over the member-holding units."""
    rng = random.Random(6)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["card_number", "full_name", "phone", "org_unit_code", "roles", "password"])
        for i in range(1, count + 1):
            name = f"{rng.choice(_SURNAMES)} {rng.choice(_MIDDLES)} {rng.choice(_GIVEN)}"
            writer.writerow([f"02{i:06d}", name, f"092{i:07d}", unit_codes[i % len(unit_codes)], "", ""])
    return path


def fig_import(settings: Settings, env: dict, scratch: Path) -> dict:
    """Wall time and peak RSS of `handbook import-members` for an N-row CSV into the bench database."""
    with data.connect(settings.database_url) as conn:
        codes = data.holder_unit_codes(conn)
    path = write_members_csv(scratch / "members.csv", codes, settings.members)
    timeout = 300 * settings.scale
    with step(f"import_members: {settings.members:,} rows", timeout + 30):
        started = time.perf_counter()
        if Path("/usr/bin/time").exists():
            out = subprocess.run(["/usr/bin/time", "-v", *FLASK, "handbook", "import-members", str(path)], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=timeout, check=False)
            rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
        else:
            import resource

            out = subprocess.run([*FLASK, "handbook", "import-members", str(path)], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=timeout, check=False)
            rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"import-members failed ({out.returncode}): {(out.stdout + out.stderr)[-1500:]}")
    result = {"seconds": round(seconds, 2), "peak_rss_mb": round(rss_kib / 1024, 1), "rows": settings.members,
              "rows_per_second": round(settings.members / seconds, 1)}
    log(f"  import_members: {result['seconds']} s, peak RSS {result['peak_rss_mb']} MB")
    return {"import_members": result}


def fig_fanout(settings: Settings, env: dict, scratch: Path) -> dict | None:
    """bench/fanout.py's `run(ctx) -> dict`, when that module exists."""
    if not (ROOT / "bench" / "fanout.py").exists():
        return None
    run = getattr(importlib.import_module("bench.fanout"), "run", None)
    if not callable(run):
        return None
    fan_scratch = scratch / "fanout"
    fan_scratch.mkdir()
    ctx = FanoutContext(settings.database_url, settings.members, settings.quick, ROOT, fan_scratch, dict(env))
    with step("fanout (bench/fanout.py)", 900 * settings.scale):
        return {"fanout": run(ctx)}


def _database_work(database_url: str) -> tuple[int, int]:
    """PostgreSQL's counters for the database: (buffer blocks touched, rows returned or fetched)."""
    with data.connect(database_url) as conn:
        return conn.execute("SELECT blks_hit + blks_read, tup_returned + tup_fetched FROM pg_stat_database "
                            "WHERE datname = current_database()").fetchone()


# An idle backend publishes its last statistics within 10 s (PostgreSQL 15): read them after that.
STATS_SETTLE_SECONDS = 11


def _per_request(database_url: str, before: tuple[int, int], requests: int) -> dict:
    time.sleep(STATS_SETTLE_SECONDS)
    blocks, rows = (a - b for a, b in zip(_database_work(database_url), before, strict=True))
    requests = max(requests, 1)
    return {"kb_touched": round(blocks * 8 / requests, 1), "rows_touched": round(rows / requests, 1)}


def scaling_point(settings: Settings, servers: Servers, scratch: Path) -> dict:
    """Feed and city-progress latency at this size, one request per worker at a time (service time, not
    queueing), beside the obvious SQL for the city; and the cost of one request of each: milliseconds,
    and what PostgreSQL touched for it (buffer KB, rows; its counters over the run, per request)."""
    lines = [("GET", "/api/v1/documents", t) for t in _member_tokens(servers)]
    _probe(servers.api, lines[0])
    time.sleep(STATS_SETTLE_SECONDS)
    before = _database_work(settings.database_url)
    with step(f"scaling, {settings.members:,} members: feed", settings.seconds + 60):
        feed = wrk(servers.api, write_requests(scratch / f"scaling-feed-{settings.members}.txt", lines),
                   threads=LATENCY_CONNECTIONS, connections=LATENCY_CONNECTIONS, seconds=settings.seconds)
    feed_work = _per_request(settings.database_url, before, feed["requests"])
    document = servers.cast.city_documents[0]
    path = f"/api/v1/documents/{document}/progress?org_unit={servers.cast.root_id}"
    before = _database_work(settings.database_url)
    with step(f"scaling, {settings.members:,} members: city progress", settings.seconds + 60):
        progress = wrk(servers.api, write_requests(scratch / f"scaling-progress-{settings.members}.txt",
                                                   [("GET", path, servers.tokens[servers.cast.admin_card])]),
                       threads=LATENCY_CONNECTIONS, connections=LATENCY_CONNECTIONS, seconds=settings.seconds)
    progress_work = _per_request(settings.database_url, before, progress["requests"])
    city = _follow_up(settings, servers, scratch, f"scaling_{settings.members}_progress_city",
                      f"/progress?org_unit={servers.cast.root_id}", servers.cast.root_id)
    log(f"  scaling {settings.members:,}: feed {feed['median_ms']:.1f} ms, {feed_work['kb_touched']} KB, "
        f"{feed_work['rows_touched']} rows a request; city progress {progress['median_ms']:.1f} ms, "
        f"{progress_work['kb_touched']} KB, {progress_work['rows_touched']} rows a request")
    return {"members": settings.members, "feed_median_ms": feed["median_ms"], "feed_p99_ms": feed["p99_ms"],
            "progress_city_p95_ms": city["p95_ms"], "progress_city_median_ms": city["median_ms"],
            "progress_city_baseline_ms": city["baseline_ms"],
            "feed_ms_per_request": feed["median_ms"], "feed_kb_touched": feed_work["kb_touched"],
            "feed_rows_touched": feed_work["rows_touched"],
            "progress_ms_per_request": progress["median_ms"], "progress_kb_touched": progress_work["kb_touched"],
            "progress_rows_touched": progress_work["rows_touched"]}


def fig_scaling(settings: Settings, procs: Processes, scratch: Path, main_point: dict) -> dict:
    """The scaling points of the smaller sizes (each its own database, dropped afterwards), with this
    run's own point, and the plot."""
    points = [main_point]
    for members in sorted(n for n in settings.scaling if n != settings.members):
        sub = replace(settings, members=members, logins=min(settings.logins, 100),
                      database_url=f"{settings.database_url}_{members}")
        sub_scratch = scratch / f"scaling-{members}"
        sub_scratch.mkdir()
        env = app_env(sub)
        try:
            cast = build_database(sub, env)
            servers, _ = start_api(sub, procs, sub_scratch, env, cast)
            points.append(scaling_point(sub, servers, sub_scratch))
        finally:
            procs.stop_all()
            data.drop_database(sub.database_url)
    points.sort(key=lambda p: p["members"])
    out = {"points": points}
    plot = plot_scaling(points, settings.out / "scaling.png")
    if plot:
        out["plot"] = plot.name
    return {"scaling": out}


def plot_scaling(points: list[dict], path: Path) -> Path | None:
    """A PNG of latency against members (log scale); None, with a note, if matplotlib is missing."""
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  scaling: matplotlib is not installed (pip install -r bench/requirements.txt): no plot")
        return None
    members = [p["members"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, label, style in (("progress_city_p95_ms", "city progress, API p95", "o-"),
                              ("progress_city_baseline_ms", "city progress, obvious SQL COUNT p95", "s--"),
                              ("feed_p99_ms", "member feed, API p99", "^-"),
                              ("feed_median_ms", "member feed, API median", "v:")):
        ax.plot(members, [p[key] for p in points], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("party members in the database")
    ax.set_ylabel("latency (ms), one request per worker")
    ax.set_title("Cost as the city grows (same machine, same run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def api_memory(api_proc) -> dict:
    """Resident memory of each API worker after the load (the target: at most 150 MB each)."""
    sizes = worker_rss_mb(api_proc.pid)
    log(f"  api_workers: RSS {', '.join(f'{s:.0f}' for s in sizes)} MB")
    return {"api_workers": {"rss_mb": sizes, "max_rss_mb": max(sizes, default=None), "workers": len(sizes)}}


def _pick(d: dict, *keys: str) -> dict:
    return {k: d[k] for k in keys}


# --- the report ------------------------------------------------------------------------------------

def machine_info(settings: Settings) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    cpu = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    ram = re.search(r"MemTotal:\s*(\d+) kB", meminfo)
    with data.connect(settings.database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "members": settings.members, "quick": settings.quick,
        "cpu": cpu.group(1).strip() if cpu else platform.processor(), "cores": os.cpu_count(),
        "ram_gb": round(int(ram.group(1)) / 1024 / 1024, 1) if ram else None, "postgresql": postgres,
        "python": platform.python_version(), "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n")[0].strip(),
        "gunicorn_workers": WORKERS, "wrk_seconds": settings.seconds,
    }


def _fmt(value) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _ratio(value, baseline) -> str:
    return f"{value / baseline:.2f}" if value and baseline else "—"


def markdown(results: dict) -> str:
    m = results["machine"]
    rows = []
    for key in ("read_feed", "read_document", "feed_304"):
        if f := results.get(key):
            bare = "bare Flask 304" if key == "feed_304" else f"bare Flask, {f['baseline_body_bytes']:,} B"
            cpu = (f"; CPU a request: workers {f['workers_cpu_ms']:.2f} ms + PostgreSQL {f['postgres_cpu_ms']:.2f} ms"
                   if "workers_cpu_ms" in f else "")
            base_cpu = f"; {f['baseline_workers_cpu_ms']:.2f} ms CPU" if "baseline_workers_cpu_ms" in f else ""
            rows.append((key, f"{f['rps']:.0f} req/s (median {f['median_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms{cpu})",
                         f"{f['baseline_rps']:.0f} req/s ({bare}{base_cpu})", _ratio(f["rps"], f["baseline_rps"])))
    for name, sizes in (results.get("wire_bytes") or {}).items():
        rows.append((f"wire_bytes_{name}", f"br {sizes['br']:,} B, gzip {sizes['gzip']:,} B",
                     f"{sizes['identity']:,} B (identity)", _ratio(sizes["br"], sizes["identity"])))
    for key in ("progress_city", "progress_district", "progress_branch", "members_pending_branch",
                "meetings_stats_city", "adoption_city", "quiz_results_city"):
        if f := results.get(key):
            rows.append((key, f"p95 {f['p95_ms']:.1f} ms (median {f['median_ms']:.1f} ms)",
                         f"p95 {f['baseline_ms']:.1f} ms (obvious SQL)", _ratio(f["p95_ms"], f["baseline_ms"])))
    for key in ("progress_daily_city",):
        if f := results.get(key):
            rows.append((key, f"p95 {f['p95_ms']:.1f} ms (median {f['median_ms']:.1f} ms)",
                         f"p95 {f['baseline_ms']:.1f} ms (obvious SQL: receipts by day)",
                         _ratio(f["p95_ms"], f["baseline_ms"])))
    for key in ("console_branch_page", "console_district_page", "console_city_timeline"):
        if f := results.get(key):
            rows.append((key, f"p95 {f['p95_ms']:.1f} ms (median {f['median_ms']:.1f} ms), {f['body_bytes']:,} B; "
                              "target p95 ≤ 100 ms",
                         f"p95 {f['baseline_ms']:.1f} ms ({f['baseline']})", _ratio(f["p95_ms"], f["baseline_ms"])))
    if f := results.get("acknowledge"):
        cpu = (f"; CPU an ack: workers {f['workers_cpu_ms']:.2f} ms + PostgreSQL {f['postgres_cpu_ms']:.2f} ms, "
               f"{f['cpu_cores_used']} cores busy, {f['workers_runqueue_ms']:.1f} ms waiting for a core"
               if "workers_cpu_ms" in f else "")
        rows.append(("acknowledge", f"{f['rps']:.0f} ack/s (p99 {f['p99_ms']:.1f} ms{cpu})",
                     f"{f['baseline_rps']:.0f} INSERT/s (raw, {f['connections']} connections)",
                     _ratio(f["rps"], f["baseline_rps"])))
    if f := results.get("api_workers"):
        rows.append(("api_workers", f"RSS {', '.join(f'{v:.0f}' for v in f['rss_mb'])} MB after the load", "—", "—"))
    if f := results.get("import_members"):
        rows.append(("import_members", f"{f['seconds']:.1f} s, peak RSS {f['peak_rss_mb']:.0f} MB ({f['rows']:,} rows)",
                     "—", "—"))
    fanout = results.get("fanout")
    if isinstance(fanout, dict):   # bench/fanout.py's figures: `x` beside `baseline_x` make one row
        for key, value in fanout.items():
            if key.startswith(("baseline_", "ratio")) or isinstance(value, (dict, list)):
                continue
            baseline = fanout.get(f"baseline_{key}")
            numeric = isinstance(value, (int, float)) and isinstance(baseline, (int, float))
            rows.append((f"fanout.{key}", _fmt(value), "" if baseline is None else _fmt(baseline),
                         _ratio(value, baseline) if numeric else ""))
    for point in (results.get("scaling") or {}).get("points", []):
        per_op = ""
        if "feed_kb_touched" in point:   # the cost of one request: what PostgreSQL touched for it
            per_op = (f"; a feed request touches {point['feed_kb_touched']:,.0f} KB / {point['feed_rows_touched']:,.0f} rows, "
                      f"a city progress {point['progress_kb_touched']:,.0f} KB / {point['progress_rows_touched']:,.0f} rows")
        rows.append((f"scaling {point['members']:,}",
                     f"city progress p95 {point['progress_city_p95_ms']:.1f} ms, feed median "
                     f"{point['feed_median_ms']:.1f} / p99 {point['feed_p99_ms']:.1f} ms{per_op}",
                     f"p95 {point['progress_city_baseline_ms']:.1f} ms (SQL COUNT, city)",
                     _ratio(point["progress_city_p95_ms"], point["progress_city_baseline_ms"])))
    for key, error in results.get("errors", {}).items():
        rows.append((key, f"failed: {error[:120]}", "", ""))
    title = f"# Benchmark, {m['members']:,} members{' (quick)' if m['quick'] else ''}"
    setup = (f"{m['date']} · {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM · PostgreSQL {m['postgresql']} · "
             f"Python {m['python']} · gunicorn {m['gunicorn_workers']} workers · {m['wrk']}, {m['wrk_seconds']} s "
             f"a run, {THREADS} threads / {CONNECTIONS} connections (follow-up figures: {LATENCY_CONNECTIONS})")
    lines = [title, "", setup, "", "| figure | value | baseline | ratio |", "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: dict, name: str = "latest") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown(results))


# --- main ------------------------------------------------------------------------------------------

def start_api(settings: Settings, procs: Processes, scratch: Path, env: dict, cast: data.Cast,
              *, baseline: bool = False) -> tuple[Servers, object]:
    """The API under gunicorn with the cast logged in (and, with `baseline`, the bare Flask app answering
    the API's own feed and document bodies); the servers and the API's master process."""
    with step("start gunicorn (API)", 120):
        api, api_proc = gunicorn(procs, "wsgi:app", env, scratch / "api.log", workers=WORKERS,
                                 ready_path="/readyz")
        with step(f"log in {len(cast.members)} members", 120):
            tokens = login_all(api, [card for _, card in cast.members] + [cast.admin_card], PASSWORD)
    bare, bare_proc = "", None
    if baseline:
        with step("start gunicorn (bare Flask)", 120):
            baseline_dir = scratch / "baseline"
            baseline_dir.mkdir()
            any_token = tokens[cast.members[0][1]]
            for name, path in (("feed", "/api/v1/documents"),
                               ("document", f"/api/v1/documents/{cast.city_documents[0]}")):
                (baseline_dir / f"{name}.json").write_bytes(request("GET", api + path, token=any_token)[1])
            bare, bare_proc = gunicorn(procs, "bench.baseline_app:app", {**env, "BENCH_BASELINE_DIR": str(baseline_dir)},
                                       scratch / "baseline.log", workers=WORKERS, ready_path="/feed")
    servers = Servers(api, bare, tokens, cast, api_proc.pid, bare_proc.pid if bare_proc else 0)
    with step("warm-up: wrk on the API", 60):
        lines = [("GET", path, token) for token in _member_tokens(servers)
                 for path in ("/api/v1/documents", f"/api/v1/documents/{cast.city_documents[0]}")]
        wrk(api, write_requests(scratch / "warm-up.txt", lines), threads=THREADS, connections=CONNECTIONS, seconds=2)
    return servers, api_proc


def measure(settings: Settings, procs: Processes, scratch: Path) -> dict:
    env = app_env(settings)
    ensure_wrk()
    cast = reuse_database(settings, env) if settings.reuse else build_database(settings, env)
    results: dict = {"errors": {}}

    def figure(name: str, fn, *args) -> None:
        """Run one group of figures (a dict of them); a failure is recorded and the others still run."""
        if settings.only and name not in settings.only:
            return
        try:
            results.update(fn(*args) or {})
        except Exception as exc:  # noqa: BLE001 (StepTimeout included)
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
            results["errors"][name] = f"{type(exc).__name__}: {exc}"

    servers, api_proc = start_api(settings, procs, scratch, env, cast, baseline=True)
    figure("reading", fig_reading, settings, servers, scratch)
    figure("follow_up", fig_follow_up, settings, servers, scratch)
    figure("meetings_adoption", fig_meetings_adoption, settings, servers, scratch)
    figure("quizzes", fig_quizzes, settings, servers, scratch)
    figure("console", fig_console, settings, servers, scratch)
    figure("acknowledge", fig_acknowledge, settings, servers, scratch)
    main_point: dict = {}
    figure("scaling", lambda: main_point.update(scaling_point(settings, servers, scratch)))
    figure("api_workers", api_memory, api_proc)
    procs.stop_all()
    figure("fanout", fig_fanout, settings, env, scratch)
    figure("import_members", fig_import, settings, env, scratch)
    if main_point:
        figure("scaling", fig_scaling, settings, procs, scratch, main_point)
    results["machine"] = machine_info(settings)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=440_000)
    parser.add_argument("--quick", action="store_true", help="shorter wrk runs (5 s) for a fast check")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--scaling", default=None,
                        help="comma-separated further sizes for the scaling figure (default: 10000,100000,1000000; "
                             "with --quick: 5000); 'none' for no scaling figure")
    parser.add_argument("--only", default=None,
                        help="comma-separated figure groups to run (reading, follow_up, meetings_adoption, "
                             "quizzes, console, acknowledge, scaling, api_workers, fanout, import_members); default all")
    parser.add_argument("--reuse-database", action="store_true",
                        help="measure on the bench database an earlier run of the same size built (no rebuild)")
    args = parser.parse_args(argv)
    scaling = args.scaling or ("5000" if args.quick else "10000,100000,1000000")
    settings = Settings(args.members, args.quick, args.out,
                        os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
                        seconds=5 if args.quick else 10, sql_seconds=2 if args.quick else 5,
                        scaling=() if scaling == "none" else tuple(int(n) for n in scaling.split(",")),
                        only=frozenset(args.only.split(",")) if args.only else frozenset(),
                        reuse=args.reuse_database)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the finally blocks below
    procs = Processes()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="handbook-bench-") as tmp:
            results = measure(settings, procs, Path(tmp))
    finally:
        procs.stop_all()
    # A partial run (--only) is written beside the full one, never over it.
    name = "latest" if not settings.only else "only-" + "-".join(sorted(settings.only))
    write_results(settings.out, results, name)
    log(f"done in {time.monotonic() - started:.0f} s; results in {settings.out / (name + '.md')}")
    print(markdown(results))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
