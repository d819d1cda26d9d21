"""Push (API.md "devices, notifications, reminders, push run-due"): publications, reminders, escalations,
manual reminders and re-acknowledgements reach devices through the real firebase-admin library, over
real HTTP, to the project's fake FCM (push/fakefcm.py), on SQLite and PostgreSQL.

The world is tests/test_acknowledgements.py's (12 members in b1, b2 and cbcs, with secretaries S1, S2,
SD and the publisher BT); every member but M4 registers one phone, M1 two (a fid and a legacy token).
`run_due` is called in-process (`inline`), as `flask --app wsgi handbook push run-due` does.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, update

from content.models import Document
from handbook.extensions import db
from push.due import run_due
from push.fakefcm import FakeFcm  # noqa: F401 (type of the `fcm` fixture)
from push.models import Delivery, Device, InboxItem, Notification
from tests.factories import in_server_zone
from tests.test_acknowledgements import API, WORLD_MEMBERS, ZONE, Api, make_world
from tests.test_errors import assert_problem

PHONES = {card: [f"fid-{card}"] for card in WORLD_MEMBERS if card != "M4"}
PHONES["M1"] = ["fid-M1", "tok:legacy-M1"]


def push_world(client, tree) -> Api:
    """The acknowledgement tests' world, with PHONES registered (S1's is an iPhone, M2's in English)."""
    make_world(tree)
    api = Api(client, tree)
    for card, phones in PHONES.items():
        for phone in phones:
            key = "token" if phone.startswith("tok:") else "fid"
            body = {key: phone.removeprefix("tok:"), "platform": "android" if card != "S1" else "ios",
                    "locale": "en-US" if card == "M2" else "vi-VN"}
            assert client.post(f"{API}/me/devices", json=body, headers=api.auth(card)).status_code == 201
    return api


def targets(fake: FakeFcm) -> list[str]:
    return sorted(m["target"] for m in fake.messages())


def devices_of(*cards: str) -> list[str]:
    return sorted(p.removeprefix("tok:") for c in cards for p in PHONES.get(c, []))


def notification(kind: str, doc_id: int) -> Notification:
    db.session.expire_all()
    return db.session.scalars(select(Notification).where(Notification.kind == kind,
                                                         Notification.document_id == doc_id)
                              .order_by(Notification.id.desc())).first()


class Died(Exception):
    """The worker died here."""


class DiesAfterSending:
    """The real backend; the process dies once FCM has answered its `at`-th batch, before that batch is
    recorded (the batches before it are recorded as usual)."""

    def __init__(self, real, at: int = 1) -> None:
        self.real, self.at, self.calls = real, at, 0

    def send(self, messages):
        self.calls += 1
        outcomes = self.real.send(messages)
        if self.calls == self.at:
            raise Died
        return outcomes


def left_in_doubt(app, chunk_id: int, at: int = 1):
    """Run the chunk on the real backend with a worker that dies once FCM has answered its `at`-th batch:
    the one batch it leaves open (in doubt)."""
    from push import fanout
    from push.fcm import get_backend
    from push.models import PushBatch

    with pytest.raises(Died):
        fanout.send_chunk(chunk_id, backend=DiesAfterSending(get_backend(app.config), at=at))
    db.session.rollback()
    [batch] = db.session.scalars(select(PushBatch)).all()
    return batch


def plan_chunks(notification_id: int) -> list[int]:
    """Plan the notification: its chunks' ids, as the planner hands them to the queue."""
    from push import fanout

    planned: list[int] = []
    fanout.plan(notification_id, planned.append)
    return planned


def first_fid(chunk_id: int) -> str | None:
    """The FCM installation id of the chunk's first device that has one (by device id), or None."""
    from push.models import PushChunk

    chunk = db.session.get(PushChunk, chunk_id)
    return db.session.scalar(select(Device.fid).where(
        Device.member_id.between(chunk.first_member_id, chunk.last_member_id), Device.fid.is_not(None))
        .order_by(Device.id).limit(1))


def retries_due_now() -> None:
    """Every delivery waiting to retry, and every chunk left to retry, falls due now."""
    from push.models import PushChunk

    past = datetime.now(UTC) - timedelta(seconds=1)
    db.session.execute(update(Delivery).where(Delivery.state == "retry").values(not_before=past))
    db.session.execute(update(PushChunk).where(PushChunk.state == "retry").values(not_before=past))
    db.session.commit()


def lapse(chunk_id: int) -> None:
    """The chunk's worker is gone: its lease has run out."""
    from push.models import PushChunk

    chunk = db.session.get(PushChunk, chunk_id)
    chunk.lease_until = datetime.now(ZONE) - timedelta(seconds=1)
    db.session.commit()


def stats(api: Api, notification_id: int, by: str = "BT") -> dict:
    response = api.client.get(f"{API}/admin/notifications/{notification_id}", headers=api.auth(by))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def local(day_offset: int, hour: int, minute: int = 0, base: datetime | None = None) -> datetime:
    base = (base or datetime.now(ZONE)).astimezone(ZONE)
    return datetime.combine(base.date() + timedelta(days=day_offset), datetime.min.time(), tzinfo=ZONE) \
        .replace(hour=hour, minute=minute)


# --- publication -----------------------------------------------------------------------------------


def test_a_publication_reaches_every_device_once_with_a_complete_message(world, fcm):
    doc_id = world.publish("city")
    lines = run_due()
    everyone = devices_of(*WORLD_MEMBERS)
    assert targets(fcm) == everyone
    assert any(line.startswith(f"notification {notification('published', doc_id).id} (published")
               and "12 recipients, 12 devices, 12 sent" in line for line in lines), lines

    message = next(m["message"] for m in fcm.messages() if m["target"] == "fid-M3")
    doc = db.session.get(Document, doc_id)
    assert message["fid"] == "fid-M3" and "token" not in message
    assert message["notification"]["title"] == "Chỉ thị 24-CT/TU: văn bản mới"
    assert message["notification"]["body"].startswith("Chỉ thị về tăng cường kỷ luật, kỷ cương. Hạn xác nhận: ")
    assert message["data"] == {"notification_id": str(notification("published", doc_id).id), "kind": "published",
                               "document_id": str(doc_id), "document_kind": "directive", "version": "1",
                               "deadline": doc.deadline.isoformat()}
    android = message["android"]
    assert android["priority"] == "high" and android["collapse_key"] == f"doc-{doc_id}"
    assert android["notification"]["channel_id"] == "directives" and android["notification"]["tag"] == f"doc-{doc_id}"
    ttl = int(android["ttl"].rstrip("s").split(".")[0])
    assert abs(ttl - (doc.deadline - datetime.now(ZONE)).total_seconds()) < 120  # the TTL ends at the deadline
    apns = message["apns"]["headers"]
    assert apns["apns-priority"] == "10" and apns["apns-push-type"] == "alert"
    assert apns["apns-collapse-id"] == f"doc-{doc_id}"
    assert abs(int(apns["apns-expiration"]) - doc.deadline.timestamp()) < 120
    legacy = next(m["message"] for m in fcm.messages() if m["target"] == "legacy-M1")
    assert legacy["token"] == "legacy-M1" and "fid" not in legacy
    english = next(m["message"] for m in fcm.messages() if m["target"] == "fid-M2")
    assert english["notification"]["title"] == "Directive 24-CT/TU: new document"

    figures = stats(world, notification("published", doc_id).id)
    times = {k: figures.pop(k) for k in ("created_at", "started_at", "finished_at", "due_at")}
    assert figures == {"id": figures["id"], "kind": "published", "state": "done", "document_id": doc_id,
                       "meeting_id": None, "org_unit_id": world.tree["city"].id, "urgent": False, "recipients": 12, "devices": 12,
                       "sent": 12, "failed": 0, "invalid_tokens": 0, "resent": 0, "skipped": 0, "in_progress": 0}
    assert times["finished_at"] >= times["started_at"] >= times["created_at"]


def test_a_message_dates_the_deadline_on_hanoi_s_calendar_whatever_the_server_s_zone(world, fcm, app, monkeypatch):
    """send_chunk builds its messages in Hà Nội's zone (not the server's: here UTC+14, a day ahead of
    Hà Nội in the evening), on the Android channel configured (PUSH_ANDROID_CHANNEL)."""
    monkeypatch.setitem(app.config, "PUSH_ANDROID_CHANNEL", "chi-thi")
    with in_server_zone("Pacific/Kiritimati"):
        doc_id = world.publish("b1")
        run_due()
    deadline = db.session.get(Document, doc_id).deadline
    hanoi, server = (deadline.astimezone(z).strftime("%d/%m/%Y") for z in (ZONE, ZoneInfo("Pacific/Kiritimati")))
    assert hanoi != server   # (the deadline ends Hà Nội's day: already the next day at UTC+14)
    message = next(m["message"] for m in fcm.messages() if m["target"] == "fid-M1")
    assert message["notification"]["body"].endswith(f"{hanoi}."), message["notification"]["body"]
    assert message["android"]["notification"]["channel_id"] == "chi-thi"


def test_run_due_twice_sends_nothing_twice(world, fcm):
    world.publish("city")
    run_due()
    first = fcm.accepted_count()
    assert first == 12
    assert [line for line in run_due() if "notification" in line] == []
    assert fcm.accepted_count() == first
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sent")) == 12


def test_the_inbox_keeps_what_pushes_lose(world, fcm):
    doc_id = world.publish("b1")
    run_due()
    inbox = world.client.get(f"{API}/me/notifications", headers=world.auth("M4"))
    assert inbox.json["items"] == []  # M4 is in b2: not in this audience
    summary = world.client.get(f"{API}/me/summary", headers=world.auth("M2")).json
    assert summary["unread_notifications"] == 1
    items = world.client.get(f"{API}/me/notifications", headers=world.auth("M2")).json["items"]
    assert [(i["kind"], i["document"]["id"], i["read_at"]) for i in items] == [("published", doc_id, None)]
    assert items[0]["title"] == "Chỉ thị 24-CT/TU: văn bản mới"
    english = world.client.get(f"{API}/me/notifications", headers={**world.auth("M2"), "Accept-Language": "en"})
    assert english.json["items"][0]["title"] == "Directive 24-CT/TU: new document"
    read = world.client.post(f"{API}/me/notifications/{items[0]['id']}/read", headers=world.auth("M2"))
    assert read.status_code == 204
    again = world.client.post(f"{API}/me/notifications/{items[0]['id']}/read", headers=world.auth("M2"))
    assert again.status_code == 204
    assert world.client.get(f"{API}/me/summary", headers=world.auth("M2")).json["unread_notifications"] == 0
    unread = world.client.get(f"{API}/me/notifications", query_string={"unread": "true"}, headers=world.auth("M2"))
    assert unread.json["items"] == []
    stolen = world.client.post(f"{API}/me/notifications/{items[0]['id']}/read", headers=world.auth("M1"))
    assert_problem(stolen, 404, "not_found")  # M1's own item has another id: nobody reads another's inbox
    assert world.client.post(f"{API}/me/notifications/read-all", headers=world.auth("M1")).json == {"read": 1}


def test_inbox_pages_newest_first(world, fcm):
    docs = [world.publish("b1", title=f"Văn bản số {i}") for i in range(3)]
    run_due()
    first = world.client.get(f"{API}/me/notifications", query_string={"limit": 2}, headers=world.auth("M1")).json
    rest = world.client.get(f"{API}/me/notifications", query_string={"limit": 2, "cursor": first["next_cursor"]},
                            headers=world.auth("M1")).json
    assert [i["document"]["id"] for i in first["items"] + rest["items"]] == docs[::-1]
    assert rest["next_cursor"] is None
    bad = world.client.get(f"{API}/me/notifications", query_string={"cursor": "nope"}, headers=world.auth("M1"))
    assert_problem(bad, 422, "validation_error")


def test_notification_stats_are_for_those_who_manage_the_document(world, fcm):
    doc_id = world.publish("city")
    run_due()
    notification_id = notification("published", doc_id).id
    for card in ("M1", "S1", "CB"):
        response = world.client.get(f"{API}/admin/notifications/{notification_id}", headers=world.auth(card))
        assert_problem(response, 404, "not_found")
    assert world.client.get(f"{API}/admin/notifications/{notification_id}").status_code == 401
    assert world.client.get(f"{API}/admin/notifications/999999", headers=world.auth("BT")).status_code == 404


# --- FCM errors ------------------------------------------------------------------------------------


