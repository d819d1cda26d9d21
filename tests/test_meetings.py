"""Branch meetings (API.md "Meetings, questions, adoption"): schedule → invite → RSVP → check-in → close →
briefings in progress → undo; transfers around a meeting, quiet hours, wrong and expired codes, closing
twice, a concurrent check-in burst, the monthly roll-up against a recount, scoping. Real HTTP on the
real app, SQLite and PostgreSQL; pushes go through firebase-admin to the fake FCM.

The world is tests/test_push.py's (tests/test_acknowledgements.py's 12 members with phones):
    b1: M1, M2, S1 (secretary@b1), CB (committee@ba_dinh)   b2: M3, M4, S2 (secretary@b2), BT (publisher, admin)
    cbcs (chi bộ cơ sở, Đống Đa): M5, M6, SD (secretary@cbcs), CD (committee@dong_da)
"""
from __future__ import annotations

import io
import queue
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from content.models import Meeting, MeetingParticipant, Receipt
from handbook.audit import AuditEntry
from handbook.extensions import db
from push.due import run_due
from push.models import InboxItem, Notification
from tests.factories import executed_statements, executed_with_parameters, in_parallel, in_server_zone, member
from tests.test_acknowledgements import API, ZONE, assert_counters_exact, local_today, receipt
from tests.test_errors import assert_problem
from tests.test_progress import write_members


def at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).astimezone(ZONE).isoformat()


def schedule(api, unit: str = "b1", by: str = "S1", *, kind: str = "regular", agenda=(), hours: float = 48,
             expect: int = 201, **extra):
    body = {"title": "Sinh hoạt chi bộ tháng 12", "kind": kind, "starts_at": at(hours), "ends_at": at(hours + 2),
            "place": "Hội trường tổ dân phố số 1", "agenda": list(agenda), **extra}
    response = api.client.post(f"{API}/org-units/{api.tree[unit].id}/meetings", json=body, headers=api.auth(by))
    assert response.status_code == expect, response.get_data(as_text=True)
    return response.json


def start(meeting_id: int, minutes_ago: int = 5) -> None:
    """Move the meeting so that it started `minutes_ago` (and ends in an hour)."""
    now = datetime.now(UTC)
    db.session.execute(update(Meeting).where(Meeting.id == meeting_id).values(
        starts_at=now - timedelta(minutes=minutes_ago), ends_at=now + timedelta(hours=1)))
    db.session.commit()


def get(api, meeting_id: int, by: str):
    return api.client.get(f"{API}/meetings/{meeting_id}", headers=api.auth(by))


def code_of(api, meeting_id: int, by: str = "S1") -> str:
    response = api.client.get(f"{API}/meetings/{meeting_id}/check-in-code", headers=api.auth(by))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["qr_svg"].lstrip().startswith("<svg") and "<script" not in response.json["qr_svg"]
    return response.json["code"]


def check_in(api, meeting_id: int, card: str, code: str):
    return api.client.post(f"{API}/meetings/{meeting_id}/check-in", json={"code": code}, headers=api.auth(card))


def close(api, meeting_id: int, by: str = "S1"):
    return api.client.post(f"{API}/meetings/{meeting_id}/close", headers=api.auth(by))


def inbox_kinds(api, card: str) -> list[str]:
    response = api.client.get(f"{API}/me/notifications", headers=api.auth(card))
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["kind"] for item in response.json["items"]]


# --- the lifecycle -----------------------------------------------------------------------------------

