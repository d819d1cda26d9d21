"""Real-browser journeys (Playwright driving Debian's Chromium) against the app served on a local port.

The secretary signs in on a 360×740 phone and records a briefing for two members: the member list and the
progress bar change. The committee looks at its chart on a 1366×768 screen; a member reads and
acknowledges. Screenshots of each main page go to tests/artifacts/ (not committed) for a reviewer.
Accessibility basics are checked in the browser: one h1, the language, labelled fields, the skip link
first in keyboard order.

Chromium: `apt-get install chromium` (CHROMIUM overrides /usr/bin/chromium). Without it, or without the
`playwright` package, these tests skip with a message outside CI and fail in CI.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.factories import PASSWORD, member

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1366, "height": 768}


def _need_browser():
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if reason is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser journeys need a browser in CI: {reason}")
        pytest.skip(f"browser journeys skipped: {reason}")


@pytest.fixture()
def server(app):
    """The app on a free local port, in a thread (its own app context per request)."""
    from werkzeug.serving import make_server

    _need_browser()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture()
def browser_page(server, backend):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            def open_page(viewport):
                context = chromium.new_context(viewport=viewport, locale="vi-VN", java_script_enabled=False)
                return context.new_page()
            yield open_page
        finally:
            chromium.close()


@pytest.fixture()
def world(tree):
    from tests.test_console import publish

    b1 = tree["b1"]
    people = {
        "S1": member("S1", b1, name="Lê Văn Cường", roles=[("secretary", b1)]),
        "M1": member("M1", b1, name="Nguyễn Văn An"),
        "M2": member("M2", b1, name="Trần Thị Bình", password=None),
        "M3": member("M3", b1, name="Phạm Văn Đức", password=None),
        "M4": member("M4", tree["b2"], name="Vũ Thị Giang"),
        "C1": member("C1", tree["b2"], name="Lý Thị Ngọc", roles=[("committee", tree["ba_dinh"])]),
        "A1": member("A1", tree["b2"], name="Dương Văn Minh", roles=[("admin", tree["city"])]),
    }
    doc = publish(people["A1"], [tree["ba_dinh"]], attachment=True,
                  title="Chỉ thị về tăng cường kỷ luật, kỷ cương, trách nhiệm trong thực thi công vụ")
    return people, doc


def shot(page, backend: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def check_basics(page) -> None:
    """One h1, the language set, every visible field labelled, the skip link first by keyboard."""
    assert page.locator("h1").count() == 1
    assert page.locator("html").get_attribute("lang") in ("vi", "en")
    for field in page.locator("input:not([type=hidden]), select, textarea").all():
        ident = field.get_attribute("id")
        assert ident and page.locator(f'label[for="{ident}"]').count() == 1, ident
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"


def sign_in(page, base: str, card: str) -> None:
    page.goto(base + "/")
    assert "/login" in page.url
    page.get_by_label("Số thẻ đảng viên hoặc số điện thoại").fill(card)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def test_the_secretary_records_a_briefing_on_a_phone(browser_page, server, world, backend):
    people, doc = world
    page = browser_page(PHONE)
    page.goto(server + "/login")
    shot(page, backend, "01-login-360")
    check_basics(page)
    sign_in(page, server, "S1")
    assert page.locator("h1").inner_text() == "Chi bộ Tổ dân phố số 1"
    shot(page, backend, "02-secretary-overview-360")
    check_basics(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]   # no sideways scrolling

    page.get_by_role("link", name="Chỉ thị về tăng cường").click()
    shot(page, backend, "03-secretary-members-360")
    check_basics(page)
    assert "0/4 đã xác nhận" in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.get_by_label("Trần Thị Bình").check()
    page.get_by_label("Phạm Văn Đức").check()
    page.get_by_label("Ghi chú (không bắt buộc)").fill("Sinh hoạt chi bộ tháng 12")
    page.get_by_role("button", name="Ghi nhận phổ biến cho đảng viên đã chọn").click()
    text = page.inner_text("main")
    assert "Đã ghi nhận phổ biến cho 2 đảng viên." in text
    assert "2/4 đã xác nhận" in text
    assert page.locator("svg.bar").first.get_attribute("aria-label") == "đạt 50%"
    assert page.locator("tr.s-acknowledged").count() == 2
    shot(page, backend, "04-secretary-briefed-360")

    # A mistake is undone from the same list.
    page.get_by_role("button", name="Hủy ghi nhận phổ biến").first.click()
    assert "1/4 đã xác nhận" in page.inner_text("main")


def test_the_committee_sees_its_chart_and_drills_down(browser_page, server, world, backend, tree):
    people, doc = world
    page = browser_page(DESKTOP)
    sign_in(page, server, "C1")
    assert page.locator("h1").inner_text() == "Quận ủy Ba Đình"
    page.goto(f"{server}/documents/{doc}/follow?unit={tree['phuong'].id}")
    shot(page, backend, "05-committee-chart-1366")
    check_basics(page)
    assert page.locator("svg.chart a").count() == 2
    page.locator("svg.chart a").first.click()
    assert page.locator("h1").count() == 1 and "Trần Thị Bình" in page.inner_text("main")


def test_a_member_reads_and_acknowledges_on_a_phone(browser_page, server, world, backend):
    people, doc = world
    page = browser_page(PHONE)
    sign_in(page, server, "M1")
    assert page.url.endswith("/feed")
    shot(page, backend, "06-member-feed-360")
    check_basics(page)
    page.get_by_role("link", name="Chỉ thị về tăng cường").click()
    check_basics(page)
    assert page.locator("script").count() == 0
    page.get_by_role("button", name="Tôi đã đọc và nắm nội dung văn bản").click()
    assert "Đã xác nhận lúc" in page.inner_text("main")
    shot(page, backend, "07-member-acknowledged-360")


def test_the_board_publishes_a_directive_with_an_attachment_and_a_member_acknowledges_it(
        browser_page, server, world, backend, tree, tmp_path):
    people, _ = world
    pdf = tmp_path / "ke-hoach.pdf"
    from tests.test_console import PDF

    pdf.write_bytes(PDF)
    page = browser_page(DESKTOP)
    sign_in(page, server, "A1")
    assert page.url.endswith("/board")                     # the board lands on its documents
    page.get_by_role("link", name="Dự thảo mới").click()
    check_basics(page)
    page.get_by_label("Loại văn bản").select_option("directive")
    page.get_by_label("Số hiệu (ví dụ 24-CT/TU)").fill("30-CT/TU")
    page.get_by_label("Trích yếu").fill("Chỉ thị về phòng, chống tham nhũng, tiêu cực")
    page.get_by_label("Nội dung (HTML; được làm sạch như qua API)").fill("<p>Mỗi chi bộ <b>thảo luận</b>.</p>")
    page.get_by_label("Tìm đơn vị theo tên hoặc mã").fill("to dan pho so 1")
    page.get_by_role("button", name="Tìm", exact=True).click()
    assert page.get_by_label("Trích yếu").input_value() == "Chỉ thị về phòng, chống tham nhũng, tiêu cực"
    page.get_by_label("Chi bộ Tổ dân phố số 1").check()
    page.get_by_role("button", name="Lưu dự thảo").click()
    assert "Đã lưu dự thảo" in page.inner_text("main")
    page.get_by_label("Đính kèm tệp (PDF, DOCX, ảnh)").set_input_files(str(pdf))
    page.get_by_role("button", name="Đính kèm", exact=True).click()
    assert "ke-hoach.pdf" in page.inner_text("main")
    shot(page, backend, "08-board-preview-1366")
    check_basics(page)
    page.get_by_role("button", name="Phát hành", exact=True).click()
    assert "Đã phát hành" in page.inner_text("main")

    member_page = browser_page(PHONE)
    sign_in(member_page, server, "M1")
    member_page.get_by_role("link", name="Chỉ thị về phòng, chống tham nhũng").click()
    assert "thảo luận" in member_page.inner_text("main") and "ke-hoach.pdf" in member_page.inner_text("main")
    member_page.get_by_role("button", name="Tôi đã đọc và nắm nội dung văn bản").click()
    assert "Đã xác nhận lúc" in member_page.inner_text("main")
    shot(member_page, backend, "09-member-acknowledged-new-directive-360")


def _history(doc: int, people) -> None:
    """The directive out for three days, each night's progress taken as run_due takes it."""
    from datetime import datetime, time, timedelta

    from sqlalchemy import update

    from content import acknowledgements, timeline
    from content.models import Document
    from handbook.extensions import db
    from handbook.timeutil import local_zone

    today = datetime.now(local_zone()).date()
    night = lambda days_ago: datetime.combine(today - timedelta(days=days_ago), time(0, 20), tzinfo=local_zone())  # noqa: E731
    db.session.execute(update(Document).where(Document.id == doc).values(
        published_at=night(3) - timedelta(hours=10)))
    db.session.commit()
    timeline.take_due(night(2))
    acknowledgements.acknowledge(people["M1"], doc, 1)
    timeline.take_due(night(1))
    acknowledgements.acknowledge(people["M4"], doc, 1)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360", "1366"])
