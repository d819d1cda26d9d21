"""The fan-out's write-ahead batch (push/fanout.py, `PushBatch`) and the direct transport (push/fcm.py,
`DirectSender`), on SQLite and PostgreSQL, through the real firebase-admin to the project's fake FCM.

The crash window is between handing a batch to FCM and recording its outcomes. It is produced for real:
the backend below is the real `FcmBackend`; after FCM has answered it raises, as a worker that dies
there would (its transaction never commits). The world is tests/test_push.py's (12 devices).
"""
from __future__ import annotations

import asyncio
import socket
import threading
from datetime import timedelta

import pytest
from firebase_admin import messaging
from sqlalchemy import func, select

from handbook.extensions import db
from push import fanout
from push.fcm import FAILED, INVALID, RETRY, SENT, FcmBackend
from push.models import Delivery, PushBatch
from tests.test_acknowledgements import WORLD_MEMBERS
from tests.test_push import devices_of, lapse, left_in_doubt, notification, plan_chunks, targets


def _plan(world, where: str = "city") -> tuple[int, int]:
    doc_id = world.publish(where)
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    return doc_id, chunk_id


def test_a_worker_dying_between_send_and_record_leaves_its_batch_in_doubt_and_it_is_sent_once_more(world, fcm, app):
    doc_id, chunk_id = _plan(world)
    batch = left_in_doubt(app, chunk_id)
    assert fcm.accepted_count() == 12
    # What survives the crash: the write-ahead batch naming every device, no delivery.
    assert (batch.size, batch.tries, batch.retry) == (12, 1, False)
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert fanout.send_chunk(chunk_id) is None  # its lease is still running: nobody takes it
    lapse(chunk_id)
    tally = fanout.send_chunk(chunk_id)
    assert tally["resent"] == 12 and tally["sent"] == 12
    per_target = fcm.stats()["accepted_by_target"]
    assert sorted(per_target) == devices_of(*WORLD_MEMBERS) and set(per_target.values()) == {2}
    n = notification("published", doc_id)
    assert (n.state, n.devices, n.sent, n.resent) == ("done", 12, 12, 12)
    assert db.session.scalar(select(func.count()).select_from(PushBatch)) == 0
    assert set(db.session.scalars(select(Delivery.attempts))) == {2}  # handed to FCM twice each
    assert fanout.send_chunk(chunk_id) is None
    assert fcm.accepted_count() == 24  # never a third time


def test_a_recorded_batch_is_never_sent_again_and_only_the_open_one_is_in_doubt(world, fcm, app, monkeypatch):
    """Two batches: the first recorded, the worker dies in the second. Only the second is sent again."""
    monkeypatch.setattr(fanout, "SEND_BATCH", 6)   # batches of 6 instead of FCM's 500
    assert fanout.batch_size() == 6
    doc_id, chunk_id = _plan(world)
    batch = left_in_doubt(app, chunk_id, at=2)   # the first batch recorded, the worker dead in the second
    assert fcm.accepted_count() == 12
    second = {device_id for device_id, _ in batch.devices}
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sent")) == 6
    lapse(chunk_id)
    assert fanout.send_chunk(chunk_id)["resent"] == 6
    per_target = fcm.stats()["accepted_by_target"]
    assert sorted(per_target) == devices_of(*WORLD_MEMBERS)
    twice = {d for d, in db.session.execute(select(Delivery.device_id).where(Delivery.attempts == 2))}
    assert twice == second and sorted(per_target.values()) == [1] * 6 + [2] * 6
    n = notification("published", doc_id)
    assert (n.state, n.devices, n.sent, n.resent) == ("done", 12, 12, 6)


def test_a_chunks_tally_adds_up_all_its_batches(world, fcm, app, monkeypatch):
    """send_chunk's answer (its tally) counts every batch of the chunk, as the notification's counters do:
    here an invalid, a failed and a retried device in the first of three batches, and the rest sent."""
    from push.models import Device

    monkeypatch.setattr(fanout, "SEND_BATCH", 4)
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # the retry is not due within this run
    devices = db.session.execute(select(Device.id, Device.fid).order_by(Device.id)).all()
    assert len(devices) == 12
    invalid, failed, retried = [fid for _, fid in devices[:4] if fid][:3]   # all three in the first batch
    fcm.set_rule(target=invalid, error="UNREGISTERED")
    fcm.set_rule(target=failed, error="SENDER_ID_MISMATCH")
    fcm.set_rule(target=retried, error="UNAVAILABLE")
    doc_id, chunk_id = _plan(world)
    tally = fanout.send_chunk(chunk_id)
    n = notification("published", doc_id)
    assert tally == {"notification_id": n.id, "sent": 9, "retry": 1, "failed": 1, "invalid": 1, "resent": 0,
                     "skipped": 0}
    assert (n.devices, n.sent, n.failed, n.invalid_tokens) == (12, 9, 1, 1)
    assert len(fcm.attempts()) == 12   # three batches, each device tried once