def test_the_whole_lifecycle_briefs_present_members_in_progress_and_can_be_undone(world, fcm):
    api = world
    doc = api.publish("ba_dinh")
    notice = api.publish("ba_dinh", kind="notice", requires_ack=False, title="Thông báo lịch")
    assert api.ack("M1", doc).status_code == 200   # M1 acknowledged in the app before the meeting
    meeting = schedule(api, agenda=[{"title": "Quán triệt Chỉ thị 24", "document_id": doc},
                                    {"title": "Thông báo", "document_id": notice}, {"title": "Việc khác"}])
    assert meeting["status"] == "scheduled" and meeting["counts"]["invited"] == 4   # M1, M2, S1, CB
    assert [a["document"] and a["document"]["id"] for a in meeting["agenda"]] == [doc, notice, None]

    # The invitation reaches every invited phone (and inbox) through the outbox; not b2's.
    run_due()
    invited_phones = {"fid-M1", "legacy-M1", "fid-M2", "fid-S1", "fid-CB"}
    meeting_pushes = [m for m in fcm.messages() if m["message"]["data"].get("kind") == "meeting"]
    assert sorted(m["target"] for m in meeting_pushes) == sorted(invited_phones)
    assert meeting_pushes[0]["message"]["data"]["meeting_id"] == str(meeting["id"])
    assert "meeting" in inbox_kinds(api, "M2") and "meeting" not in inbox_kinds(api, "M3")

    # Answers before the meeting; absent needs a reason.
    rsvp = lambda card, **body: api.client.put(f"{API}/meetings/{meeting['id']}/rsvp", json=body,  # noqa: E731
                                               headers=api.auth(card))
    assert rsvp("M2", response="attending").status_code == 200
    assert_problem(rsvp("CB", response="absent"), 422, "validation_error")
    assert rsvp("CB", response="absent", reason="Đi công tác").status_code == 200
    assert get(api, meeting["id"], "M2").json["counts"] | {} == {
        "invited": 4, "attending": 1, "absent": 1, "present": 0, "excused": 0, "unexcused": 0}
    assert get(api, meeting["id"], "M2").json["my"] == {"rsvp": "attending", "attendance": None}

    # The check-in code only while the meeting is open.
    assert_problem(api.client.get(f"{API}/meetings/{meeting['id']}/check-in-code", headers=api.auth("S1")),
                   409, "meeting_not_open")
    start(meeting["id"])
    assert_problem(rsvp("M1", response="attending"), 409, "meeting_started")
    code = code_of(api, meeting["id"])
    assert check_in(api, meeting["id"], "M1", code).status_code == 200
    assert check_in(api, meeting["id"], "M2", code).status_code == 200
    # S1 has no phone at hand: marked by hand.
    marked = api.client.put(f"{API}/meetings/{meeting['id']}/attendance", json={"present": [api.id("S1")]},
                            headers=api.auth("S1"))
    assert marked.status_code == 200, marked.get_data(as_text=True)

    before = api.figures("BT", doc, "b1")
    closed = close(api, meeting["id"])
    assert closed.status_code == 200, closed.get_data(as_text=True)
    # M1 had acknowledged; M2 and S1 were present and had not: briefed on the directive; the notice needs
    # no acknowledgement, so nobody is briefed on it. CB was absent with a reason: excused.
    assert closed.json == {"attendance": {"invited": 4, "present": 3, "excused": 1, "unexcused": 0},
                           "briefed": [{"document_id": doc, "members": sorted([api.id("M2"), api.id("S1")])},
                                       {"document_id": notice, "members": []}]}
    after = api.figures("BT", doc, "b1")
    assert after["acknowledged"] == before["acknowledged"] + 2
    assert_counters_exact()
    rows = {r["member"]["card_number"]: r for r in api.all_members("S1", doc, org_unit="b1")}
    assert rows["M2"]["method"] == "meeting" and rows["M2"]["state"] == "acknowledged"
    assert rows["M1"]["method"] == "app"
    assert receipt(doc, api.id("M2")).held_on == datetime.fromisoformat(meeting["starts_at"]).date() or \
        receipt(doc, api.id("M2")).held_on == local_today()
    assert get(api, meeting["id"], "CB").json["my"]["attendance"] == "excused"
    assert get(api, meeting["id"], "M1").json["status"] == "closed"

    # Closing again changes nothing and answers the same; one audit entry.
    again = close(api, meeting["id"])
    assert again.status_code == 200 and again.json == closed.json
    assert len(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "meeting.close")).all()) == 1
    assert api.figures("BT", doc, "b1") == after

    # Undone like any briefing.
    assert api.unbrief("S1", doc, api.id("M2")).status_code == 204
    assert api.figures("BT", doc, "b1")["acknowledged"] == after["acknowledged"] - 1
    assert_counters_exact()
    # After the close nothing changes any more.
    assert_problem(api.client.put(f"{API}/meetings/{meeting['id']}/attendance", json={"present": []},
                                  headers=api.auth("S1")), 409, "meeting_closed")
    assert_problem(api.client.patch(f"{API}/meetings/{meeting['id']}", json={"place": "Khác"},
                                    headers=api.auth("S1")), 409, "meeting_closed")


def test_nobody_present_is_unexcused_and_briefs_nobody(api, tree):
    doc = api.publish("b1")
    meeting = schedule(api, agenda=[{"title": "Chỉ thị", "document_id": doc}])
    start(meeting["id"])
    result = close(api, meeting["id"]).json
    assert result == {"attendance": {"invited": 4, "present": 0, "excused": 0, "unexcused": 4},
                      "briefed": [{"document_id": doc, "members": []}]}
    assert api.figures("BT", doc, "b1")["acknowledged"] == 0


def test_a_meeting_cannot_close_before_it_opens_nor_after_cancellation(api, tree):
    meeting = schedule(api)
    assert_problem(close(api, meeting["id"]), 409, "meeting_not_open")
    cancelled = api.client.post(f"{API}/meetings/{meeting['id']}/cancel", json={"reason": "Trùng lịch"},
                                headers=api.auth("S1"))
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    start(meeting["id"])
    assert_problem(close(api, meeting["id"]), 409, "meeting_cancelled")
    assert_problem(check_in(api, meeting["id"], "M1", "123456"), 409, "meeting_cancelled")


# --- validation ----------------------------------------------------------------------------------------

def test_bad_meetings_are_refused_with_the_field_named(api, tree):
    assert api.publish("dong_da") > 0
    elsewhere = api.publish("dong_da", title="Văn bản của Đống Đa")
    cases = [
        ({"starts_at": at(-1), "ends_at": at(1)}, "starts_at"),
        ({"starts_at": at(5), "ends_at": at(4)}, "ends_at"),
        ({"starts_at": at(5), "ends_at": at(30)}, "ends_at"),
        ({"agenda": [{"title": "Văn bản không đọc được", "document_id": elsewhere}]}, "agenda"),
        ({"online_url": "http://example.org/x"}, "online_url"),
        ({"kind": "monthly"}, "kind"),
    ]
    for extra, field in cases:
        body = {"title": "Sinh hoạt", "kind": "regular", "starts_at": at(5), "ends_at": at(6), "place": "Hội trường",
                **extra}
        response = api.client.post(f"{API}/org-units/{api.tree['b1'].id}/meetings", json=body,
                                   headers=api.auth("S1"))
        assert field in assert_problem(response, 422, "validation_error")["errors"], (extra, response.json)
    assert db.session.scalars(select(Meeting)).all() == []


# --- check-in codes ------------------------------------------------------------------------------------

