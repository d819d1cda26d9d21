"""The console's pages through the Flask test client, on a real database: signing in and out (the API's
sessions and throttles), each role's work, the secretary's forms, the committee's chart, the member's
reading page; invalid input shown next to its field, a missing CSRF token refused with nothing written.

Who is who (tests/factories.small_tree):
    HN city ── HN.BD Ba Đình ── HN.BD.DB phường Điện Biên ── b1 (secretary S1; members M1, M2, M3)
                                                          └─ b2 (secretary S2; member M4)
           └── HN.DD Đống Đa ── HN.DD.CB (committee@Đống Đa C2)
    committee@Ba Đình C1 (member of b2), admin@city A1 (member of b1? no: of b2).
"""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from content.models import Receipt
from handbook.auth import AuthSession
from handbook.extensions import db
from push.models import InboxItem, Notification
from tests.console_helpers import assert_page, browser, csrf_from, post, sign_in
from tests.factories import PASSWORD, login, member

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture()
def people(tree):
    b1, b2 = tree["b1"], tree["b2"]
    out = {
        "S1": member("S1", b1, name="Lê Văn Cường", roles=[("secretary", b1)]),
        "M1": member("M1", b1, name="Nguyễn Văn An"),
        "M2": member("M2", b1, name="Trần Thị Bình", password=None),
        "M3": member("M3", b1, name="Phạm Văn Đức", password=None),
        "S2": member("S2", b2, name="Đặng Văn Hải", roles=[("secretary", b2)]),
        "M4": member("M4", b2, name="Vũ Thị Giang"),
        "C1": member("C1", b2, name="Lý Thị Ngọc", roles=[("committee", tree["ba_dinh"])]),
        "C2": member("C2", tree["cbcs"], name="Ngô Văn Khánh", roles=[("committee", tree["dong_da"])]),
        "A1": member("A1", b2, name="Dương Văn Minh", roles=[("admin", tree["city"])]),
    }
    return out


def publish(author, audience, *, title="Chỉ thị về tăng cường kỷ luật, kỷ cương", number="24-CT/TU",
            body="<p>Nội dung <strong>chính</strong></p><script>alert(1)</script>", attachment=False):
    from content import attachments, documents

    doc = documents.create_document(author, {
        "kind": "directive", "number": number, "title": title, "summary": "Tóm tắt", "body_html": body,
        "issuing_body": "Thành ủy Hà Nội", "audience": {"org_units": [u.id for u in audience]}})
    if attachment:
        managed = documents.managed_document(author, doc.id)
        attachments.add_attachment(author, managed, FileStorage(io.BytesIO(PDF), filename="phu-luc.pdf"))
    documents.publish_document(author, doc.id)
    return doc.id


@pytest.fixture()
def doc(people, tree):
    """A directive of the city to Ba Đình (both branches), with a PDF attachment."""
    return publish(people["A1"], [tree["ba_dinh"]], attachment=True)


def receipt(doc_id, member_) -> Receipt | None:
    db.session.expire_all()
    return db.session.get(Receipt, (doc_id, member_.id))


def table_counts() -> dict[str, int]:
    from sqlalchemy import text

    return {t.name: db.session.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar()
            for t in db.metadata.sorted_tables}


def today():
    from datetime import datetime

    from handbook.timeutil import local_zone

    return datetime.now(local_zone()).date()


# --- signing in and out ---------------------------------------------------------------------------------

def test_sign_in_page_is_vietnamese_by_default_with_an_english_switch(client, people):
    text = assert_page(client.get("/login"))
    assert '<html lang="vi">' in text and "Đăng nhập" in text
    assert re.search(r'<label for="username">Số thẻ đảng viên hoặc số điện thoại</label>', text)
    switched = client.post("/language", data={"csrf_token": csrf_from(client.get("/login")), "lang": "en",
                                              "next": "/login"})
    assert switched.status_code == 303 and switched.headers["Location"] == "/login"
    text = assert_page(client.get("/login"))
    assert '<html lang="en">' in text and "Sign in" in text and "Party card number or phone" in text


def test_the_language_switch_never_redirects_off_site(client, people):
    token = csrf_from(client.get("/login"))
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post("/language", data={"csrf_token": token, "lang": "en", "next": target})
        assert response.headers["Location"] == "/", target


