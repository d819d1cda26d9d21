"""The board's console pages: documents by status, a new draft with its audience picked by name, the
preview, an attachment, publishing now or later, withdrawing; each publisher's scope; invalid input next to
its field with nothing written; no CSRF token, nothing written."""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from content.models import Document
from handbook.extensions import db
from handbook.timeutil import local_zone
from tests.console_helpers import assert_page, browser, post
from tests.factories import member
from tests.test_console import PDF, publish, table_counts


@pytest.fixture()
def board(tree):
    return {
        "P1": member("P1", tree["b1"], name="Bùi Thị Hoa", roles=[("publisher", tree["ba_dinh"])]),
        "P2": member("P2", tree["cbcs"], name="Ngô Văn Khánh", roles=[("publisher", tree["dong_da"])]),
        "A1": member("A1", tree["b2"], name="Dương Văn Minh", roles=[("admin", tree["city"])]),
        "M1": member("M1", tree["b1"], name="Nguyễn Văn An"),
        "S1": member("S1", tree["b1"], name="Lê Văn Cường", roles=[("secretary", tree["b1"])]),
    }


def draft_form(**overrides) -> dict:
    return {"action": "save", "kind": "plan", "number": "145-KH/QU", "title": "Kế hoạch học tập nghị quyết",
            "summary": "Tóm tắt", "issuing_body": "Quận ủy Ba Đình", "issued_on": "2026-12-01",
            "body_html": "<p>Nội dung <em>kế hoạch</em></p><img src=x onerror=alert(1)><script>x()</script>",
            "requires_ack": "y", "ack_days": "10", **overrides}


def test_the_publisher_creates_previews_attaches_and_publishes(app, board, tree):
    client = browser(app, "P1")
    assert client.get("/").headers["Location"] == "/board"             # a publisher lands on the board
    assert "Phát hành" in assert_page(client.get("/board"))
    form = assert_page(client.get("/board/new"))
    assert "Quận ủy Ba Đình" in form and "Đảng bộ phường Điện Biên" in form   # the scope and its children
    assert "Quận ủy Đống Đa" not in form
    found = assert_page(post(client, "/board/new", {**draft_form(action="search"), "unit_q": "to dan pho 2"}))
    assert "Chi bộ Tổ dân phố số 2" in found and "Chi bộ Tổ dân phố số 1" not in found
    assert 'value="Kế hoạch học tập nghị quyết"' in found                 # what was typed is kept
    response = post(client, "/board/new", {**draft_form(), "audience": [tree["b2"].id]})
    assert response.status_code == 303
    doc = db.session.scalar(select(Document))
    assert doc.status == "draft" and doc.ack_days == 10 and doc.audience_unit_ids == [tree["b2"].id]
    preview = assert_page(client.get(response.headers["Location"]))
    assert "<em>kế hoạch</em>" in preview and "onerror" not in preview and "<script>x()" not in preview
    attached = client.post(f"/board/documents/{doc.id}/attachments",
                           data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', preview).group(1),
                                 "file": (io.BytesIO(PDF), "phu-luc.pdf")}, content_type="multipart/form-data")
    assert attached.status_code == 303
    assert "phu-luc.pdf" in assert_page(client.get(attached.headers["Location"]))
    published = post(client, f"/board/documents/{doc.id}/publish", {"publish_at": ""})
    assert published.status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, doc.id).status == "published"
    text = assert_page(client.get(published.headers["Location"]))
    assert "Đã phát hành" in text and re.search(r"Thông báo: \w+ · 0 đảng viên", text)   # not fanned out yet
    # A member of the audience reads it in their feed.
    reader = browser(app, "A1")
    assert "Kế hoạch học tập nghị quyết" in assert_page(reader.get("/feed"))