def test_wrong_and_expired_codes_are_refused_and_throttled(api, tree, app):
    from content import meetings

    meeting = schedule(api)
    start(meeting["id"])
    code = code_of(api, meeting["id"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = assert_problem(check_in(api, meeting["id"], "M1", wrong), 422, "invalid_code")
    assert "code" in body["errors"]
    # An expired code: the one of two periods ago.
    row = db.session.get(Meeting, meeting["id"])
    period = int(datetime.now(UTC).timestamp()) // meetings.CODE_PERIOD
    expired = meetings._code(row, period - 2)
    if expired not in (meetings._code(row, period), meetings._code(row, period - 1)):
        assert_problem(check_in(api, meeting["id"], "M1", expired), 422, "invalid_code")
    else:   # (one in a million: the old code equals a current one)
        assert check_in(api, meeting["id"], "M1", wrong).status_code == 422
    # The member's budget (5 wrong codes in 10 minutes) runs out: even the right code waits.
    for _ in range(3):
        assert check_in(api, meeting["id"], "M1", wrong).status_code == 422
    limited = check_in(api, meeting["id"], "M1", code)
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    # Another member is not held by M1's budget; the right code works.
    assert check_in(api, meeting["id"], "M2", code).status_code == 200
    assert db.session.get(MeetingParticipant, (meeting["id"], api.id("M1"))) is None


def test_the_meetings_budget_of_wrong_codes_holds_across_members(api, tree, app):
    app.config["CHECK_IN_LIMIT_PER_MEETING"] = "6 per 10 minutes"
    try:
        meeting = schedule(api)
        start(meeting["id"])
        code = code_of(api, meeting["id"])
        wrong = f"{(int(code) + 7) % 1_000_000:06d}"
        for card in ("M1", "M2", "S1"):
            for _ in range(2):
                assert check_in(api, meeting["id"], card, wrong).status_code == 422
        assert_problem(check_in(api, meeting["id"], "CB", code), 429, "rate_limited")
    finally:
        app.config["CHECK_IN_LIMIT_PER_MEETING"] = "30 per 10 minutes"


def test_check_in_closes_when_the_meeting_ends(api, tree):
    meeting = schedule(api)
    now = datetime.now(UTC)
    db.session.execute(update(Meeting).where(Meeting.id == meeting["id"]).values(
        starts_at=now - timedelta(hours=2), ends_at=now - timedelta(minutes=1)))
    db.session.commit()
    assert_problem(api.client.get(f"{API}/meetings/{meeting['id']}/check-in-code", headers=api.auth("S1")),
                   409, "meeting_not_open")
    assert_problem(check_in(api, meeting["id"], "M1", "000000"), 409, "meeting_not_open")
    assert close(api, meeting["id"]).status_code == 200   # the secretary still closes it afterwards


@pytest.fixture()
def many_logins(app):
    app.config["LOGIN_LIMIT_PER_IP"] = "1000 per minute"
    yield
    app.config["LOGIN_LIMIT_PER_IP"] = "60 per minute;600 per hour"


def test_a_burst_of_check_ins_from_a_60_member_branch(backend, app, api, tree, many_logins):
    cards = [f"B{i:02d}" for i in range(60)]
    for card in cards:
        member(card, tree["b2"], name=f"Đảng viên {card}")
    db.session.commit()
    auth = {card: api.auth(card) for card in cards}
    meeting = schedule(api, "b2", "S2")
    start(meeting["id"])
    code = code_of(api, meeting["id"], "S2")
    calls = queue.Queue()
    for card in cards:
        calls.put(card)

    def request(c):
        return c.post(f"{API}/meetings/{meeting['id']}/check-in", json={"code": code}, headers=auth[calls.get()])

    threads = 60 if backend == "postgresql" else 8
    statuses = []
    while not calls.empty():
        statuses += in_parallel(app, min(threads, calls.qsize()), request)
    assert statuses == [200] * 60
    counts = get(api, meeting["id"], "S2").json["counts"]
    assert counts["present"] == 60 and counts["invited"] == 64
    assert close(api, meeting["id"], "S2").json["attendance"] == {"invited": 64, "present": 60, "excused": 0,
                                                                 "unexcused": 4}


# --- transfers, notices, quiet hours -----------------------------------------------------------------------

def test_who_is_invited_follows_transfers_until_the_close(api, tree, tmp_path):
    from handbook.imports import import_members

    member("T1", tree["b2"], name="Người chuyển đến")
    db.session.commit()
    meeting = schedule(api)
    assert api.client.put(f"{API}/meetings/{meeting['id']}/rsvp", json={"response": "attending"},
                          headers=api.auth("M2")).status_code == 200
    assert get(api, meeting["id"], "T1").status_code == 404
    # T1 moves into b1, M2 moves out to b2, before the meeting is held.
    path = write_members(tmp_path, "moves.csv", [["T1", "Người chuyển đến", "HN.BD.DB.1"],
                                                 ["M2", "Trần Thị Bình", "HN.BD.DB.2"]])
    assert import_members(path).ok
    assert get(api, meeting["id"], "T1").status_code == 200
    assert get(api, meeting["id"], "M2").status_code == 404
    start(meeting["id"])
    code = code_of(api, meeting["id"])
    assert check_in(api, meeting["id"], "T1", code).status_code == 200
    assert check_in(api, meeting["id"], "M2", code).status_code == 404
    result = close(api, meeting["id"]).json
    assert result["attendance"] == {"invited": 4, "present": 1, "excused": 0, "unexcused": 3}
    invited = set(db.session.scalars(select(MeetingParticipant.member_id).where(
        MeetingParticipant.meeting_id == meeting["id"])))
    assert invited == {api.id(c) for c in ("M1", "S1", "CB", "T1")}
    # After the close the list is fixed: M2 moving back does not make them invited.
    path = write_members(tmp_path, "back.csv", [["M2", "Trần Thị Bình", "HN.BD.DB.1"]])
    assert import_members(path).ok
    assert get(api, meeting["id"], "M2").status_code == 404
    assert get(api, meeting["id"], "T1").json["my"]["attendance"] == "present"


def test_a_move_and_a_cancellation_tell_the_invited_and_move_the_reminder(world, fcm):
    api = world
    meeting = schedule(api, hours=48)
    reminder = db.session.scalar(select(Notification).where(Notification.kind == "meeting_reminder",
                                                            Notification.meeting_id == meeting["id"]))
    due = datetime.fromisoformat(meeting["starts_at"]) - timedelta(hours=24)
    assert abs((reminder.due_at.replace(tzinfo=reminder.due_at.tzinfo or UTC) - due).total_seconds()) < 2
    moved = api.client.patch(f"{API}/meetings/{meeting['id']}", headers=api.auth("S1"),
                             json={"starts_at": at(72), "ends_at": at(74)})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    db.session.expire_all()
    reminders = db.session.scalars(select(Notification).where(Notification.kind == "meeting_reminder",
                                                              Notification.meeting_id == meeting["id"])
                                   .order_by(Notification.id)).all()
    assert [r.state for r in reminders] == ["cancelled", "pending"]
    assert db.session.scalar(select(Notification).where(Notification.kind == "meeting_changed")) is not None
    # Changing only the note tells nobody.
    api.client.patch(f"{API}/meetings/{meeting['id']}", headers=api.auth("S1"), json={"note": "Mang sổ"})
    assert len(db.session.scalars(select(Notification).where(Notification.kind == "meeting_changed")).all()) == 1

    # A secretary of another branch cannot change it (404: they do not even see it).
    assert_problem(api.client.patch(f"{API}/meetings/{meeting['id']}", headers=api.auth("S2"),
                                    json={"place": "x"}), 404, "not_found")
    # An invited member sees it but may not run it.
    assert_problem(api.client.patch(f"{API}/meetings/{meeting['id']}", headers=api.auth("M1"),
                                    json={"place": "x"}), 403, "forbidden")

    assert api.client.post(f"{API}/meetings/{meeting['id']}/cancel", json={"reason": "Trùng lịch"},
                           headers=api.auth("S1")).status_code == 200
    db.session.expire_all()
    states = {n.kind: n.state for n in db.session.scalars(select(Notification).where(
        Notification.meeting_id == meeting["id"]).order_by(Notification.id))}
    assert states["meeting_reminder"] == "cancelled" and states["meeting_cancelled"] == "pending"
    run_due()
    kinds = [m["message"]["data"]["kind"] for m in fcm.messages() if m["target"] == "fid-M2"]
    assert kinds.count("meeting_cancelled") == 1 and "meeting_reminder" not in kinds
    assert "meeting_cancelled" in inbox_kinds(api, "M2")


def local(day_offset: int, hour: int, minute: int = 0) -> datetime:
    base = datetime.now(ZONE) + timedelta(days=day_offset)
    return base.replace(hour=hour, minute=minute, second=0, microsecond=0)


def test_quiet_hours_hold_meeting_notices_and_the_reminder_skips_those_who_said_no(world, fcm, app):
    api = world
    meeting = schedule(api, hours=60)   # the reminder falls due in 36 hours
    assert api.client.put(f"{API}/meetings/{meeting['id']}/rsvp", json={"response": "absent", "reason": "Ốm"},
                          headers=api.auth("M2")).status_code == 200
    app.config["QUIET_HOURS"] = "21:00-07:00"
    try:
        run_due(local(1, 23, 30))   # the invitation is due, but it is night
        assert [m for m in fcm.messages() if m["message"]["data"]["kind"].startswith("meeting")] == []
        assert db.session.scalar(select(InboxItem)) is None
    finally:
        app.config["QUIET_HOURS"] = ""
    reminder_due = datetime.fromisoformat(meeting["starts_at"]) - timedelta(hours=24)
    run_due(reminder_due + timedelta(minutes=1))   # (quiet hours are off again)
    by_kind: dict[str, set] = {}
    for m in fcm.messages():
        by_kind.setdefault(m["message"]["data"]["kind"], set()).add(m["target"])
    assert by_kind["meeting"] == {"fid-M1", "legacy-M1", "fid-M2", "fid-S1", "fid-CB"}
    assert by_kind["meeting_reminder"] == {"fid-M1", "legacy-M1", "fid-S1", "fid-CB"}   # not M2: absent


def test_a_reminder_held_past_the_start_is_not_sent(world, fcm, app):
    api = world
    meeting = schedule(api, hours=30)
    run_due()   # the invitation goes now
    fcm.reset()
    start(meeting["id"])
    lines = run_due()
    assert any("meeting reminder" in line for line in lines), lines
    assert [m for m in fcm.messages() if m["message"]["data"]["kind"] == "meeting_reminder"] == []


# --- who may do what ---------------------------------------------------------------------------------------

def test_scoping(api, tree):
    meeting = schedule(api)
    assert get(api, meeting["id"], "M1").status_code == 200        # invited
    assert get(api, meeting["id"], "CB").status_code == 200        # invited (and committee over Ba Đình)
    assert get(api, meeting["id"], "BT").status_code == 200        # admin over the city
    for outsider in ("M3", "S2", "SD", "CD"):
        assert_problem(get(api, meeting["id"], outsider), 404, "not_found")
    # Scheduling: only the unit's secretary (or an admin) for a branch; 403 for others.
    schedule(api, "b1", "S2", expect=403)
    schedule(api, "b1", "M1", expect=403)
    schedule(api, "b1", "CB", expect=403)
    # A committee member over a grassroots unit: thematic meetings of its subtree only.
    thematic = schedule(api, "phuong", "CB", kind="thematic")
    assert thematic["counts"]["invited"] == 8                       # b1 and b2
    assert_problem(api.client.post(f"{API}/org-units/{tree['phuong'].id}/meetings", headers=api.auth("CB"), json={
        "title": "x", "kind": "regular", "starts_at": at(5), "ends_at": at(6), "place": "x"}), 422, "validation_error")
    assert get(api, thematic["id"], "M3").status_code == 200
    # Lists: the unit's follow-up roles see its subtree's meetings; a unit outside the scope is 403.
    listed = api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings", headers=api.auth("CB"))
    assert {m["id"] for m in listed.json["items"]} == {meeting["id"], thematic["id"]}
    assert_problem(api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings", headers=api.auth("SD")),
                   403, "forbidden")
    mine = api.client.get(f"{API}/me/meetings", headers=api.auth("M3")).json["items"]
    assert [m["id"] for m in mine] == [thematic["id"]]
    mine = api.client.get(f"{API}/me/meetings", headers=api.auth("M1")).json["items"]
    assert {m["id"] for m in mine} == {meeting["id"], thematic["id"]}
    # Only runners see the code or mark attendance; a follow-up role that is not a runner gets 403.
    start(meeting["id"])
    assert_problem(api.client.get(f"{API}/meetings/{meeting['id']}/check-in-code", headers=api.auth("M1")),
                   403, "forbidden")
    assert_problem(api.client.get(f"{API}/meetings/{meeting['id']}/check-in-code", headers=api.auth("CD")),
                   404, "not_found")
    # A follower who is not invited (BT: admin of the city, member of b2) cannot check in.
    assert_problem(check_in(api, meeting["id"], "BT", "000000"), 403, "forbidden")
    # Marking someone who is not invited is refused, nothing written.
    response = api.client.put(f"{API}/meetings/{meeting['id']}/attendance", json={"present": [api.id("M3")]},
                              headers=api.auth("S1"))
    assert "member_ids" in assert_problem(response, 422, "validation_error")["errors"]
    assert db.session.scalars(select(MeetingParticipant)).all() == []


# --- the monthly roll-up -------------------------------------------------------------------------------

def _hold(api, unit: str, by: str, kind: str, present_cards: list[str], when: datetime) -> int:
    """A meeting held at `when` (in the past): scheduled, moved back there (a past meeting is open until
    it is closed), marked and closed through the API, so that the close counts it in its month."""
    meeting = schedule(api, unit, by, kind=kind)
    db.session.execute(update(Meeting).where(Meeting.id == meeting["id"]).values(
        starts_at=when, ends_at=when + timedelta(hours=2)))
    db.session.commit()
    if present_cards:
        marked = api.client.put(f"{API}/meetings/{meeting['id']}/attendance", headers=api.auth(by),
                                json={"present": [api.id(c) for c in present_cards]})
        assert marked.status_code == 200, marked.get_data(as_text=True)
    assert close(api, meeting["id"], by).status_code == 200
    return meeting["id"]


def test_the_monthly_roll_up_equals_a_recount(api, tree):
    month_start = datetime(2026, 10, 1, tzinfo=ZONE)
    _hold(api, "b1", "S1", "regular", ["M1", "M2", "S1"], month_start + timedelta(days=4, hours=8))
    _hold(api, "b1", "S1", "thematic", ["M1"], month_start + timedelta(days=10, hours=8))
    _hold(api, "cbcs", "SD", "regular", ["M5"], month_start + timedelta(days=20, hours=8))
    _hold(api, "b2", "S2", "regular", ["M3"], month_start - timedelta(days=2))            # September
    _hold(api, "b2", "S2", "extraordinary", ["M3", "M4"], month_start + timedelta(days=3))

    response = api.client.get(f"{API}/org-units/{tree['city'].id}/meetings/stats", query_string={"month": "2026-10"},
                              headers=api.auth("BT"))
    assert response.status_code == 200, response.get_data(as_text=True)
    stats = response.json
    # The recount, by hand from what was held: 3 member-holding units; b1 and cbcs held a regular meeting
    # in October; 4 meetings; present 3+1+1+2 of invited 4+4+4+4.
    assert (stats["branches"], stats["branches_with_regular_meeting"], stats["meetings"]) == (3, 2, 4)
    assert stats["attendance_rate"] == round(7 / 16, 4)
    children = {c["org_unit"]["code"]: c for c in stats["children"]}
    assert (children["HN.BD"]["branches"], children["HN.BD"]["branches_with_regular_meeting"],
            children["HN.BD"]["meetings"]) == (2, 1, 3)
    assert children["HN.BD"]["attendance_rate"] == round(6 / 12, 4)
    assert (children["HN.DD"]["branches"], children["HN.DD"]["branches_with_regular_meeting"]) == (1, 1)
    assert [c["org_unit"]["code"] for c in stats["children"]] == ["HN.BD", "HN.DD"]   # lowest share first
    # October is over: b2 never held its regular meeting in it.
    assert [b["code"] for b in stats["overdue_branches"]] == ["HN.BD.DB.2"] and stats["overdue_count"] == 1
    # A branch's own figures count the branch and its meetings once.
    own = api.client.get(f"{API}/org-units/{tree['b1'].id}/meetings/stats", query_string={"month": "2026-10"},
                         headers=api.auth("S1")).json
    assert (own["branches"], own["branches_with_regular_meeting"], own["meetings"], own["children"]) == (1, 1, 2, [])
    assert own["attendance_rate"] == round(4 / 8, 4) and own["overdue_count"] == 0
    september = api.client.get(f"{API}/org-units/{tree['city'].id}/meetings/stats",
                               query_string={"month": "2026-09"}, headers=api.auth("BT")).json
    assert (september["branches_with_regular_meeting"], september["meetings"]) == (1, 1)
    # The district's view, and its export.
    district = api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings/stats",
                              query_string={"month": "2026-10"}, headers=api.auth("CB")).json
    assert district["meetings"] == 3 and [c["org_unit"]["code"] for c in district["children"]] == ["HN.BD.DB"]
    exported = api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings/stats",
                              query_string={"month": "2026-10", "format": "csv"}, headers=api.auth("CB"))
    assert exported.status_code == 200 and exported.content_type.startswith("text/csv")
    lines = exported.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Mã đơn vị,") and lines[1].startswith("HN.BD,") and ",3," in lines[1]
    xlsx = api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings/stats",
                          query_string={"month": "2026-10", "format": "xlsx"}, headers=api.auth("CB"))
    assert xlsx.status_code == 200 and xlsx.get_data()[:2] == b"PK"
    assert_problem(api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings/stats",
                                  query_string={"month": "2026-10"}, headers=api.auth("SD")), 403, "forbidden")
    for month in ("2026-13", "0000-01", "9999-12"):   # (0000-01 answered 500: found by the fuzzing's second seed)
        assert_problem(api.client.get(f"{API}/org-units/{tree['ba_dinh'].id}/meetings/stats",
                                      query_string={"month": month}, headers=api.auth("CB")), 422, "validation_error")