@pytest.mark.parametrize(("card", "lands_on", "shows"), [
    ("M1", "/feed", "Chưa mở"),
    ("S1", "/", "Chi bộ Tổ dân phố số 1"),
    ("C1", "/", "Quận ủy Ba Đình"),
    ("A1", "/board", "Phát hành"),
])
def test_signing_in_leads_each_role_to_their_work(app, doc, card, lands_on, shows):
    client = app.test_client()
    response = sign_in(client, card)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    home = client.get("/")
    if lands_on == "/":
        text = assert_page(home)
        assert shows in text and "24-CT/TU" in text and "Còn 14 ngày" in text
    else:
        assert home.status_code == 303 and home.headers["Location"] == lands_on
        text = assert_page(client.get(lands_on))
        assert shows in text and "24-CT/TU" in text


def test_sign_in_goes_back_to_the_page_asked_for(app, doc):
    client = app.test_client()
    asked = client.get(f"/documents/{doc}/follow")
    assert asked.status_code == 303 and asked.headers["Location"].startswith("/login?next=")
    token = csrf_from(client.get(asked.headers["Location"]))
    response = client.post("/login", data={"csrf_token": token, "username": "S1", "password": PASSWORD,
                                           "next": f"/documents/{doc}/follow"})
    assert response.headers["Location"] == f"/documents/{doc}/follow"


def test_a_wrong_password_is_shown_next_to_the_field(client, people):
    token = csrf_from(client.get("/login"))
    response = client.post("/login", data={"csrf_token": token, "username": "S1", "password": "sai-mat-khau"})
    text = assert_page(response, 401)
    assert re.search(r'aria-invalid="true"[^>]*id="password"', text)
    assert '<p class="error" id="password-error">Số thẻ đảng viên/số điện thoại hoặc mật khẩu không đúng.</p>' in text
    assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0


def test_empty_fields_are_shown_next_to_each_field(client, people):
    token = csrf_from(client.get("/login"))
    text = assert_page(client.post("/login", data={"csrf_token": token, "username": "", "password": ""}), 422)
    assert 'id="username-error">Trường này là bắt buộc.' in text
    assert 'id="password-error">Trường này là bắt buộc.' in text


def test_sign_in_without_csrf_token_is_refused(client, people):
    client.get("/login")
    text = assert_page(client.post("/login", data={"username": "S1", "password": PASSWORD}), 400)
    assert "Biểu mẫu đã hết hạn" in text
    assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0


def test_console_and_app_logins_share_the_per_account_throttle(app, client, people):
    token = csrf_from(client.get("/login"))
    for _ in range(5):
        response = client.post("/login", data={"csrf_token": token, "username": "S1", "password": "sai"})
        assert response.status_code == 401
    throttled = client.post("/login", data={"csrf_token": token, "username": "S1", "password": PASSWORD})
    assert_page(throttled, 429)
    assert login(app.test_client(), "S1").status_code == 429   # the app's login is throttled too


