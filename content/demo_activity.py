"""Demo activity on top of the demo tree and documents: branch meetings, questions, adoption.

- Adoption that looks like Hanoi's: about 93 % of members have the app on a phone (88-97 % per unit),
  about 96 % ever signed in, about 80 % active in the last 30 days; rolled up at the end.
- Meetings: every branch (chi bộ) but a few held its regular meeting last month, and most have held this
  month's (closed, with attendance counts); the demo secretary's branch has a real one last month, run
  through the domain code (check-ins, an excused absence, the close briefing the present members on
  Chỉ thị 24-CT/TU), and an upcoming one next week with answers from some members.
- Questions on Chỉ thị 24-CT/TU from the demo branch, two answered by the board (one public).
Set-based inserts, so the 440,000-member bench database gets the same shape in seconds.
"""
from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta

from sqlalchemy import func, insert, select, text, update

from content import adoption, meetings, questions
from content.models import Document, Meeting, MeetingParticipant
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, holds_members
from handbook.timeutil import local_zone, utcnow
from push.models import Notification, NotificationState

SECRETARY_CARD, MEMBER_CARD, BOARD_CARD = "01000003", "01000004", "01000001"
QUESTIONS = [
    ("Chỉ thị có áp dụng với đảng viên được miễn sinh hoạt không?", "Có; đảng viên được miễn sinh hoạt vẫn "
     "nghiên cứu chỉ thị, chi bộ ghi nhận miễn xác nhận nếu cần.", True),
    ("Đề nghị gửi kèm bản tóm tắt để phổ biến cho đảng viên cao tuổi.", "Ban Tuyên giáo sẽ gửi bản tóm tắt "
     "một trang trong tuần này.", False),
    ("Thời hạn báo cáo kết quả thực hiện là khi nào?", None, False),
]


def load_demo_activity() -> list[str]:
    if db.session.scalar(select(Meeting.id).limit(1)) is not None:
        return ["Database already has meetings; demo activity not loaded."]
    now = utcnow()
    _adoption(now)
    bulk = _past_meetings(now)
    lines = [f"Demo meetings: {bulk:,} regular meetings held in the last two months"]
    lines += _demo_branch(now)
    # The bulk meetings above are written around the close (and the demo branch's is moved back after
    # its close): the monthly counters are counted from them once.
    meetings.recount_month_counters()
    db.session.commit()
    lines.append(f"Adoption rolled up: {adoption.refresh(now):,} units")
    return lines


def _adoption(now: datetime) -> None:
    """Devices ('fid-<member id>', as the bench's own), first sign-ins and recent sessions, by member id
    and unit so that units differ."""
    share = "(members.id * 37 % 100) < 88 + (members.org_unit_id % 10)"
    db.session.execute(text(
        "INSERT INTO devices (member_id, fid, platform, app_version, locale, created_at, last_seen_at) "
        f"SELECT id, 'fid-' || id, 'android', '1.4.2', 'vi-VN', :now, :now FROM members WHERE active AND {share}"),
        {"now": now})
    db.session.execute(text(
        "UPDATE members SET first_signed_in_at = :since WHERE active AND (members.id * 37 % 100) < 96"),
        {"since": now - timedelta(days=120)})
    db.session.execute(text(
        "INSERT INTO auth_sessions (id, member_id, created_at, refreshed_at, user_agent) "
        "SELECT 'demo-' || id, id, :created, :refreshed, 'demo' FROM members "
        "WHERE active AND (members.id * 37 % 100) < 80"),
        {"created": now - timedelta(days=60), "refreshed": now - timedelta(days=2)})
    db.session.commit()


def _past_meetings(now: datetime) -> int:
    """Closed regular meetings for ~95 % of branches last month and ~70 % this month (if the month has
    begun), with invited = the branch's members and 80-95 % present; not the demo secretary's branch."""
    zone = local_zone()
    today = now.astimezone(zone).date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    secretary_unit = db.session.scalar(select(Member.org_unit_id).where(Member.card_number == SECRETARY_CARD))
    parents = set(db.session.scalars(select(OrgUnit.parent_id).where(OrgUnit.parent_id.is_not(None))))
    sizes = dict(db.session.execute(select(Member.org_unit_id, func.count()).where(Member.active.is_(True))
                                    .group_by(Member.org_unit_id)).all())
    rows = []
    for unit_id, kind in db.session.execute(select(OrgUnit.id, OrgUnit.kind).order_by(OrgUnit.id)):
        if not holds_members(kind, unit_id in parents) or unit_id == secretary_unit or not sizes.get(unit_id):
            continue
        invited = sizes[unit_id]
        for month, share, held_by in ((last_month, 95, 28), (this_month, 70, max(1, today.day - 1))):
            if (unit_id * 31 + month.month) % 100 >= share or held_by < 1 or (month == this_month and today.day < 3):
                continue
            day = 1 + (unit_id * 7 + month.month) % min(held_by, 28)
            starts = datetime.combine(month.replace(day=day), time(19, 30), tzinfo=zone)
            present = round(invited * (80 + (unit_id * 13) % 16) / 100)
            excused = (invited - present + 1) // 2
            rows.append({"org_unit_id": unit_id, "kind": "regular", "title": f"Sinh hoạt chi bộ tháng {month.month}",
                         "status": "closed", "starts_at": starts, "ends_at": starts + timedelta(hours=2),
                         "place": "Nhà văn hóa tổ dân phố", "code_secret": secrets.token_hex(32),
                         "created_at": starts - timedelta(days=7), "updated_at": starts + timedelta(hours=2),
                         "closed_at": starts + timedelta(hours=2), "invited": invited, "present": present,
                         "excused": excused, "unexcused": invited - present - excused, "briefed": []})
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(Meeting), rows[start:start + 5000])
    db.session.commit()
    return len(rows)


