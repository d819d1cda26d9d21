"""`make test`: the whole suite on SQLite and on PostgreSQL, the two backends in parallel.

Each backend is a pytest process of its own (TEST_BACKENDS=sqlite / postgresql), so on a machine with two
cores the two runs overlap instead of following each other. They share nothing: the SQLite run has its
own temporary database file, the PostgreSQL run the TEST_DATABASE_URL database, and each gets a Redis
database of its own (TEST_REDIS_URL for SQLite, the next lower number for PostgreSQL). Every other shared
thing in the suite is already per process (free ports, temporary folders).

The PostgreSQL run streams its output; the SQLite run's is printed when it ends. The exit status is the
worse of the two. SUITE_PARALLEL=0 runs the backends one after the other in one process (the old way),
and TEST_BACKENDS chooses backends as before. Extra arguments go to both pytest runs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def _other_redis_db(url: str) -> str:
    """The same Redis server, the database numbered one lower (or 14 when none was given)."""
    match = re.fullmatch(r"(redis://[^/]+)(?:/(\d+))?", url)
    if not match:
        raise SystemExit(f"TEST_REDIS_URL must look like redis://host:port/N, not {url!r}")
    number = int(match.group(2) or 15)
    return f"{match.group(1)}/{number - 1 if number > 0 else 1}"


def _pytest(args: list[str], **env: str) -> dict:
    """pytest -q on `args`, with `env` over this process's environment (as subprocess keyword arguments)."""
    return {"args": [sys.executable, "-m", "pytest", "-q", *args], "env": {**os.environ, **env}}


def main(argv: list[str]) -> int:
    args = argv or ["tests"]
    backends = [b.strip() for b in os.environ.get("TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
    if len(backends) < 2 or os.environ.get("SUITE_PARALLEL", "1") == "0":
        return subprocess.call(**_pytest(args))

    redis_url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
    redis_for = {backends[0]: redis_url, backends[1]: _other_redis_db(redis_url)}
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as quiet_log:
        quiet = subprocess.Popen(**_pytest(args, TEST_BACKENDS=backends[0], TEST_REDIS_URL=redis_for[backends[0]]),
                                 stdout=quiet_log, stderr=subprocess.STDOUT)
        print(f"run_suite: {backends[0]} and {backends[1]} in parallel; {backends[1]} below, "
              f"{backends[0]} printed when it ends", flush=True)
        try:
            loud = subprocess.call(**_pytest(args, TEST_BACKENDS=backends[1], TEST_REDIS_URL=redis_for[backends[1]]))
            quiet_status = quiet.wait()
        finally:
            if quiet.poll() is None:
                quiet.terminate()
                quiet.wait(30)
        quiet_log.seek(0)
        print(f"\n===== {backends[0]} =====", flush=True)
        sys.stdout.write(quiet_log.read())
    print(f"run_suite: {backends[1]} exit {loud}, {backends[0]} exit {quiet_status}, "
          f"{time.monotonic() - started:.0f} s in all", flush=True)
    return loud or quiet_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