@pytest.mark.parametrize("card", ["M1", "S1"])
def test_the_meeting_notifications_figures_are_for_its_runners(world, fcm, card):
    api = world
    meeting = schedule(api)
    run_due()
    notification = db.session.scalar(select(Notification).where(Notification.meeting_id == meeting["id"],
                                                                Notification.kind == "meeting"))
    response = api.client.get(f"{API}/admin/notifications/{notification.id}", headers=api.auth(card))
    if card == "S1":
        assert response.status_code == 200 and response.json["meeting_id"] == meeting["id"]
        assert response.json["recipients"] == 4 and response.json["sent"] == 5
    else:
        assert_problem(response, 404, "not_found")


def test_a_meeting_briefs_its_audience_at_noon_of_the_meeting_day_and_audits_it(api, tree):
    """brief_at_meeting, as the close calls it: only present members of the document's audience are
    briefed; the acknowledgement time is 12:00 local time on the meeting's day; the receipt carries no
    app fields; one audit entry names the actor, the document, the members, the day and the meeting. A
    document that is scheduled but not out yet briefs nobody."""
    from datetime import time

    from content.acknowledgements import brief_at_meeting
    from content.models import Document
    from handbook.members import Member

    doc = api.publish("b1")
    published_at = datetime.now(UTC) - timedelta(days=3)
    db.session.get(Document, doc).published_at = published_at
    db.session.commit()
    m1, m3, s1 = api.id("M1"), api.id("M3"), api.id("S1")   # M3 is b2's: outside the audience
    held_on = local_today() - timedelta(days=1)
    briefed = brief_at_meeting(db.session.get(Member, s1), doc, [m3, m1], held_on, 77)
    db.session.commit()
    assert briefed == [m1]
    assert receipt(doc, m3) is None
    stored = receipt(doc, m1)
    noon = datetime.combine(held_on, time(12, 0), tzinfo=ZONE)
    assert stored.acknowledged_at == noon, (stored.acknowledged_at, noon)
    assert (stored.method, stored.held_on, stored.recorded_by, stored.acknowledged_version, stored.note) == (
        "meeting", held_on, s1, 1, None)
    assert (stored.platform, stored.device, stored.client_acknowledged_at) == (None, None, None)
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "acknowledgement.briefing")).all()
    assert [(e.actor_id, e.target_type, e.target_id, e.details) for e in entries] == [
        (s1, "document", str(doc), {"members": [m1], "held_on": held_on.isoformat(), "method": "meeting",
                                    "meeting": 77})]
    assert_counters_exact()

    # Scheduled for tomorrow: in an active status, but not out yet.
    later = api.publish("b1", title="Kế hoạch tháng sau")
    row = db.session.get(Document, later)
    row.status, row.published_at = "scheduled", datetime.now(UTC) + timedelta(days=1)
    db.session.commit()
    assert brief_at_meeting(db.session.get(Member, s1), later, [m1], local_today(), 78) == []
    db.session.commit()
    assert receipt(later, m1) is None