def test_the_committee_follows_acknowledgements_over_time(browser_page, server, world, backend, tree, viewport):
    people, doc = world
    _history(doc, people)
    page = browser_page(viewport)
    sign_in(page, server, "C1")
    page.get_by_role("link", name="Chỉ thị về tăng cường").click()
    assert page.locator("svg.timeline").count() == 1           # on the committee's progress page
    width = viewport["width"]
    shot(page, backend, f"10-committee-progress-{width}")
    page.get_by_role("link", name="Từng ngày").click()
    shot(page, backend, f"10-committee-timeline-{width}")
    check_basics(page)
    assert page.locator("h1").inner_text() == "Tiến độ xác nhận theo ngày"
    assert page.locator("svg.timeline rect.day").count() == 3   # two nights and today, live
    assert page.locator("svg.timeline rect.live").count() == 1
    assert page.locator("svg.timeline line.deadline").count() == 1
    rows = page.locator("table tbody tr").all_inner_texts()
    assert rows[0].startswith(page.locator("svg.timeline rect.live title").text_content()[:10])   # newest first
    assert rows[0].split("\t")[1] == "28,6"                      # 2 of 7 today
    assert page.evaluate("document.documentElement.scrollWidth") <= width   # no sideways scrolling


def test_the_admin_imports_a_large_file_in_the_background_and_sees_its_bad_rows(
        browser_page, server, world, backend, app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "CONSOLE_IMPORT_MAX_BYTES", 1000)
    rows = [f"HN-B{n:05d},Nguyễn Văn Nhập {n},,HN.BD.DB.1,,\n" for n in range(3000)]
    rows[9] = "HN-BBAD,Trần Sai,09xx,HN.BD.DB.1,,\n"
    path = tmp_path / "dang-vien-ha-noi.csv"
    path.write_text("card_number,full_name,phone,org_unit_code,roles,password\n" + "".join(rows), encoding="utf-8")
    page = browser_page(PHONE)
    sign_in(page, server, "A1")
    page.goto(server + "/imports")
    check_basics(page)
    page.locator("#kind-members").check()
    page.locator("#file").set_input_files(str(path))
    page.get_by_role("button", name="Nhập", exact=True).click()
    assert "/imports/" in page.url
    check_basics(page)
    # No script: the page reloads itself (meta refresh) until the job has run.
    page.wait_for_selector("text=1 dòng sai: chưa nhập gì.", timeout=60_000)
    shot(page, backend, "11-admin-import-job-360")
    assert "<td>11</td><td>phone</td>" in page.content().replace("\n", "")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_admin_grants_a_role_over_a_unit_found_by_name_and_takes_it_back(browser_page, server, world, backend):
    people, _ = world
    page = browser_page(DESKTOP)
    sign_in(page, server, "A1")
    page.goto(f"{server}/members/{people['M1'].id}")
    check_basics(page)
    page.get_by_label("Tìm đơn vị theo tên hoặc mã").fill("to dan pho so 1")
    page.get_by_role("button", name="Tìm", exact=True).click()
    page.get_by_label("Vai trò cần phân").select_option("secretary")
    page.get_by_label("Chi bộ Tổ dân phố số 1").check()
    page.get_by_role("button", name="Phân quyền").click()
    assert "Đã phân quyền." in page.inner_text("main") and "Bí thư" in page.inner_text("table")
    shot(page, backend, "12-admin-member-roles-1366")
    page.get_by_role("button", name="Thu hồi vai trò Bí thư tại Chi bộ Tổ dân phố số 1").click()
    assert "Đã thu hồi vai trò." in page.inner_text("main")