def test_the_session_cookie_is_httponly_samesite_and_secure_on_https(app, people):
    client = app.test_client()
    token = csrf_from(client.get("/login"))
    response = client.post("/login", data={"csrf_token": token, "username": "S1", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client()
    token = csrf_from(secure.get("/login", base_url="https://localhost"))
    response = secure.post("/login", base_url="https://localhost",
                           data={"csrf_token": token, "username": "S1", "password": PASSWORD})
    assert "Secure" in response.headers["Set-Cookie"]


def test_signing_out_revokes_the_session_row_at_once(app, people):
    client = browser(app, "S1")
    stolen = client.get_cookie("handbook_session").value
    assert client.get("/").status_code == 200
    response = post(client, "/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    [row] = db.session.scalars(select(AuthSession)).all()
    assert row.revoked_at is not None and row.revoked_reason == "logout"
    replay = app.test_client()
    replay.set_cookie("handbook_session", stolen)
    assert replay.get("/").status_code == 303   # the old cookie is worth nothing


def test_revoking_the_member_s_sessions_ends_the_console_session(app, people):
    from handbook.auth import revoke_member_sessions

    client = browser(app, "S1")
    assert client.get("/").status_code == 200
    revoke_member_sessions(people["S1"].id, "password_change")
    db.session.commit()
    response = client.get("/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def test_a_password_changed_in_the_app_ends_console_sessions(app, people):
    client = browser(app, "S1")
    tokens = login(app.test_client(), "S1").json
    response = app.test_client().put("/api/v1/me/password", json={"current_password": PASSWORD,
                                                                  "new_password": "mat-khau-moi-456"},
                                     headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 204
    assert client.get("/").status_code == 303


def test_the_session_ends_after_console_session_hours(app, people, monkeypatch):
    client = browser(app, "S1")
    with client.session_transaction() as session:
        session["at"] -= app.config["CONSOLE_SESSION_HOURS"] * 3600 + 1
    assert client.get("/").status_code == 303


# --- the secretary ---------------------------------------------------------------------------------------

def test_the_secretary_s_overview_puts_overdue_directives_first(app, people, tree):
    from content.models import Document

    late = publish(people["A1"], [tree["b1"]], number="01-CT/TU", title="Chỉ thị quá hạn")
    fresh = publish(people["A1"], [tree["b1"]], number="02-CT/TU", title="Chỉ thị mới")
    row = db.session.get(Document, late)
    row.deadline = row.deadline - timedelta(days=20)
    db.session.commit()
    text = assert_page(browser(app, "S1").get("/"))
    assert text.index("01-CT/TU") < text.index("02-CT/TU")
    assert "Quá hạn 6 ngày" in text and "4 quá hạn" in text
    assert f'href="/documents/{fresh}/follow?unit={tree["b1"].id}"' in text


def test_the_member_list_shows_states_filters_and_finds_names_without_accents(app, people, doc, tree):
    client = browser(app, "S1")
    text = assert_page(client.get(f"/documents/{doc}/follow"))
    for name in ("Nguyễn Văn An", "Trần Thị Bình", "Phạm Văn Đức", "Lê Văn Cường"):
        assert name in text
    assert "Vũ Thị Giang" not in text            # another branch
    assert "0/4 đã xác nhận" in text
    found = assert_page(client.get(f"/documents/{doc}/follow", query_string={"q": "binh"}))
    assert "Trần Thị Bình" in found and "Nguyễn Văn An" not in found
    found = assert_page(client.get(f"/documents/{doc}/follow", query_string={"q": "DUC pham"}))
    assert "Phạm Văn Đức" in found and "Trần Thị Bình" not in found
    none = assert_page(client.get(f"/documents/{doc}/follow", query_string={"state": "acknowledged"}))
    assert "Không có đảng viên nào phù hợp." in none


def test_briefing_several_members_at_once_then_undoing_one(app, people, doc):
    client = browser(app, "S1")
    m2, m3 = people["M2"], people["M3"]
    response = post(client, f"/documents/{doc}/follow", {"action": "briefing", "member_ids": [m2.id, m3.id],
                                                          "held_on": today().isoformat(),
                                                          "note": "Sinh hoạt chi bộ tháng 12"})
    assert response.status_code == 303
    assert receipt(doc, m2).method == "briefing" and receipt(doc, m3).held_on == today()
    text = assert_page(client.get(response.headers["Location"]))
    assert "Đã ghi nhận phổ biến cho 2 đảng viên." in text
    assert "2/4 đã xác nhận" in text and 'aria-label="đạt 50%"' in text
    assert text.count("Hủy ghi nhận phổ biến") == 2
    undo = post(client, f"/documents/{doc}/briefings/{m2.id}/undo")
    assert undo.status_code == 303
    assert receipt(doc, m2).acknowledged_at is None and receipt(doc, m3).acknowledged_at is not None
    assert "1/4 đã xác nhận" in assert_page(client.get(undo.headers["Location"]))


def test_excusing_members_with_a_reason_then_undoing(app, people, doc):
    client = browser(app, "S1")
    response = post(client, f"/documents/{doc}/follow", {"action": "exempt", "member_ids": [people["M3"].id],
                                                          "reason": "Ốm dài ngày"})
    assert response.status_code == 303
    assert receipt(doc, people["M3"]).exempt_reason == "Ốm dài ngày"
    text = assert_page(client.get(response.headers["Location"]))
    assert "Đã miễn cho 1 đảng viên." in text and "Ốm dài ngày" in text and "1 được miễn" in text
    assert post(client, f"/documents/{doc}/exemptions/{people['M3'].id}/undo").status_code == 303
    assert receipt(doc, people["M3"]).exempted_at is None


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"action": "exempt", "reason": "  "}, "reason", "Hãy nhập lý do."),
    ({"action": "briefing", "held_on": ""}, "held_on", "Hãy nhập ngày sinh hoạt."),
    ({"action": "briefing", "held_on": "ngay-hom-qua"}, "held_on", "Ngày không hợp lệ."),
    ({"action": "briefing", "held_on": "2099-01-01"}, "held_on", "Ngày không được ở tương lai."),
    ({"action": "briefing", "held_on": "2000-01-01"}, "held_on", "Ngày không được trước ngày phát hành văn bản."),
    ({"action": "briefing", "held_on": "TODAY", "note": "x" * 2001}, "note", "Tối đa 2000 ký tự."),
])
def test_invalid_input_is_shown_next_to_the_field_and_nothing_is_written(app, people, doc, form, field, message):
    client = browser(app, "S1")
    form = {**form, "held_on": today().isoformat()} if form.get("held_on") == "TODAY" else form
    before = table_counts()
    response = post(client, f"/documents/{doc}/follow", {"member_ids": [people["M2"].id], **form})
    text = assert_page(response, 422)
    assert f'<p class="error" id="{field}-error">{message}</p>' in text, text[text.find("error"):][:500]
    assert re.search(rf'aria-invalid="true"[^>]*id="{field}"', text)
    assert f'value="{people["M2"].id}" id="m{people["M2"].id}" checked' in text   # the ticks are kept
    assert table_counts() == before
    assert receipt(doc, people["M2"]) is None


def test_no_member_ticked_is_shown_above_the_list(app, people, doc):
    text = assert_page(post(browser(app, "S1"), f"/documents/{doc}/follow",
                            {"action": "briefing", "held_on": today().isoformat()}), 422)
    assert '<p class="error" id="members-error">Hãy chọn ít nhất một đảng viên.</p>' in text


def test_a_form_without_csrf_token_is_refused_and_writes_nothing(app, people, doc):
    client = browser(app, "S1")
    before = table_counts()
    for path, data in [(f"/documents/{doc}/follow", {"action": "briefing", "member_ids": [people["M2"].id],
                                                      "held_on": today().isoformat()}),
                       (f"/documents/{doc}/follow", {"action": "exempt", "member_ids": [people["M2"].id],
                                                      "reason": "Ốm"}),
                       (f"/documents/{doc}/reminders?unit={people['S1'].org_unit_id}", {}),
                       ("/logout", {}),
                       (f"/read/{doc}/acknowledge", {"version": "1"})]:
        for token in (None, "khong-phai-ma-csrf"):
            response = client.post(path, data={**data, **({"csrf_token": token} if token else {})})
            assert_page(response, 400)
    assert table_counts() == before
    assert client.get("/").status_code == 200     # still signed in: the logout was refused too


def test_another_branch_s_members_are_not_briefed(app, people, doc):
    client = browser(app, "S2")
    response = post(client, f"/documents/{doc}/follow", {"action": "briefing", "member_ids": [people["M2"].id],
                                                          "held_on": today().isoformat()})
    assert response.status_code == 303
    text = assert_page(client.get(response.headers["Location"]))
    assert "1 đảng viên không thuộc phạm vi của bạn nên không được ghi nhận." in text
    assert receipt(doc, people["M2"]) is None
    assert_page(post(client, f"/documents/{doc}/briefings/{people['M2'].id}/undo"), 404)


def test_the_manual_reminder_and_when_it_may_be_sent_again(app, people, doc, tree):
    client = browser(app, "S1")
    page = assert_page(client.get(f"/documents/{doc}/follow"))
    assert "Nhắc 4 đảng viên chưa xác nhận" in page
    response = post(client, f"/documents/{doc}/reminders?unit={tree['b1'].id}")
    assert response.status_code == 303
    text = assert_page(client.get(response.headers["Location"]))
    assert "Đã gửi lời nhắc tới 4 đảng viên." in text
    assert re.search(r"Đã nhắc lúc [0-9/: ]+; có thể nhắc lại sau [0-9/: ]+\.", text)
    assert "<button disabled>Gửi lời nhắc</button>" in text
    again = post(client, f"/documents/{doc}/reminders?unit={tree['b1'].id}")
    assert "Đơn vị này đã được nhắc trong 24 giờ qua." in assert_page(client.get(again.headers["Location"]))
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.kind == "manual")) == 1


