"""Questions and feedback on a document, and adoption (API.md "Meetings, questions, adoption"), on SQLite and
PostgreSQL: the asker's push and inbox item, the public Q&A without names, the daily budget, scoping; and
adoption per unit against an independent recount from members, sessions and devices.
"""
from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from content import adoption
from content.models import Question
from handbook.auth import AuthSession
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from push.due import run_due
from push.models import Device
from tests.factories import member
from tests.test_acknowledgements import API
from tests.test_errors import assert_problem


def ask(api, card: str, doc: int, text: str = "Chỉ thị áp dụng cho đảng viên đã nghỉ hưu không?"):
    return api.client.post(f"{API}/documents/{doc}/questions", json={"text": text}, headers=api.auth(card))


# --- questions ---------------------------------------------------------------------------------------------


def test_a_question_reaches_the_publishers_and_the_answer_reaches_the_asker(world, fcm):
    api = world
    doc = api.publish("ba_dinh")
    decomposed = unicodedata.normalize("NFD", "Cho hỏi về mục 2 của chỉ thị")   # stored NFC
    assert decomposed != "Cho hỏi về mục 2 của chỉ thị"
    asked = ask(api, "M1", doc, decomposed)
    assert asked.status_code == 201, asked.get_data(as_text=True)
    assert asked.json["status"] == "open" and asked.json["text"] == "Cho hỏi về mục 2 của chỉ thị"
    assert ask(api, "M3", doc, "Góp ý: nên có bản tóm tắt").status_code == 201

    listed = api.client.get(f"{API}/admin/questions", headers=api.auth("BT"),
                            query_string={"document": doc, "status": "open"})
    assert listed.status_code == 200
    assert [(q["asker"]["full_name"], q["status"]) for q in listed.json["items"]] == [
        ("Hoàng Văn Em", "open"), ("Nguyễn Văn An", "open")]   # newest first
    question = listed.json["items"][1]["id"]

    fcm.reset()
    answered = api.client.post(f"{API}/admin/questions/{question}/answer", headers=api.auth("BT"),
                               json={"text": "Áp dụng cho mọi đảng viên trong chi bộ.", "public": True})
    assert answered.status_code == 200 and answered.json["status"] == "answered"
    run_due()
    answer_pushes = [m for m in fcm.messages() if m["message"]["data"]["kind"] == "answer"]
    assert sorted(m["target"] for m in answer_pushes) == ["fid-M1", "legacy-M1"]   # the asker only
    inbox = api.client.get(f"{API}/me/notifications", headers=api.auth("M1")).json["items"]
    assert inbox[0]["kind"] == "answer" and inbox[0]["document"]["id"] == doc
    assert "answer" not in [i["kind"] for i in api.client.get(f"{API}/me/notifications",
                                                              headers=api.auth("M3")).json["items"]]

    mine = api.client.get(f"{API}/me/questions", headers=api.auth("M1")).json["items"]
    assert [(q["status"], q["answer"]) for q in mine] == [("answered", "Áp dụng cho mọi đảng viên trong chi bộ.")]
    public = api.client.get(f"{API}/documents/{doc}/questions", headers=api.auth("M4"))
    assert public.status_code == 200
    assert public.json["items"] == [{"id": question, "text": "Cho hỏi về mục 2 của chỉ thị",
                                     "answer": "Áp dụng cho mọi đảng viên trong chi bộ.",
                                     "answered_at": public.json["items"][0]["answered_at"]}]
    assert "Nguyễn" not in public.get_data(as_text=True)
    answered_filter = api.client.get(f"{API}/admin/questions", headers=api.auth("BT"),
                                     query_string={"status": "answered"}).json["items"]
    assert [q["id"] for q in answered_filter] == [question]