def test_dead_registrations_are_deleted(world, fcm):
    fcm.set_rule(target="fid-M3", error="UNREGISTERED")
    fcm.set_rule(target="legacy-M1", error="INVALID_ARGUMENT")
    doc_id = world.publish("city")
    run_due()
    remaining = set(db.session.scalars(select(func.coalesce(Device.fid, Device.token))))
    assert "fid-M3" not in remaining and "legacy-M1" not in remaining and "fid-M1" in remaining
    figures = stats(world, notification("published", doc_id).id)
    assert (figures["sent"], figures["invalid_tokens"], figures["failed"], figures["state"]) == (10, 2, 0, "done")
    world.publish("city", title="Văn bản thứ hai")
    fcm.reset()
    run_due()
    assert "fid-M3" not in targets(fcm) and len(targets(fcm)) == 10


# How a phone renews its registration while a push to it is out: (registered before the send, then the
# calls meanwhile as (method, body or None), their statuses, the row for the phone afterwards as (fid, token),
# and whether it is the same row).
RENEWALS = {
    # a fresh token for the same installation: the same device, refreshed
    "fresh token": (None, [("POST", {"fid": "fid-M2", "token": "fresh-M2"})], [200], ("fid-M2", "fresh-M2"), True),
    # a new installation (reinstalled app) that kept its legacy token: matched by the token, refreshed
    "new installation": ({"fid": "fid-M2", "token": "tok-M2"}, [("POST", {"fid": "fid-M2b", "token": "tok-M2"})],
                         [200], ("fid-M2b", "tok-M2"), True),
    # signed out and in again: the rejected row is gone; the new one names the same installation
    "signed out and in": (None, [("DELETE", None), ("POST", {"fid": "fid-M2"})], [204, 201], ("fid-M2", None),
                          False),
}


@pytest.mark.parametrize("renewal", list(RENEWALS))
def test_a_registration_refreshed_meanwhile_is_not_deleted(world, fcm, renewal):
    """FCM rejects what was sent while the phone has already registered again: only the registration
    that was sent to (that row, that fid and that token) is deleted, and it is no longer there."""
    import threading

    before, calls, statuses, after, same_row = RENEWALS[renewal]
    device_id = db.session.scalar(select(Device.id).where(Device.fid == "fid-M2"))
    if before:
        assert world.client.post(f"{API}/me/devices", json={**before, "platform": "android"},
                                 headers=world.auth("M2")).json["id"] == device_id
    doc_id = world.publish("b1")
    fcm.set_rule(target="fid-M2", error="UNREGISTERED", latency=1.0, times=1)   # (a new row may be sent to)
    answers = []

    def renew_while_m2_is_in_flight():
        # The other four devices of b1 are answered at once: by then M2's send is out and waiting.
        assert fcm.wait_for(4, timeout=10)
        for method, body in calls:
            if method == "DELETE":
                answers.append(world.client.delete(f"{API}/me/devices/{device_id}", headers=world.auth("M2")))
            else:
                answers.append(world.client.post(f"{API}/me/devices", json={**body, "platform": "android"},
                                                 headers=world.auth("M2")))

    renew = threading.Thread(target=renew_while_m2_is_in_flight)
    renew.start()
    run_due()
    renew.join()
    assert [a.status_code for a in answers] == statuses, [a.get_json() for a in answers]
    assert notification("published", doc_id).invalid_tokens == 1
    db.session.expire_all()
    rows = db.session.execute(select(Device.id, Device.fid, Device.token).where(Device.member_id == world.id("M2"))
                              ).all()
    assert [(fid, token) for _, fid, token in rows] == [after]
    assert (rows[0].id == device_id) is same_row
    if same_row:
        assert answers[-1].json["id"] == device_id


def test_transient_errors_are_retried_until_each_device_has_it_once(world, fcm, app):
    fcm.set_rule(target="fid-M3", error="UNAVAILABLE", times=2)
    fcm.set_rule(target="fid-M5", error="INTERNAL", times=1)
    doc_id = world.publish("city")
    run_due()  # (an inline run also takes retries that fall due while it runs: how many is timing)
    assert notification("published", doc_id).sent >= 10
    for _ in range(20):
        time.sleep(0.1)
        run_due()
        if notification("published", doc_id).state == "done":
            break
    assert notification("published", doc_id).state == "done"
    assert targets(fcm) == devices_of(*WORLD_MEMBERS)  # each accepted exactly once
    assert [s for t, s in fcm.attempts() if t == "fid-M3"] == [503, 503, 200]
    assert [s for t, s in fcm.attempts() if t == "fid-M5"] == [500, 200]
    attempts = dict(db.session.execute(select(Device.fid, Delivery.attempts).join(
        Device, Device.id == Delivery.device_id).where(Device.fid.in_(["fid-M3", "fid-M5", "fid-M6"]))).all())
    assert attempts == {"fid-M3": 3, "fid-M5": 2, "fid-M6": 1}


def test_which_chunks_and_plans_run_due_takes_up_again(world, fcm):
    """fanout.runnable_chunks: the chunks that should be running and are not — pending, or due for a retry,
    from `not_before` (less `grace`, the time left to chunks already queued in Celery), or running on a
    lease that ran out; fanout.stalled_plans: the notifications being planned whose planner has no lease
    or a lapsed one, and has not finished. Then the claims: fanout._claim_chunk takes a chunk that is
    pending (whenever it was due), due for a retry by now, or running on a lapsed lease, for a new attempt
    leased from now; fanout.claim_for_planning takes a pending notification, or one whose planner's lease
    is gone, leased from now, keeping when it was first started."""
    from handbook.timeutil import as_utc
    from push import fanout
    from push.models import ChunkState, NotificationState, PushChunk

    docs = [world.publish("b1", title=f"Văn bản {i}") for i in range(7)]
    notifications = [notification("published", d).id for d in docs]
    now, grace, second = datetime.now(UTC).replace(microsecond=0), timedelta(minutes=5), timedelta(seconds=1)
    hour = timedelta(hours=1)
    chunks = {  # name: (state, not_before, lease_until)
        "pending, due": (ChunkState.PENDING, now - grace - second, None),
        "pending, due as its grace ends": (ChunkState.PENDING, now - grace, None),
        "pending, within its grace": (ChunkState.PENDING, now - grace + second, None),
        "pending, later": (ChunkState.PENDING, now + hour, None),
        "retry, due": (ChunkState.RETRY, now - grace, None),
        "retry, within its grace": (ChunkState.RETRY, now - grace + second, None),
        "retry, due now": (ChunkState.RETRY, now, None),
        "retry, later": (ChunkState.RETRY, now + second, None),
        "running, lease ran out": (ChunkState.RUNNING, now - hour, now - second),
        "running, lease ends now": (ChunkState.RUNNING, now - hour, now),
        "running, leased": (ChunkState.RUNNING, now - hour, now + second),
        "done": (ChunkState.DONE, now - hour, now - hour),
    }
    ids = {}
    for name, (state, not_before, lease_until) in chunks.items():
        chunk = PushChunk(notification_id=notifications[0], first_member_id=1, last_member_id=1, state=state.value,
                          not_before=not_before, lease_until=lease_until, attempts=3)
        db.session.add(chunk)
        db.session.flush()
        ids[name] = chunk.id
    plans = {  # notification: (state, planned_at, lease_until)
        "planning, no lease": (NotificationState.SENDING, None, None),
        "planning, lease ran out": (NotificationState.SENDING, None, now - second),
        "planning, leased": (NotificationState.SENDING, None, now + hour),
        "planning, lease ends now": (NotificationState.SENDING, None, now),   # held to its end, as a chunk's
        "planned": (NotificationState.SENDING, now - hour, now - second),
        "not due": (NotificationState.PENDING, None, None),
        "cancelled before it was planned": (NotificationState.CANCELLED, None, None),
    }
    for n, (state, planned_at, lease_until) in zip(notifications, plans.values(), strict=True):
        db.session.execute(update(Notification).where(Notification.id == n).values(
            state=state.value, planned_at=planned_at, lease_until=lease_until,
            started_at=now - hour if state == NotificationState.SENDING else None))
    db.session.commit()

    def names(found):
        return {name for name, i in ids.items() if i in found}

    assert names(fanout.runnable_chunks(now, grace=grace)) == {
        "pending, due", "pending, due as its grace ends", "retry, due", "running, lease ran out"}
    assert names(fanout.runnable_chunks(now)) == {
        "pending, due", "pending, due as its grace ends", "pending, within its grace", "retry, due",
        "retry, within its grace", "retry, due now", "running, lease ran out"}
    assert set(fanout.stalled_plans(now)) == {notifications[0], notifications[1]}

    lease = fanout.lease_duration()
    claimed = {name: fanout._claim_chunk(i, now) for name, i in ids.items()}
    assert {name for name, attempt in claimed.items() if attempt is not None} == {
        "pending, due", "pending, due as its grace ends", "pending, within its grace", "pending, later",
        "retry, due", "retry, within its grace", "retry, due now", "running, lease ran out"}
    db.session.expire_all()
    for name, attempt in claimed.items():
        chunk = db.session.get(PushChunk, ids[name])
        taken = (ChunkState.RUNNING.value, 4, now + lease)
        kept = (chunks[name][0].value, 3, chunks[name][2] and as_utc(chunks[name][2]))
        assert (chunk.state, chunk.attempts, chunk.lease_until and as_utc(chunk.lease_until)) == (
            taken if attempt is not None else kept), name
        assert attempt in (None, 4), name

    planners = {name: fanout.claim_for_planning(n, now) for name, n in zip(plans, notifications, strict=True)}
    taken = {name: (claim.state, as_utc(claim.lease_until)) for name, claim in planners.items() if claim}
    assert taken == dict.fromkeys(("planning, no lease", "planning, lease ran out", "not due"),
                                  ("sending", now + lease))   # the notification as the claim left it
    db.session.expire_all()
    for name, n in zip(plans, notifications, strict=True):
        row = db.session.get(Notification, n)
        if planners[name] is None:
            assert (row.state, as_utc(row.lease_until) if row.lease_until else None) == (
                plans[name][0].value, plans[name][2]), name
        else:
            assert planners[name].id == n
            assert (row.state, as_utc(row.lease_until), as_utc(row.started_at)) == (
                "sending", now + lease, now if name == "not due" else now - hour), name


def test_a_notification_is_done_once_planned_and_every_chunk_of_its_own_is_done(world, fcm):
    """fanout.finish_if_complete: a notification being sent is done (its finish time stamped, its lease
    dropped) once its planner has finished and every chunk of its own is done — not while one still runs
    or waits to retry, nor while the planner may add chunks, nor once cancelled; another notification's
    chunks do not hold it back. It answers whether this call finished it."""
    from handbook.timeutil import as_utc, utcnow
    from push import fanout
    from push.models import ChunkState, NotificationState, PushChunk

    ids = {}
    for name in ("sending", "still planning", "cancelled", "another"):
        ids[name] = notification("published", world.publish("b1", title=name)).id
    now = utcnow()
    states = {"sending": (NotificationState.SENDING, now), "still planning": (NotificationState.SENDING, None),
              "cancelled": (NotificationState.CANCELLED, now), "another": (NotificationState.SENDING, now)}
    for name, (state, planned_at) in states.items():
        db.session.execute(update(Notification).where(Notification.id == ids[name]).values(
            state=state.value, planned_at=planned_at, lease_until=now + timedelta(minutes=1)))
        for chunk_state in (ChunkState.DONE, ChunkState.RETRY if name == "sending" else ChunkState.DONE):
            db.session.add(PushChunk(notification_id=ids[name], first_member_id=1, last_member_id=1,
                                     state=chunk_state.value, not_before=now))
    db.session.add(PushChunk(notification_id=ids["another"], first_member_id=1, last_member_id=1,
                             state=ChunkState.RUNNING.value, not_before=now))
    db.session.commit()

    def row(name: str) -> tuple:
        db.session.expire_all()
        n = db.session.get(Notification, ids[name])
        return n.state, n.finished_at and as_utc(n.finished_at), n.lease_until is None

    assert [fanout.finish_if_complete(ids[name]) for name in states] == [False, False, False, False]
    assert row("sending") == ("sending", None, False)
    db.session.execute(update(PushChunk).where(PushChunk.notification_id == ids["sending"])
                       .values(state=ChunkState.DONE.value))
    db.session.commit()
    before = utcnow()
    assert fanout.finish_if_complete(ids["sending"]) is True
    state, finished_at, no_lease = row("sending")
    assert (state, no_lease) == ("done", True) and before <= finished_at <= utcnow()
    assert fanout.finish_if_complete(ids["sending"]) is False   # already done
    assert [row(name)[0] for name in ("still planning", "cancelled", "another")] == ["sending", "cancelled", "sending"]


