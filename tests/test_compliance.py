"""The compliance view: progress frozen when a deadline passes; which units reached every member in time."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from content.models import Document, ProgressSnapshot, Receipt
from handbook.extensions import db
from handbook.timeutil import local_zone
from tests.factories import bearer, login, member, small_tree
from tests.test_errors import assert_problem


@pytest.fixture()
def world(app, client):
    tree = small_tree()
    member("B1", tree["city"], roles=[("publisher", tree["city"]), ("admin", tree["city"])])
    member("S1", tree["b1"], roles=[("secretary", tree["b1"])])
    member("C2", tree["dong_da"], roles=[("committee", tree["dong_da"])])
    people = {card: member(card, unit) for card, unit in
              (("M1", tree["b1"]), ("M2", tree["b1"]), ("M3", tree["b2"]), ("M4", tree["cbcs"]))}
    auth = {card: bearer(login(client, card).json["access_token"]) for card in ("B1", "S1", "C2", "M1")}
    doc = client.post("/api/v1/admin/documents", headers=auth["B1"], json={
        "kind": "directive", "number": "24-CT/TU", "title": "Chỉ thị", "audience": {"org_units": [tree["city"].id]},
        "ack_days": 3}).json
    client.post(f"/api/v1/admin/documents/{doc['id']}/publish", json={}, headers=auth["B1"])
    return {"tree": tree, "people": people, "auth": auth, "doc": db.session.get(Document, doc["id"])}


def _run_due(app, at: datetime):
    return app.test_cli_runner().invoke(args=["handbook", "push", "run-due", "--at", at.isoformat()])


def test_deadline_freezes_progress_once(app, client, world):
    doc, people, auth = world["doc"], world["people"], world["auth"]
    client.put(f"/api/v1/documents/{doc.id}/acknowledgement", json={"version": 1}, headers=auth["M1"])
    deadline = doc.deadline
    before = _run_due(app, deadline - timedelta(seconds=1))
    assert "closed" not in before.output
    closing = _run_due(app, deadline + timedelta(minutes=1))
    assert f"closed document {doc.id}" in closing.output
    again = _run_due(app, deadline + timedelta(minutes=2))
    assert "closed" not in again.output
    rows = db.session.scalar(select(func.count()).select_from(ProgressSnapshot))
    assert rows == 5  # the city itself (B1), b1, b2, cbcs... one row per member-holding unit with members
    # A late acknowledgement changes live progress but not the frozen one.
    receipt = Receipt(document_id=doc.id, member_id=people["M2"].id, opened_at=deadline + timedelta(hours=1),
                      acknowledged_at=deadline + timedelta(hours=1), acknowledged_version=1, method="app")
    db.session.add(receipt)
    db.session.commit()
    body = client.get(f"/api/v1/org-units/{world['tree']['b1'].id}/compliance", headers=auth["S1"]).json
    [item] = body["items"]
    assert (item["total"], item["acknowledged"], item["pending"], item["reached"]) == (3, 1, 2, False)
    assert item["document"]["id"] == doc.id and body["next_cursor"] is None


def test_acknowledged_in_time_or_exempt_reaches(app, client, world):
    doc, people, auth, tree = world["doc"], world["people"], world["auth"], world["tree"]
    client.put(f"/api/v1/documents/{doc.id}/acknowledgement", json={"version": 1}, headers=auth["M1"])
    secretary = auth["S1"]
    sec_id = client.get("/api/v1/me", headers=secretary).json["id"]
    briefing = client.post(f"/api/v1/documents/{doc.id}/acknowledgements", headers=secretary, json={
        "member_ids": [sec_id], "method": "briefing", "held_on": datetime.now(local_zone()).date().isoformat()})
    assert briefing.json["results"] == [{"member_id": sec_id, "status": "ok"}]
    client.post(f"/api/v1/documents/{doc.id}/exemptions", headers=secretary,
                json={"member_ids": [people["M2"].id], "reason": "Ốm dài ngày"})
    _run_due(app, doc.deadline + timedelta(seconds=1))
    city = client.get(f"/api/v1/org-units/{tree['city'].id}/compliance", headers=auth["B1"]).json["items"][0]
    assert city["reached"] is False and city["units_total"] == 2
    district = client.get(f"/api/v1/org-units/{tree['phuong'].id}/compliance", headers=auth["B1"]).json["items"][0]
    reached = {c["org_unit"]["code"]: c["reached"] for c in district["children"]}
    assert reached == {"HN.BD.DB.1": True, "HN.BD.DB.2": False}
    assert district["units_reached"] == 1 and district["units_total"] == 2


def test_compliance_scope_and_open_documents(app, client, world):
    tree, auth = world["tree"], world["auth"]
    # Nothing is closed yet.
    assert client.get(f"/api/v1/org-units/{tree['city'].id}/compliance", headers=auth["B1"]).json["items"] == []
    assert_problem(client.get(f"/api/v1/org-units/{tree['ba_dinh'].id}/compliance", headers=auth["C2"]), 403,
                   "forbidden")
    assert_problem(client.get(f"/api/v1/org-units/{tree['b1'].id}/compliance", headers=auth["M1"]), 403,
                   "forbidden")
    assert_problem(client.get(f"/api/v1/org-units/{tree['b1'].id}/compliance"), 401, "unauthorized")


def test_compliance_pagination(app, client, world):
    tree, auth = world["tree"], world["auth"]
    ids = [world["doc"].id]
    for n in range(4):
        doc = client.post("/api/v1/admin/documents", headers=auth["B1"], json={
            "kind": "plan", "title": f"Kế hoạch {n}", "audience": {"org_units": [tree["ba_dinh"].id]},
            "ack_days": n + 1}).json
        client.post(f"/api/v1/admin/documents/{doc['id']}/publish", json={}, headers=auth["B1"])
        ids.append(doc["id"])
    _run_due(app, datetime.now(UTC) + timedelta(days=10))
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/api/v1/org-units/{tree['phuong'].id}/compliance", query_string=query,
                          headers=auth["B1"]).json
        seen += [i["document"]["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    deadlines = [db.session.get(Document, i).deadline for i in seen]
    assert deadlines == sorted(deadlines, reverse=True)


def test_documents_close_in_deadline_order_and_a_withdrawn_one_never(app, client, world):
    """close_due closes the published documents whose deadline passed, earliest deadline first (run-due's
    report lists them in that order), and never a withdrawn one, whatever its deadline."""
    auth = world["auth"]
    first = world["doc"]                                   # ack_days 3, id 1

    def publish(ack_days: int) -> Document:
        doc = client.post("/api/v1/admin/documents", headers=auth["B1"], json={
            "kind": "directive", "number": "25-CT/TU", "title": "Chỉ thị khác",
            "audience": {"org_units": [world["tree"]["city"].id]}, "ack_days": ack_days}).json
        assert client.post(f"/api/v1/admin/documents/{doc['id']}/publish", json={},
                           headers=auth["B1"]).status_code == 200
        return db.session.get(Document, doc["id"])

    sooner, withdrawn, middle = publish(1), publish(1), publish(2)   # ids 2, 3, 4: later ids, earlier deadlines
    assert client.post(f"/api/v1/admin/documents/{withdrawn.id}/withdraw", json={"reason": "Thay thế"},
                       headers=auth["B1"]).status_code == 200
    db.session.expire_all()
    assert sooner.deadline < middle.deadline < first.deadline and withdrawn.deadline is not None

    def closed_by(at: datetime) -> list[int]:
        output = _run_due(app, at).output
        return [int(line.split("closed document ")[1].split(":")[0])
                for line in output.splitlines() if "closed document" in line]

    assert closed_by(sooner.deadline - timedelta(seconds=1)) == []
    assert closed_by(sooner.deadline) == [sooner.id]               # at the deadline itself it has passed
    # Before `first` is closed: one acknowledgement in time (M1, now) and one after its deadline (M2).
    assert client.put(f"/api/v1/documents/{first.id}/acknowledgement", json={"version": 1},
                      headers=auth["M1"]).status_code == 200
    late = first.deadline + timedelta(seconds=30)
    db.session.add(Receipt(document_id=first.id, member_id=world["people"]["M2"].id, opened_at=late,
                           acknowledged_at=late, acknowledged_version=1, method="app"))
    db.session.commit()
    assert closed_by(first.deadline + timedelta(minutes=1)) == [middle.id, first.id]
    assert db.session.scalar(select(func.sum(ProgressSnapshot.acknowledged))
                             .where(ProgressSnapshot.document_id == first.id)) == 1   # by the deadline only
    db.session.expire_all()
    assert db.session.get(Document, withdrawn.id).closed_at is None
    frozen = dict(db.session.execute(select(ProgressSnapshot.document_id, func.count())
                                     .group_by(ProgressSnapshot.document_id)).all())
    # Closing the later ones kept the first one's frozen rows (5 member-holding units each), and the
    # withdrawn document has none.
    assert frozen == {sooner.id: 5, middle.id: 5, first.id: 5}


def test_the_frozen_figures_count_only_acknowledgements_of_the_current_round_made_by_the_deadline(app, client, world):
    """At the deadline an acknowledgement counts if it is of the version to acknowledge and made by the
    deadline, its very instant included: one of an earlier round (before a material change asked everyone
    again) does not, however early it was made."""
    from content.progress import close_due

    doc, people = world["doc"], world["people"]
    deadline = doc.deadline.replace(tzinfo=UTC) if doc.deadline.tzinfo is None else doc.deadline
    db.session.execute(Document.__table__.update().where(Document.id == doc.id).values(ack_version=2, version=2))
    for card, version, at in (("M1", 2, deadline), ("M2", 1, deadline - timedelta(days=1)),
                              ("M3", 2, deadline + timedelta(microseconds=1))):
        db.session.add(Receipt(document_id=doc.id, member_id=people[card].id, opened_at=at, acknowledged_at=at,
                               acknowledged_version=version, method="app"))
    db.session.commit()
    assert [d.id for d in close_due(deadline)] == [doc.id]
    frozen = dict(db.session.execute(select(ProgressSnapshot.org_unit_id, ProgressSnapshot.acknowledged)
                                     .where(ProgressSnapshot.document_id == doc.id)).all())
    tree = world["tree"]
    assert (frozen[tree["b1"].id], frozen[tree["b2"].id]) == (1, 0)   # M1 only: M2's is of round 1, M3's late


def test_recounting_a_document_that_is_not_active_writes_no_rows(app, client, world):
    from content.progress import recount_document

    doc = world["doc"]
    assert client.post(f"/api/v1/admin/documents/{doc.id}/withdraw", json={"reason": "Thay thế"},
                       headers=world["auth"]["B1"]).status_code == 200
    db.session.expire_all()
    assert recount_document(db.session.get(Document, doc.id)) == 0
    db.session.rollback()