def test_a_committee_member_sees_progress_but_no_secretary_forms(app, people, doc, tree):
    text = assert_page(browser(app, "C1").get(f"/documents/{doc}/follow?unit={tree['b1'].id}"))
    assert "Nguyễn Văn An" in text
    assert "Ghi nhận phổ biến" not in text and "Nhắc" not in text and 'type="checkbox"' not in text


def test_the_csv_and_xlsx_downloads_are_the_api_exports(app, people, doc):
    from handbook.audit import AuditEntry

    client = browser(app, "S1")
    text = assert_page(client.get(f"/documents/{doc}/follow"))
    assert f'href="/documents/{doc}/members.csv?unit={people["S1"].org_unit_id}"' in text
    csv = client.get(f"/documents/{doc}/members.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    body = csv.get_data()
    assert body.startswith("\ufeff".encode()) and "Trần Thị Bình".encode() in body
    assert "attachment" in csv.headers["Content-Disposition"]
    xlsx = client.get(f"/documents/{doc}/members.xlsx")
    assert xlsx.status_code == 200 and xlsx.get_data()[:2] == b"PK"
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "export.members")) == 2


# --- the committee -----------------------------------------------------------------------------------------

def test_the_committee_s_chart_shows_child_units_furthest_behind_first_and_drills_down(app, people, doc, tree):
    from content import acknowledgements

    acknowledgements.record_briefing(people["S2"], doc, [people["M4"].id], today(), None)
    client = browser(app, "C1")
    text = assert_page(client.get(f"/documents/{doc}/follow"))
    assert '<svg class="chart"' in text
    # The only child of the district is the ward; drill down to it: its branches, b1 (0 %) before b2.
    ward = assert_page(client.get(f"/documents/{doc}/follow?unit={tree['phuong'].id}"))
    chart = ward[ward.index('<svg class="chart"'):ward.index("</svg>", ward.index('<svg class="chart"'))]
    assert chart.index("Chi bộ Tổ dân phố số 1") < chart.index("Chi bộ Tổ dân phố số 2")
    assert f'href="/documents/{doc}/follow?unit={tree["b1"].id}"' in chart
    assert 'Quận ủy Ba Đình</a>' in ward     # the way back up
    branch = assert_page(client.get(f"/documents/{doc}/follow?unit={tree['b1'].id}"))
    assert "Trần Thị Bình" in branch


