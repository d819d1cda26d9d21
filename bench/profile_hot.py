"""Where a member's request spends its time: `python -m bench.profile_hot --database-url URL`.

Runs the hot member requests in process (Flask's test client, production settings) against a filled
benchmark database (the one `python -m bench.run` leaves behind, BENCH_DATABASE_URL), and prints for each:

- wall and CPU time per request, and the database round trips per request (every statement, BEGIN,
  COMMIT/ROLLBACK and pool ping sent by psycopg);
- each SQL statement with its mean time (SQLAlchemy cursor events);
- a cProfile of the requests, its own time summed by where it is spent (SQLAlchemy, psycopg and the
  wait for PostgreSQL's answers, marshmallow, Flask/Werkzeug, JWT, JSON, the project's code, the rest),
  and the top functions with `--top N`;
- with `--explain`, EXPLAIN (ANALYZE, BUFFERS) of the slowest statement of each request.

Requests: GET /documents (the feed's first page), GET /documents/{id} (a city-wide directive), the same
two with If-None-Match (the 304), PUT /documents/{id}/acknowledgement (distinct unacknowledged pairs), and
GET /healthz (the floor: no authentication, no database), and the city admin's progress of that
directive for the largest branch. Acknowledgements change the database.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import statistics
import sys
import time
from collections import defaultdict

BUCKETS = (  # (label, substrings of a function's file path); the first that matches wins
    ("wait for PostgreSQL", ("psycopg/waiting", "psycopg_c/_psycopg/waiting", "wait_c")),
    ("psycopg", ("psycopg",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("marshmallow / flask-smorest / webargs", ("marshmallow", "flask_smorest", "webargs", "apispec")),
    ("JWT", ("jwt",)),
    ("JSON encode", ("json", "orjson")),
    ("Flask / Werkzeug", ("flask", "werkzeug", "blinker", "limits", "flask_limiter")),
    ("the project's code", ("/api/", "/content/", "/handbook/", "/push/", "/console/")),
)


def bucket(filename: str, funcname: str) -> str:
    if "wait" in funcname and ("psycopg" in filename or filename == "~"):
        return "wait for PostgreSQL"
    for label, parts in BUCKETS:
        if any(part in filename for part in parts):
            return label
    return "other (stdlib, builtins)"


class RoundTrips:
    """Counts what psycopg sends: cursor executes, and BEGIN / COMMIT / ROLLBACK commands."""

    def __init__(self) -> None:
        import psycopg

        self.count = 0
        counter = self
        original_execute = psycopg.Cursor.execute
        original_command = psycopg.Connection._exec_command

        def execute(self, *args, **kwargs):
            counter.count += 1
            return original_execute(self, *args, **kwargs)

        def exec_command(self, *args, **kwargs):
            counter.count += 1
            return (yield from original_command(self, *args, **kwargs))

        psycopg.Cursor.execute = execute
        psycopg.Connection._exec_command = exec_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_hot", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/handbook_bench"))
    parser.add_argument("--requests", type=int, default=300, help="requests per case (after 30 to warm up)")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) the slowest statement")
    parser.add_argument("--only", default="", help="comma-separated cases (healthz,feed,feed_304,document,"
                                                   "document_304,acknowledge,progress_branch)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    os.environ.update(HANDBOOK_ENV="production", DATABASE_URL=args.database_url, LOG_LEVEL="WARNING",
                      SECRET_KEY=secrets.token_urlsafe(32), JWT_SECRET_KEY=secrets.token_urlsafe(48),
                      EMBEDDED_WORKER="false", PUSH_BACKEND="log", QUIET_HOURS="")
    os.environ.pop("REDIS_URL", None)
    from flask_jwt_extended import create_access_token
    from sqlalchemy import event, select

    from bench import data
    from handbook import create_app
    from handbook.auth import AuthSession
    from handbook.extensions import db

    trips = RoundTrips()
    app = create_app()
    client = app.test_client()
    with app.app_context():
        conn_url = args.database_url.replace("postgresql+psycopg://", "postgresql://")
        with data.connect(conn_url) as conn:
            members = [r[0] for r in conn.execute(
                "SELECT id FROM members WHERE active AND id > 4 ORDER BY md5(id::text) LIMIT 200")]
            root = conn.execute("SELECT id FROM org_units WHERE depth = 0").fetchone()[0]
            document = conn.execute(
                "SELECT d.id FROM documents d JOIN document_audience a ON a.document_id = d.id AND a.org_unit_id = %s"
                " WHERE d.status = 'published' AND d.requires_ack ORDER BY d.published_at DESC LIMIT 1",
                (root,)).fetchone()[0]
            pairs = data.unacknowledged_pairs(conn, members, limit=2 * args.requests + 40)
            admin = conn.execute("SELECT id FROM members WHERE card_number = %s", (data.ADMIN_CARD,)).fetchone()[0]
            branch = conn.execute("SELECT m.org_unit_id FROM members m JOIN org_units u ON u.id = m.org_unit_id"
                                  " WHERE u.kind = 'branch' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
        tokens = {}
        for member_id in [*members, admin]:
            session = AuthSession(id=secrets.token_hex(16), member_id=member_id)
            db.session.add(session)
            tokens[member_id] = create_access_token(identity=str(member_id), additional_claims={"sid": session.id})
        db.session.commit()
        engine = db.engine

    statements: dict[str, list[float]] = defaultdict(list)
    slowest: dict = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        elapsed = (time.perf_counter() - conn.info["started"].pop()) * 1000
        statements[statement].append(elapsed)
        if elapsed > slowest.get("ms", -1):
            slowest.update(ms=elapsed, statement=statement, parameters=parameters)

    def headers(member_id, etag=None):
        h = {"Authorization": f"Bearer {tokens[member_id]}", "Accept": "application/json"}
        if etag:
            h["If-None-Match"] = etag
        return h

    etags: dict = {}

    def feed(i, conditional=False):
        m = members[i % len(members)]
        return "GET", "/api/v1/documents", headers(m, etags.get(("feed", m)) if conditional else None), None

    def doc(i, conditional=False):
        m = members[i % len(members)]
        return ("GET", f"/api/v1/documents/{document}",
                headers(m, etags.get(("doc", m)) if conditional else None), None)

    ack_pairs = iter(pairs)

    def ack(i):
        member, document_id, version = next(ack_pairs)
        return "PUT", f"/api/v1/documents/{document_id}/acknowledgement", headers(member), {"version": version}

    cases = {
        "healthz": (lambda i: ("GET", "/healthz", {}, None), 200),
        "feed": (feed, 200),
        "feed_304": (lambda i: feed(i, True), 304),
        "document": (doc, 200),
        "document_304": (lambda i: doc(i, True), 304),
        "acknowledge": (ack, 200),
        "progress_branch": (lambda i: ("GET", f"/api/v1/documents/{document}/progress?org_unit={branch}",
                                       headers(admin), None), 200),
    }
    chosen = [c for c in cases if not args.only or c in args.only.split(",")]
    # ETags for the conditional cases: one plain GET per member first.
    for m in members:
        etags[("feed", m)] = client.get("/api/v1/documents", headers=headers(m)).headers.get("ETag")
        etags[("doc", m)] = client.get(f"/api/v1/documents/{document}", headers=headers(m)).headers.get("ETag")
    results = {}
    for name in chosen:
        make, expected = cases[name]
        for i in range(30 if name != "acknowledge" else 20):
            method, path, h, body = make(i)
            client.open(path, method=method, headers=h, json=body)
        statements.clear()
        slowest.clear()
        trips.count = 0
        walls, cpus = [], []
        profiler = cProfile.Profile()
        sizes = set()
        for i in range(args.requests):
            method, path, h, body = make(i)
            wall, cpu = time.perf_counter(), time.process_time()
            profiler.enable()
            response = client.open(path, method=method, headers=h, json=body)
            profiler.disable()
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
            if response.status_code != expected:
                raise SystemExit(f"{name}: {method} {path} answered {response.status_code}: {response.data[:300]!r}")
            sizes.add(len(response.data))
        # Profiling slows the request down (several times over for the many small calls of a request):
        # wall and CPU are measured again without it (acknowledgements on pairs not used yet).
        plain_walls, plain_cpus = [], []
        for i in range(args.requests):
            method, path, h, body = make(i)
            wall, cpu = time.perf_counter(), time.process_time()
            client.open(path, method=method, headers=h, json=body)
            plain_walls.append((time.perf_counter() - wall) * 1000)
            plain_cpus.append((time.process_time() - cpu) * 1000)
        n = args.requests * 2
        stats = pstats.Stats(profiler)
        total = sum(v[2] for v in stats.stats.values())
        by_bucket: dict[str, float] = defaultdict(float)
        for (filename, _, funcname), (_, _, own, _, _) in stats.stats.items():
            by_bucket[bucket(filename, funcname)] += own
        result = {
            "wall_ms": round(statistics.median(plain_walls or walls), 3),
            "cpu_ms": round(statistics.mean(plain_cpus or cpus), 3),
            "profiled_cpu_ms": round(statistics.mean(cpus), 3),
            "round_trips": round(trips.count / n, 2),
            "statements": {s: (len(t) / n, round(statistics.mean(t), 3)) for s, t in statements.items()},
            "profile_ms": {k: round(v / total * statistics.mean(walls), 3) for k, v in
                           sorted(by_bucket.items(), key=lambda kv: -kv[1])},
            "body_bytes": sorted(sizes),
        }
        results[name] = result
        print(f"\n== {name}: median wall {result['wall_ms']:.2f} ms, CPU {result['cpu_ms']:.2f} ms "
              f"(under cProfile {result['profiled_cpu_ms']:.2f} ms), "
              f"{result['round_trips']} round trips per request, body {result['body_bytes']} B")
        print("   statements (per request × mean ms):")
        for s, (count, ms) in result["statements"].items():
            print(f"     {count:4.1f} × {ms:6.3f} ms  {' '.join(s.split())[:150]}")
        print(f"   cProfile own time per request, by where (profiled mean {statistics.mean(walls):.2f} ms):")
        for label, ms in result["profile_ms"].items():
            print(f"     {ms:6.3f} ms  {label}")
        if args.top:
            stats.sort_stats("tottime").print_stats(args.top)
        if args.explain and slowest.get("statement"):
            with app.app_context():
                plan = db.session.connection().exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + slowest["statement"], slowest["parameters"]).scalars().all()
                db.session.rollback()
            result["explain"] = plan
            print("   EXPLAIN (ANALYZE, BUFFERS) of the slowest statement:")
            print("     " + "\n     ".join(plan))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    with app.app_context():
        db.session.execute(select(1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
