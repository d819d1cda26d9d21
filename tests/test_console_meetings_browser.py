"""A real-browser journey for branch meetings (issue 15), in tests/test_console_browser.py's style and with
its fixtures (the app on a local port, Debian's Chromium, JavaScript off): the secretary schedules a
meeting on a 360×740 phone with a directive on the agenda; a member answers that she will attend; once
the meeting has begun the secretary shows the check-in code on a 1366×768 screen, a member checks in with
it, the secretary marks the members without the app by hand and closes the meeting on the phone.
Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from content.models import Meeting, Receipt
from handbook.extensions import db
from tests.test_console_browser import (DESKTOP, PHONE, browser_page, check_basics, server, shot,  # noqa: F401
                                        sign_in, world)


# [width of the selected option's text in the select's font, the room inside the select for it (its width
# less its padding and Chromium's ~20 px arrow)].
_SELECTED_TEXT_AND_ROOM = """select => {
    const style = getComputedStyle(select);
    const context = document.createElement("canvas").getContext("2d");
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const text = context.measureText(select.options[select.selectedIndex].text).width;
    return [text, select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20];
}"""


def test_a_secretary_runs_a_meeting_from_scheduling_to_closing(browser_page, server, world, backend):
    people, doc = world
    phone = browser_page(PHONE)
    sign_in(phone, server, "S1")
    phone.goto(server + "/meetings")
    check_basics(phone)
    phone.get_by_role("link", name="Lên lịch sinh hoạt").first.click()
    check_basics(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.get_by_label("Tiêu đề").fill("Sinh hoạt chi bộ thường kỳ tháng 12")
    phone.get_by_label("Địa điểm").fill("Nhà văn hóa tổ dân phố số 1")
    phone.get_by_label("Chỉ thị về tăng cường kỷ luật", exact=False).check()
    shot(phone, backend, "30-meeting-new-360")
    phone.get_by_role("button", name="Lên lịch và mời").click()
    text = phone.inner_text("main")
    assert "Đã lên lịch; đảng viên được mời." in text and "4 được mời" in text
    meeting_id = int(re.search(r"/meetings/(\d+)", phone.url).group(1))
    shot(phone, backend, "31-meeting-scheduled-360")

    member = browser_page(PHONE)
    sign_in(member, server, "M1")
    member.goto(server + "/meetings")
    member.get_by_role("link", name="Sinh hoạt chi bộ thường kỳ tháng 12").click()
    check_basics(member)
    member.get_by_label("Tôi sẽ dự").check()
    member.get_by_role("button", name="Gửi trả lời").click()
    assert "Đã ghi nhận trả lời của đồng chí." in member.inner_text("main")
    shot(member, backend, "32-meeting-rsvp-360")

    # The meeting begins (moved to five minutes ago): the code on the secretary's big screen.
    now = datetime.now(UTC)
    db.session.execute(update(Meeting).where(Meeting.id == meeting_id).values(
        starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)))
    db.session.commit()
    screen = browser_page(DESKTOP)
    sign_in(screen, server, "S1")
    screen.goto(f"{server}/meetings/{meeting_id}")
    check_basics(screen)
    code = screen.locator("p.code").inner_text().strip()
    assert re.fullmatch(r"\d{6}", code)
    assert screen.locator("img[alt*='QR']").count() == 1
    shot(screen, backend, "33-meeting-code-1366")

    member.goto(f"{server}/meetings/{meeting_id}")
    member.get_by_label("Mã điểm danh hiển thị tại buổi sinh hoạt").fill(code)
    member.get_by_role("button", name="Điểm danh", exact=True).click()
    assert "Đồng chí đã điểm danh." in member.inner_text("main")

    # The roll call by hand for the members without the app, then the close, on the phone.
    phone.goto(f"{server}/meetings/{meeting_id}")
    check_basics(phone)
    phone.get_by_label("Điểm danh Trần Thị Bình").select_option("present")
    phone.get_by_label("Điểm danh Phạm Văn Đức").select_option("excused")
    phone.get_by_label("Lý do của Phạm Văn Đức").fill("Ốm")
    phone.get_by_role("button", name="Lưu điểm danh").click()
    assert "Đã lưu điểm danh." in phone.inner_text("main")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The saved reason is shown again, and "Vắng có lý do" fits its field on the 360 px phone.
    assert phone.get_by_label("Lý do của Phạm Văn Đức").input_value() == "Ốm"
    excused = phone.get_by_label("Điểm danh Phạm Văn Đức")
    text_width, room = excused.evaluate(_SELECTED_TEXT_AND_ROOM)
    assert text_width <= room, (text_width, room)
    shot(phone, backend, "34-meeting-roll-call-360")
    phone.get_by_role("button", name="Kết thúc buổi sinh hoạt").click()
    text = phone.inner_text("main")
    assert "Đã kết thúc buổi sinh hoạt: 2 có mặt; ghi nhận 2 lượt phổ biến." in text, text
    shot(phone, backend, "35-meeting-closed-360")
    screen.goto(f"{server}/meetings/{meeting_id}")
    shot(screen, backend, "36-meeting-closed-1366")
    # The present members who had not acknowledged the directive are recorded as briefed.
    db.session.expire_all()
    briefed = db.session.scalars(select(Receipt.member_id).where(Receipt.document_id == doc,
                                                                 Receipt.method == "meeting")).all()
    assert sorted(briefed) == sorted([people["M1"].id, people["M2"].id])