def test_an_answer_to_an_asker_deactivated_meanwhile_reaches_nobody(world, fcm):
    """The asker left (deactivated) before the answer: it is recorded and public, but no push and no inbox
    item go to an inactive member's devices, which are still registered."""
    from push.models import InboxItem, Notification

    doc = world.publish("ba_dinh")
    assert ask(world, "M3", doc).status_code == 201
    question = db.session.scalar(select(Question.id))
    run_due()   # the document's own push
    assert "fid-M3" in [m["target"] for m in fcm.messages()]
    db.session.execute(update(Member).where(Member.card_number == "M3").values(active=False))
    db.session.commit()
    fcm.reset()
    answered = world.client.post(f"{API}/admin/questions/{question}/answer", headers=world.auth("BT"),
                                 json={"text": "Đã trả lời tại hội nghị.", "public": True})
    assert answered.status_code == 200 and answered.json["status"] == "answered"
    run_due()
    [notification] = db.session.scalars(select(Notification).where(Notification.kind == "answer")).all()
    assert (notification.state, notification.recipients) == ("done", 0)
    assert db.session.scalars(select(InboxItem).where(InboxItem.notification_id == notification.id)).all() == []
    assert fcm.messages() == []
    assert db.session.scalar(select(Device.id).where(Device.fid == "fid-M3")) is not None


def test_questions_are_scoped(api, tree):
    doc = api.publish("ba_dinh")
    assert_problem(ask(api, "M5", doc), 404, "not_found")               # Đống Đa: not in the audience
    assert ask(api, "M1", doc).status_code == 201
    question = db.session.scalar(select(Question.id))
    assert api.client.get(f"{API}/me/questions", headers=api.auth("M2")).json["items"] == []
    assert_problem(api.client.get(f"{API}/admin/questions", headers=api.auth("S1")), 403, "forbidden")
    # A publisher over another district manages nothing here: empty list, and the answer is 404.
    from handbook.members import Role, RoleGrant

    db.session.add(RoleGrant(member_id=api.id("CD"), role=Role.PUBLISHER.value, org_unit_id=tree["dong_da"].id))
    db.session.commit()
    assert api.client.get(f"{API}/admin/questions", headers=api.auth("CD")).json["items"] == []
    assert_problem(api.client.post(f"{API}/admin/questions/{question}/answer", headers=api.auth("CD"),
                                   json={"text": "x"}), 404, "not_found")
    assert db.session.get(Question, question).answered_at is None
    # An unpublished answer stays out of the public Q&A.
    assert api.client.post(f"{API}/admin/questions/{question}/answer", headers=api.auth("BT"),
                           json={"text": "Trả lời riêng"}).status_code == 200
    assert api.client.get(f"{API}/documents/{doc}/questions", headers=api.auth("M2")).json["items"] == []


def test_at_most_ten_questions_a_day_and_bad_text_refused(api, tree):
    doc = api.publish()
    for i in range(10):
        assert ask(api, "M1", doc, f"Câu hỏi số {i}").status_code == 201
    limited = ask(api, "M1", doc, "Câu hỏi thứ mười một")
    body = assert_problem(limited, 429, "question_limit")
    assert "10" in body["detail"] and int(limited.headers["Retry-After"]) > 80000
    assert ask(api, "M2", doc).status_code == 201   # another member's budget
    # A day later the budget is back.
    db.session.execute(update(Question).values(created_at=datetime.now(UTC) - timedelta(days=1, minutes=1)))
    db.session.commit()
    assert ask(api, "M1", doc, "Hôm sau").status_code == 201
    for bad in ("", "   ", "x" * 2001):
        assert_problem(ask(api, "M2", doc, bad), 422, "validation_error")
    assert db.session.scalar(select(Question).where(Question.text == "x" * 2001)) is None


# --- adoption -----------------------------------------------------------------------------------------------


def recount() -> dict[int, tuple[int, int, int, int]]:
    """{unit id: (members, signed in, with a device, active in 30 days)} from the raw rows, in Python."""
    now = datetime.now(UTC)
    sessions: dict[int, list[datetime]] = {}
    for s in db.session.scalars(select(AuthSession)):
        at = s.refreshed_at or s.created_at
        sessions.setdefault(s.member_id, []).append(at if at.tzinfo else at.replace(tzinfo=UTC))
    devices = set(db.session.scalars(select(Device.member_id)))
    out: dict[int, list[int]] = {}
    for m in db.session.scalars(select(Member).where(Member.active.is_(True))):
        row = out.setdefault(m.org_unit_id, [0, 0, 0, 0])
        row[0] += 1
        row[1] += m.first_signed_in_at is not None
        row[2] += m.id in devices
        row[3] += any(t >= now - timedelta(days=30) for t in sessions.get(m.id, []))
    return {unit: tuple(v) for unit, v in out.items()}