def _planned(notification_id: int) -> list[tuple[int, int]]:
    """The notification's chunks, as (first member id, last member id), in the order they were cut."""
    from push.models import PushChunk

    return [tuple(r) for r in db.session.execute(
        select(PushChunk.first_member_id, PushChunk.last_member_id)
        .where(PushChunk.notification_id == notification_id).order_by(PushChunk.id))]


def test_a_plan_walks_the_recipients_in_member_id_batches_renewing_its_lease(world, fcm, app, monkeypatch):
    """fanout.plan, with batches of two members (PLAN_BATCH): every recipient once, in member-id order
    from where the last batch stopped, each batch cut into its chunks, and the planner's lease renewed
    (one lease from now) before each batch's chunks are handed to the queue. A member whose row was
    rewritten lately (PostgreSQL keeps it at the end of the table) is not skipped: only the id orders."""
    from handbook.timeutil import as_utc, utcnow
    from handbook.members import Member
    from push import fanout

    monkeypatch.setattr(fanout, "PLAN_BATCH", 2)
    monkeypatch.setattr(fanout, "CHUNK_MEMBERS", 2)   # each batch of two members is a chunk
    first = min(world.id(c) for c in WORLD_MEMBERS)
    db.session.execute(update(Member).where(Member.id == first).values(full_name="Nguyễn Văn An (đã sửa)",
                                                                       org_unit_id=world.tree["cbcs"].id))
    db.session.commit()
    n = notification("published", world.publish("city"))
    leases: list = []

    def enqueue(chunk_id: int) -> None:
        leases.append(as_utc(db.session.execute(select(Notification.lease_until)
                                                .where(Notification.id == n.id)).scalar_one()))

    before = utcnow()
    assert fanout.plan(n.id, enqueue) is not None
    recipients = sorted(world.id(c) for c in WORLD_MEMBERS)
    assert _planned(n.id) == list(zip(recipients[::2], recipients[1::2], strict=True))
    assert sorted(db.session.scalars(select(InboxItem.member_id).where(InboxItem.notification_id == n.id))) \
        == recipients
    db.session.expire_all()
    assert db.session.get(Notification, n.id).recipients == len(recipients)
    lease = fanout.lease_duration()
    assert len(leases) == len(recipients) // 2
    assert all(before + lease <= at <= utcnow() + lease for at in leases), (before, leases)


def test_an_escalation_is_planned_in_batches_of_its_own_inbox(world, fcm, monkeypatch):
    """An escalation's recipients are the secretaries its inbox names (written first); the planner walks
    that inbox, not another notification's, in member-id batches (PLAN_BATCH of one: a chunk each)."""
    from push import fanout
    from push.schedule import schedule_due

    doc_id = world.publish("b1", "b2")
    run_due()   # the publication's own inbox: every member of b1 and b2
    at = _published_at(doc_id) + timedelta(days=12, minutes=1)
    assert ("escalation", "escalation:v1:d12", doc_id) in schedule_due(at)
    monkeypatch.setattr(fanout, "PLAN_BATCH", 1)
    escalation = notification("escalation", doc_id)
    assert fanout.plan(escalation.id, lambda chunk_id: None) is not None
    secretaries = sorted([world.id("S1"), world.id("S2")])
    assert _planned(escalation.id) == [(m, m) for m in secretaries]
    assert sorted(db.session.scalars(select(InboxItem.member_id).where(
        InboxItem.notification_id == escalation.id))) == secretaries


@contextmanager
def sequential_scans():
    """On PostgreSQL, the statements inside read tables by sequential scans (rows in the order they lie in
    the table, not an index's), as the planner may choose for a large table; nothing on SQLite."""
    from sqlalchemy import event

    if db.engine.dialect.name != "postgresql":
        yield
        return

    def no_index_scans(dbapi_connection, record, proxy) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET enable_indexscan = off")
            cursor.execute("SET enable_bitmapscan = off")
            cursor.execute("SET enable_indexonlyscan = off")

    db.session.close()
    db.engine.dispose()
    event.listen(db.engine, "checkout", no_index_scans)
    try:
        yield
    finally:
        event.remove(db.engine, "checkout", no_index_scans)
        db.session.close()
        db.engine.dispose()   # (the pooled connections keep the settings: closed)


def test_an_escalation_planner_taken_over_goes_on_after_its_cursor_in_member_id_order(world, fcm, tree,
                                                                                       monkeypatch):
    """The planner of an escalation to three secretaries dies once its first chunk is committed; meanwhile
    the second secretary's inbox item is rewritten (PostgreSQL then keeps that row at the end of the
    table). The next planner goes on after the cursor in member-id order: nobody skipped, nobody twice."""
    from handbook.timeutil import utcnow
    from push import fanout
    from push.schedule import schedule_due
    from tests.factories import member, unit

    b3 = unit("HN.BD.DB.3", "branch", tree["phuong"], "Chi bộ Tổ dân phố số 3")   # its secretary: SP's phường
    member("M7", b3, name="Trịnh Văn Phúc")
    member("SP", tree["b2"], name="Mai Thị Quế", roles=[("secretary", tree["phuong"])])
    doc_id = world.publish("phuong")
    run_due()
    assert ("escalation", "escalation:v1:d12", doc_id) in schedule_due(
        _published_at(doc_id) + timedelta(days=12, minutes=1))
    monkeypatch.setattr(fanout, "PLAN_BATCH", 1)
    escalation = notification("escalation", doc_id).id
    first, second, third = sorted(world.id(c) for c in ("S1", "S2", "SP"))

    def dies(chunk_id: int) -> None:
        raise Died

    with pytest.raises(Died):
        fanout.plan(escalation, dies)
    db.session.rollback()
    assert _planned(escalation) == [(first, first)]
    db.session.execute(update(InboxItem).where(InboxItem.notification_id == escalation,
                                               InboxItem.member_id == second).values(read_at=utcnow()))
    db.session.execute(update(Notification).where(Notification.id == escalation)
                       .values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    with sequential_scans():   # (PostgreSQL: whatever plan it makes of the query, not only the index's)
        assert fanout.plan(escalation, lambda chunk_id: None) is not None
    assert _planned(escalation) == [(first, first), (second, second), (third, third)]


def test_a_plan_with_no_recipient_is_done_at_once(world, fcm):
    """A re-acknowledgement nobody owes (everyone exempt) has nothing to send: planning it finishes it."""
    from push import fanout

    doc_id = world.publish("b1")
    run_due()
    everyone = [world.id(c) for c in ("M1", "M2", "S1", "CB")]
    assert world.exempt("S1", doc_id, everyone).status_code == 200
    world.patch(doc_id, reack=True)
    reack = notification("reack", doc_id)
    assert fanout.plan(reack.id, lambda chunk_id: pytest.fail("nothing to enqueue")) is not None
    db.session.expire_all()
    reack = db.session.get(Notification, reack.id)
    assert (reack.state, reack.recipients, reack.lease_until) == ("done", 0, None)
    assert reack.finished_at is not None and _planned(reack.id) == []


def test_a_notification_of_a_kind_without_a_recipient_rule_is_refused(app):
    """fanout.recipients_condition names the kind it has no rule for, rather than sending to nobody."""
    from push import fanout

    with pytest.raises(ValueError, match="^no recipient rule for bogus$"):
        fanout.recipients_condition(Notification(kind="bogus"), None)


def test_a_chunk_left_to_retry_says_when_it_wants_to_run_again(world, fcm, app, monkeypatch):
    """fanout.next_retry_at (the Celery worker's countdown for a chunk it could not finish): the chunk's
    not_before while it waits in `retry`, as an aware UTC time; nothing once it is done, nor for another chunk."""
    from push import fanout
    from push.models import PushChunk

    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 0.5)   # not due again within the first send
    fcm.set_rule(target="fid-M3", error="UNAVAILABLE", times=1)
    chunks: list[int] = []
    for doc in (world.publish("city"), world.publish("b1")):
        fanout.plan(notification("published", doc).id, chunks.append)
    waiting, other = chunks
    fanout.send_chunk(waiting)
    db.session.expire_all()
    chunk = db.session.get(PushChunk, waiting)
    assert chunk.state == "retry"
    retry_at = fanout.next_retry_at(waiting)
    assert retry_at == chunk.not_before and retry_at.utcoffset() == timedelta(0)
    assert fanout.next_retry_at(other) is None            # pending, not waiting to retry
    for _ in range(30):
        time.sleep(0.1)
        if fanout.send_chunk(waiting) is not None and fanout.next_retry_at(waiting) is None:
            break
    assert db.session.get(PushChunk, waiting, populate_existing=True).state == "done"
    assert fanout.next_retry_at(waiting) is None


def test_a_chunk_waits_for_and_sends_its_own_retries_only(world, fcm, app, monkeypatch):
    """fanout._finish_chunk and _due, with two chunks of one notification each waiting to retry a device: a
    chunk with nothing left is done meanwhile (not left to retry on another chunk's account), and a chunk
    whose retries fall due sends its own, not the other's, which waits for its own chunk."""
    from push import fanout
    from push.models import PushChunk

    monkeypatch.setattr(fanout, "CHUNK_MEMBERS", 2)
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # not due again by itself
    doc_id = world.publish("city")
    planned = plan_chunks(notification("published", doc_id).id)
    waiting, also_waiting = [c for c in planned if first_fid(c)][:2]
    failing = {c: first_fid(c) for c in (waiting, also_waiting)}
    for fid in failing.values():
        fcm.set_rule(target=fid, error="UNAVAILABLE", times=1)
    fanout.send_chunk(waiting)
    others = [c for c in planned if c not in failing]
    assert others
    for chunk_id in [also_waiting, *others]:
        fanout.send_chunk(chunk_id)

    def states() -> dict[int, str]:
        db.session.expire_all()
        return {c.id: c.state for c in db.session.scalars(select(PushChunk).where(PushChunk.id.in_(planned)))}

    assert states() == {waiting: "retry", also_waiting: "retry", **{c: "done" for c in others}}
    assert notification("published", doc_id).state == "sending"
    retries_due_now()   # both
    fanout.send_chunk(waiting)
    assert [s for _, s in fcm.attempts(failing[waiting])] == [503, 200]
    assert [s for _, s in fcm.attempts(failing[also_waiting])] == [503]   # its own chunk's to send
    assert states()[also_waiting] == "retry"
    fanout.send_chunk(also_waiting)
    assert [s for _, s in fcm.attempts(failing[also_waiting])] == [503, 200]
    assert set(states().values()) == {"done"} and notification("published", doc_id).state == "done"


def test_a_batch_left_in_doubt_says_whether_it_held_first_sends_or_retries(world, fcm, app, monkeypatch):
    """PushBatch.retry, what an operator reads of a batch a dead worker left open: False while its devices
    had no delivery yet (first sends), True when it held retries; its tries and size as written."""
    from push import fanout
    from push.models import PushBatch

    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # not due again by itself
    fcm.set_rule(target="fid-M3", error="UNAVAILABLE", times=2)
    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)

    first = left_in_doubt(app, chunk_id)
    assert (first.retry, first.tries, first.size) == (False, 1, 12)
    lapse(chunk_id)
    fanout.send_chunk(chunk_id)     # the batch sent once more: fid-M3 fails again, left to retry
    assert db.session.scalar(select(func.count()).select_from(PushBatch)) == 0
    assert [s for _, s in fcm.attempts("fid-M3")] == [503, 503]
    retries_due_now()
    retrying = left_in_doubt(app, chunk_id)
    assert (retrying.retry, retrying.tries, retrying.size) == (True, 1, 1)
    assert retrying.devices == [[db.session.scalar(select(Device.id).where(Device.fid == "fid-M3")), world.id("M3")]]
    lapse(chunk_id)
    fanout.send_chunk(chunk_id)
    assert [s for _, s in fcm.attempts("fid-M3")] == [503, 503, 200, 200]   # in doubt: sent once more
    assert notification("published", doc_id).state == "done"