def test_each_role_s_scope_holds_on_the_follow_up_pages(app, people, doc, tree):
    assert_page(browser(app, "C2").get(f"/documents/{doc}/follow"), 404)            # another district
    assert_page(browser(app, "M1").get(f"/documents/{doc}/follow"), 403)            # no follow-up role
    assert_page(browser(app, "S2").get(f"/documents/{doc}/follow?unit={tree['b1'].id}"), 403)
    assert_page(browser(app, "S1").get(f"/documents/{doc}/follow?unit=2147483648"), 404)
    assert_page(browser(app, "S1").get(f"/documents/{doc}/follow?unit=abc"), 404)
    assert_page(browser(app, "S1").get("/documents/999999/follow"), 404)


# --- the member -----------------------------------------------------------------------------------------------

def test_a_member_reads_opens_and_acknowledges(app, people, doc):
    client = browser(app, "M1")
    text = assert_page(client.get(f"/read/{doc}"))
    assert "<strong>chính</strong>" in text and "<script>" not in text   # the sanitised body only
    assert receipt(doc, people["M1"]).opened_at is not None                # reading here opens it
    assert "phu-luc.pdf" in text
    response = post(client, f"/read/{doc}/acknowledge", {"version": "1"})
    assert response.status_code == 303
    assert receipt(doc, people["M1"]).acknowledged_version == 1 and receipt(doc, people["M1"]).method == "app"
    text = assert_page(client.get(response.headers["Location"]))
    assert "Cảm ơn đồng chí" in text and "Đã xác nhận lúc" in text
    assert "Đã xác nhận" in assert_page(client.get("/feed?state=acknowledged"))


def test_a_stale_version_asks_to_read_again(app, people, doc):
    from content import documents

    documents.update_document(people["A1"], doc, {"body_html": "<p>Nội dung mới</p>", "reack": True})
    client = browser(app, "M1")
    response = post(client, f"/read/{doc}/acknowledge", {"version": "1"})
    assert "Văn bản đã thay đổi" in assert_page(client.get(response.headers["Location"]))
    assert receipt(doc, people["M1"]).acknowledged_at is None