# --- per-member deadline extensions (API.md "Deadline extensions") -------------------------------------------

def _past_deadline(doc_id: int, days: int = 2) -> None:
    from content.models import Document

    db.session.get(Document, doc_id).deadline = datetime.now(UTC) - timedelta(days=days)
    db.session.commit()


def extend(api, doc: int, cards: list[str], until, by: str = "S1", reason: str = "Điều trị tại bệnh viện"):
    return api.client.post(f"{API}/documents/{doc}/extensions", headers=api.auth(by), json={
        "member_ids": [api.id(c) for c in cards], "until": until.isoformat(), "reason": reason})


def test_an_extended_member_is_neither_overdue_nor_reminded_until_the_day_ends(world, fcm):
    api = world
    doc = api.publish("b1")
    assert api.ack("S1", doc).status_code == 200
    from content.models import Document

    deadline_day = db.session.get(Document, doc).deadline.astimezone(ZONE).date()
    result = extend(api, doc, ["M1", "S1"], deadline_day + timedelta(days=10))
    assert result.status_code == 200, result.get_data(as_text=True)
    assert {r["member_id"]: r["status"] for r in result.json["results"]} == {
        api.id("M1"): "ok", api.id("S1"): "already_acknowledged"}
    assert receipt(doc, api.id("S1")).extended_until is None   # nothing written for an acknowledged member

    # Before the deadline, a manual reminder reaches M2 and CB, not M1.
    remind = api.client.post(f"{API}/documents/{doc}/reminders", json={"org_unit": api.tree["b1"].id},
                             headers=api.auth("S1"))
    assert remind.status_code == 202 and remind.json["recipients"] == 2
    fcm.reset()
    run_due()
    assert sorted(m["target"] for m in fcm.messages() if m["message"]["data"]["kind"] == "manual") == [
        "fid-CB", "fid-M2"]
    _past_deadline(doc)

    # Progress: M2 and CB are overdue, M1 is not.
    figures = api.figures("S1", doc, "b1")
    assert (figures["pending"], figures["overdue"]) == (3, 2)
    city = api.figures("BT", doc)
    assert city["overdue"] == 2 and [c["overdue"] for c in city["children"]] == [2]
    rows = {r["member"]["card_number"]: r for r in api.all_members("S1", doc, org_unit="b1")}
    assert (rows["M1"]["state"], rows["M1"]["extended_until"]) == ("new", (deadline_day + timedelta(days=10)).isoformat())
    assert rows["M2"]["state"] == "overdue" and rows["M1"]["extension_reason"] == "Điều trị tại bệnh viện"
    overdue_only = [r["member"]["card_number"] for r in api.all_members("S1", doc, org_unit="b1", state="overdue")]
    assert sorted(overdue_only) == ["CB", "M2"]
    # The member's own feed says the same.
    assert api.my("M1", doc)["state"] == "new" and api.my("M2", doc)["state"] == "overdue"
    feed = api.client.get(f"{API}/documents", query_string={"state": "overdue"}, headers=api.auth("M1")).json
    assert feed["items"] == []

    stored = receipt(doc, api.id("M1"))
    assert (stored.extension_reason, stored.extended_by) == ("Điều trị tại bệnh viện", api.id("S1"))

    # Undone: M1 is overdue again, and nothing of the extension is left on the receipt.
    assert api.client.delete(f"{API}/documents/{doc}/extensions/{api.id('M1')}",
                             headers=api.auth("S1")).status_code == 204
    stored = receipt(doc, api.id("M1"))
    assert (stored.extended_until, stored.extension_reason, stored.extended_by) == (None, None, None)
    assert api.figures("S1", doc, "b1")["overdue"] == 3
    assert_problem(api.client.delete(f"{API}/documents/{doc}/extensions/{api.id('M1')}", headers=api.auth("S1")),
                   404, "not_found")
    actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "acknowledgement.extension" in actions and "acknowledgement.extension_undo" in actions
    assert_counters_exact()