def test_a_batch_in_doubt_is_not_skipped_for_a_member_who_acknowledged_meanwhile(world, fcm, app):
    """A reminder's batch dies in flight; M2 (one of its recipients) acknowledges before the next runner:
    the in-doubt batch is sent again as it was (FCM may never have had it), and M2's device is counted
    once, not skipped as well."""
    from push.schedule import schedule_due
    from tests.test_push import _published_at

    doc_id = world.publish("b1")
    fanout_all()
    fcm.reset()
    schedule_due(_published_at(doc_id) + timedelta(days=7, minutes=1))
    planned = plan_chunks(notification("reminder", doc_id).id)
    left_in_doubt(app, planned[0])
    first = fcm.accepted_count()
    assert "fid-M2" in targets(fcm)
    assert world.ack("M2", doc_id).status_code == 200
    lapse(planned[0])
    fanout.send_chunk(planned[0])
    n = notification("reminder", doc_id)
    assert n.state == "done" and n.resent == first and fcm.accepted_count() == 2 * first
    assert n.devices == first  # nobody counted twice


def fanout_all() -> None:
    from push.due import run_due

    run_due()


# --- the direct transport --------------------------------------------------------------------------

def _message(target: str) -> messaging.Message:
    return messaging.Message(fid=target, data={"kind": "published", "document_id": "1"},
                             notification=messaging.Notification(title="Tiêu đề", body="Nội dung"))


@pytest.mark.parametrize("transport", ["direct", "threads", "async"])
def test_every_transport_answers_the_same_outcomes(fake_fcm, transport, backend):
    if backend == "postgresql":
        pytest.skip("no database involved")
    fake_fcm.reset()
    fake_fcm.set_rule(target="gone", error="UNREGISTERED")
    fake_fcm.set_rule(target="busy", error="UNAVAILABLE", retry_after=7)
    fake_fcm.set_rule(target="mismatch", error="SENDER_ID_MISMATCH")
    fake_fcm.set_rule(target="bad", error="INVALID_ARGUMENT")
    sender = FcmBackend({"FCM_ENDPOINT": fake_fcm.url, "FCM_PROJECT_ID": "p", "FCM_TRANSPORT": transport,
                         "FCM_CONNECTIONS": 4})
    names = ["ok-1", "gone", "busy", "mismatch", "bad"] + [f"ok-{i}" for i in range(2, 40)]
    outcomes = sender.send([_message(n) for n in names])
    got = {n: (o.status, o.error, o.retry_after) for n, o in zip(names, outcomes, strict=True)}
    assert got["gone"] == (INVALID, "UNREGISTERED", None)
    assert got["busy"] == (RETRY, "UNAVAILABLE", 7.0)
    assert got["mismatch"] == (FAILED, "SENDER_ID_MISMATCH", None)
    assert got["bad"] == (INVALID, "INVALID_ARGUMENT", None)
    assert all(got[f"ok-{i}"][0] == SENT for i in range(1, 40))
    assert all(o.message_id.startswith("projects/p/messages/") for n, o in zip(names, outcomes) if n.startswith("ok"))
    assert sorted(m["target"] for m in fake_fcm.messages()) == sorted(n for n in names if n.startswith("ok"))
    assert fake_fcm.messages("ok-1")[0]["message"]["notification"] == {"title": "Tiêu đề", "body": "Nội dung"}


class _ClosingServer:
    """An HTTP/1.1 server that answers FCM-like and then closes the connection, without saying so, after
    every `keep` answers; chunked bodies; what it received."""

    def __init__(self, keep: int) -> None:
        self.keep, self.requests = keep, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for _ in range(self.keep):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
                reader.read(length)
                self.requests += 1
                body = b'{"name": "projects/p/messages/%d"}' % self.requests
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    def close(self) -> None:
        self.sock.close()


def test_the_direct_transport_reopens_connections_the_server_closed_and_reads_chunked_answers(backend):
    if backend == "postgresql":
        pytest.skip("no database involved")
    server = _ClosingServer(keep=3)
    try:
        sender = FcmBackend({"FCM_ENDPOINT": server.url, "FCM_PROJECT_ID": "p", "FCM_TRANSPORT": "direct",
                             "FCM_CONNECTIONS": 2})
        for _ in range(4):   # connections kept between batches; the server drops each after 3 answers
            outcomes = sender.send([_message(f"t-{i}") for i in range(5)])
            assert [o.status for o in outcomes] == [SENT] * 5, outcomes
        assert server.requests == 20  # every message exactly once: none lost, none written twice
    finally:
        server.close()


def test_the_direct_transport_times_out_into_a_retry(backend):
    if backend == "postgresql":
        pytest.skip("no database involved")
    silent = socket.create_server(("127.0.0.1", 0))   # accepts, never answers
    try:
        sender = FcmBackend({"FCM_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}", "FCM_PROJECT_ID": "p",
                             "FCM_TRANSPORT": "direct", "FCM_TIMEOUT_SECONDS": 1})
        [outcome] = sender.send([_message("t")])
        assert outcome.status == RETRY and outcome.error == "DEADLINE_EXCEEDED"
    finally:
        silent.close()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there
    sender = FcmBackend({"FCM_ENDPOINT": f"http://127.0.0.1:{port}", "FCM_PROJECT_ID": "p", "FCM_TRANSPORT": "direct"})
    [outcome] = sender.send([_message("t")])
    assert outcome.status == RETRY and outcome.error == "UNAVAILABLE"
    asyncio.run(asyncio.sleep(0))