def test_adoption_equals_a_recount_per_unit_and_rolls_up(world, tree):
    api = world   # every member but M4 has a phone; each card used here signed in
    member("N1", tree["b1"], name="Chưa dùng ứng dụng")
    member("N2", tree["cbcs"], name="Chưa dùng ứng dụng 2")
    # M6 signed in long ago and not since: signed in, but not active.
    api.auth("M6")
    db.session.execute(update(AuthSession).where(AuthSession.member_id == api.id("M6")).values(
        created_at=datetime.now(UTC) - timedelta(days=40), refreshed_at=None))
    db.session.commit()
    adoption.refresh()
    expected = recount()

    def figures(unit: str, by: str = "BT") -> dict:
        response = api.client.get(f"{API}/org-units/{tree[unit].id}/adoption", headers=api.auth(by))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    for unit in ("b1", "b2", "cbcs"):
        got = figures(unit)
        assert (got["members"], got["signed_in"], got["with_device"], got["active_30d"]) == expected[tree[unit].id]
    city = figures("city")
    totals = tuple(sum(v[i] for v in expected.values()) for i in range(4))
    assert (city["members"], city["signed_in"], city["with_device"], city["active_30d"]) == totals
    assert city["with_device_share"] == round(totals[2] / totals[0], 4)
    # Children: the districts, lowest share with a device first.
    shares = [c["with_device_share"] for c in city["children"]]
    assert shares == sorted(shares) and {c["org_unit"]["code"] for c in city["children"]} == {"HN.BD", "HN.DD"}
    district = figures("ba_dinh")
    assert district["members"] == expected[tree["b1"].id][0] + expected[tree["b2"].id][0]
    assert datetime.fromisoformat(city["as_of"]) > datetime.now(UTC) - timedelta(minutes=1)

    exported = api.client.get(f"{API}/org-units/{tree['city'].id}/adoption", query_string={"format": "csv"},
                              headers=api.auth("BT"))
    lines = exported.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Mã đơn vị") and lines[1].startswith(f"HN,Thành ủy Hà Nội,{totals[0]},")
    assert_problem(api.client.get(f"{API}/org-units/{tree['city'].id}/adoption", headers=api.auth("S1")),
                   403, "forbidden")


def test_ever_signed_in_survives_pruned_sessions_and_run_due_refreshes_when_stale(api, tree, app):
    from handbook.auth import RefreshToken, prune_sessions

    api.auth("M1")
    long_ago = datetime.now(UTC) - timedelta(days=90)
    db.session.execute(update(AuthSession).values(created_at=long_ago, revoked_at=long_ago))
    db.session.execute(update(RefreshToken).values(issued_at=long_ago, expires_at=long_ago + timedelta(days=30)))
    db.session.commit()
    prune_sessions()
    assert db.session.scalar(select(AuthSession)) is None
    api.auth("S1")
    run_due()   # nothing rolled up yet: run_due does it
    row = db.session.get(OrgUnit, tree["b1"].id)
    got = api.client.get(f"{API}/org-units/{row.id}/adoption", headers=api.auth("S1")).json
    assert (got["members"], got["signed_in"]) == (4, 2)    # M1 (long ago) and S1 (just now)
    api.auth("M2")
    run_due()   # fresh: not again within the hour
    assert api.client.get(f"{API}/org-units/{row.id}/adoption", headers=api.auth("S1")).json == got
    app.config["ADOPTION_REFRESH_MINUTES"] = 0
    try:
        run_due()
    finally:
        app.config["ADOPTION_REFRESH_MINUTES"] = 60
    assert api.client.get(f"{API}/org-units/{row.id}/adoption", headers=api.auth("S1")).json["signed_in"] == 3