def test_which_deliveries_a_chunk_sends_again(world, fcm):
    """fanout._due, at the instant `now` of a chunk's run under its claim (attempt) 2: its own retries due by
    then (to the microsecond), rows left `queued`, and rows left `sending` under an earlier claim (in doubt);
    not a retry due later, another chunk's retry, one turned skipped or failed (their retry time kept), a
    sent one, nor a row `sending` under this very claim."""
    from push import fanout

    n = notification("published", world.publish("city"))
    [chunk_id] = plan_chunks(n.id)
    now, tick = datetime.now(UTC).replace(microsecond=500), timedelta(microseconds=1)
    rows = {  # name: (state, not_before, claim, chunk)
        "retry, due before": ("retry", now - timedelta(minutes=1), 1, chunk_id),
        "retry, due now": ("retry", now, 1, chunk_id),
        "retry, due just after": ("retry", now + tick, 1, chunk_id),
        "another chunk's retry": ("retry", now - timedelta(minutes=1), 1, chunk_id + 1),
        "skipped, was a retry": ("skipped", now - timedelta(minutes=1), 1, chunk_id),
        "failed, was a retry": ("failed", now - timedelta(minutes=1), 1, chunk_id),
        "sent": ("sent", None, 1, chunk_id),
        "queued (older release)": ("queued", None, 0, chunk_id),
        "sending, an earlier claim": ("sending", None, 1, chunk_id),
        "sending, this claim": ("sending", None, 2, chunk_id),
    }
    devices = db.session.execute(select(Device.id, Device.member_id).order_by(Device.id)).all()
    assert len(devices) >= len(rows)
    named = {}
    for (name, (state, not_before, claim, chunk)), (device_id, member_id) in zip(rows.items(), devices):
        db.session.add(Delivery(notification_id=n.id, device_id=device_id, member_id=member_id, chunk_id=chunk,
                                state=state, not_before=not_before, claim=claim, attempts=1))
        named[device_id] = name
    db.session.commit()
    due = fanout._due(n.id, chunk_id, 2, now, 100)
    assert [named[r.device_id] for r in due] == [
        "retry, due before", "retry, due now", "queued (older release)", "sending, an earlier claim"]


def test_which_batch_a_chunk_takes_up_as_in_doubt(world, fcm):
    """fanout._in_doubt, for a chunk's run under its claim (attempt) 2: the oldest batch that a worker
    of an earlier claim left open, not one of this claim nor another chunk's; its devices still there
    (state `sending`, the attempts made so far, their targets), and apart those gone since (deleted, or
    moved to another member)."""
    from push import fanout
    from push.models import PushBatch

    n, other = (notification("published", world.publish(where)) for where in ("city", "b1"))
    chunks = {}
    for x in (n, other):
        [chunks[x.id]] = plan_chunks(x.id)
    devices = db.session.execute(select(Device.id, Device.member_id, Device.fid).where(Device.fid.is_not(None))
                                 .order_by(Device.id)).all()
    (d1, m1, fid1), (d2, m2, fid2), (moved, owner, _), (d4, m4, _) = devices[:4]
    gone = max(d for d, _, _ in devices) + 1   # a device deleted since
    db.session.add(Delivery(notification_id=n.id, device_id=d1, member_id=m1, chunk_id=chunks[n.id],
                            state="sending", claim=1, attempts=3))
    db.session.add(Delivery(notification_id=other.id, device_id=d2, member_id=m2, chunk_id=chunks[other.id],
                            state="retry", claim=1, attempts=5))   # another notification's: not this one's count
    for item in db.session.scalars(select(InboxItem).where(InboxItem.notification_id.in_([n.id, other.id]))):
        item.data = {"for": item.member_id if item.notification_id == n.id else -item.member_id}   # as escalations'
    whole = [[d1, m1], [d2, m2], [moved, owner], [gone, m4]]
    batches = {  # name: (chunk, claim, devices), in the order they were written
        "another chunk's, older": (chunks[other.id], 0, [[d4, m4]]),
        "this claim's own": (chunks[n.id], 2, [[d4, m4]]),
        "oldest left open": (chunks[n.id], 1, whole),
        "younger left open": (chunks[n.id], 1, [[d4, m4]]),
    }
    ids = {}
    for name, (chunk, claim, members) in batches.items():
        batch = PushBatch(notification_id=n.id if chunk == chunks[n.id] else other.id, chunk_id=chunk,
                          claim=claim, size=len(members), devices=members)
        db.session.add(batch)
        db.session.flush()
        ids[batch.id] = name
    db.session.execute(update(Device).where(Device.id == moved).values(member_id=m4))
    db.session.commit()
    batch, rows, left = fanout._in_doubt(n.id, chunks[n.id], 2)
    assert ids[batch.id] == "oldest left open"
    assert [(r.device_id, r.member_id, r.state, r.attempts, r.fid, r.data) for r in rows] == [
        (d1, m1, "sending", 3, fid1, {"for": m1}), (d2, m2, "sending", 0, fid2, {"for": m2})]
    assert sorted((g.device_id, g.member_id) for g in left) == sorted([(moved, owner), (gone, m4)])
    assert fanout._in_doubt(other.id, chunks[other.id], 0)[0] is None   # its batch is of claim 0 itself


def test_due_retries_go_in_batches_as_first_sends_do(world, fcm, app, monkeypatch):
    """fanout._due: the retries due are sent a batch at a time (batch_size), as first sends are."""
    from push import fanout
    from push.fcm import get_backend

    monkeypatch.setattr(fanout, "SEND_BATCH", 4)
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)
    assert fanout.batch_size() == 4
    every = devices_of(*WORLD_MEMBERS)
    for target in every:
        fcm.set_rule(target=target, error="UNAVAILABLE", times=1)
    real, sizes = get_backend(app.config), []

    class CountsBatches:
        def send(self, messages):
            sizes.append(len(messages))
            return real.send(messages)

    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    fanout.send_chunk(chunk_id, backend=CountsBatches())
    assert sizes == [4, 4, 4] and len(every) == 12
    retries_due_now()
    sizes.clear()
    fanout.send_chunk(chunk_id, backend=CountsBatches())
    assert sizes == [4, 4, 4]
    assert sorted(fcm.stats()["accepted_by_target"]) == every
    assert notification("published", doc_id).state == "done"


def test_deliveries_left_queued_by_an_older_release_are_sent_once(world, fcm):
    """Before 0012_push_batches the planner created each delivery `queued` before the send: a chunk that
    still has such rows sends them (fanout._due), and the chunk's other devices as first sends, each once."""
    from push import fanout

    doc_id = world.publish("city")
    n = notification("published", doc_id)
    [chunk_id] = plan_chunks(n.id)
    queued = db.session.execute(select(Device.id, Device.member_id).order_by(Device.id).limit(3)).all()
    db.session.add_all(Delivery(notification_id=n.id, device_id=d, member_id=m, chunk_id=chunk_id,
                                state="queued") for d, m in queued)
    db.session.commit()
    fanout.send_chunk(chunk_id)
    assert sorted(fcm.stats()["accepted_by_target"].items()) == [(t, 1) for t in devices_of(*WORLD_MEMBERS)]
    assert set(db.session.scalars(select(Delivery.state).where(Delivery.notification_id == n.id))) == {"sent"}
    assert notification("published", doc_id).state == "done"


def test_a_withdrawal_skips_what_each_chunk_still_waits_to_send_and_drops_its_batch_in_doubt(world, fcm, app,
                                                                                              monkeypatch):
    """send_chunk once the document is withdrawn (fanout._set_chunk_done, cancelled): each chunk, as it
    runs, turns its own retries to `skipped`, stamped then, and leaves what was sent `sent`; it drops its own
    batch in doubt (never sent again), not another notification's; another chunk's retry waits for that
    chunk. Every chunk ends done, and the notification cancelled."""
    from push import fanout
    from push.fcm import get_backend
    from push.models import PushBatch, PushChunk

    monkeypatch.setattr(fanout, "CHUNK_MEMBERS", 2)
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # no retry falls due by itself here
    real = get_backend(app.config)

    def planned_chunks(doc_id: int) -> list[int]:   # those with a device to push to
        return [c for c in plan_chunks(notification("published", doc_id).id) if first_fid(c)]

    withdrawn, other = world.publish("city"), world.publish("b1", title="Kế hoạch thực hiện")
    doubtful, retrying, *later = planned_chunks(withdrawn)
    assert later
    [other_doubtful, *_] = planned_chunks(other)
    for chunk_id in (doubtful, other_doubtful):   # each worker dies once FCM has its batch
        with pytest.raises(Died):
            fanout.send_chunk(chunk_id, backend=DiesAfterSending(real))
        db.session.rollback()
    fcm.set_rule(target=first_fid(retrying), error="UNAVAILABLE", times=1)
    tally = fanout.send_chunk(retrying)
    kept = dict(db.session.execute(select(Delivery.device_id, Delivery.state).where(Delivery.chunk_id == retrying))
                .all())
    assert sorted(kept.values()).count("retry") == 1 and "sent" in kept.values(), kept
    nothing = dict.fromkeys(("sent", "retry", "failed", "invalid", "resent", "skipped"), 0)
    withdrawn_id = notification("published", withdrawn).id
    assert tally == {**nothing, "notification_id": withdrawn_id, "sent": len(kept) - 1, "retry": 1}
    world.withdraw(withdrawn)
    accepted = fcm.accepted_count()

    def batches() -> list[int]:
        return sorted(db.session.scalars(select(PushBatch.chunk_id)))

    assert batches() == sorted([doubtful, other_doubtful])
    lapse(doubtful)
    assert fanout.send_chunk(doubtful) == {**nothing, "notification_id": withdrawn_id}
    assert batches() == [other_doubtful]
    assert dict(db.session.execute(select(Delivery.device_id, Delivery.state).where(
        Delivery.chunk_id == retrying)).all()) == kept   # not this chunk's to skip
    retries_due_now()   # the retrying chunk's (its retry waits in its chunk, cancelled)
    running = datetime.now(UTC)
    assert fanout.send_chunk(retrying) is not None
    db.session.expire_all()
    skipped = {device: (state, at) for device, state, at in db.session.execute(
        select(Delivery.device_id, Delivery.state, Delivery.updated_at).where(Delivery.chunk_id == retrying))}
    assert {d: state for d, (state, _) in skipped.items()} == {
        d: "skipped" if state == "retry" else state for d, state in kept.items()}
    assert all(at >= running for state, at in skipped.values() if state == "skipped"), (skipped, running)
    for chunk_id in later:
        fanout.send_chunk(chunk_id)
    assert fcm.accepted_count() == accepted   # nothing sent once withdrawn, the batch in doubt neither
    db.session.expire_all()
    assert set(db.session.scalars(select(PushChunk.state).where(
        PushChunk.notification_id == notification("published", withdrawn).id))) == {"done"}
    assert notification("published", withdrawn).state == "cancelled"
    assert batches() == [other_doubtful]
    in_doubt = db.session.scalar(select(PushBatch.size).where(PushBatch.chunk_id == other_doubtful))
    lapse(other_doubtful)   # the other notification's batch in doubt is sent again, as it was
    assert fanout.send_chunk(other_doubtful)["resent"] == in_doubt > 0
    assert batches() == []


def test_a_batch_in_doubt_whose_devices_are_all_gone_is_skipped_not_sent(world, fcm, app):
    """A worker dies with a batch in flight; before the next one takes the chunk over, every device of the
    batch is gone (signed out). Nothing is sent again: each gets a `skipped` delivery under the new claim,
    stamped then, counted in the tally; the batch is closed and the notification done."""
    from handbook.timeutil import utcnow
    from push import fanout
    from push.models import PushBatch

    doc_id = world.publish("b1")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    devices = left_in_doubt(app, chunk_id).devices
    db.session.execute(delete(Device).where(Device.id.in_([d for d, _ in devices])))
    db.session.commit()
    accepted = fcm.accepted_count()
    lapse(chunk_id)
    before = utcnow()
    tally = fanout.send_chunk(chunk_id)
    assert (tally["skipped"], tally["sent"], tally["resent"]) == (len(devices), 0, 0)
    assert fcm.accepted_count() == accepted
    written = db.session.execute(select(Delivery.device_id, Delivery.state, Delivery.claim, Delivery.updated_at)
                                 .where(Delivery.notification_id == tally["notification_id"])).all()
    assert sorted((d, state, claim) for d, state, claim, _ in written) == [
        (d, "skipped", 2) for d, _ in sorted(devices)]
    assert all(at >= before for *_, at in written), (written, before)
    assert db.session.scalar(select(func.count()).select_from(PushBatch)) == 0
    assert notification("published", doc_id).state == "done"


