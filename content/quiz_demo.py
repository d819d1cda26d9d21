"""Demo quizzes (issue 17): loaded by `handbook demo` after the demo documents.

- Chỉ thị 24-CT/TU gets a comprehension check required to acknowledge it (6 questions, 5 drawn per
  attempt, pass mark 80 %, 10 minutes, 3 attempts), and a minimum reading time of 60 seconds;
- each lesson of the series gets a short quiz (3 questions, pass mark 60 %); the last lesson's is a
  contest of Quận ủy Ba Đình's subtree («Thi tìm hiểu lịch sử Đảng bộ», open from two days ago for a week,
  15 minutes), so the district's committee sees a ranking.

Attempts go through the same domain functions as the phones (start, then submit), as a seeded sample of
members (each with a "skill": the chance to answer a question right), so results, counters, rankings and
audit entries are what real use leaves. Each attempt is made to have taken 1-9 minutes (its start moved
back before it is submitted). Members who passed 24-CT/TU acknowledge it through the gate.

Idempotent: nothing is created if a quiz exists or the demo documents are missing.
"""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from content import acknowledgements, quizzes
from content.demo import BA_DINH_NAME, BOARD_CARD
from content.models import Document, Status
from content.quiz_models import Quiz, QuizAttempt
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.timeutil import utcnow


def _q(text: str, right: list[str], wrong: list[str], kind: str | None = None) -> dict:
    options = [{"text": t, "correct": True} for t in right] + [{"text": t, "correct": False} for t in wrong]
    return {"kind": kind or ("single" if len(right) == 1 else "multiple"), "text": text, "options": options}


CT24 = [
    _q("Chỉ thị số 24-CT/TU do cơ quan nào ban hành?", ["Ban Thường vụ Thành ủy Hà Nội"],
       ["Bộ Chính trị", "Hội đồng nhân dân Thành phố", "Ủy ban Kiểm tra Trung ương"]),
    _q("Chỉ thị số 24-CT/TU được ban hành ngày nào?", ["07/8/2023"], ["19/5/2023", "02/9/2023", "01/01/2024"]),
    _q("Chỉ thị tập trung vào những nội dung nào?", ["Tăng cường kỷ luật, kỷ cương", "Nâng cao trách nhiệm nêu gương"],
       ["Giảm số buổi sinh hoạt chi bộ", "Bỏ việc kiểm điểm cuối năm"]),
    _q("Ai phải gương mẫu thực hiện trước?", ["Người đứng đầu cấp ủy, cơ quan, đơn vị"],
       ["Đảng viên mới kết nạp", "Chỉ cán bộ hưu trí"]),
    _q("Những việc nào là trách nhiệm của đảng viên theo Chỉ thị?",
       ["Nghiên cứu, quán triệt Chỉ thị", "Xác nhận đã đọc và thực hiện"], ["Chờ cấp trên nhắc nhiều lần"]),
    _q("Đảng viên không dùng ứng dụng được phổ biến Chỉ thị ở đâu?", ["Tại buổi sinh hoạt chi bộ gần nhất"],
       ["Không cần phổ biến", "Qua mạng xã hội"]),
]
LESSONS = {
    1: [_q("Chi bộ cộng sản đầu tiên ở Việt Nam ra đời ở đâu?", ["Số nhà 5D phố Hàm Long, Hà Nội"],
           ["Phố Hàng Bạc", "Nam Định", "Hải Phòng"]),
        _q("Thành ủy Hà Nội đầu tiên được thành lập ngày nào?", ["17/3/1930"], ["3/2/1930", "19/8/1945"]),
        _q("Sự kiện nào diễn ra năm 1930?", ["Đảng Cộng sản Việt Nam được thành lập", "Thành ủy Hà Nội ra đời"],
           ["Giải phóng Thủ đô"])],
    2: [_q("Nhân dân Hà Nội giành chính quyền ngày nào?", ["19/8/1945"], ["2/9/1945", "19/12/1946"]),
        _q("Ngày giải phóng Thủ đô là?", ["10/10/1954"], ["30/4/1975", "19/12/1946"]),
        _q("Những mốc nào thuộc giai đoạn 1945–1954?", ["19/12/1946", "10/10/1954"], ["1/8/2008", "1986"])],
    3: [_q("Đại hội nào của Đảng đề ra đường lối đổi mới?", ["Đại hội VI (1986)"], ["Đại hội IV", "Đại hội IX"]),
        _q("Địa giới Thủ đô được mở rộng ngày nào?", ["1/8/2008"], ["10/10/2010", "1/1/2000"]),
        _q("Mục tiêu xây dựng Thủ đô được nêu trong bài?", ["Văn hiến", "Văn minh", "Hiện đại"], ["Khép kín"])],
}
SAMPLE = 150          # members who take each quiz (at most)


