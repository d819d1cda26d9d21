"""Transports side by side: CPU (user + sys) and wall time per message, firebase-admin to the fake FCM.

Each transport runs in a fresh process that builds `push.fcm.FcmBackend` (or, for `send_each` alone,
firebase-admin with no project code at all) and sends the same messages in batches of 500 to the
project's fake FCM, which runs in its own process. The process's CPU time counts every thread it ran.

    python -m bench.transports [--messages 10000] [--transports direct,threads,async,alone]

prints one JSON line per transport. bench/fanout.py uses `measure()` for its same-run baselines.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import signal
import time
import warnings

BATCH = 500


def _messages(first: int, count: int):
    from firebase_admin import messaging

    return [messaging.Message(fid=f"transport-{i}", data={"document_id": "1", "kind": "published"},
                              notification=messaging.Notification(title="Chỉ thị 24-CT/TU: văn bản mới",
                                                                  body="Chỉ thị về kỷ luật, kỷ cương"))
            for i in range(first, first + count)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(args: tuple[str, str, int, int, int]) -> dict:
    """In a fresh process: send `count` messages with `transport`; its CPU seconds and wall time."""
    transport, url, first, count, connections = args
    warnings.simplefilter("ignore")
    if transport == "alone":   # firebase-admin's send_each with the project's client set-up, no project code
        import firebase_admin
        from firebase_admin import messaging

        from push.fcm import _configure_service, _LocalFirebaseCredential

        app = firebase_admin.initialize_app(_LocalFirebaseCredential(), {"projectId": "bench"},
                                            name=f"alone-{os.getpid()}")
        _configure_service(messaging._get_messaging_service(app), url, 30)  # noqa: SLF001

        def send(batch):
            return messaging.send_each(batch, app=app).success_count
    else:
        from push.fcm import SENT, FcmBackend

        backend = FcmBackend({"FCM_ENDPOINT": url, "FCM_PROJECT_ID": "bench", "FCM_TRANSPORT": transport,
                              "FCM_CONNECTIONS": connections, "FCM_TIMEOUT_SECONDS": 30})

        def send(batch):
            return sum(1 for o in backend.send(batch) if o.status == SENT)
    send(_messages(first, 10))   # connections and imports warm
    cpu, started, sent = _cpu(), time.monotonic(), 0
    for start in range(first, first + count, BATCH):
        sent += send(_messages(start, min(BATCH, first + count - start)))
    return {"sent": sent, "cpu": _cpu() - cpu, "seconds": time.monotonic() - started}


def measure(transport: str, url: str, messages: int, processes: int = 2, connections: int = 64) -> dict:
    """`messages` sent with `transport` by `processes` processes at once: throughput and CPU per message."""
    share = -(-messages // processes)
    parts = [(transport, url, i * share + 1_000_000 * processes, min(share, messages - i * share), connections)
             for i in range(processes)]
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_run, parts)
    seconds = time.monotonic() - started
    sent = sum(r["sent"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    busiest = max(r["seconds"] for r in results)
    return {"transport": transport, "messages": sent, "seconds": round(busiest, 2),
            "per_second": round(sent / busiest) if busiest else None,
            "cpu_us_per_message": round(cpu / sent * 1e6) if sent else None, "wall_with_spawn": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--transports", default="direct,threads,async,alone")
    args = parser.parse_args()
    from bench.fanout import _start_fake

    fake, url = _start_fake(int(os.environ.get("BENCH_FAKE_FCM_PORT", "9787")))
    try:
        for transport in args.transports.split(","):
            print(json.dumps(measure(transport, url, args.messages, args.processes, args.connections)), flush=True)
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(10)


if __name__ == "__main__":
    main()