def test_a_batch_in_doubt_partly_gone_sends_the_rest_once_more_and_skips_the_others(world, fcm, app):
    """A worker dies with a batch of 12 in flight; meanwhile two of its devices sign out and one passes to
    another member. The next worker sends the 9 still there once more and skips the 3 (not sent to again,
    even the one whose new owner is in the audience too); its tally counts both."""
    from push import fanout

    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    devices = left_in_doubt(app, chunk_id).devices
    signed_out, moved = [d for d, _ in devices[:2]], devices[2][0]
    moved_device = db.session.get(Device, moved)
    moved_fid = moved_device.fid or moved_device.token
    db.session.execute(delete(Device).where(Device.id.in_(signed_out)))
    db.session.execute(update(Device).where(Device.id == moved).values(member_id=world.id("M1")))
    db.session.commit()
    lapse(chunk_id)
    tally = fanout.send_chunk(chunk_id)
    assert (tally["skipped"], tally["sent"], tally["resent"]) == (3, 9, 9), tally
    assert fcm.stats()["accepted_by_target"][moved_fid] == 1    # before the crash only
    states = dict(db.session.execute(select(Delivery.device_id, Delivery.state)).all())
    assert {d: states[d] for d in [*signed_out, moved]} == dict.fromkeys([*signed_out, moved], "skipped")
    assert sorted(s for d, s in states.items() if d not in [*signed_out, moved]) == ["sent"] * 9
    assert notification("published", doc_id).state == "done"


def test_after_skipping_what_is_gone_a_chunk_goes_on_with_the_rest(world, fcm, app, monkeypatch):
    """A worker records a batch (one device left to retry) and dies in the next; then the in-doubt batch's
    devices and the retrying one sign out. The next worker skips them all — the batch in doubt, then the
    due retry — and goes on to send the chunk's other devices; its tally counts every skip."""
    from push import fanout

    monkeypatch.setattr(fanout, "SEND_BATCH", 3)
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)
    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    first = db.session.scalars(select(Device.fid).where(Device.fid.is_not(None)).order_by(Device.id).limit(1)).one()
    fcm.set_rule(target=first, error="UNAVAILABLE", times=1)
    in_doubt = left_in_doubt(app, chunk_id, at=2).devices
    retrying = db.session.scalar(select(Delivery.device_id).where(Delivery.state == "retry"))
    gone = [d for d, _ in in_doubt] + [retrying]
    db.session.execute(delete(Device).where(Device.id.in_(gone)))
    db.session.commit()
    retries_due_now()
    lapse(chunk_id)
    tally = fanout.send_chunk(chunk_id)
    assert (tally["skipped"], tally["sent"]) == (len(gone), 12 - 6), tally   # 3 recorded, 3 in doubt, 6 left
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sent")) == 2 + 6
    assert notification("published", doc_id).state == "done"


def test_a_worker_whose_chunk_was_taken_over_stops_and_says_so(world, fcm, app, monkeypatch, caplog):
    """While a worker waits on FCM for its first batch, its lease lapses and another worker claims the
    chunk. It records the batch it sent, then sends nothing more (the chunk is the new worker's) and logs
    which chunk it left."""
    import logging

    from push import fanout
    from push.fcm import get_backend
    from push.models import PushChunk

    monkeypatch.setattr(fanout, "SEND_BATCH", 3)
    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    real = get_backend(app.config)

    class SlowFcm:
        def send(self, messages):
            outcomes = real.send(messages)
            lapse(chunk_id)   # too slow: another worker takes the chunk meanwhile
            assert fanout._claim_chunk(chunk_id, datetime.now(UTC)) == 2
            return outcomes

    with caplog.at_level(logging.WARNING, logger="handbook.push"):
        tally = fanout.send_chunk(chunk_id, backend=SlowFcm())
    assert tally["sent"] == 3 and fcm.accepted_count() == 3
    assert [r.getMessage() for r in caplog.records if r.name == "handbook.push"] == [
        f"push: chunk {chunk_id} was taken over (lease lapsed); leaving it to its new worker"]
    chunk = db.session.get(PushChunk, chunk_id, populate_existing=True)
    assert (chunk.state, chunk.attempts) == ("running", 2)


def test_retries_give_up_after_the_configured_attempts(world, fcm, app):
    app.config["PUSH_MAX_ATTEMPTS"] = 2
    try:
        fcm.set_rule(target="fid-M3", error="UNAVAILABLE")
        doc_id = world.publish("city")
        run_due()
        time.sleep(0.3)
        run_due()
    finally:
        app.config["PUSH_MAX_ATTEMPTS"] = 8
    n = notification("published", doc_id)
    assert (n.state, n.sent, n.failed) == ("done", 11, 1)
    assert [s for t, s in fcm.attempts() if t == "fid-M3"] == [503, 503]


def test_a_worker_renews_only_its_own_running_claim_of_a_chunk(world, fcm):
    """fanout._renew, the lease of a chunk being sent, extended between its batches: for that chunk only,
    only while it is running under the worker's own attempt (another worker that took it over has a later
    one), and for lease_duration() from the time it is renewed."""
    from handbook.timeutil import as_utc, utcnow
    from push import fanout
    from push.models import ChunkState, PushChunk

    chunks = []
    for doc in (world.publish("b1"), world.publish("b2")):
        fanout.plan(notification("published", doc).id, chunks.append)
    mine, other = chunks
    now = utcnow()
    attempt = fanout._claim_chunk(mine, now)
    assert attempt == 1 and fanout._claim_chunk(other, now) == 1

    def lease(chunk_id: int) -> datetime:
        db.session.expire_all()
        return as_utc(db.session.get(PushChunk, chunk_id).lease_until)

    later = now + timedelta(seconds=40)
    assert fanout._renew(mine, attempt, later) is True
    db.session.commit()
    assert lease(mine) == later + fanout.lease_duration()
    assert lease(other) == now + fanout.lease_duration()        # the other chunk's lease is not touched
    assert fanout._renew(mine, attempt + 1, later + timedelta(seconds=1)) is False   # not that attempt
    db.session.execute(update(PushChunk).where(PushChunk.id == mine).values(state=ChunkState.DONE.value))
    assert fanout._renew(mine, attempt, later + timedelta(seconds=2)) is False        # no longer running
    db.session.rollback()
    assert lease(mine) == later + fanout.lease_duration()


def test_the_fcm_rate_cap_is_built_from_its_settings_once_per_process(app, monkeypatch):
    """fanout.limiter(): FCM_RATE_PER_MINUTE sets the interval between sends, REDIS_URL the shared cap (with
    REDIS_TIMEOUT_SECONDS on each Redis call), and the same settings give the same limiter every time.
    (Building the Redis client connects to nothing.)"""
    from push import fanout
    from push.fanout import limiter

    monkeypatch.setattr(fanout, "_limiters", {})   # this process's limiters so far (the test builds its own)
    redis_url = "redis://127.0.0.1:6379/15"
    monkeypatch.setitem(app.config, "FCM_RATE_PER_MINUTE", 1200)
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "REDIS_TIMEOUT_SECONDS", 0.75)
    shared = limiter()
    assert shared is limiter() and shared.interval == 60 / 1200
    assert shared._redis is not None
    connection = shared._redis.connection_pool.connection_kwargs
    assert (connection["socket_timeout"], connection["socket_connect_timeout"]) == (0.75, 0.75)
    monkeypatch.setitem(app.config, "FCM_RATE_PER_MINUTE", 600)
    slower = limiter()
    assert slower is not shared and slower.interval == 60 / 600
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    local = limiter()
    assert local is not slower and local._redis is None and local.interval == 60 / 600


def test_a_batch_fcm_answers_without_retry_after_does_not_pause_the_next(world, fcm, app, monkeypatch):
    """Only FCM's Retry-After pauses every fan-out; a batch answered without one leaves the rate cap free."""
    from push import fanout

    monkeypatch.setitem(app.config, "FCM_RATE_PER_MINUTE", 600001)   # a rate cap of this test's own
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # the retry below is not due in this run
    fcm.set_rule(target="fid-M1", error="UNAVAILABLE", times=1)        # a transient error, no Retry-After
    world.publish("b1")
    run_due()
    assert fcm.accepted_count() == len(devices_of("M1", "M2", "S1", "CB")) - 1
    assert fanout.limiter().acquire(1) == 0.0


def test_each_delivery_keeps_what_fcm_answered(world, fcm, app, monkeypatch):
    """A delivery row per device with FCM's answer: its state, FCM's error code or message name, the
    attempts so far, the chunk attempt that sent it, when a retry is due, when it was written."""
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 600)   # the retry is not due in this run
    fcm.set_rule(target="fid-M2", error="UNAVAILABLE")
    fcm.set_rule(target="fid-S1", error="SENDER_ID_MISMATCH")
    started = datetime.now(UTC)
    world.publish("b1")
    run_due()
    rows = {target: (state, error, message_id is not None, attempts, claim, not_before is not None, at >= started)
            for target, state, error, message_id, attempts, claim, not_before, at in db.session.execute(
                select(func.coalesce(Device.fid, Device.token), Delivery.state, Delivery.error, Delivery.message_id,
                       Delivery.attempts, Delivery.claim, Delivery.not_before, Delivery.updated_at)
                .join(Device, Device.id == Delivery.device_id))}
    assert rows == {"fid-M1": ("sent", None, True, 1, 1, False, True),
                    "legacy-M1": ("sent", None, True, 1, 1, False, True),
                    "fid-M2": ("retry", "UNAVAILABLE", False, 1, 1, True, True),
                    "fid-S1": ("failed", "SENDER_ID_MISMATCH", False, 1, 1, False, True),
                    "fid-CB": ("sent", None, True, 1, 1, False, True)}


def test_a_batch_is_what_the_rate_cap_lets_through_in_a_quarter_of_the_lease(app, monkeypatch):
    """fanout.batch_size(): at most FCM's 500, at least 1, else FCM_RATE_PER_MINUTE's messages in a
    quarter of the chunk's lease (PUSH_LEASE_SECONDS, 120 s here), so that waiting for the cap never
    outlasts the lease."""
    from push import fanout

    monkeypatch.setitem(app.config, "PUSH_LEASE_SECONDS", 120)
    monkeypatch.setitem(app.config, "FCM_TIMEOUT_SECONDS", 30)
    for rate, batch in ((600000, 500), (240, 120), (1, 1)):   # 4 a second for 30 s: 120
        monkeypatch.setitem(app.config, "FCM_RATE_PER_MINUTE", rate)
        assert fanout.batch_size() == batch, rate


def test_a_lease_is_its_setting_but_outlasts_one_fcm_request(app, monkeypatch):
    """fanout.lease_duration(): PUSH_LEASE_SECONDS, but at least the FCM request timeout and 5 s more (a
    worker renews its lease between batches, and one batch may wait that long for FCM)."""
    from push import fanout

    for lease, timeout, seconds in ((120, 30, 120), (300, 30, 300), (120, 200, 205), (10, 5, 10), (10, 6, 11)):
        monkeypatch.setitem(app.config, "PUSH_LEASE_SECONDS", lease)
        monkeypatch.setitem(app.config, "FCM_TIMEOUT_SECONDS", timeout)
        assert fanout.lease_duration() == timedelta(seconds=seconds), (lease, timeout)


def test_a_backend_that_answers_fewer_outcomes_than_messages_is_an_error(world, fcm, app):
    """Each message's outcome is matched to its device by position: a backend that answers fewer than it
    was given fails the batch loudly (it stays in doubt, to be sent again) instead of leaving devices
    without a delivery."""
    from push import fanout
    from push.fcm import get_backend

    class AnswersOneFewer:
        def __init__(self, real):
            self.real, self.calls = real, 0

        def send(self, messages):
            self.calls += 1
            if self.calls > 1:   # (the device left without a delivery would be sent to again and again)
                raise RuntimeError("a second batch")
            return self.real.send(messages)[:-1]

    doc = world.publish("b1")
    chunks: list[int] = []
    fanout.plan(notification("published", doc).id, chunks.append)
    with pytest.raises(ValueError):
        fanout.send_chunk(chunks[0], backend=AnswersOneFewer(get_backend(app.config)))
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.notification_id == notification("published", doc).id, Delivery.state == "sent")) == 0


def test_a_retry_waits_a_random_time_in_the_upper_half_of_a_doubling_ceiling(app, monkeypatch):
    """Attempt n waits between half and all of min(PUSH_RETRY_MAX_SECONDS, base·2^(n-1)), spread over that
    whole half (many devices' retries do not come back at once, nor early), and never less than FCM's
    Retry-After."""
    from push.fanout import _backoff

    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 1.0)
    monkeypatch.setitem(app.config, "PUSH_RETRY_MAX_SECONDS", 10.0)
    for attempts, ceiling in ((0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)):
        waits = [_backoff(attempts, None) for _ in range(300)]
        # (300 draws: the chance that none falls in a tenth of the range at either end is 0.8^300.)
        assert ceiling / 2 <= min(waits) < ceiling / 2 + ceiling / 10, (attempts, min(waits))
        assert ceiling - ceiling / 10 < max(waits) <= ceiling, (attempts, max(waits))
    assert _backoff(3, 30.0) == 30.0               # a longer Retry-After wins
    assert 2.0 <= _backoff(3, 1.0) <= 4.0           # a shorter one does not shorten the backoff


