"""The console's meeting, meeting-figures and adoption pages (issue 15 in the console), on SQLite and
PostgreSQL, through the Flask test client: the secretary schedules, shows the code, calls the roll and
closes; a member answers and checks in; committees read the month's figures and adoption. Invalid input
is shown next to its field and writes nothing; a missing CSRF token is refused; scope as in the API.
"""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from content import adoption, meetings
from content.models import Meeting, MeetingMinutes, MeetingParticipant, Receipt
from handbook.extensions import db
from tests.console_helpers import assert_page, browser, post
from tests.test_console import PDF, people, publish, table_counts  # noqa: F401 (fixtures)


def _schedule(client, unit_id: int, **fields):
    data = {"unit": str(unit_id), "title": "Sinh hoạt chi bộ tháng 12", "kind": "regular", "place": "Hội trường",
            "day": (datetime.now(UTC) + timedelta(days=5)).date().isoformat(), "start": "19:30", "end": "21:00",
            **fields}
    return post(client, f"/meetings/new?unit={unit_id}", data)


def _open(meeting_id: int) -> None:
    now = datetime.now(UTC)
    db.session.execute(update(Meeting).where(Meeting.id == meeting_id).values(
        starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)))
    db.session.commit()


def test_a_secretary_schedules_a_meeting_and_its_member_answers(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    secretary = browser(app, "S1")
    form = assert_page(secretary.get("/meetings/new"))
    assert "Lên lịch sinh hoạt" in form and f'value="{doc}"' in form   # the directive can go on the agenda
    created = _schedule(secretary, tree["b1"].id, agenda="Kiểm điểm công tác tháng", documents=str(doc))
    assert created.status_code == 303, created.get_data(as_text=True)[:3000]
    meeting = db.session.scalar(select(Meeting))
    assert [a.document_id for a in meeting.agenda] == [None, doc] and meeting.kind == "regular"
    page = assert_page(secretary.get(created.headers["Location"]))
    assert "Sinh hoạt chi bộ tháng 12" in page and "4" in page

    member = browser(app, "M1")
    assert meeting.title in assert_page(member.get("/meetings"))
    # Absent needs a reason: shown next to the field, nothing written.
    refused = post(member, f"/meetings/{meeting.id}/rsvp", {"response": "absent"})
    text = assert_page(refused, 422)
    assert 'id="reason-error"' in text
    assert db.session.scalar(select(func.count()).select_from(MeetingParticipant)) == 0
    assert post(member, f"/meetings/{meeting.id}/rsvp", {"response": "absent", "reason": "Đi công tác"}
                ).status_code == 303
    db.session.expire_all()
    row = db.session.get(MeetingParticipant, (meeting.id, people["M1"].id))
    assert (row.rsvp, row.rsvp_reason) == ("absent", "Đi công tác")


def test_bad_meeting_forms_show_the_error_next_to_the_field_and_write_nothing(app, tree, people):
    secretary, other, member = browser(app, "S1"), browser(app, "S2"), browser(app, "M1")
    before = table_counts()
    for fields, field in (({"place": ""}, "place"), ({"day": "2020-01-01"}, "starts_at"),
                          ({"end": "18:00"}, "ends_at"), ({"online_url": "http://x.org"}, "online_url"),
                          ({"day": "not a day"}, "starts_at")):
        response = _schedule(secretary, tree["b1"].id, **fields)
        assert f'id="{field}-error"' in assert_page(response, 422), fields
    assert table_counts() == before
    # Without the CSRF token: refused, nothing written.
    refused = secretary.post(f"/meetings/new?unit={tree['b1'].id}", data={"title": "x", "kind": "regular"})
    assert refused.status_code == 400 and table_counts() == before
    # Another branch's secretary cannot schedule for this branch; a member has no unit to schedule for.
    assert _schedule(other, tree["b1"].id).status_code == 403
    assert member.get("/meetings/new").status_code == 403
    assert table_counts() == before


def test_check_in_roll_call_and_close_record_the_briefings(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    secretary = browser(app, "S1")
    assert _schedule(secretary, tree["b1"].id, documents=str(doc)).status_code == 303
    meeting = db.session.scalar(select(Meeting))
    _open(meeting.id)
    page = assert_page(secretary.get(f"/meetings/{meeting.id}"))
    code = re.search(r'<p class="code">(\d{6})</p>', page).group(1)
    assert 'src="data:image/svg+xml;base64,' in page and "<script" not in page

    member = browser(app, "M1")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert 'id="code-error"' in assert_page(post(member, f"/meetings/{meeting.id}/check-in", {"code": wrong}), 422)
    assert post(member, f"/meetings/{meeting.id}/check-in", {"code": code}).status_code == 303
    assert "Đồng chí đã điểm danh" in assert_page(member.get(f"/meetings/{meeting.id}"))

    # The roll call: M2 (no app) present, M3 absent with leave.
    saved = post(secretary, f"/meetings/{meeting.id}/attendance", {
        f"m-{people['M2'].id}": "present", f"m-{people['M3'].id}": "excused", f"r-{people['M3'].id}": "Ốm"})
    assert saved.status_code == 303
    closed = post(secretary, f"/meetings/{meeting.id}/close")
    assert closed.status_code == 303
    text = assert_page(secretary.get(closed.headers["Location"]))
    assert "2 có mặt" in text and "ghi nhận 2 lượt phổ biến" in text
    db.session.expire_all()
    briefed = {r.member_id for r in db.session.scalars(select(Receipt).where(Receipt.method == "meeting"))}
    assert briefed == {people["M1"].id, people["M2"].id}
    # A member of another branch does not see it.
    assert browser(app, "M4").get(f"/meetings/{meeting.id}").status_code == 404


def test_the_minutes_are_attached_and_downloaded(app, tree, people):
    secretary = browser(app, "S1")
    assert _schedule(secretary, tree["b1"].id).status_code == 303
    meeting = db.session.scalar(select(Meeting))
    _open(meeting.id)
    bad = secretary.post(f"/meetings/{meeting.id}/minutes", content_type="multipart/form-data", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                secretary.get("/feed").get_data(as_text=True)).group(1),
        "file": (io.BytesIO(b"MZ not a pdf"), "bien-ban.pdf")})
    assert 'id="file-error"' in assert_page(bad, 422)
    token = re.search(r'name="csrf_token" value="([^"]+)"', secretary.get("/feed").get_data(as_text=True)).group(1)
    sent = secretary.post(f"/meetings/{meeting.id}/minutes", content_type="multipart/form-data",
                          data={"csrf_token": token, "file": (io.BytesIO(PDF), "bien-ban.pdf")})
    assert sent.status_code == 303
    minutes = db.session.scalar(select(MeetingMinutes))
    member = browser(app, "M1")
    url = f"/meetings/{meeting.id}/minutes/{minutes.id}"
    download = member.get(url)
    assert download.status_code == 200 and download.get_data() == PDF
    # The same download as the API's: a phone on a weak network resumes it and revalidates it for free.
    assert download.headers["ETag"] == f'"{minutes.sha256}"' and "private" in download.headers["Cache-Control"]
    assert "sandbox" in download.headers["Content-Security-Policy"]
    assert member.get(url, headers={"If-None-Match": download.headers["ETag"]}).status_code == 304
    part = member.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.get_data() == PDF[:4]
    past_end = member.get(url, headers={"Range": f"bytes={len(PDF) + 10}-"})
    assert past_end.status_code == 416 and past_end.headers["Content-Range"] == f"bytes */{len(PDF)}"