def test_an_extension_that_ran_out_is_overdue_again_and_bad_ones_are_refused(api, tree):
    from content.models import Document

    doc = api.publish("b1")
    deadline_day = db.session.get(Document, doc).deadline.astimezone(ZONE).date()
    assert extend(api, doc, ["M1"], deadline_day + timedelta(days=1)).status_code == 200
    _past_deadline(doc, days=5)
    assert api.figures("S1", doc, "b1")["overdue"] == 3    # M1's extension runs
    db.session.execute(update(Receipt).values(extended_until=local_today() - timedelta(days=1)))   # it ended
    db.session.commit()
    assert api.figures("S1", doc, "b1")["overdue"] == 4
    from handbook.i18n import FIELD_MESSAGES_VI

    said = lambda *codes: [FIELD_MESSAGES_VI[c] for c in codes]  # noqa: E731  (the errors as the API words them)
    deadline_day = db.session.get(Document, doc).deadline.astimezone(ZONE).date()
    for until, error in ((deadline_day, "not_after_deadline"),
                         (deadline_day - timedelta(days=1), "not_after_deadline"),
                         (deadline_day + timedelta(days=91), "too_far")):
        refused = assert_problem(extend(api, doc, ["M2"], until), 422, "validation_error")
        assert refused["errors"] == {"until": said(error)}
    blank = api.client.post(f"{API}/documents/{doc}/extensions", headers=api.auth("S1"), json={
        "member_ids": [api.id("M2")], "until": (deadline_day + timedelta(days=30)).isoformat(), "reason": " "})
    assert assert_problem(blank, 422, "validation_error")["errors"] == {"reason": said("required")}
    both = extend(api, doc, ["M2"], deadline_day, reason=" ")
    assert assert_problem(both, 422, "validation_error")["errors"] == {"reason": said("required"),
                                                                       "until": said("not_after_deadline")}
    assert receipt(doc, api.id("M2")) is None or receipt(doc, api.id("M2")).extended_until is None
    # 90 days past the deadline is the limit, and allowed; the audit entry names who, whom, until and why.
    farthest = extend(api, doc, ["M2", "M1"], deadline_day + timedelta(days=90), reason="Đi công tác dài ngày")
    assert [r["status"] for r in farthest.json["results"]] == ["ok", "ok"]
    assert receipt(doc, api.id("M2")).extended_until == deadline_day + timedelta(days=90)
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "acknowledgement.extension")
                               .order_by(AuditEntry.id.desc())).first()
    assert (entry.actor_id, entry.target_type, entry.target_id, entry.details) == (
        api.id("S1"), "document", str(doc),
        {"members": sorted([api.id("M1"), api.id("M2")]), "until": (deadline_day + timedelta(days=90)).isoformat(),
         "reason": "Đi công tác dài ngày"})
    undone = api.client.delete(f"{API}/documents/{doc}/extensions/{api.id('M2')}", headers=api.auth("S1"))
    assert undone.status_code == 204
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "acknowledgement.extension_undo")).one()
    assert (entry.actor_id, entry.target_type, entry.target_id, entry.details) == (
        api.id("S1"), "document", str(doc), {"member": api.id("M2")})
    # A document that asks for no acknowledgement has no deadline to extend.
    notice = api.publish("b1", kind="notice", requires_ack=False, title="Thông báo lịch sinh hoạt")
    assert_problem(extend(api, notice, ["M2"], local_today() + timedelta(days=30)), 409, "ack_not_required")
    # Scope: another branch's members are not_found; a member cannot extend.
    other = extend(api, doc, ["M3"], local_today() + timedelta(days=30), by="S1")
    assert other.status_code == 200 and other.json["results"][0]["status"] == "not_found"
    assert_problem(extend(api, doc, ["M2"], local_today() + timedelta(days=30), by="M1"), 403, "forbidden")