def test_a_429_storm_is_waited_out_as_retry_after_asks(world, fcm):
    """FCM answers 429 with Retry-After: 1 to everything for a while; nothing goes before a second has
    passed, and afterwards every device has the push exactly once."""
    fcm.storm("QUOTA_EXCEEDED", requests=5, retry_after=1)
    doc_id = world.publish("city")
    started = time.monotonic()
    run_due()
    retries = db.session.scalars(select(Delivery).where(Delivery.state == "retry")).all()
    assert len(retries) == 5
    first_try = max(d.updated_at for d in retries)
    assert all((d.not_before - first_try).total_seconds() >= 0.99 for d in retries)
    while notification("published", doc_id).state != "done" and time.monotonic() - started < 10:
        time.sleep(0.2)
        run_due()
    assert notification("published", doc_id).state == "done"
    assert time.monotonic() - started >= 1.0
    assert targets(fcm) == devices_of(*WORLD_MEMBERS)
    assert sum(1 for _, s in fcm.attempts() if s == 429) == 5


def test_a_503_storm_with_retry_after_delays_the_retry(world, fcm):
    fcm.storm("UNAVAILABLE", requests=12, retry_after=1)  # every first send fails
    doc_id = world.publish("city")
    run_due()
    assert notification("published", doc_id).sent == 0
    run_due()  # too early: Retry-After has not passed
    assert fcm.accepted_count() == 0
    time.sleep(1.1)
    run_due()
    assert targets(fcm) == devices_of(*WORLD_MEMBERS)
    assert notification("published", doc_id).state == "done"


def test_configuration_errors_fail_without_deleting_devices(world, fcm):
    fcm.set_rule(target="fid-M3", error="SENDER_ID_MISMATCH")
    fcm.set_rule(target="fid-M5", error="THIRD_PARTY_AUTH_ERROR")
    doc_id = world.publish("city")
    run_due()
    n = notification("published", doc_id)
    assert (n.state, n.sent, n.failed, n.invalid_tokens) == ("done", 10, 2, 0)
    assert db.session.scalar(select(func.count()).select_from(Device)) == 12


# --- idempotency and concurrency -------------------------------------------------------------------


def test_a_delivery_left_sending_by_a_dead_worker_is_sent_again_once(world, fcm, app, monkeypatch):
    """Simulate the crash window: a chunk whose worker died after marking a batch `sending` (FCM may have
    it). The next runner takes the chunk once its lease has run out and sends those rows again, once,
    counting them as resent (here one batch each: the tally adds them up); rows already `sent` are never
    sent again."""
    from push import fanout
    from push.models import PushChunk

    monkeypatch.setattr(fanout, "SEND_BATCH", 1)

    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    fanout.send_chunk(chunk_id)
    assert fcm.accepted_count() == 12
    # Rewind two deliveries to `sending` under an older claim, and the chunk to a lapsed lease.
    first_two = db.session.scalars(select(Delivery).order_by(Delivery.device_id).limit(2)).all()
    for d in first_two:
        d.state, d.claim = "sending", 0
    chunk = db.session.get(PushChunk, chunk_id)
    chunk.state, chunk.lease_until = "running", datetime.now(ZONE) - timedelta(seconds=1)
    db.session.commit()
    assert fanout.send_chunk(chunk_id)["resent"] == 2
    assert fcm.accepted_count() == 14
    assert fanout.send_chunk(chunk_id) is None  # done: nobody takes it again
    assert notification("published", doc_id).resent == 2


def test_a_chunk_with_a_live_lease_is_not_taken_twice(world, fcm):
    from push import fanout

    doc_id = world.publish("city")
    [chunk_id] = plan_chunks(notification("published", doc_id).id)
    assert fanout.plan(notification("published", doc_id).id, pytest.fail) is None  # already planned
    from push.models import PushChunk

    chunk = db.session.get(PushChunk, chunk_id)
    chunk.state, chunk.lease_until = "running", datetime.now(ZONE) + timedelta(minutes=1)
    db.session.commit()
    assert fanout.send_chunk(chunk_id) is None
    assert fcm.accepted_count() == 0


def test_concurrent_runners_send_each_device_once(world, fcm, app, backend):
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers; the PostgreSQL run exercises real concurrency")
    import threading

    for i in range(3):
        world.publish("city", title=f"Văn bản {i}")
    fcm.set_default(latency=0.02)
    errors: list[BaseException] = []

    def runner():
        with app.app_context():
            try:
                run_due()
            except BaseException as error:  # noqa: BLE001
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    run_due()
    assert errors == []
    assert fcm.accepted_count() == 36
    per_target = fcm.stats()["accepted_by_target"]
    assert set(per_target.values()) == {3}


def test_withdrawing_cancels_what_has_not_gone_out(world, fcm):
    from push import fanout

    doc_id = world.publish("city")
    planned = plan_chunks(notification("published", doc_id).id)
    world.withdraw(doc_id)
    assert fanout.send_chunk(planned[0]) is not None
    assert fcm.accepted_count() == 0
    assert notification("published", doc_id).state == "cancelled"
    assert run_due() == []


# --- quiet hours -----------------------------------------------------------------------------------

@pytest.fixture()
def quiet(app):
    app.config["QUIET_HOURS"] = "21:00-07:00"
    yield
    app.config["QUIET_HOURS"] = ""


@pytest.mark.parametrize(("window", "at", "ends"), [
    ("22:00-23:30", (5, 22, 30), (5, 23, 30)),   # an evening window ends the same local day
    ("21:00-07:00", (5, 23, 0), (6, 7, 0)),      # a night window, before midnight: the next morning
    ("21:00-07:00", (6, 2, 0), (6, 7, 0)),       # after midnight: this morning
    ("21:00-07:00", (6, 7, 0), (6, 7, 0)),       # its end is not quiet
])
@pytest.mark.parametrize("server_zone", ["Pacific/Kiritimati", "America/Los_Angeles", "UTC"])
def test_quiet_hours_end_on_hanoi_s_clock_whatever_the_server_s_zone(app, monkeypatch, window, at, ends,
                                                                    server_zone):
    """quiet_ends reads the window on Hà Nội's clock: the server's own zone (here up to 7 hours ahead of
    Hà Nội and 15 behind) changes nothing."""
    from push.schedule import quiet_ends

    monkeypatch.setitem(app.config, "QUIET_HOURS", window)
    with in_server_zone(server_zone):
        got = quiet_ends(datetime(2026, 12, at[0], at[1], at[2], tzinfo=ZONE))
    assert got == datetime(2026, 12, ends[0], ends[1], ends[2], tzinfo=ZONE)


def test_quiet_hours_hold_pushes_across_midnight(world, fcm, quiet):
    doc_id = world.publish("city")
    tomorrow = datetime.now(ZONE) + timedelta(days=1)
    for at in (local(0, 21, 0, tomorrow), local(0, 23, 30, tomorrow), local(1, 0, 0, tomorrow),
               local(1, 6, 59, tomorrow)):
        run_due(at)
        assert fcm.accepted_count() == 0, at
        assert notification("published", doc_id).state == "pending"
    run_due(local(1, 7, 0, tomorrow))
    assert fcm.accepted_count() == 12


def test_an_urgent_publication_goes_out_during_quiet_hours(world, fcm, quiet):
    created = world.client.post(f"{API}/admin/documents", headers=world.auth("BT"), json={
        "kind": "notice", "number": "01-TB/TU", "title": "Thông báo khẩn", "summary": "", "body_html": "<p>x</p>",
        "issuing_body": "Thành ủy", "issued_on": "2026-11-21", "requires_ack": True,
        "audience": {"org_units": [world.tree["city"].id]}})
    published = world.client.post(f"{API}/admin/documents/{created.json['id']}/publish", json={"urgent": True},
                                  headers=world.auth("BT"))
    assert published.status_code == 200
    run_due(local(1, 23, 30))
    assert fcm.accepted_count() == 12
    assert stats(world, published.json["notification_id"])["urgent"] is True


@pytest.mark.parametrize("window, hour, minute, quiet_now", [
    ("21:00-07:00", 20, 59, False), ("21:00-07:00", 21, 0, True), ("21:00-07:00", 3, 0, True),
    ("21:00-07:00", 7, 0, False), ("12:00-13:30", 12, 45, True), ("12:00-13:30", 13, 30, False),
    ("", 23, 0, False),
])
def test_quiet_window_arithmetic(app, window, hour, minute, quiet_now):
    from push.schedule import is_quiet, quiet_ends

    app.config["QUIET_HOURS"] = window
    try:
        at = local(0, hour, minute)
        assert is_quiet(at) is quiet_now
        ends = quiet_ends(at)
        assert (ends > at) is quiet_now and not is_quiet(ends)
    finally:
        app.config["QUIET_HOURS"] = ""


# --- reminders and escalations ---------------------------------------------------------------------


def _published_at(doc_id: int) -> datetime:
    db.session.expire_all()
    return db.session.get(Document, doc_id).published_at


def test_a_chunk_writes_the_deliveries_of_its_own_members_only(world, fcm, monkeypatch):
    """A reminder planned in chunks of two members: the first chunk to run writes deliveries (sent, or
    skipped for whoever settled since planning) for its own members only, not for a member of a later
    chunk who acknowledged meanwhile: that one is the later chunk's to skip."""
    from handbook.members import Member
    from push import fanout
    from push.models import PushChunk
    from push.schedule import schedule_due

    monkeypatch.setattr(fanout, "CHUNK_MEMBERS", 2)
    doc_id = world.publish("city")
    run_due()
    fcm.reset()
    schedule_due(_published_at(doc_id) + timedelta(days=7, minutes=1))
    reminder = notification("reminder", doc_id).id
    planned = plan_chunks(reminder)
    chunks = {c.id: c for c in db.session.scalars(select(PushChunk).where(PushChunk.id.in_(planned)))}
    assert len(chunks) >= 3
    last = chunks[planned[-1]]
    settling = db.session.scalar(select(Device.member_id).where(
        Device.member_id.between(last.first_member_id, last.last_member_id)).order_by(Device.member_id).limit(1))
    card = db.session.scalar(select(Member.card_number).where(Member.id == settling))
    assert world.ack(card, doc_id).status_code == 200
    fanout.send_chunk(planned[0])
    first = chunks[planned[0]]
    written = db.session.execute(select(Delivery.member_id, Delivery.chunk_id, Delivery.state)
                                 .where(Delivery.notification_id == reminder)).all()
    assert written and {chunk for _, chunk, _ in written} == {first.id}
    assert all(first.first_member_id <= member <= first.last_member_id for member, _, _ in written), written
    fanout.send_chunk(planned[-1])
    assert db.session.execute(select(Delivery.chunk_id, Delivery.state).where(
        Delivery.notification_id == reminder, Delivery.member_id == settling)).all() == [(last.id, "skipped")] * len(
        devices_of(card))


def test_reminders_go_only_to_members_still_pending(world, fcm):
    doc_id = world.publish("b1", "b2")
    run_due()
    fcm.reset()
    world.ack("M1", doc_id)
    assert world.brief("S1", doc_id, [world.id("M2")]).status_code == 200
    assert world.exempt("S2", doc_id, [world.id("M3")]).status_code == 200
    world.open("CB", doc_id)
    start = _published_at(doc_id)
    lines = run_due(start + timedelta(days=7, minutes=1))
    assert any("reminder:v1:d7" in line for line in lines)
    # Pending: S1, CB (opened only), M4 (no phone), S2, BT.
    assert targets(fcm) == devices_of("S1", "CB", "S2", "BT")
    reminder = notification("reminder", doc_id)
    assert (reminder.recipients, reminder.devices, reminder.sent) == (5, 4, 4)
    assert reminder.kind == "reminder"
    message = fcm.messages("fid-S2")[0]["message"]
    assert message["notification"]["title"] == "Nhắc nhở: đồng chí chưa xác nhận Chỉ thị 24-CT/TU"
    run_due(start + timedelta(days=7, minutes=2))
    assert fcm.accepted_count() == 4  # once per round and day
    world.ack("S2", doc_id)
    fcm.reset()
    run_due(start + timedelta(days=12, minutes=1))
    reminded = sorted(m["target"] for m in fcm.messages() if m["message"]["data"]["kind"] == "reminder")
    assert reminded == devices_of("S1", "CB", "BT")


def test_a_member_who_acknowledges_after_planning_is_skipped(world, fcm):
    from push import fanout

    doc_id = world.publish("b1")
    run_due()
    fcm.reset()
    start = _published_at(doc_id)
    from push.schedule import schedule_due

    schedule_due(start + timedelta(days=7, minutes=1))
    planned = plan_chunks(notification("reminder", doc_id).id)
    world.ack("M2", doc_id)
    fanout.send_chunk(planned[0])
    assert "fid-M2" not in targets(fcm) and "fid-M1" in targets(fcm)