def test_the_attachment_is_served_to_readers_only(app, people, doc):
    client = browser(app, "M1")
    text = client.get(f"/read/{doc}").get_data(as_text=True)
    link = re.search(r'href="(/read/\d+/attachments/\d+)"', text).group(1)
    response = client.get(link)
    assert response.status_code == 200 and response.get_data() == PDF
    assert response.mimetype == "application/pdf" and "sandbox" in response.headers["Content-Security-Policy"]
    assert_page(browser(app, "C2").get(link), 404)


def test_a_document_outside_the_audience_is_404(app, people, tree):
    other = publish(people["A1"], [tree["dong_da"]], number="03-CT/QU")
    assert_page(browser(app, "M1").get(f"/read/{other}"), 404)
    assert_page(post(browser(app, "M1"), f"/read/{other}/acknowledge", {"version": "1"}), 404)


def test_the_inbox_lists_notices_and_marks_them_read(app, people, doc):
    notification = db.session.scalar(select(Notification).where(Notification.document_id == doc))
    item = InboxItem(notification_id=notification.id, member_id=people["M1"].id)
    db.session.add(item)
    db.session.commit()
    client = browser(app, "M1")
    text = assert_page(client.get("/inbox"))
    assert '<span class="badge">1</span>' in text and "24-CT/TU" in text
    response = post(client, f"/inbox/{item.id}/read", {"next": f"/read/{doc}"})
    assert response.status_code == 303 and response.headers["Location"] == f"/read/{doc}"
    db.session.expire_all()
    assert db.session.get(InboxItem, item.id).read_at is not None
    assert_page(post(browser(app, "M4"), f"/inbox/{item.id}/read"), 404)


# --- page weight and accessibility basics --------------------------------------------------------------------

def test_pages_stay_small_labelled_and_hardened(app, people, doc, tree):
    for n in range(60):
        member(f"B1-{n:02}", tree["b1"], name=f"Đảng viên thứ {n:02} Nguyễn Thị Phương Thảo", password=None)
    from content.progress import recount

    recount([doc])
    db.session.commit()
    pages = [(browser(app, "S1"), f"/documents/{doc}/follow"), (browser(app, "S1"), "/"),
             (browser(app, "C1"), f"/documents/{doc}/follow"), (browser(app, "M1"), "/feed"),
             (browser(app, "M1"), f"/read/{doc}"), (browser(app, "M1"), "/inbox"), (app.test_client(), "/login")]
    for client, path in pages:
        response = client.get(path)
        text = assert_page(response)
        size = len(response.get_data()) + len(client.get("/static/console/console.css").get_data())
        assert size < 100_000, (path, size)
        assert 'href="#main"' in text and '<main id="main">' in text
        assert "<script" not in text and "style=" not in text
        for field in re.finditer(r"<(input|select|textarea)\b([^>]*)>", text):
            attrs = field.group(2)
            if 'type="hidden"' in attrs:
                continue
            ident = re.search(r'id="([^"]+)"', attrs)
            assert ident and f'for="{ident.group(1)}"' in text, (path, attrs)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_compliance_page_shows_closed_directives_and_units_that_missed(app, people, doc, tree):
    from content.models import Document
    from content.progress import close_due

    from content import acknowledgements

    acknowledgements.record_briefing(people["S2"], doc, [people["M4"].id], today(), None)
    deadline = db.session.get(Document, doc).deadline
    close_due(deadline + timedelta(seconds=1))
    client = browser(app, "C1")
    assert "Văn bản đã hết hạn: đơn vị nào phổ biến đúng hạn" in assert_page(client.get("/"))
    text = assert_page(client.get(f"/compliance?unit={tree['phuong'].id}"))
    assert "24-CT/TU" in text and "0/2 đơn vị đã phổ biến đến mọi đảng viên" in text
    assert text.index("Chi bộ Tổ dân phố số 1") < text.index("Chi bộ Tổ dân phố số 2")
    assert_page(browser(app, "M1").get("/compliance"), 403)
    assert_page(browser(app, "S2").get(f"/compliance?unit={tree['b1'].id}"), 403)


def test_console_and_app_logins_share_the_per_ip_throttle(app, people, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "2 per minute")
    assert login(app.test_client(), "M1").status_code == 200
    client = app.test_client()
    assert sign_in(client, "S1").status_code == 303
    assert_page(sign_in(app.test_client(), "C1"), 429)
    assert login(app.test_client(), "M1").status_code == 429