def _demo_branch(now: datetime) -> list[str]:
    """The demo secretary's branch: last month's meeting run through the domain code, next week's
    scheduled with answers; questions on Chỉ thị 24 from its members."""
    secretary = db.session.scalar(select(Member).where(Member.card_number == SECRETARY_CARD))
    board = db.session.scalar(select(Member).where(Member.card_number == BOARD_CARD))
    ct24 = db.session.scalar(select(Document).where(Document.number == "24-CT/TU"))
    if secretary is None or ct24 is None:
        return ["No demo secretary or Chỉ thị 24-CT/TU: no demo branch meetings."]
    unit = secretary.org_unit_id
    branch = list(db.session.scalars(select(Member).where(Member.org_unit_id == unit, Member.active.is_(True))
                                     .order_by(Member.id)))
    agenda = [{"title": "Quán triệt Chỉ thị 24-CT/TU", "document_id": ct24.id},
              {"title": "Kiểm điểm công tác tháng, phương hướng tháng tới"}]
    soon = now + timedelta(hours=1)
    past = meetings.schedule(secretary, unit, {
        "title": "Sinh hoạt chi bộ thường kỳ", "kind": "regular", "starts_at": soon,
        "ends_at": soon + timedelta(hours=2), "place": "Nhà văn hóa tổ dân phố", "agenda": agenda})
    past_id = past.id
    db.session.execute(update(Meeting).where(Meeting.id == past_id).values(starts_at=now - timedelta(minutes=10)))
    db.session.commit()
    present = [m.id for m in branch[: max(1, len(branch) * 85 // 100)]]
    absent = [{"member_id": m.id, "reason": "Đi công tác", "excused": True} for m in branch[len(present):][:1]]
    meetings.mark_attendance(secretary, past_id, present, absent)
    result = meetings.close(secretary, past_id)
    held = (now - timedelta(days=(now.astimezone(local_zone()).day + 10))).replace(hour=12, minute=30)
    db.session.execute(update(Meeting).where(Meeting.id == past_id).values(
        starts_at=held, ends_at=held + timedelta(hours=2), closed_at=held + timedelta(hours=2)))
    db.session.execute(update(Notification).where(Notification.meeting_id == past_id).values(
        state=NotificationState.DONE.value, finished_at=held))
    db.session.commit()

    start = (now + timedelta(days=7)).astimezone(local_zone()).replace(hour=19, minute=30, second=0, microsecond=0)
    upcoming = meetings.schedule(secretary, unit, {
        "title": "Sinh hoạt chi bộ thường kỳ tháng tới", "kind": "regular", "starts_at": start,
        "ends_at": start + timedelta(hours=2), "place": "Nhà văn hóa tổ dân phố", "agenda": agenda})
    upcoming_id = upcoming.id
    for m in branch[1:4]:
        meetings.rsvp(m, upcoming_id, "attending", None)
    if len(branch) > 5:
        meetings.rsvp(branch[5], upcoming_id, "absent", "Điều trị tại bệnh viện")

    asked = 0
    for i, (text_, answer, public) in enumerate(QUESTIONS):
        asker = branch[(i + 3) % len(branch)]
        question = questions.ask(asker, ct24.id, text_)
        asked += 1
        if answer and board is not None:
            questions.answer(board, question["id"], answer, public)
    participants = db.session.scalar(select(func.count()).select_from(MeetingParticipant).where(
        MeetingParticipant.meeting_id == past_id))
    briefed = sum(len(b["members"]) for b in result["briefed"])
    return [f"Demo branch meetings: one held ({participants} members, {briefed} briefed on Chỉ thị 24-CT/TU "
            f"at it), one next week; {asked} questions on Chỉ thị 24-CT/TU"]
