"""The embedded worker: with no broker configured, one thread in one API process runs `run_due` every
`PUSH_TICK_SECONDS`, and at once when something falls due (`wake`). A file lock in `instance/` picks
the process among gunicorn's workers; if it exits, another one takes over at its next tick."""
from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path

from flask import Flask

log = logging.getLogger("handbook.push")
_wake = threading.Event()
_stop = threading.Event()
_thread: threading.Thread | None = None


def wake() -> None:
    _wake.set()


def stop(timeout: float = 10.0) -> None:
    """Stop the thread after its current run (tests; the process exiting ends it anyway)."""
    global _thread
    if _thread is not None:
        _stop.set()
        _wake.set()
        _thread.join(timeout)
        _thread = None


def _try_lock(path: Path):
    handle = open(path, "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except OSError:
        handle.close()
        return None


def _loop(app: Flask) -> None:
    from handbook.extensions import db
    from push.due import run_due

    lock_path = Path(app.instance_path) / "push-worker.lock"
    lock = None
    tick = float(app.config.get("PUSH_TICK_SECONDS", 15))
    while not _stop.is_set():
        _wake.wait(tick)
        _wake.clear()
        lock = lock or _try_lock(lock_path)
        if lock is None or _stop.is_set():
            continue
        with app.app_context():
            try:
                for line in run_due(inline=True):
                    log.info("run-due: %s", line)
            except Exception:  # noqa: BLE001 - keep the thread alive; the next tick tries again
                log.exception("push: run-due failed")
            finally:
                db.session.remove()
    if lock is not None:
        lock.close()


def start(app: Flask) -> bool:
    """Start the thread (once per process) unless a broker is configured or it is switched off."""
    global _thread
    from push.tasks import broker_url

    if _thread is not None or broker_url(app.config) or not app.config.get("EMBEDDED_WORKER", True):
        return False
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _stop.clear()
    _thread = threading.Thread(target=_loop, args=(app,), name="push-embedded-worker", daemon=True)
    _thread.start()
    return True