def test_the_months_figures_and_adoption_for_committees(app, tree, people):
    secretary = browser(app, "S1")
    assert _schedule(secretary, tree["b1"].id).status_code == 303
    meeting = db.session.scalar(select(Meeting))
    _open(meeting.id)
    assert post(secretary, f"/meetings/{meeting.id}/close").status_code == 303
    month = datetime.now(UTC).astimezone(meetings.local_zone()).strftime("%Y-%m")
    committee = browser(app, "C1")
    page = assert_page(committee.get(f"/units/meetings?month={month}"))
    figures = meetings.stats(people["C1"], tree["ba_dinh"].id, month)
    assert f"{figures['branches_with_regular_meeting']}/{figures['branches']} chi bộ" in page
    assert "<svg" in page and "Đảng bộ phường Điện Biên" in page
    exported = committee.get(f"/units/meetings?month={month}&format=csv")
    assert exported.status_code == 200 and exported.headers["Cache-Control"] == "private, no-store"
    assert exported.headers["Content-Disposition"] == f'attachment; filename="sinh-hoat-{figures["org_unit"]["code"]}-{month}.csv"'
    csv = committee.get(f"/units/meetings?month={month}&format=csv")
    assert csv.status_code == 200 and csv.get_data().decode("utf-8-sig").startswith("Mã đơn vị")
    assert browser(app, "M1").get("/units/meetings").status_code == 403
    assert browser(app, "C2").get(f"/units/meetings?unit={tree['ba_dinh'].id}").status_code == 403

    adoption.refresh()
    page = assert_page(committee.get("/units/adoption"))
    got = adoption.adoption(people["C1"], tree["ba_dinh"].id)
    assert f"{got['signed_in']}/{got['members']} đã từng đăng nhập" in page
    xlsx = committee.get("/units/adoption?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.get_data()[:2] == b"PK"


def test_the_roll_call_shows_a_saved_reason_and_stacks_on_a_phone(app, tree, people):
    """A reason saved with "absent, excused" is shown again in the roll call (it was lost: the field showed
    only the member's own answer), and after the close beside the member's attendance."""
    secretary = browser(app, "S1")
    assert _schedule(secretary, tree["b1"].id).status_code == 303
    meeting = db.session.scalar(select(Meeting))
    _open(meeting.id)
    saved = post(secretary, f"/meetings/{meeting.id}/attendance", {
        f"m-{people['M3'].id}": "excused", f"r-{people['M3'].id}": "Điều trị tại bệnh viện"})
    assert saved.status_code == 303
    page = assert_page(secretary.get(f"/meetings/{meeting.id}"))
    field = re.search(rf'<input id="r-{people["M3"].id}"[^>]*>', page).group(0)
    assert 'value="Điều trị tại bệnh viện"' in field
    assert re.search(rf'<option value="excused" selected>Vắng có lý do</option>', page)
    # The roll call's table turns into one block per member on a phone (no cut-off "Vắng có lý do").
    assert '<table class="list roll">' in page
    css_url = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    css = app.test_client().get(css_url).get_data(as_text=True)
    assert ".roll tr,.roll th,.roll td{display:block}" in css
    assert post(secretary, f"/meetings/{meeting.id}/close").status_code == 303
    closed = assert_page(secretary.get(f"/meetings/{meeting.id}"))
    assert re.search(r"Vắng có lý do\s*<span class=\"sub\">\(Điều trị tại bệnh viện\)</span>", closed)


def test_the_meeting_form_calls_the_title_a_title(app, tree, people):
    """A meeting's `title` is its title (Tiêu đề), not a document's abstract (Trích yếu)."""
    page = assert_page(browser(app, "S1").get(f"/meetings/new?unit={tree['b1'].id}"))
    assert '<label for="title">Tiêu đề</label>' in page and "Trích yếu" not in page
    with app.test_request_context(headers={"Accept-Language": "en"}):
        from flask_babel import force_locale, gettext
        with force_locale("en"):
            assert gettext("Meeting title") == "Meeting title"


def test_the_figures_export_lists_every_overdue_branch(app, tree, people):
    """The page says the rest of the overdue branches are in the download: the CSV and XLSX have them all,
    after the API.md columns (which stay as they are)."""
    from openpyxl import load_workbook

    # Last month is over: b2 (and b1, whose meeting is in this month) never held a regular meeting in it.
    today = datetime.now(UTC).astimezone(meetings.local_zone()).date()
    month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    committee = browser(app, "C1")
    page = assert_page(committee.get(f"/units/meetings?month={month}"))
    assert "Chi bộ Tổ dân phố số 2" in page
    figures = meetings.stats(people["C1"], tree["ba_dinh"].id, month, overdue_limit=None)
    assert figures["overdue_count"] == 2 == len(figures["overdue_branches"])
    lines = committee.get(f"/units/meetings?month={month}&format=csv").get_data().decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(meetings.STATS_HEADER)
    at = lines.index(f"{meetings.OVERDUE_TITLE},2,,,,")
    assert lines[at - 1] == ",,,,," and lines[at + 1:] == [
        "HN.BD.DB.1,Chi bộ Tổ dân phố số 1,,,,", "HN.BD.DB.2,Chi bộ Tổ dân phố số 2,,,,"]
    xlsx = committee.get(f"/units/meetings?month={month}&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.get_data())).active
    codes = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert codes[-3:] == [meetings.OVERDUE_TITLE, "HN.BD.DB.1", "HN.BD.DB.2"]
    # More overdue branches than the page lists: the file still has every one.
    few = meetings.stats(people["C1"], tree["ba_dinh"].id, month, overdue_limit=1)
    assert len(few["overdue_branches"]) == 1 and few["overdue_count"] == 2