def test_the_admin_reads_the_audit_trail_with_filters(app, people, doc):
    from content import acknowledgements

    acknowledgements.record_briefing(people["S1"], doc, [people["M2"].id], today(), "Sinh hoạt chi bộ")
    client = browser(app, "A1")
    assert 'href="/audit"' in assert_page(client.get("/board"))
    text = assert_page(client.get("/audit"))
    assert "acknowledgement.briefing" in text and "Lê Văn Cường" in text and "document.publish" in text
    only = assert_page(client.get("/audit?action=acknowledgement.briefing"))
    assert "<strong>acknowledgement.briefing</strong>" in only and "<strong>document.publish</strong>" not in only
    later = assert_page(client.get("/audit", query_string={"since": (today() + timedelta(days=1)).isoformat()}))
    assert "Chưa có thao tác nào." in later
    bad = assert_page(client.get("/audit?since=hom-qua"), 422)
    assert '<p class="error" id="since-error">Ngày không hợp lệ.</p>' in bad
    assert_page(browser(app, "S1").get("/audit"), 403)
    assert_page(browser(app, "S1").get("/audit?since=hom-qua"), 403)


def test_an_unexpected_error_is_a_page_with_the_request_id_and_no_trace(app, people, doc, monkeypatch):
    from content import followup

    def broken(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM somewhere")

    monkeypatch.setattr(followup, "overview", broken)
    response = browser(app, "S1").get("/")
    text = assert_page(response, 500)
    assert "Lỗi hệ thống" in text and response.headers["X-Request-ID"] in text


def test_odd_ids_in_query_strings_and_forms_are_not_errors(app, people, doc):
    client = browser(app, "S1")
    assert_page(client.get(f"/documents/{doc}/follow?unit=%C2%B2"), 404)           # "²" is a digit to Python
    text = assert_page(post(client, f"/documents/{doc}/follow",
                            {"action": "briefing", "member_ids": ["²", "-1", "x"], "held_on": today().isoformat()}),
                       422)
    assert "Hãy chọn ít nhất một đảng viên." in text


def test_signing_in_again_ends_the_previous_session(app, people):
    client = browser(app, "S1")
    assert post(client, "/login", {"username": "M1", "password": PASSWORD}).status_code == 303
    rows = db.session.scalars(select(AuthSession).order_by(AuthSession.created_at)).all()
    assert len(rows) == 2 and rows[0].revoked_at is not None and rows[1].revoked_at is None


def test_changing_the_password_ends_the_other_sessions_but_not_this_one(app, people):
    client = browser(app, "S1")
    other = browser(app, "S1")
    tokens = login(app.test_client(), "S1").json
    wrong = assert_page(post(client, "/password", {"current_password": "sai", "new_password": "mat-khau-moi-456"}),
                        403)
    assert 'id="current_password-error">Mật khẩu hiện tại không đúng.' in wrong
    short = assert_page(post(client, "/password", {"current_password": PASSWORD, "new_password": "ngan"}), 422)
    assert 'id="new_password-error">Mật khẩu mới cần ít nhất 8 ký tự.' in short
    assert other.get("/").status_code == 200
    done = post(client, "/password", {"current_password": PASSWORD, "new_password": "mat-khau-moi-456"})
    assert done.status_code == 303
    assert client.get("/").status_code == 200                        # this session goes on
    assert other.get("/").status_code == 303                         # the other console session ended
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}) \
        .status_code == 401                                          # and so did the app's
    assert sign_in(app.test_client(), "S1", "mat-khau-moi-456").status_code == 303


def test_a_name_search_over_a_whole_city_asks_for_a_smaller_unit(app, people, doc, tree):
    text = assert_page(browser(app, "A1").get(f"/documents/{doc}/follow?unit={tree['city'].id}&members=1&q=binh"))
    assert '<p class="error" id="q-error">Hãy chọn một đơn vị nhỏ hơn để tìm theo tên.</p>' in text
    found = assert_page(browser(app, "A1").get(f"/documents/{doc}/follow?unit={tree['phuong'].id}&members=1&q=binh"))
    assert "Trần Thị Bình" in found