def _answers(rng: random.Random, attempt: dict, key: dict[str, set[str]], skill: float) -> list[dict]:
    out = []
    for q in attempt["questions"]:
        options = {o["text"]: o["key"] for o in q["options"]}
        right = key[q["text"]]
        if rng.random() < skill:
            chosen = sorted(right)
        elif q["kind"] == "single":
            chosen = [rng.choice([t for t in options if t not in right])]
        else:
            chosen = rng.sample(sorted(options), rng.randint(1, len(options) - 1))
        out.append({"question_id": q["id"], "options": [options[t] for t in chosen]})
    return out


def _take(rng: random.Random, member: Member, quiz_id: int, key, skill: float, tries: int) -> bool:
    """Up to `tries` attempts until a pass; True when passed."""
    for _ in range(tries):
        try:
            attempt, _ = quizzes.start_attempt(member, quiz_id, platform=rng.choice(["android", "ios"]))
        except ProblemError:
            return False
        row = db.session.get(QuizAttempt, attempt["id"])
        took = timedelta(seconds=rng.randint(60, 540))
        row.started_at -= took
        if row.due_at is not None:
            row.due_at -= took
        db.session.commit()
        result = quizzes.submit_attempt(member, attempt["id"], attempt["token"], _answers(rng, attempt, key, skill))
        if result["passed"]:
            return True
        skill = min(0.98, skill + 0.15)
    return False


def load_demo_quizzes(seed: int = 2023, sample: int = SAMPLE) -> list[str]:
    if db.session.scalar(select(Quiz.id).limit(1)) is not None:
        return ["Database already has quizzes; demo quizzes not loaded."]
    board = db.session.scalar(select(Member).where(Member.card_number == BOARD_CARD))
    ct24 = db.session.scalar(select(Document).where(Document.number == "24-CT/TU",
                                                    Document.status == Status.PUBLISHED.value))
    lessons = {d.lesson_no: d for d in db.session.scalars(select(Document).where(
        Document.series_id.is_not(None), Document.status == Status.PUBLISHED.value))}
    if board is None or ct24 is None:
        return ["No demo board account or Chỉ thị 24-CT/TU; demo quizzes not loaded."]
    ba_dinh = db.session.scalar(select(OrgUnit).where(OrgUnit.name == BA_DINH_NAME))
    now = utcnow()
    specs = [(ct24.id, {"title": "Kiểm tra hiểu Chỉ thị số 24-CT/TU", "questions": CT24, "pass_mark": 80,
                        "draw_count": 5, "time_limit_seconds": 600, "max_attempts": 3, "required_for_ack": True},
              "city")]
    for number, questions in sorted(LESSONS.items()):
        if number not in lessons:
            continue
        data = {"title": f"Câu hỏi ôn tập bài {number}", "questions": questions, "pass_mark": 60}
        scope = "city"
        if number == max(LESSONS) and ba_dinh is not None:
            data.update(title="Thi tìm hiểu lịch sử Đảng bộ Hà Nội", time_limit_seconds=900, max_attempts=2,
                        reveal_answers=False, contest={"org_unit": ba_dinh.id, "opens_at": now - timedelta(days=2),
                                                       "closes_at": now + timedelta(days=5)})
            scope = "ba_dinh"
        specs.append((lessons[number].id, data, scope))
    quizzes.set_ack_rules(board, ct24.id, 60)

    rng = random.Random(seed)
    members = list(db.session.scalars(select(Member.id).where(Member.active.is_(True)).order_by(Member.id)))
    in_ba_dinh = [] if ba_dinh is None else list(db.session.scalars(
        select(Member.id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(Member.active.is_(True), in_subtree(OrgUnit.path, ba_dinh.path)).order_by(Member.id)))
    skills: dict[int, float] = {}
    lines, attempts_before = [], 0
    for document_id, data, scope in specs:
        quiz = quizzes.create_quiz(board, document_id, data)
        quiz_id, title = quiz.id, quiz.title
        key = {q["text"]: {o["text"] for o in q["options"] if o["correct"]} for q in data["questions"]}
        pool = members if scope == "city" else in_ba_dinh
        takers = rng.sample(pool, min(sample, len(pool)))
        passed = 0
        for member_id in takers:
            member = db.session.get(Member, member_id)
            skill = skills.setdefault(member_id, rng.uniform(0.45, 0.95))
            ok = _take(rng, member, quiz_id, key, skill, tries=data.get("max_attempts") or 2)
            passed += ok
            if ok and document_id == ct24.id:
                # A reader who passed acknowledges (a reading of at least the minimum time before).
                acknowledgements.open_document(member, ct24.id, client_at=now - timedelta(minutes=15))
                acknowledgements.acknowledge(member, ct24.id, ct24.version)
        count = db.session.scalar(select(db.func.count()).select_from(QuizAttempt)) - attempts_before
        attempts_before += count
        lines.append(f"  quiz {quiz_id} «{title}»: {len(takers)} members, {count} attempts, {passed} passed")
    return [f"Demo quizzes: {len(specs)} (Chỉ thị 24-CT/TU required to acknowledge, min. reading 60 s)", *lines]
