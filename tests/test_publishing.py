"""Publishing: drafts, scope, sanitisation, scheduling, run-due, versions, withdrawal, audit."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from content.documents import deadline_for
from content.models import Document, DocumentVersion, Receipt
from handbook.audit import AuditEntry
from handbook.extensions import db
from push.models import Notification
from tests.factories import bearer, login, member
from tests.test_errors import assert_problem

ADMIN = "/api/v1/admin/documents"


@pytest.fixture()
def board(client, tree):
    """City publisher and admin."""
    member("B1", tree["city"], name="Ban Tổ chức", roles=[("publisher", tree["city"]), ("admin", tree["city"])])
    return bearer(login(client, "B1").json["access_token"])


@pytest.fixture()
def district(client, tree):
    """Publisher of Ba Đình only."""
    member("D1", tree["ba_dinh"], roles=[("publisher", tree["ba_dinh"])])
    return bearer(login(client, "D1").json["access_token"])


@pytest.fixture()
def reader(client, tree):
    member("R1", tree["b1"], name="Trần Thị Bình")
    return bearer(login(client, "R1").json["access_token"])


def body(tree, unit="city", **fields):
    data = {"kind": "directive", "number": "24-CT/TU", "title": "Chỉ thị về tăng cường kỷ luật, kỷ cương",
            "summary": "Tóm tắt", "body_html": "<p>Nội dung</p>", "issuing_body": "Ban Thường vụ Thành ủy",
            "issued_on": "2023-08-07", "audience": {"org_units": [tree[unit].id]}, "tags": ["kỷ cương"]}
    data.update(fields)
    return data


def create(client, auth, data):
    response = client.post(ADMIN, json=data, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def publish(client, auth, doc_id, **payload):
    response = client.post(f"{ADMIN}/{doc_id}/publish", json=payload, headers=auth)
    assert response.status_code == 200, response.json
    return response.json


# --- drafts and scope ------------------------------------------------------------------------------

def test_create_draft_defaults_and_owner(client, tree, board):
    doc = create(client, board, body(tree))
    assert doc["status"] == "draft" and doc["version"] == 1 and doc["ack_days"] == 14 and doc["requires_ack"]
    assert doc["owner_unit"]["id"] == tree["city"].id
    assert doc["audience"] == {"org_units": [tree["city"].brief()], "roles": []}
    assert doc["published_at"] is None and doc["deadline"] is None
    assert doc["issued_on"] == "2023-08-07" and doc["tags"] == ["kỷ cương"]


def test_draft_is_invisible_to_readers(client, tree, board, reader):
    doc = create(client, board, body(tree))
    assert client.get("/api/v1/documents", headers=reader).json["items"] == []
    assert_problem(client.get(f"/api/v1/documents/{doc['id']}", headers=reader), 404, "not_found")


def test_text_is_stored_in_nfc(client, tree, board):
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Kế hoạch học tập")
    doc = create(client, board, body(tree, title=decomposed, tags=[decomposed]))
    assert doc["title"] == unicodedata.normalize("NFC", decomposed) and doc["tags"] == ["Kế hoạch học tập"]


def test_district_publisher_targets_own_subtree_only(client, tree, district):
    doc = create(client, district, body(tree, "phuong"))
    assert doc["owner_unit"]["id"] == tree["ba_dinh"].id
    response = client.post(ADMIN, json=body(tree, "dong_da"), headers=district)
    assert_problem(response, 403, "audience_out_of_scope")
    assert "Quận ủy Đống Đa" in response.json["detail"]
    english = client.post(ADMIN, json=body(tree, "city"), headers={**district, "Accept-Language": "en"})
    assert_problem(english, 403, "audience_out_of_scope")
    assert english.json["title"] == "Outside your publishing scope"
    assert db.session.scalar(select(func.count()).select_from(Document)) == 1


def test_readers_and_secretaries_cannot_publish(client, tree, reader):
    member("S1", tree["b1"], roles=[("secretary", tree["b1"])])
    secretary = bearer(login(client, "S1").json["access_token"])
    for auth in (reader, secretary):
        assert_problem(client.post(ADMIN, json=body(tree, "b1"), headers=auth), 403, "forbidden")
        assert_problem(client.get(ADMIN, headers=auth), 403, "forbidden")
    assert_problem(client.post(ADMIN, json=body(tree)), 401, "unauthorized")


def test_explicit_owner_unit(client, tree, board):
    doc = create(client, board, body(tree, "b1", owner_unit=tree["ba_dinh"].id))
    assert doc["owner_unit"]["id"] == tree["ba_dinh"].id
    response = client.post(ADMIN, json=body(tree, "cbcs", owner_unit=tree["ba_dinh"].id), headers=board)
    assert_problem(response, 422, "validation_error")
    assert "owner_unit" in response.json["errors"]


def test_audience_across_two_scopes_needs_an_owner(client, tree):
    member("P2", tree["ba_dinh"], roles=[("publisher", tree["b1"]), ("publisher", tree["b2"])])
    auth = bearer(login(client, "P2").json["access_token"])
    data = body(tree, audience={"org_units": [tree["b1"].id, tree["b2"].id]})
    response = client.post(ADMIN, json=data, headers=auth)
    assert_problem(response, 422, "validation_error")
    assert "audience" in response.json["errors"]


@pytest.mark.parametrize("change, field", [
    ({"kind": "memo"}, "kind"),
    ({"title": ""}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"ack_days": 0}, "ack_days"),
    ({"ack_days": "14"}, "ack_days"),
    ({"issued_on": "07/08/2023"}, "issued_on"),
    ({"audience": {"org_units": []}}, "audience"),
    ({"audience": {"org_units": ["1"]}}, "audience"),
    ({"audience": {"org_units": [999999]}}, "audience"),
    ({"audience": {"org_units": "CITY", "roles": ["king"]}}, "audience"),
    ({"tags": ["a"] * 31}, "tags"),
    ({"series_id": 1}, "series_id"),
    ({"unexpected": True}, "unexpected"),
])
def test_create_validation(client, tree, board, change, field):
    data = body(tree)
    if change.get("audience", {}).get("org_units") == "CITY":
        change = {"audience": {**change["audience"], "org_units": [tree["city"].id]}}
    data.update(change)
    response = client.post(ADMIN, json=data, headers=board)
    assert_problem(response, 422, "validation_error")
    assert field in response.json["errors"]
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0


def test_create_requires_kind_title_audience(client, board):
    response = client.post(ADMIN, json={}, headers=board)
    assert_problem(response, 422, "validation_error")
    assert {"kind", "title", "audience"} <= set(response.json["errors"])


def test_malformed_and_wrong_type_bodies(client, board):
    assert_problem(client.post(ADMIN, data="{not json", headers={**board, "Content-Type": "application/json"}),
                   400, "malformed_json")
    assert_problem(client.post(ADMIN, json=[1, 2], headers=board), 422, "validation_error")


# --- sanitisation ----------------------------------------------------------------------------------

def test_body_is_sanitised_but_keeps_structure(client, tree, board):
    html = (
        '<h2 onclick="steal()">Mục 1</h2><script>alert(1)</script><style>p{}</style>'
        '<p>Đọc <a href="javascript:alert(1)">đây</a> và <a href="https://hanoi.dcs.vn/">trang</a></p>'
        '<img src="x" onerror="alert(1)"><iframe src="https://evil"></iframe>'
        '<ul><li>Một</li></ul><ol><li>Hai</li></ol>'
        '<table><thead><tr><th colspan="2">Bảng</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>'
        '<a href="data:text/html;base64,PHNjcmlwdD4=">d</a><svg onload="alert(1)"></svg>'
    )
    doc = create(client, board, body(tree, body_html=html))
    clean = doc["body_html"]
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "<style", "data:", "<svg", "onload"):
        assert bad not in clean.lower()
    for kept in ("<h2>Mục 1</h2>", "<ul><li>Một</li></ul>", "<ol><li>Hai</li></ol>", '<th colspan="2">Bảng</th>',
                 "<td>1</td>", 'href="https://hanoi.dcs.vn/"', 'rel="noopener noreferrer"'):
        assert kept in clean
    # What readers get is the same sanitised body.
    publish(client, board, doc["id"])
    member("R9", tree["b1"])
    auth = bearer(login(client, "R9").json["access_token"])
    assert client.get(f"/api/v1/documents/{doc['id']}", headers=auth).json["body_html"] == clean


def test_edit_is_sanitised_too(client, tree, board):
    doc = create(client, board, body(tree))
    response = client.patch(f"{ADMIN}/{doc['id']}", json={"body_html": '<p onmouseover="x()">Mới</p>'},
                            headers=board)
    assert response.status_code == 200 and response.json["body_html"] == "<p>Mới</p>"


# --- publishing ------------------------------------------------------------------------------------

def test_publish_writes_deadline_version_notification_and_audit_together(client, tree, board, reader):
    doc = create(client, board, body(tree))
    result = publish(client, board, doc["id"])
    assert result["status"] == "published" and result["notification_id"]
    stored = db.session.get(Document, doc["id"])
    assert stored.deadline is not None
    assert datetime.fromisoformat(result["deadline"]).utcoffset() == timedelta(hours=7)
    assert datetime.fromisoformat(result["deadline"]).time().isoformat() == "23:59:59"
    notification = db.session.get(Notification, result["notification_id"])
    assert (notification.kind, notification.state, notification.document_id) == ("published", "pending", doc["id"])
    versions = db.session.scalars(select(DocumentVersion).where(DocumentVersion.document_id == doc["id"])).all()
    assert [v.version for v in versions] == [1]
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["document.create", "document.publish"]
    assert [i["id"] for i in client.get("/api/v1/documents", headers=reader).json["items"]] == [doc["id"]]


def test_publish_is_idempotent(client, tree, board):
    doc = create(client, board, body(tree))
    first = publish(client, board, doc["id"])
    again = publish(client, board, doc["id"])
    assert again == first
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
    assert db.session.scalar(select(func.count()).select_from(DocumentVersion)) == 1


def test_publish_of_withdrawn_is_refused(client, tree, board):
    doc = create(client, board, body(tree))
    client.post(f"{ADMIN}/{doc['id']}/withdraw", json={"reason": "Nhầm"}, headers=board)
    assert_problem(client.post(f"{ADMIN}/{doc['id']}/publish", json={}, headers=board), 409, "document_withdrawn")


def test_publish_rechecks_scope(client, tree, district):
    doc = create(client, district, body(tree, "phuong"))
    from handbook.members import Member, RoleGrant

    d1 = db.session.scalar(select(Member).where(Member.card_number == "D1"))
    db.session.execute(db.delete(RoleGrant).where(RoleGrant.member_id == d1.id))
    db.session.commit()
    assert_problem(client.post(f"{ADMIN}/{doc['id']}/publish", json={}, headers=district), 404, "not_found")


def test_other_district_publisher_gets_404_everywhere(client, tree, district):
    member("D2", tree["dong_da"], roles=[("publisher", tree["dong_da"])])
    other = bearer(login(client, "D2").json["access_token"])
    doc = create(client, district, body(tree, "phuong"))
    doc_id = doc["id"]
    for method, path, payload in (
        ("get", f"{ADMIN}/{doc_id}", None), ("patch", f"{ADMIN}/{doc_id}", {"title": "Sửa"}),
        ("post", f"{ADMIN}/{doc_id}/publish", {}), ("post", f"{ADMIN}/{doc_id}/withdraw", {"reason": "x"}),
        ("get", f"{ADMIN}/{doc_id}/versions", None), ("get", f"{ADMIN}/{doc_id}/versions/1", None),
    ):
        assert_problem(getattr(client, method)(path, json=payload, headers=other), 404, "not_found")
    assert client.get(ADMIN, headers=other).json["items"] == []
    assert db.session.get(Document, doc_id).title == doc["title"]


def test_deadline_is_end_of_local_day(app):
    # 17:30 UTC on 1 Dec is 00:30 on 2 Dec in Hanoi: 14 days later is 16 Dec, ending 23:59:59 +07:00.
    deadline = deadline_for(datetime(2026, 12, 1, 17, 30, tzinfo=UTC), 14)
    assert deadline == datetime(2026, 12, 16, 16, 59, 59, tzinfo=UTC)
    assert deadline_for(datetime(2026, 12, 1, 16, 59, tzinfo=UTC), 14) == datetime(2026, 12, 15, 16, 59, 59, tzinfo=UTC)


def test_ack_days_and_no_ack(client, tree, board):
    doc = create(client, board, body(tree, ack_days=3))
    result = publish(client, board, doc["id"])
    published = datetime.fromisoformat(result["published_at"])
    assert datetime.fromisoformat(result["deadline"]) == deadline_for(published, 3)
    notice = create(client, board, body(tree, kind="notice", requires_ack=False))
    assert publish(client, board, notice["id"])["deadline"] is None


# --- scheduling and run-due ------------------------------------------------------------------------

def _run_due(app, *args):
    return app.test_cli_runner().invoke(args=["handbook", "push", "run-due", *args])


def test_schedule_then_run_due_publishes_once(app, client, tree, board, reader):
    doc = create(client, board, body(tree))
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    result = publish(client, board, doc["id"], publish_at=at.isoformat())
    assert result["status"] == "scheduled" and result["notification_id"]
    assert datetime.fromisoformat(result["published_at"]) == at
    assert datetime.fromisoformat(result["deadline"]) == deadline_for(at, 14)
    assert client.get("/api/v1/documents", headers=reader).json["items"] == []
    assert client.get(f"{ADMIN}?status=scheduled", headers=board).json["items"][0]["id"] == doc["id"]

    early = _run_due(app, "--at", (at - timedelta(minutes=1)).isoformat())
    assert early.exit_code == 0 and "Nothing due." in early.output
    due = _run_due(app, "--at", at.isoformat())
    assert due.exit_code == 0 and f"published document {doc['id']}" in due.output
    again = _run_due(app, "--at", (at + timedelta(minutes=5)).isoformat())
    assert "Nothing due." in again.output
    db.session.expire_all()
    assert db.session.get(Document, doc["id"]).status == "published"
    assert db.session.scalar(select(func.count()).select_from(DocumentVersion)) == 1
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
    assert db.session.scalar(select(func.count()).where(AuditEntry.action == "document.publish")) == 1


def test_run_due_rejects_bad_times(app):
    assert _run_due(app, "--at", "tomorrow").exit_code != 0
    assert "UTC offset" in _run_due(app, "--at", "2026-12-01T08:00:00").output


def test_scheduled_document_is_visible_once_due_without_the_worker(client, tree, board, reader):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"], publish_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    stored = db.session.get(Document, doc["id"])
    stored.published_at = stored.sync_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    assert [i["id"] for i in client.get("/api/v1/documents", headers=reader).json["items"]] == [doc["id"]]


def test_reschedule_and_publish_now_keep_one_notification(client, tree, board):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"], publish_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    later = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    assert publish(client, board, doc["id"], publish_at=later.isoformat())["status"] == "scheduled"
    now = publish(client, board, doc["id"])
    assert now["status"] == "published"
    notifications = db.session.scalars(select(Notification)).all()
    assert len(notifications) == 1 and notifications[0].due_at <= datetime.now(UTC)


def test_publish_at_must_carry_an_offset(client, tree, board):
    doc = create(client, board, body(tree))
    response = client.post(f"{ADMIN}/{doc['id']}/publish", json={"publish_at": "2030-01-01T08:00:00"}, headers=board)
    assert_problem(response, 422, "validation_error")
    assert db.session.get(Document, doc["id"]).status == "draft"


def test_editing_a_draft_changes_it_in_place(client, tree, board):
    doc = create(client, board, body(tree))
    response = client.patch(f"{ADMIN}/{doc['id']}", headers=board, json={
        "title": "Tiêu đề mới", "audience": {"org_units": [tree["ba_dinh"].id], "roles": ["secretary"]},
        "ack_days": 7})
    assert response.status_code == 200
    assert response.json["version"] == 1 and response.json["title"] == "Tiêu đề mới"
    assert response.json["audience"]["roles"] == ["secretary"] and response.json["ack_days"] == 7
    assert response.json["audience"]["org_units"][0]["id"] == tree["ba_dinh"].id
    assert db.session.scalar(select(func.count()).select_from(DocumentVersion)) == 0


# --- versions --------------------------------------------------------------------------------------

def _ack(doc_id, member_card, version):
    from handbook.members import Member

    m = db.session.scalar(select(Member).where(Member.card_number == member_card))
    db.session.add(Receipt(document_id=doc_id, member_id=m.id, opened_at=datetime.now(UTC),
                           acknowledged_at=datetime.now(UTC), acknowledged_version=version, method="app"))
    db.session.commit()


def test_correction_keeps_acknowledgements(client, tree, board, reader):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    _ack(doc["id"], "R1", 1)
    response = client.patch(f"{ADMIN}/{doc['id']}", json={"summary": "Sửa lỗi chính tả", "reack": False,
                                                          "note": "chính tả"}, headers=board)
    assert response.json["version"] == 2 and response.json["ack_version"] == 1
    item = client.get(f"/api/v1/documents/{doc['id']}", headers=reader).json
    assert item["version"] == 2 and item["summary"] == "Sửa lỗi chính tả" and item["my"]["state"] == "acknowledged"
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1  # only the publication


def test_material_change_asks_again(client, tree, board, reader):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    _ack(doc["id"], "R1", 1)
    old_deadline = db.session.get(Document, doc["id"]).deadline
    response = client.patch(f"{ADMIN}/{doc['id']}", json={"body_html": "<p>Nội dung mới</p>", "reack": True},
                            headers=board)
    assert response.json["version"] == 2 and response.json["ack_version"] == 2
    db.session.expire_all()
    assert db.session.get(Document, doc["id"]).deadline >= old_deadline
    item = client.get(f"/api/v1/documents/{doc['id']}", headers=reader).json
    assert item["my"]["state"] == "opened" and item["my"]["acknowledged_version"] == 1
    assert client.get("/api/v1/me/summary", headers=reader).json["pending"] == 1
    kinds = db.session.scalars(select(Notification.kind).order_by(Notification.id)).all()
    assert kinds == ["published", "reack"]
    # The receipt itself is untouched: the evidence of version 1 stays.
    receipts = db.session.scalars(select(Receipt)).all()
    assert [(r.acknowledged_version, r.method) for r in receipts] == [(1, "app")]


def test_old_versions_stay_readable_to_publishers(client, tree, board, reader):
    doc = create(client, board, body(tree, body_html="<p>Bản gốc</p>"))
    publish(client, board, doc["id"])
    client.patch(f"{ADMIN}/{doc['id']}", json={"body_html": "<p>Bản hai</p>", "reack": True}, headers=board)
    client.patch(f"{ADMIN}/{doc['id']}", json={"title": "Tên sửa"}, headers=board)
    listing = client.get(f"{ADMIN}/{doc['id']}/versions", headers=board).json["items"]
    assert [(v["version"], v["reack"]) for v in listing] == [(1, False), (2, True), (3, False)]
    assert "body_html" not in listing[0]
    first = client.get(f"{ADMIN}/{doc['id']}/versions/1", headers=board).json
    assert first["body_html"] == "<p>Bản gốc</p>" and first["title"] == doc["title"]
    assert_problem(client.get(f"{ADMIN}/{doc['id']}/versions/9", headers=board), 404, "not_found")
    # Readers have no version history endpoint.
    assert_problem(client.get(f"{ADMIN}/{doc['id']}/versions", headers=reader), 404, "not_found")


def test_no_change_makes_no_version(client, tree, board):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    response = client.patch(f"{ADMIN}/{doc['id']}", json={"title": doc["title"]}, headers=board)
    assert response.json["version"] == 1


def test_audience_is_locked_after_publication(client, tree, board):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    response = client.patch(f"{ADMIN}/{doc['id']}", headers=board,
                            json={"audience": {"org_units": [tree["ba_dinh"].id]}, "requires_ack": False})
    assert_problem(response, 422, "validation_error")
    assert set(response.json["errors"]) == {"audience", "requires_ack"}
    assert db.session.get(Document, doc["id"]).version == 1


# --- withdrawal ------------------------------------------------------------------------------------

def test_withdraw_keeps_receipts_and_cancels_pending_pushes(client, tree, board, reader):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    _ack(doc["id"], "R1", 1)
    response = client.post(f"{ADMIN}/{doc['id']}/withdraw", json={"reason": "Văn bản thay thế"}, headers=board)
    assert response.status_code == 200
    assert response.json["status"] == "withdrawn" and response.json["withdraw_reason"] == "Văn bản thay thế"
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1
    assert db.session.scalars(select(Notification.state)).all() == ["cancelled"]
    assert_problem(client.get(f"/api/v1/documents/{doc['id']}", headers=reader), 410, "document_withdrawn")
    # Again: nothing changes.
    again = client.post(f"{ADMIN}/{doc['id']}/withdraw", json={"reason": "Lần hai"}, headers=board)
    assert again.status_code == 200 and again.json["withdraw_reason"] == "Văn bản thay thế"
    assert_problem(client.patch(f"{ADMIN}/{doc['id']}", json={"title": "x"}, headers=board), 409,
                   "document_withdrawn")


def test_withdraw_needs_a_reason(client, tree, board):
    doc = create(client, board, body(tree))
    assert_problem(client.post(f"{ADMIN}/{doc['id']}/withdraw", json={}, headers=board), 422, "validation_error")
    assert_problem(client.post(f"{ADMIN}/{doc['id']}/withdraw", json={"reason": "   "}, headers=board), 422,
                   "validation_error")
    assert db.session.get(Document, doc["id"]).status == "draft"


# --- admin listing and audit -----------------------------------------------------------------------

def test_admin_list_scope_status_and_pagination(client, tree, board, district):
    city_ids = [create(client, board, body(tree, title=f"Thành ủy {i}"))["id"] for i in range(5)]
    district_id = create(client, district, body(tree, "phuong"))["id"]
    publish(client, board, city_ids[0])
    seen, cursor = [], None
    while True:
        page = client.get(ADMIN, query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                          headers=board).json
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(city_ids + [district_id], reverse=True)
    assert [d["id"] for d in client.get(ADMIN, headers=district).json["items"]] == [district_id]
    published = client.get(ADMIN, query_string={"status": "published"}, headers=board).json["items"]
    assert [d["id"] for d in published] == [city_ids[0]]
    assert_problem(client.get(ADMIN, query_string={"status": "gone"}, headers=board), 422, "validation_error")
    assert_problem(client.get(ADMIN, query_string={"cursor": "%%%"}, headers=board), 422, "validation_error")


def test_audit_endpoint_filters_and_scope(client, tree, board, district):
    doc = create(client, board, body(tree))
    publish(client, board, doc["id"])
    create(client, district, body(tree, "phuong"))
    entries = client.get("/api/v1/admin/audit", headers=board).json["items"]
    assert [e["action"] for e in entries] == ["document.create", "document.publish", "document.create"][::-1]
    assert entries[-1]["actor"]["card_number"] == "B1" and entries[-1]["target_id"] == str(doc["id"])
    only = client.get("/api/v1/admin/audit", query_string={"action": "document.publish"}, headers=board).json
    assert [e["target_id"] for e in only["items"]] == [str(doc["id"])]
    d1 = entries[0]["actor"]["id"]
    by_actor = client.get("/api/v1/admin/audit", query_string={"actor": d1}, headers=board).json["items"]
    assert {e["actor"]["card_number"] for e in by_actor} == {"D1"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/admin/audit", query_string={"since": future}, headers=board).json["items"] == []
    # Publishers who are not admins see nothing; a district admin sees only their district's actors.
    assert_problem(client.get("/api/v1/admin/audit", headers=district), 403, "forbidden")
    member("A2", tree["dong_da"], roles=[("admin", tree["ba_dinh"])])
    district_admin = bearer(login(client, "A2").json["access_token"])
    visible = client.get("/api/v1/admin/audit", headers=district_admin).json["items"]
    assert {e["actor"]["card_number"] for e in visible} == {"D1"}


def test_series_creation_scope(client, tree, board, district):
    response = client.post("/api/v1/admin/series", json={"title": "Chuyên đề 2026"}, headers=district)
    assert response.status_code == 201 and response.json["owner_unit"]["id"] == tree["ba_dinh"].id
    outside = client.post("/api/v1/admin/series", json={"title": "X", "owner_unit": tree["city"].id}, headers=district)
    assert_problem(outside, 403, "audience_out_of_scope")
    series_id = response.json["id"]
    # A city publisher cannot put a lesson into another scope's... the district's series is inside the city.
    lesson = create(client, board, body(tree, kind="study", series_id=series_id, lesson_no=1))
    assert lesson["series_id"] == series_id
    other = client.post(ADMIN, json=body(tree, kind="directive", series_id=series_id), headers=board)
    assert_problem(other, 422, "validation_error")


def test_two_lessons_cannot_share_a_number(client, tree, board):
    series = client.post("/api/v1/admin/series", json={"title": "Chuyên đề"}, headers=board).json["id"]
    first = create(client, board, body(tree, kind="study", series_id=series, lesson_no=1))
    clash = client.post(ADMIN, json=body(tree, kind="study", series_id=series, lesson_no=1), headers=board)
    assert_problem(clash, 422, "validation_error")
    assert "lesson_no" in clash.json["errors"]
    second = create(client, board, body(tree, kind="study", series_id=series, lesson_no=2))
    moved = client.patch(f"{ADMIN}/{second['id']}", json={"lesson_no": 1}, headers=board)
    assert_problem(moved, 422, "validation_error")
    assert client.patch(f"{ADMIN}/{first['id']}", json={"lesson_no": 1}, headers=board).status_code == 200
    assert client.patch(f"{ADMIN}/{second['id']}", json={"lesson_no": 3}, headers=board).json["lesson_no"] == 3


def test_changing_the_audience_of_a_scheduled_document_recounts_it(client, tree, board):
    from content.models import ProgressCounter

    member("R4", tree["b1"])
    member("R5", tree["b2"])
    doc = create(client, board, body(tree, "b1"))
    publish(client, board, doc["id"], publish_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    rows = db.session.execute(select(ProgressCounter.org_unit_id, ProgressCounter.total)).all()
    assert rows == [(tree["b1"].id, 1)]
    client.patch(f"{ADMIN}/{doc['id']}", json={"audience": {"org_units": [tree["b2"].id]}}, headers=board)
    rows = db.session.execute(select(ProgressCounter.org_unit_id, ProgressCounter.total)).all()
    assert rows == [(tree["b2"].id, 1)]