def test_whoever_settled_since_planning_gets_no_push_of_that_document_only(world, fcm, app, monkeypatch):
    """Two documents' reminders planned together; then, for document A only, members settle: before the
    first send (M2 acknowledges, S1 gets an extension) their devices get a `skipped` delivery, counted, and
    no push; after a failed first send (M1 acknowledges, S2 gets an extension) their retries are dropped,
    while M3's retry (still pending) goes and what was already sent stays sent. Document B's reminder still
    reaches every one of them."""
    from push import fanout
    from push.schedule import schedule_due

    doc_a = world.publish("b1", "b2")
    doc_b = world.publish("b1", "b2", title="Kế hoạch thực hiện")
    run_due()
    fcm.reset()
    schedule_due(_published_at(doc_b) + timedelta(days=7, minutes=1))
    chunks = {}
    for doc in (doc_a, doc_b):
        chunks[doc] = plan_chunks(notification("reminder", doc).id)
    assert [len(c) for c in chunks.values()] == [1, 1]

    def extend_a(card: str, by: str):
        deadline_day = db.session.get(Document, doc_a).deadline.astimezone(ZONE).date()
        response = world.client.post(f"{API}/documents/{doc_a}/extensions", headers=world.auth(by), json={
            "member_ids": [world.id(card)], "until": (deadline_day + timedelta(days=5)).isoformat(),
            "reason": "Điều trị tại bệnh viện"})
        assert response.status_code == 200, response.get_data(as_text=True)

    assert world.ack("M2", doc_a).status_code == 200
    extend_a("S1", by="S1")
    monkeypatch.setitem(app.config, "PUSH_RETRY_BASE_SECONDS", 0.5)   # no retry falls due within a first send
    for target, times in (("fid-M1", 1), ("fid-S2", 1), ("fid-M3", 2)):
        fcm.set_rule(target=target, error="UNAVAILABLE", times=times)
    fanout.send_chunk(chunks[doc_a][0])   # fid-M1, fid-S2, fid-M3 fail: retries
    fanout.send_chunk(chunks[doc_b][0])   # fid-M3 fails again
    settling = datetime.now(UTC)
    assert world.ack("M1", doc_a).status_code == 200
    extend_a("S2", by="S2")
    for _ in range(40):
        time.sleep(0.1)
        run_due()
        if {notification("reminder", d).state for d in (doc_a, doc_b)} == {"done"}:
            break
    assert {notification("reminder", d).state for d in (doc_a, doc_b)} == {"done"}

    def pushed(doc: int) -> list[str]:
        return sorted(m["target"] for m in fcm.messages() if m["message"]["data"]["document_id"] == str(doc))

    assert pushed(doc_a) == devices_of("CB", "M3", "BT") + ["legacy-M1"]
    audience = ("M1", "M2", "S1", "CB", "M3", "M4", "S2", "BT")   # b1 and b2 (M4 has no phone)
    assert pushed(doc_b) == devices_of(*audience)
    assert [status for _, status in fcm.attempts("fid-M1")] == [503, 200]   # A's retry dropped; B's push
    assert [status for _, status in fcm.attempts("fid-S2")] == [503, 200]
    assert [status for _, status in fcm.attempts("fid-M3")] == [503, 503, 200, 200]
    a = notification("reminder", doc_a)
    states = dict(db.session.execute(select(func.coalesce(Device.fid, Device.token), Delivery.state)
                                     .join(Device, Device.id == Delivery.device_id)
                                     .where(Delivery.notification_id == a.id)).all())
    assert states == {"fid-M1": "skipped", "fid-M2": "skipped", "fid-S1": "skipped", "fid-S2": "skipped",
                      "legacy-M1": "sent", "fid-CB": "sent", "fid-M3": "sent", "fid-BT": "sent"}   # sent stays sent
    assert set(db.session.execute(select(Delivery.attempts, Delivery.claim).where(   # never tried, nor claimed
        Delivery.notification_id == a.id, Delivery.device_id.in_(select(Device.id).where(
            Device.fid.in_(["fid-M2", "fid-S1"]))))).all()) == {(0, 0)}
    assert (a.devices, a.sent) == (len(devices_of(*audience)), 4)
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.notification_id == a.id, Delivery.updated_at.is_(None))) == 0
    dropped = db.session.scalars(select(Delivery.updated_at).where(   # the retries turned skipped: when they were
        Delivery.notification_id == a.id, Delivery.device_id.in_(select(Device.id).where(
            Device.fid.in_(["fid-M1", "fid-S2"]))))).all()
    assert len(dropped) == 2 and all(at >= settling for at in dropped), (dropped, settling)


def test_an_extension_runs_through_its_last_day_in_hanoi_whatever_the_server_s_zone(world):
    """Whom reminders and escalations are about (fanout.remindable_condition): a member whose extension
    ends today in Hà Nội is not, one whose extension ended yesterday is, on a server whose own zone is 14
    hours ahead of UTC or 12 behind (between the two, one is on another date than Hà Nội at any hour)."""
    from content.models import Receipt
    from handbook.members import Member
    from push.fanout import remindable_condition

    doc = world.publish("b1")
    today = datetime.now(ZONE).date()
    ends_today, ended = world.id("M1"), world.id("M2")
    for member_id, until in ((ends_today, today), (ended, today - timedelta(days=1))):
        db.session.add(Receipt(document_id=doc, member_id=member_id, extended_until=until,
                               extension_reason="Điều trị tại bệnh viện", extended_by=world.id("S1")))
    db.session.commit()
    stored = db.session.get(Document, doc)
    remindable = {}
    for zone in ("Etc/GMT-14", "Etc/GMT+12"):   # POSIX signs: UTC+14 and UTC-12
        with in_server_zone(zone):
            remindable[zone] = set(db.session.scalars(select(Member.id).where(
                Member.id.in_([ends_today, ended]), remindable_condition(stored))))
    assert remindable == {"Etc/GMT-14": {ended}, "Etc/GMT+12": {ended}}


def test_no_reminders_after_the_deadline_and_only_the_latest_missed_day(world, fcm):
    doc_id = world.publish("b1")
    run_due()
    fcm.reset()
    start = _published_at(doc_id)
    run_due(start + timedelta(days=12, hours=1))  # the worker was down on day 7
    reminders = db.session.scalars(select(Notification).where(Notification.kind == "reminder")
                                   .order_by(Notification.dedupe_key)).all()
    assert [(r.dedupe_key, r.state) for r in reminders] == [("reminder:v1:d12", "done"),
                                                           ("reminder:v1:d7", "cancelled")]
    fcm.reset()
    run_due(start + timedelta(days=16))  # past the deadline: day 14 is not sent
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.dedupe_key == "reminder:v1:d14", Notification.state != "cancelled")) == 0


def test_a_material_change_asks_again_and_restarts_the_reminders(world, fcm):
    doc_id = world.publish("b1")
    run_due()
    world.ack("M1", doc_id)
    assert world.exempt("S1", doc_id, [world.id("M2")]).status_code == 200
    fcm.reset()
    world.patch(doc_id, reack=True)
    run_due()
    # Everyone in b1 except the exempt M2 must acknowledge version 2.
    assert targets(fcm) == devices_of("M1", "S1", "CB")
    # Only they get it in their inbox, counted as its recipients (not planned for M2, then skipped).
    reack = notification("reack", doc_id)
    assert reack.recipients == 3
    assert sorted(db.session.scalars(select(InboxItem.member_id).where(InboxItem.notification_id == reack.id))) \
        == sorted(world.id(c) for c in ("M1", "S1", "CB"))
    message = fcm.messages("fid-M1")[0]["message"]
    assert message["data"]["kind"] == "reack" and message["data"]["version"] == "2"
    assert message["notification"]["title"].startswith("Chỉ thị 24-CT/TU đã được sửa đổi")
    fcm.reset()
    reack_at = notification("reack", doc_id).created_at
    run_due(reack_at + timedelta(days=7, minutes=1))
    assert notification("reminder", doc_id).dedupe_key == "reminder:v2:d7"
    assert targets(fcm) == devices_of("M1", "S1", "CB")


def test_escalations_tell_each_secretary_who_is_pending(world, fcm, tree):
    from tests.factories import member, unit

    b3 = unit("HN.BD.DB.3", "branch", tree["phuong"], "Chi bộ Tổ dân phố số 3")  # no secretary of its own
    member("M7", b3, name="Trịnh Văn Phúc")
    member("SP", tree["b2"], name="Mai Thị Quế", roles=[("secretary", tree["phuong"])])
    world.client.post(f"{API}/me/devices", json={"fid": "fid-SP", "platform": "android"}, headers=world.auth("SP"))
    doc_id = world.publish("phuong")
    run_due()
    world.ack("M1", doc_id)
    world.ack("M3", doc_id)
    fcm.reset()
    start = _published_at(doc_id)
    run_due(start + timedelta(days=12, minutes=1))
    escalation = notification("escalation", doc_id)
    assert escalation.recipients == 3  # S1 (b1), S2 (b2), SP (b3, through the phường)
    inbox = world.client.get(f"{API}/me/notifications", headers=world.auth("S1")).json["items"]
    item = next(i for i in inbox if i["kind"] == "escalation")
    assert item["units"] == [{"id": tree["b1"].id, "code": "HN.BD.DB.1", "name": "Chi bộ Tổ dân phố số 1",
                              "pending": 3, "names": ["Lê Văn Cường", "Phạm Thị Dung", "Trần Thị Bình"]}]
    assert item["title"] == "3 đảng viên chưa xác nhận Chỉ thị 24-CT/TU"
    sp_item = next(i for i in world.client.get(f"{API}/me/notifications", headers=world.auth("SP")).json["items"]
                   if i["kind"] == "escalation")
    assert [(u["code"], u["names"]) for u in sp_item["units"]] == [("HN.BD.DB.3", ["Trịnh Văn Phúc"])]
    pushed = {m["target"]: m["message"] for m in fcm.messages() if m["message"]["data"]["kind"] == "escalation"}
    assert sorted(pushed) == ["fid-S1", "fid-S2", "fid-SP"]
    assert pushed["fid-S1"]["android"]["collapse_key"] == f"doc-{doc_id}-escalation"
    assert "Trần Thị Bình" in pushed["fid-S1"]["notification"]["body"]
    # Every inbox item of the escalation carries the instant it was planned, as every notification's do
    # (the inbox is ordered by it): one time for all three, the one its chunks start at.
    from push.models import PushChunk

    created = set(db.session.scalars(select(InboxItem.created_at).where(InboxItem.notification_id == escalation.id)))
    planned = set(db.session.scalars(select(PushChunk.not_before).where(PushChunk.notification_id == escalation.id)))
    assert len(created) == 1 and created == planned, (created, planned)
    fcm.reset()
    run_due(start + timedelta(days=12, minutes=2))
    assert fcm.accepted_count() == 0


# --- manual reminders ------------------------------------------------------------------------------


def remind(api: Api, card: str, doc_id: int, unit: str | int):
    unit_id = unit if isinstance(unit, int) else api.tree[unit].id
    return api.client.post(f"{API}/documents/{doc_id}/reminders", json={"org_unit": unit_id},
                           headers=api.auth(card))


def test_a_secretary_reminds_the_pending_members_of_a_unit_once_a_day(world, fcm):
    doc_id = world.publish("city")
    run_due()
    world.ack("M1", doc_id)
    fcm.reset()
    response = remind(world, "S1", doc_id, "b1")
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.json["recipients"] == 3  # M2, S1, CB
    run_due()
    assert targets(fcm) == devices_of("M2", "S1", "CB")
    assert fcm.messages("fid-CB")[0]["message"]["notification"]["title"].startswith("Chi ủy nhắc")
    again = remind(world, "S1", doc_id, "b1")
    assert_problem(again, 429, "reminder_too_soon")
    assert 86000 < int(again.headers["Retry-After"]) <= 86401
    assert remind(world, "S2", doc_id, "b2").status_code == 202  # another unit has its own budget
    # A day later the unit may be reminded again.
    db.session.execute(Notification.__table__.update().values(created_at=datetime.now(ZONE) - timedelta(hours=25)))
    db.session.commit()
    assert remind(world, "S1", doc_id, "b1").status_code == 202
    audit = world.audit("notification.manual")
    assert len(audit) == 3