def test_the_deadline_day_of_an_extension_is_local_whatever_the_servers_zone(api, tree):
    """A deadline is 23:59:59 local (Hà Nội) time, 16:59:59 UTC; in a process whose own zone is further
    east (Tokyo) that instant is already the next day. The day after the deadline is still a valid
    extension: the deadline's day is taken in the local zone, not the process's."""
    from content.models import Document

    doc = api.publish("b1")
    deadline_day = db.session.get(Document, doc).deadline.astimezone(ZONE).date()
    with in_server_zone("Asia/Tokyo"):
        response = extend(api, doc, ["M1"], deadline_day + timedelta(days=1))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert receipt(doc, api.id("M1")).extended_until == deadline_day + timedelta(days=1)


def test_past_the_deadline_progress_finds_the_extensions_by_their_index_on_postgresql(backend, api, tree):
    """Past a document's deadline every progress read looks for the pending members whose extension still
    runs: through the partial index of the extended receipts, not by reading every receipt of the document
    (at 440,000 members, a city-wide directive's 3.5 million rows: ~600 ms a read)."""
    if backend != "postgresql":
        pytest.skip("EXPLAIN and the partial index's use are PostgreSQL's")
    from content.models import Document

    doc = api.publish("b1")
    deadline_day = db.session.get(Document, doc).deadline.astimezone(ZONE).date()
    assert extend(api, doc, ["M1"], deadline_day + timedelta(days=10)).status_code == 200
    _past_deadline(doc)
    figures = []
    seen = [(s, p) for s, p in executed_with_parameters(lambda: figures.append(api.figures("S1", doc, "b1")))
            if "extended_until" in s and s.lstrip().upper().startswith("SELECT")]
    assert figures[0]["overdue"] == 3     # M1's extension runs
    # _extended_pending's first statement: the document's extended receipts alone
    statement, parameters = next((s, p) for s, p in seen if "org_units" not in s and "members" not in s)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")   # tiny tables: ask whether the index *can* serve it
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert "ix_receipts_document_id_extended_until" in plan, plan


