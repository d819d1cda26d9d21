"""Processes, HTTP and load generation for the benchmark: gunicorn servers, logins, wrk runs, and the
direct-SQL baselines measured with psycopg."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.data import connect

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes -------------------------------------------------------------------------------------

class Processes:
    """Every long-running process the benchmark starts; `stop_all()` ends them (also after errors)."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)   # its own process group: workers stop with it
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn(procs: Processes, app: str, env: dict, log_path: Path, *, workers: int, ready_path: str,
             timeout: float = 60) -> tuple[str, subprocess.Popen]:
    """Start `gunicorn -w workers app` on a free loopback port; return its base URL (once `ready_path`
    answers 200) and its master process."""
    port = free_port()
    proc = procs.start([str(ROOT / ".venv" / "bin" / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                        app], env, log_path)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{app} exited with code {proc.returncode}; see {log_path}:\n{_tail(log_path)}")
        try:
            if request("GET", base + ready_path, timeout=2)[0] == 200:
                return base, proc
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{app} was not ready within {timeout} s; see {log_path}:\n{_tail(log_path)}")


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory (MB) of each child process of `master_pid` (gunicorn's workers), from /proc."""
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master_pid:      # fields[1]: the parent's pid
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue                              # the process ended meanwhile
        rss_kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        sizes.append(round(rss_kib / 1024, 1))
    return sorted(sizes)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- HTTP ------------------------------------------------------------------------------------------

def request(method: str, url: str, *, token: str | None = None, body: dict | None = None,
            timeout: float = 30) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def login_all(base: str, cards: list[str], password: str) -> dict[str, str]:
    """card number → access token, logging in through POST /api/v1/auth/login (8 at a time)."""
    def one(card: str) -> tuple[str, str | None]:
        status, body = request("POST", f"{base}/api/v1/auth/login", body={"username": card, "password": password})
        return card, json.loads(body)["access_token"] if status == 200 else None

    with ThreadPoolExecutor(8) as pool:
        tokens = dict(pool.map(one, cards))
    failed = [card for card, token in tokens.items() if token is None]
    if len(failed) > len(cards) // 10:
        raise RuntimeError(f"{len(failed)} of {len(cards)} logins failed (e.g. {failed[:3]})")
    return {card: token for card, token in tokens.items() if token}


def console_cookie(base: str, card: str, password: str) -> str:
    """Sign in through the console's form (GET /login for the CSRF token, POST /login); the session
    cookie as a `Cookie` header value."""
    import http.cookiejar
    import re

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "username": card, "password": password}).encode()
    opener.open(urllib.request.Request(f"{base}/login", data=form, method="POST"), timeout=30).read()
    cookies = {c.name: c.value for c in jar}
    if "handbook_session" not in cookies:
        raise RuntimeError(f"console sign-in as {card} failed")
    return f"handbook_session={cookies['handbook_session']}"


# --- wrk -------------------------------------------------------------------------------------------

def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get (Debian package `wrk`) when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("bench: wrk is not installed. Install the Debian package (sudo apt-get install -y wrk) "
                         "and run again.")
    log("installing wrk (apt-get install -y wrk)")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for commands in ([["apt-get", "install", "-y", "wrk"]],
                     [["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]]):
        if all(subprocess.run(c, env=apt_env, capture_output=True, timeout=600, check=False).returncode == 0
               for c in commands):
            break
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: could not install wrk with apt-get; install the Debian package `wrk` and run again.")
    return found


def write_requests(path: Path, lines: list[tuple]) -> Path:
    """One request a line for bench/wrk.lua: method, path, token and optional JSON body, tab-separated."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines("\t".join(str(part) for part in line) + "\n" for line in lines)
    return path


def wrk(base: str, requests_file: Path, *, threads: int, connections: int, seconds: int) -> dict:
    """Run wrk with bench/wrk.lua; returns its JSON (rps, ok_rps, median/p95/p99 ms, errors)."""
    threads = min(threads, connections)
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(WRK_SCRIPT), base, "--", str(requests_file), str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line[len("BENCH_JSON "):])
            result.update(threads=threads, connections=connections)
            return result
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")


# --- direct-SQL baselines --------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _threads(count: int, target) -> None:
    workers = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def sql_latency(url: str, query: str, params: tuple, *, concurrency: int, seconds: float) -> dict:
    """Latency of one query run over and over by `concurrency` connections for `seconds` (at least 5 runs
    each, after one warm-up run)."""
    timings: list[float] = []
    errors: list[BaseException] = []

    def worker(_: int) -> None:
        try:
            with connect(url, timeout_ms=60_000) as conn:
                conn.execute(query, params).fetchall()
                deadline, runs = time.monotonic() + seconds, 0
                while time.monotonic() < deadline or runs < 5:
                    started = time.perf_counter()
                    conn.execute(query, params).fetchall()
                    timings.append((time.perf_counter() - started) * 1000)
                    runs += 1
        except BaseException as exc:  # noqa: BLE001 (reported by the caller)
            errors.append(exc)

    _threads(concurrency, worker)
    if errors:
        raise errors[0]
    return {"median_ms": round(percentile(timings, 50), 3), "p95_ms": round(percentile(timings, 95), 3),
            "queries": len(timings), "connections": concurrency}


def insert_rate(url: str, total: int, *, concurrency: int) -> dict:
    """`total` single-row INSERTs (autocommit) into a scratch table by `concurrency` connections."""
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch_acks")
        conn.execute("CREATE TABLE bench_scratch_acks (id bigserial PRIMARY KEY, document_id integer NOT NULL,"
                     " member_id integer NOT NULL, acknowledged_at timestamptz NOT NULL, version integer NOT NULL,"
                     " method varchar(16) NOT NULL)")
    errors: list[BaseException] = []
    conns = [connect(url, timeout_ms=60_000) for _ in range(concurrency)]

    def worker(i: int) -> None:
        try:
            for n in range(i, total, concurrency):
                conns[i].execute("INSERT INTO bench_scratch_acks (document_id, member_id, acknowledged_at, version,"
                                 " method) VALUES (%s, %s, now(), 1, 'app')", (n % 200, n))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    try:
        started = time.perf_counter()
        _threads(concurrency, worker)
        elapsed = time.perf_counter() - started
    finally:
        for conn in conns:
            conn.close()
        with connect(url) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_scratch_acks")
    if errors:
        raise errors[0]
    return {"rps": round(total / elapsed, 1), "inserts": total, "connections": concurrency}