def test_the_24_hours_of_a_manual_reminder_end_to_the_microsecond_and_each_reminder_is_audited(world, fcm):
    """The domain call behind POST /documents/{id}/reminders, at chosen instants: within 24 hours of the
    last reminder of a unit it is 429 with the wait rounded up to a whole second (at least 1) and the
    local (Hà Nội) moment it ends; at exactly 24 hours it is allowed again. Each reminder is audited whole."""
    from handbook.errors import ProblemError
    from handbook.members import Member
    from handbook.timeutil import utcnow
    from push.schedule import remind as remind_at

    doc_id = world.publish("city")
    secretary, b1 = db.session.get(Member, world.id("S1")), world.tree["b1"].id
    t0 = utcnow().replace(microsecond=0) + timedelta(minutes=1)
    day = timedelta(hours=24)
    published = as_naive(db.session.get(Document, doc_id).published_at)
    with pytest.raises(ProblemError, match="document_not_out"):   # judged at the request's time
        remind_at(secretary, doc_id, b1, now=published.replace(tzinfo=UTC) - timedelta(microseconds=1))
    first = remind_at(secretary, doc_id, b1, now=t0)

    refused = []
    with in_server_zone("Asia/Tokyo"):   # the server's own zone is not Hà Nội's
        for now in (t0 + day - timedelta(seconds=1.5), t0 + day - timedelta(microseconds=1)):
            with pytest.raises(ProblemError) as caught:
                remind_at(secretary, doc_id, b1, now=now)
            e = caught.value
            refused.append((e.code, e.status, e.headers, e.extra))
    at = (t0 + day).astimezone(ZONE).isoformat()   # whole seconds: t0 is
    assert at.endswith("+07:00")
    assert refused == [   # waits of 1.5 s and 1 µs, rounded up to 2 s and 1 s: either way back at t0 + 24 h
        ("reminder_too_soon", 429, {"Retry-After": "2"}, {"retry_after": 2, "retry_at": at}),
        ("reminder_too_soon", 429, {"Retry-After": "1"}, {"retry_after": 1, "retry_at": at}),
    ]
    second = remind_at(secretary, doc_id, b1, now=t0 + day)   # 24 hours exactly: allowed again

    audited = [(e["actor"]["id"] if e.get("actor") else None, e["target_type"], e["target_id"], e["details"])
               for e in reversed(world.audit("notification.manual"))]
    assert audited == [(secretary.id, "document", str(doc_id),
                        {"org_unit_id": b1, "notification_id": r["notification_id"], "recipients": 4})
                       for r in (first, second)]
    assert first["notification_id"] != second["notification_id"]
    created = db.session.execute(select(Notification.created_at, Notification.due_at)
                                 .where(Notification.kind == "manual").order_by(Notification.id)).all()
    assert [(as_naive(c), as_naive(d)) for c, d in created] == [(as_naive(t0),) * 2, (as_naive(t0 + day),) * 2]


def as_naive(value: datetime) -> datetime:
    from handbook.timeutil import as_utc

    return as_utc(value).replace(tzinfo=None)


def test_a_manual_reminder_locks_its_unit_against_another_reminder_but_not_its_key(world, fcm, app, backend):
    """PostgreSQL: a reminder holds its unit FOR NO KEY UPDATE, so two reminders of one unit take turns
    (the 24-hour rule holds), while a foreign-key check on the unit (KEY SHARE: a recount inserting its
    counters) does not hold a reminder up."""
    from tests.factories import answered_while_row_held

    if backend != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    doc_id = world.publish("city")
    b1, headers = world.tree["b1"].id, world.auth("S1")

    def post(client):
        return client.post(f"{API}/documents/{doc_id}/reminders", json={"org_unit": b1}, headers=headers).status_code

    first = answered_while_row_held(app, post, "org_units", b1, "FOR KEY SHARE", wait=10)
    second = answered_while_row_held(app, post, "org_units", b1, "FOR NO KEY UPDATE", wait=1)   # another reminder
    assert (first, second) == ((True, 202), (False, 429))


def test_manual_reminders_need_a_secretary_over_the_unit(world, fcm):
    doc_id = world.publish("city")
    assert_problem(remind(world, "M1", doc_id, "b1"), 403, "forbidden")
    assert_problem(remind(world, "CB", doc_id, "b1"), 403, "forbidden")   # committee: sees progress only
    assert_problem(remind(world, "S2", doc_id, "b1"), 403, "forbidden")   # another branch
    assert_problem(remind(world, "S1", doc_id, 999999), 404, "not_found")
    assert_problem(remind(world, "S1", 999999, "b1"), 404, "not_found")
    assert remind(world, "BT", doc_id, "b1").status_code == 202          # admin over the city
    no_ack = world.publish("city", requires_ack=False, title="Thông tin tham khảo")
    assert_problem(remind(world, "S1", no_ack, "b1"), 409, "ack_not_required")
    bad = world.client.post(f"{API}/documents/{doc_id}/reminders", json={"org_unit": "b1"}, headers=world.auth("S1"))
    assert_problem(bad, 422, "validation_error")


def test_concurrent_manual_reminders_make_one(world, fcm, app, backend):
    from tests.factories import in_parallel

    doc_id = world.publish("city")
    headers = world.auth("S1")
    codes = in_parallel(app, 4, lambda c: c.post(f"{API}/documents/{doc_id}/reminders",
                                                 json={"org_unit": world.tree["b1"].id}, headers=headers))
    assert sorted(codes) == [202, 429, 429, 429]


def test_a_manual_reminder_in_quiet_hours_waits_for_morning(world, fcm, quiet):
    """Run inside the window (21:00-07:00), the reminder is not sent; at 07:00 it is (a manual reminder
    is not urgent)."""
    doc_id = world.publish("city")
    response = remind(world, "S1", doc_id, "b1")
    assert response.status_code == 202
    now = datetime.now(ZONE)
    # The first instant in the window at or after the reminder, and the morning that ends that night.
    night = now + timedelta(minutes=1) if now.hour >= 21 or now.hour < 6 else local(0, 21, 30, now)
    morning = local(1 if night.hour >= 21 else 0, 7, 0, night)
    assert datetime.fromisoformat(response.json["due_at"]) <= morning

    def manual_sent() -> list[str]:
        return sorted(m["target"] for m in fcm.messages() if m["message"]["data"]["kind"] == "manual")

    for at in (night, morning - timedelta(minutes=1)):
        run_due(at)
        assert manual_sent() == [], at
    run_due(morning)
    assert manual_sent() == devices_of("M1", "M2", "S1", "CB")


def test_quiet_ends_is_the_next_end_of_the_window_in_local_time(app, quiet):
    """push.schedule.quiet_ends on both sides of midnight, at the window's edges and outside it."""
    from push.schedule import quiet_ends

    day = datetime.now(ZONE) + timedelta(days=3)
    cases = [(local(0, 21, 0, day), local(1, 7, 0, day)), (local(0, 23, 30, day), local(1, 7, 0, day)),
             (local(0, 0, 0, day), local(0, 7, 0, day)), (local(0, 6, 59, day), local(0, 7, 0, day)),
             (local(0, 7, 0, day), local(0, 7, 0, day)), (local(0, 12, 0, day), local(0, 12, 0, day)),
             (local(0, 20, 59, day), local(0, 20, 59, day))]
    for at, expected in cases:
        ends = quiet_ends(at)
        assert ends == expected and ends.utcoffset() is not None, (at, ends)


# --- devices ---------------------------------------------------------------------------------------


def test_devices_not_seen_for_270_days_are_forgotten(world, fcm):
    old = db.session.scalar(select(Device).where(Device.fid == "fid-M3"))
    old.last_seen_at = datetime.now(ZONE) - timedelta(days=271)
    db.session.commit()
    lines = run_due()
    assert "forgot 1 devices not seen for 270 days" in lines
    assert db.session.scalar(select(Device).where(Device.fid == "fid-M3")) is None
    assert db.session.scalar(select(func.count()).select_from(Device)) == 11


def test_the_log_backend_sends_nothing_over_the_network(world, fcm, app, caplog):
    app.config["PUSH_BACKEND"] = "log"
    world.publish("b1")
    with caplog.at_level("INFO", logger="handbook.push"):
        run_due()
    assert fcm.accepted_count() == 0
    assert sum("push (log backend)" in r.getMessage() for r in caplog.records) == 5
    assert not any("fid-M1" in r.getMessage() or "legacy-M1" in r.getMessage() for r in caplog.records)
    assert db.session.scalar(select(func.count()).select_from(InboxItem)) == 4


# --- the ways it runs ------------------------------------------------------------------------------


def test_the_cli_sends_what_is_due_and_is_safe_to_run_twice(world, fcm, app):
    doc_id = world.publish("city")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["handbook", "push", "run-due"])
    assert first.exit_code == 0, first.output
    n = notification("published", doc_id)
    assert f"notification {n.id} (published, document {doc_id}: 24-CT/TU" in first.output
    assert "12 recipients, 12 devices, 12 sent" in first.output
    second = runner.invoke(args=["handbook", "push", "run-due"])
    assert second.exit_code == 0 and second.output.strip() == "Nothing due."
    at = (_published_at(doc_id) + timedelta(days=7, minutes=1)).astimezone(ZONE).isoformat()
    reminder = runner.invoke(args=["handbook", "push", "run-due", "--at", at])
    assert "scheduled reminder reminder:v1:d7" in reminder.output and "(reminder, document" in reminder.output
    assert fcm.accepted_count() == 24
    assert runner.invoke(args=["handbook", "push", "run-due", "--at", at]).output.strip() == "Nothing due."
    for bad in ("tomorrow", "2026-12-01T08:00:00"):
        result = runner.invoke(args=["handbook", "push", "run-due", "--at", bad])
        assert result.exit_code == 2 and "--at" in result.output


def test_the_embedded_worker_sends_without_any_server(world, fcm, app):
    """No broker: a thread of the API process sends, woken by the publication's commit."""
    from push import embedded

    app.config.update(EMBEDDED_WORKER=True, PUSH_TICK_SECONDS=30)
    try:
        assert embedded.start(app)
        assert not embedded.start(app)  # once per process
        world.publish("city")
        # The tick is 30 s: only the wake-up rung after the commit can make it this fast.
        assert fcm.wait_for(12, timeout=10)
    finally:
        embedded.stop()
        app.config.update(EMBEDDED_WORKER=False, PUSH_TICK_SECONDS=15)
    assert targets(fcm) == devices_of(*WORLD_MEMBERS)


def test_a_broker_switches_the_embedded_worker_off(app):
    from push import embedded

    app.config.update(EMBEDDED_WORKER=True, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    try:
        assert not embedded.start(app)
    finally:
        app.config.update(EMBEDDED_WORKER=False, CELERY_BROKER_URL=None)


def test_the_24_hour_rule_is_per_document_and_counts_manual_reminders_only(world, fcm):
    """A publication pushed to the unit does not count as a reminder; a reminder about one document
    does not hold back one about another; the wait is what is left of the 24 hours, to the second."""
    doc_id = world.publish("city")
    other = world.publish("city", title="Văn bản thứ hai")
    assert remind(world, "BT", doc_id, "city").status_code == 202   # the publication is no reminder
    started = time.monotonic()
    assert remind(world, "S1", doc_id, "b1").status_code == 202
    assert remind(world, "S1", other, "b1").status_code == 202       # another document
    too_soon = remind(world, "S1", doc_id, "b1")
    elapsed = time.monotonic() - started
    assert_problem(too_soon, 429, "reminder_too_soon")
    wait = int(too_soon.headers["Retry-After"])
    assert 24 * 3600 - elapsed - 1 <= wait <= 24 * 3600, (wait, elapsed)


def test_an_escalation_s_inbox_goes_to_active_secretaries_only_and_skips_units_no_secretary_covers(
        world, fcm, tree):
    """Committee members, publishers and an inactive secretary get no list; members of units that no
    secretary covers (the city's own, Đống Đa's) are left out instead of failing the escalation."""
    from tests.factories import member, unit

    member("SX", tree["b1"], name="Bí thư đã nghỉ", roles=[("secretary", tree["b1"])], active=False)
    lone = unit("HN.X", "branch", tree["city"], "Chi bộ trực thuộc chưa có bí thư")  # no secretary above it
    member("X9", lone, name="Đảng viên chi bộ trực thuộc")
    doc_id = world.publish("city")
    run_due()
    run_due(_published_at(doc_id) + timedelta(days=12, minutes=1))
    escalation = notification("escalation", doc_id)
    assert escalation.state == "done"
    db.session.expire_all()
    got = sorted(db.session.scalars(select(InboxItem.member_id).where(InboxItem.notification_id == escalation.id)))
    assert got == sorted(world.id(card) for card in ("S1", "S2", "SD"))