# --- minutes ---------------------------------------------------------------------------------------------------

def test_the_minutes_are_uploaded_by_a_runner_once_open_and_read_by_whoever_sees_the_meeting(api, tree):
    from tests.test_authz_matrix import PDF

    meeting = schedule(api)

    def upload(by: str, name: str = "bien-ban.pdf", content: bytes = PDF):
        return api.client.post(f"{API}/meetings/{meeting['id']}/attachments", headers=api.auth(by),
                               data={"file": (io.BytesIO(content), name)}, content_type="multipart/form-data")

    assert_problem(upload("S1"), 409, "meeting_not_open")
    start(meeting["id"])
    assert_problem(upload("M1"), 403, "forbidden")
    assert_problem(upload("S2"), 404, "not_found")
    assert_problem(upload("S1", "bien-ban.pdf", b"MZ\x90\x00 not a pdf"), 415, "unsupported_file_type")
    created = upload("S1")
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.json["content_type"] == "application/pdf" and created.json["filename"] == "bien-ban.pdf"
    listed = get(api, meeting["id"], "M1").json["minutes"]
    assert [m["id"] for m in listed] == [created.json["id"]]
    download = api.client.get(created.headers["Location"], headers=api.auth("M1"))
    assert download.status_code == 200 and download.get_data() == PDF
    assert api.client.get(created.headers["Location"], headers=api.auth("M3")).status_code == 404
    other = schedule(api, "b2", "S2")
    assert api.client.get(f"{API}/meetings/{other['id']}/attachments/{created.json['id']}",
                          headers=api.auth("S2")).status_code == 404


# --- reading lists without a statement per meeting -----------------------------------------------------

def _statements(run) -> int:
    return len(executed_statements(run))


def test_meeting_lists_cost_the_same_statements_whatever_their_length(world):
    """/me/meetings and a unit's list read each meeting's unit, agenda documents, the viewer's row, answer
    and invited counts and minutes in one statement each for the whole page (no N+1)."""
    api = world
    doc = api.publish("ba_dinh")

    def a_few(n: int) -> None:
        for i in range(n):
            kind = ("regular", "thematic", "extraordinary")[i % 3]
            m = schedule(api, kind=kind, hours=48 + i, agenda=[{"title": "Chỉ thị", "document_id": doc}])
            api.client.put(f"{API}/meetings/{m['id']}/rsvp", json={"response": "attending"}, headers=api.auth("M1"))
        past = schedule(api, hours=30 + n)
        start(past["id"])
        assert close(api, past["id"]).status_code == 200

    def lists():
        for path, card in (("/me/meetings", "M1"), ("/me/meetings?upcoming=false", "M1"),
                           (f"/org-units/{api.tree['b1'].id}/meetings", "S1")):
            response = api.client.get(API + path, headers=api.auth(card))
            assert response.status_code == 200, response.get_data(as_text=True)
            sizes.append(len(response.json["items"]))

    sizes: list[int] = []
    api.auth("M1"), api.auth("S1")
    a_few(3)
    few = _statements(lists)
    assert sizes == [3, 1, 4]
    a_few(6)
    sizes.clear()
    many = _statements(lists)
    assert sizes == [9, 2, 11]
    assert many == few, (few, many)