def test_scheduling_for_later_and_withdrawing_with_a_reason(app, board, tree):
    client = browser(app, "P1")
    response = post(client, "/board/new", {**draft_form(), "audience": [tree["ba_dinh"].id]})
    doc_id = int(response.headers["Location"].rsplit("/", 1)[1])
    later = (datetime.now(local_zone()) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert post(client, f"/board/documents/{doc_id}/publish", {"publish_at": later, "urgent": "y"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, doc_id).status == "scheduled"
    assert "Chờ phát hành" in assert_page(client.get("/board?status=scheduled"))
    before = table_counts()
    text = assert_page(post(client, f"/board/documents/{doc_id}/withdraw", {"reason": "  "}), 422)
    assert '<p class="error" id="reason-error">Hãy nhập lý do.</p>' in text
    assert table_counts() == before
    assert post(client, f"/board/documents/{doc_id}/withdraw", {"reason": "Thay bằng văn bản khác"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, doc_id).withdraw_reason == "Thay bằng văn bản khác"


@pytest.mark.parametrize(("form", "field", "message"), [
    (draft_form(title=""), "title", "Trường này là bắt buộc."),
    (draft_form(ack_days="0"), "ack_days", "Từ 1 đến 365."),
    (draft_form(issued_on="hom-qua"), "issued_on", "Ngày không hợp lệ."),
])
def test_invalid_draft_input_is_shown_next_to_the_field(app, board, tree, form, field, message):
    client = browser(app, "P1")
    before = table_counts()
    text = assert_page(post(client, "/board/new", {**form, "audience": [tree["b1"].id]}), 422)
    assert f'<p class="error" id="{field}-error">{message}</p>' in text
    assert f'id="u{tree["b1"].id}" checked' in text                       # the chosen audience is kept
    assert table_counts() == before


def test_a_draft_without_audience_asks_for_one(app, board):
    text = assert_page(post(browser(app, "P1"), "/board/new", draft_form()), 422)
    assert '<p class="error" id="audience-error">Hãy chọn ít nhất một đơn vị.</p>' in text
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0


def test_an_audience_outside_the_scope_is_refused(app, board, tree):
    assert_page(post(browser(app, "P1"), "/board/new", {**draft_form(), "audience": [tree["dong_da"].id]}), 403)
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0


def test_each_role_s_scope_holds_on_the_board(app, board, tree):
    doc = publish(board["P1"], [tree["b1"]])
    assert_page(browser(app, "M1").get("/board"), 403)
    assert_page(browser(app, "S1").get("/board/new"), 403)
    assert_page(browser(app, "P2").get(f"/board/documents/{doc}"), 404)         # another district's publisher
    assert_page(post(browser(app, "P2"), f"/board/documents/{doc}/withdraw", {"reason": "x"}), 404)
    assert "24-CT/TU" not in assert_page(browser(app, "P2").get("/board"))
    assert "24-CT/TU" in assert_page(browser(app, "A1").get("/board"))          # the admin over the city


def test_board_forms_without_csrf_token_are_refused(app, board, tree):
    doc = publish(board["P1"], [tree["b1"]])
    client = browser(app, "P1")
    before = table_counts()
    for path, data in [("/board/new", {**draft_form(), "audience": [tree["b1"].id]}),
                       (f"/board/documents/{doc}/withdraw", {"reason": "x"}),
                       (f"/board/documents/{doc}/publish", {})]:
        assert_page(client.post(path, data=data), 400)
    assert table_counts() == before


def test_editing_a_draft_in_place_and_new_versions_of_a_published_document(app, board, tree):
    from content import acknowledgements
    from content.models import Receipt

    client = browser(app, "P1")
    response = post(client, "/board/new", {**draft_form(), "audience": [tree["b1"].id]})
    draft = int(response.headers["Location"].rsplit("/", 1)[1])
    form = assert_page(client.get(f"/board/documents/{draft}/edit"))
    assert 'value="Kế hoạch học tập nghị quyết"' in form and "xác nhận lại" not in form
    assert post(client, f"/board/documents/{draft}/edit", {"title": "Kế hoạch (sửa)", "body_html": "<p>Mới</p>"}
                ).status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, draft).title == "Kế hoạch (sửa)" and db.session.get(Document, draft).version == 1

    doc = publish(board["P1"], [tree["b1"]])
    acknowledgements.acknowledge(board["M1"], doc, 1)
    text = assert_page(client.get(f"/board/documents/{doc}/edit"))
    assert "Phiên bản mới của 24-CT/TU" in text
    assert post(client, f"/board/documents/{doc}/edit", {"title": "Chỉ thị (đính chính)", "note": "Sửa lỗi chính tả"}
                ).status_code == 303
    db.session.expire_all()
    row = db.session.get(Document, doc)
    assert row.version == 2 and row.ack_version == 1            # a correction keeps the acknowledgement
    assert post(client, f"/board/documents/{doc}/edit", {"title": "Chỉ thị (bổ sung)", "reack": "y",
                                                          "body_html": "<p>Bổ sung nhiệm vụ</p>"}).status_code == 303
    db.session.expire_all()
    row = db.session.get(Document, doc)
    assert row.version == 3 and row.ack_version == 3
    receipt = db.session.get(Receipt, (doc, board["M1"].id))
    assert receipt.acknowledged_version == 1                     # so the member must acknowledge again
    assert "Cần xác nhận lại" not in assert_page(browser(app, "M1").get(f"/read/{doc}"))
    assert "Tôi đã đọc và nắm nội dung văn bản" in assert_page(browser(app, "M1").get(f"/read/{doc}"))
    before = table_counts()
    bad = assert_page(post(client, f"/board/documents/{doc}/edit", {"title": ""}), 422)
    assert '<p class="error" id="title-error">Trường này là bắt buộc.</p>' in bad
    assert table_counts() == before
    assert_page(browser(app, "P2").get(f"/board/documents/{doc}/edit"), 404)


def test_a_draft_carries_tags_and_an_audience_narrowed_to_roles(app, board, tree):
    client = browser(app, "P1")
    form = assert_page(client.get("/board/new"))
    assert 'name="tags"' in form and 'name="audience_roles" value="secretary"' in form
    response = post(client, "/board/new", {**draft_form(tags="kỷ luật,  Xây dựng Đảng , ,kỷ luật"),
                                           "audience": [tree["ba_dinh"].id], "audience_roles": ["secretary", "committee"]})
    assert response.status_code == 303
    doc = db.session.scalar(select(Document))
    assert doc.tags == ["kỷ luật", "Xây dựng Đảng"]                # as the API stores them: NFC, no duplicate
    assert sorted(doc.audience_roles) == ["committee", "secretary"]
    # Only the branch secretaries are in the audience once it is out.
    from content import documents
    documents.publish_document(board["P1"], doc.id)
    assert_page(browser(app, "M1").get(f"/read/{doc.id}"), 404)
    assert_page(browser(app, "S1").get(f"/read/{doc.id}"))
    # The tags are edited with the rest of the text.
    edit = assert_page(client.get(f"/board/documents/{doc.id}/edit"))
    assert 'value="kỷ luật, Xây dựng Đảng"' in edit
    assert post(client, f"/board/documents/{doc.id}/edit", {"title": doc.title, "tags": "kỷ cương"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, doc.id).tags == ["kỷ cương"]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"tags": ",".join(f"n{i}" for i in range(31))}, "tags", "Tối đa 30 nhãn."),
    ({"tags": "x" * 65}, "tags", "Mỗi nhãn tối đa 64 ký tự: xxxxxxxxxxxxxxxxxxxx…"),
    ({"audience_roles": ["secretary", "king"]}, "audience_roles", "Chỉ đánh dấu các lựa chọn có trong danh sách."),
])
def test_bad_tags_or_roles_are_shown_next_to_their_field_and_nothing_is_written(app, board, tree, overrides, field,
                                                                                message):
    client = browser(app, "P1")
    before = table_counts()
    text = assert_page(post(client, "/board/new", {**draft_form(), "audience": [tree["b1"].id], **overrides}), 422)
    assert f'<p class="error" id="{field}-error">{message}</p>' in text
    assert table_counts() == before