def test_the_admin_finds_a_member_by_card_phone_or_name_and_removes_them(app, people, tree):
    from handbook.members import Member

    people["M2"].phone = "0912345678"
    db.session.commit()
    admin = browser(app, "A1")
    target = browser(app, "M1")
    assert "Trần Thị Bình" in assert_page(admin.get("/members?q=M2"))
    assert "Trần Thị Bình" in assert_page(admin.get("/members", query_string={"q": "+84 912 345 678"}))
    found = assert_page(admin.get("/members", query_string={"q": "văn"}))
    assert "Nguyễn Văn An" in found and "Phạm Văn Đức" in found and "Trần Thị Bình" not in found
    page = assert_page(admin.get(f"/members/{people['M1'].id}"))
    assert "Chi bộ Tổ dân phố số 1" in page and "đang sinh hoạt" in page
    before = table_counts()
    bad = assert_page(post(admin, f"/members/{people['M1'].id}/removal", {"reason": ""}), 422)
    assert '<p class="error" id="reason-error">Hãy nhập lý do.</p>' in bad
    assert table_counts() == before
    assert target.get("/feed").status_code == 200
    done = post(admin, f"/members/{people['M1'].id}/removal", {"reason": "Chuyển sinh hoạt ra ngoài thành phố"})
    assert done.status_code == 303
    assert "đã ra khỏi danh sách" in assert_page(admin.get(done.headers["Location"]))
    db.session.expire_all()
    assert db.session.get(Member, people["M1"].id).active is False
    assert target.get("/feed").status_code == 303                     # their console session ended at once


def test_members_outside_the_admin_s_scope_do_not_exist(app, people, tree):
    member("A2", tree["dong_da"], name="Quản trị Đống Đa", roles=[("admin", tree["dong_da"])])
    other_admin = browser(app, "A2")
    assert "Nguyễn Văn An" not in assert_page(other_admin.get("/members?q=M1"))
    assert_page(other_admin.get(f"/members/{people['M1'].id}"), 404)
    assert_page(post(other_admin, f"/members/{people['M1'].id}/removal", {"reason": "x"}), 404)
    assert_page(browser(app, "S1").get("/members"), 403)


def _upload(client, kind: str, content: bytes, name: str = "dang-vien.csv", token: str | None = "auto"):
    from tests.console_helpers import page_token

    data = {"kind": kind, "file": (io.BytesIO(content), name)}
    if token == "auto":
        data["csrf_token"] = page_token(client)
    return client.post("/imports", data=data, content_type="multipart/form-data")


def test_the_root_admin_imports_members_all_or_nothing_with_every_bad_row_listed(app, people, tree, monkeypatch):
    from handbook.members import Member

    admin = browser(app, "A1")
    assert 'href="/imports"' in assert_page(admin.get("/imports"))
    bad = ("card_number,full_name,phone,org_unit_code,roles,password\n"
           "HN-0101,Đỗ Văn Tâm,,HN.BD.DB.1,,\n"
           "HN-0102,Ngô Thị Hằng,09xx,HN.BD.DB.1,,\n"
           "HN-0103,Lại Văn Sơn,,KHONG-CO,,\n").encode()
    before = table_counts()
    text = assert_page(_upload(admin, "members", bad), 422)
    assert "2 dòng sai: chưa nhập gì." in text
    assert "<td>3</td><td>phone</td>" in text and "<td>4</td><td>org_unit_code</td>" in text
    assert "Không có đơn vị mã &#34;KHONG-CO&#34;." in text
    assert table_counts() == before
    good = bad.decode().replace("09xx", "0912000111").replace("KHONG-CO", "HN.BD.DB.2").encode()
    text = assert_page(_upload(admin, "members", good))
    assert "Đã nhập 3 dòng: 3 mới" in text
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.card_number.like("HN-01%"))) == 3
    monkeypatch.setitem(app.config, "CONSOLE_IMPORT_JOB_MAX_BYTES", 100)   # larger files: a background job,
    assert_page(_upload(admin, "members", good), 413)                       # up to its own limit


def test_imports_are_for_an_admin_over_the_whole_tree_only(app, people, tree):
    member("A2", tree["dong_da"], name="Quản trị Đống Đa", roles=[("admin", tree["dong_da"])])
    csv = b"code,name,kind,parent_code\nHN.DD.X,Chi bo X,branch,HN.DD.CB\n"
    district_admin, secretary, root_admin = browser(app, "A2"), browser(app, "S1"), browser(app, "A1")
    before = table_counts()
    assert_page(district_admin.get("/imports"), 403)
    assert_page(_upload(district_admin, "org_units", csv), 403)
    assert_page(_upload(secretary, "org_units", csv), 403)
    assert_page(_upload(root_admin, "org_units", csv, token=None), 400)
    assert table_counts() == before
