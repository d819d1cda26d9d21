"""Throwaway PostgreSQL and Redis servers for the fault tests (tests/test_faults.py).

Each server is a process of its own, on a free loopback port, in a directory of its own, so a test may
stop, kill or freeze it without touching the machine's shared PostgreSQL (5432) or Redis (6379). Every
wait is bounded and everything is torn down (processes killed, directories removed) even when a test
fails. When `initdb` or `redis-server` is missing the test is skipped, except in CI (`CI=true`), where
it fails, like `tests.conftest.require_redis`.

PostgreSQL refuses to run as root: as root its commands run as the `postgres` OS user (`runuser`), in a
directory that user owns. That directory is made with `tempfile.mkdtemp` in the system temporary
directory, not under pytest's `tmp_path`: pytest makes `/tmp/pytest-of-root` mode 0700, which the
`postgres` user cannot enter.

Durability settings: `fsync = off` is safe for these tests because an immediate stop (`pg_ctl stop -m
immediate`, SIGQUIT) kills PostgreSQL's processes, not the kernel, and the kernel's page cache keeps every
WAL record that PostgreSQL wrote. `synchronous_commit` must stay `on`: with it off, a commit is answered
before its WAL record is written, and an immediate stop loses commits the client was told succeeded;
the tests check that an acknowledgement answered 200 before the stop is still there after it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 30   # seconds for a server to start (initdb, crash recovery, ...)
STOP_TIMEOUT = 20


def missing(what: str) -> None:
    """Skip the test (fail in CI, where every tool must be installed)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


def free_port() -> int:
    """A TCP port that nothing listens on at the moment (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


# --- PostgreSQL -------------------------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """The directory of `initdb`/`pg_ctl`: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin, else wherever `initdb` is on PATH."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))

    def version(path: Path) -> tuple:
        return tuple(int(p) if p.isdigit() else 0 for p in path.parent.name.split("."))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own: `start()`, `stop("immediate" | "fast")`, `start()` again on the
    same port and data, `url(database)`, `create_database(name)`, `destroy()`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="handbook-throwaway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        command = [*self._as_postgres, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}):\n{result.stdout}\n"
                               f"{result.stderr}\n{self.log_tail()}")
        return result

    def init(self) -> ThrowawayPostgres:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data}'",
            "fsync": "off",                 # see the module docstring: safe for a process crash
            "synchronous_commit": "on",     # …but a commit answered before the crash must survive it
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "60",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# throwaway test cluster (tests/throwaway.py)\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        return self

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", str(START_TIMEOUT), "start", timeout=START_TIMEOUT + 10)

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", str(STOP_TIMEOUT),
                  "stop", timeout=STOP_TIMEOUT + 10)

    def crash(self) -> None:
        """What `stop("immediate")` does (SIGQUIT to the postmaster: every backend quits at once, no
        checkpoint), without the ~0.1 s of starting pg_ctl, for tests that must hit a moment."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        os.kill(pid, signal.SIGQUIT)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(gone, STOP_TIMEOUT, "the postmaster to exit")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return port_open(self.port)

    def url(self, database: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{database}", connect_timeout=5,
                               autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return "--- postgres log ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop whatever runs (politely, then SIGKILL to the postmaster's process group) and remove it all."""
        if self.postmaster_pid() is not None and self.data.exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # pg_ctl starts the postmaster as a session leader
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started throwaway cluster; destroyed on exit whatever happened."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        missing("running as root, and runuser (to run PostgreSQL as the postgres user) is missing")
    server = ThrowawayPostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


# --- Redis ------------------------------------------------------------------------------------------

class ThrowawayRedis:
    """`redis-server` as a child process with no persistence: `start()`, `kill()` (SIGKILL), `freeze()` /
    `thaw()` (SIGSTOP / SIGCONT: the port still accepts connections, nothing answers), `destroy()`."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="handbook-throwaway-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.root / "redis.log").open("a")
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(self.ping, START_TIMEOUT, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        wait_until(lambda: not port_open(self.port), STOP_TIMEOUT, "redis-server to go away")

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process still dies of SIGKILL; be tidy
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    executable = shutil.which("redis-server")
    if executable is None:
        missing("redis-server not found")
    server = ThrowawayRedis(executable)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


# --- a server that never answers --------------------------------------------------------------------

class Blackhole:
    """Accepts TCP connections and never says a word: a database or Redis that hangs (frozen host,
    half-open network path). Clients must give up by their own timeouts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)  # the kernel completes handshakes; nobody ever reads
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
