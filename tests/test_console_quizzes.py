"""The console's quiz pages (issue 17 in the console), on SQLite and PostgreSQL, through the Flask test
client: a publisher attaches and edits a quiz and the minimum reading time; a member takes a quiz (the key
never in the page before submission) and acknowledges once passed; committees read results, the series
page and a contest's ranking. Invalid input is shown next to its field and writes nothing; a missing
CSRF token is refused; scope as in the API.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

from sqlalchemy import func, select

from content import documents, quizzes
from content.models import Document, Receipt
from content.quiz_models import Quiz, QuizAttempt, QuizQuestion
from handbook.extensions import db
from tests.console_helpers import assert_page, browser, post
from tests.test_console import people, publish, table_counts  # noqa: F401 (fixtures)

BANK = [
    {"kind": "single", "text": "Chỉ thị 24-CT/TU được ban hành năm nào?",
     "options": [{"text": "2023", "correct": True}, {"text": "2021"}, {"text": "2019"}]},
    {"kind": "multiple", "text": "Chỉ thị yêu cầu những gì?",
     "options": [{"text": "Tăng cường kỷ luật", "correct": True}, {"text": "Nâng cao trách nhiệm", "correct": True},
                 {"text": "Bỏ phê bình"}]},
]


def quiz_form(title="Kiểm tra hiểu Chỉ thị 24", **fields) -> dict:
    """The quiz form as a browser posts it: two questions in slots 0 and 1, slot 2 left empty."""
    data = {"action": "save", "title": title, "pass_mark": "80", "time_limit": "", "max_attempts": "",
            "draw_count": "", "reveal_answers": "y", "count": "3"}
    for i, q in enumerate(BANK):
        data.update({f"q{i}_kind": q["kind"], f"q{i}_text": q["text"], f"q{i}_points": "1", f"q{i}_width": "4"})
        for j, o in enumerate(q["options"]):
            data[f"q{i}_o{j}"] = o["text"]
            if o.get("correct"):
                data[f"q{i}_c{j}"] = "y"
    data.update({"q2_kind": "single", "q2_text": "", "q2_points": "1", "q2_width": "4"})
    data.update(fields)
    return data


def make_quiz(author, doc_id: int, **settings) -> int:
    return quizzes.create_quiz(author, doc_id, {"title": "Kiểm tra hiểu Chỉ thị 24", "pass_mark": 80,
                                                "questions": BANK, **settings}).id


def error_ids(text: str) -> set[str]:
    return set(re.findall(r'id="([\w-]+)-error"', text))


def right_keys(attempt_id: int) -> dict[int, list[str]]:
    """The key, read on the server's side (what the page must never show before submission)."""
    db.session.expire_all()
    attempt = db.session.get(QuizAttempt, attempt_id)
    return {q["question_id"]: [o["key"] for o in q["options"] if o["correct"]] for q in attempt.questions}


def take(client, quiz_id: int, pick=None) -> tuple[int, str]:
    """Start an attempt in the browser, answer it (right, or `pick(keys)`), submit; the result page."""
    started = post(client, f"/quizzes/{quiz_id}/attempts")
    assert started.status_code == 303, started.get_data(as_text=True)[:2000]
    attempt_id = int(started.headers["Location"].rsplit("/", 1)[1])
    page = assert_page(client.get(started.headers["Location"]))
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    data = {"token": token}
    for qid, keys in right_keys(attempt_id).items():
        data[f"q{qid}"] = pick(keys) if pick else keys
    submitted = post(client, f"/attempts/{attempt_id}", data)
    assert submitted.status_code == 303, submitted.get_data(as_text=True)[:2000]
    return attempt_id, assert_page(client.get(f"/attempts/{attempt_id}"))


# --- publishers ------------------------------------------------------------------------------------

def test_a_publisher_attaches_a_quiz_edits_it_and_sets_a_reading_time(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    board = browser(app, "A1")
    assert "Quizzes and reading time" in board.get(f"/board/documents/{doc}").get_data(as_text=True) or \
        "Bài kiểm tra và thời gian đọc" in assert_page(board.get(f"/board/documents/{doc}"))
    listing = assert_page(board.get(f"/board/documents/{doc}/quizzes"))
    assert "Chưa có bài kiểm tra" in listing
    assert_page(board.get(f"/board/documents/{doc}/quizzes/new"))
    # "One more question" shows the form again with a fourth slot and what was typed; nothing written.
    before = table_counts()
    more = assert_page(post(board, f"/board/documents/{doc}/quizzes/new", quiz_form(action="more")))
    assert 'name="q3_text"' in more and "Chỉ thị yêu cầu những gì?" in more
    assert table_counts() == before
    # Text typed in decomposed form is stored NFC.
    decomposed = unicodedata.normalize("NFD", "Cơ quan ban hành chỉ thị?")
    saved = post(board, f"/board/documents/{doc}/quizzes/new", quiz_form(
        required_for_ack="y", q2_text=decomposed, q2_o0="Ban Thường vụ Thành ủy", q2_c0="y", q2_o1="Quốc hội"))
    assert saved.status_code == 303, saved.get_data(as_text=True)[:3000]
    quiz = db.session.scalar(select(Quiz))
    assert quiz.required_for_ack and db.session.get(Document, doc).ack_quiz_id == quiz.id
    texts = db.session.scalars(select(QuizQuestion.text).where(QuizQuestion.quiz_id == quiz.id)
                               .order_by(QuizQuestion.position)).all()
    assert texts[2] == unicodedata.normalize("NFC", decomposed) and len(texts) == 3
    edit = assert_page(board.get(saved.headers["Location"]))
    assert 'value="Kiểm tra hiểu Chỉ thị 24"' in edit and 'id="required_for_ack" name="required_for_ack" value="y" checked' in edit
    # Settings only (the bank as it was): the questions are kept, not retired and re-added.
    form = quiz_form(pass_mark="70", time_limit="15", max_attempts="3", required_for_ack="y", count="4",
                     q2_text=unicodedata.normalize("NFC", decomposed), q2_o0="Ban Thường vụ Thành ủy", q2_c0="y",
                     q2_o1="Quốc hội", q2_width="4")
    assert post(board, f"/board/quizzes/{quiz.id}", form).status_code == 303
    db.session.expire_all()
    quiz = db.session.get(Quiz, quiz.id)
    assert (quiz.pass_mark, quiz.time_limit_seconds, quiz.max_attempts) == (70, 900, 3)
    assert db.session.scalar(select(func.count()).select_from(QuizQuestion)) == 3
    # A changed bank replaces the questions (the old ones retired).
    assert post(board, f"/board/quizzes/{quiz.id}", quiz_form(pass_mark="70")).status_code == 303
    assert db.session.scalar(select(func.count()).select_from(QuizQuestion).where(
        QuizQuestion.retired.is_(False))) == 2
    # The minimum reading time.
    assert post(board, f"/board/documents/{doc}/ack-rules", {"min_read_seconds": "45"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Document, doc).min_read_seconds == 45
    assert 'value="45"' in assert_page(board.get(f"/board/documents/{doc}/quizzes"))


def test_bad_quiz_forms_show_the_error_next_to_the_field_and_write_nothing(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    board = browser(app, "A1")
    before = table_counts()
    url = f"/board/documents/{doc}/quizzes/new"
    for fields, field in (({"pass_mark": "150"}, "pass_mark"), ({"title": " "}, "title"),
                          ({"time_limit": "abc"}, "time_limit_seconds"), ({"draw_count": "9"}, "draw_count"),
                          ({"q0_c1": "y"}, "q0_options"),             # a single choice with two right options
                          ({"q1_o0": "", "q1_o1": "", "q1_o2": ""}, "q1_options"),
                          ({"q0_text": ""}, "q0_text"),
                          ({"contest": "y", "contest_unit": ""}, "contest-org_unit"),
                          ({"contest": "y", "contest_unit": str(tree["ba_dinh"].id), "opens_at": "2030-01-02T08:00",
                            "closes_at": "2030-01-01T08:00"}, "contest-closes_at"),
                          ({"contest": "y", "contest_unit": str(tree["ba_dinh"].id), "required_for_ack": "y"},
                           "required_for_ack")):
        response = post(board, url, quiz_form(**fields))
        assert field in error_ids(assert_page(response, 422)), (fields, error_ids(response.get_data(as_text=True)))
    empty = quiz_form(**{f"q{i}_{k}": "" for i in range(2) for k in ("text", "o0", "o1", "o2")})
    assert "questions" in error_ids(assert_page(post(board, url, empty), 422))
    assert "min_read_seconds" in error_ids(assert_page(
        post(board, f"/board/documents/{doc}/ack-rules", {"min_read_seconds": "abc"}), 422))
    assert table_counts() == before
    # Without the CSRF token: refused, nothing written.
    assert board.post(url, data=quiz_form()).status_code == 400
    assert board.post(f"/board/documents/{doc}/ack-rules", data={"min_read_seconds": "5"}).status_code == 400
    assert table_counts() == before
    # Scope: members and secretaries do not manage the document (404, as in the API).
    others = [browser(app, card) for card in ("M1", "S1", "C2")]
    before = table_counts()
    for other in others:
        assert other.get(f"/board/documents/{doc}/quizzes").status_code == 404
        assert post(other, url, quiz_form()).status_code == 404
        assert post(other, f"/board/documents/{doc}/ack-rules", {"min_read_seconds": "5"}).status_code == 404
    assert table_counts() == before


# --- members ---------------------------------------------------------------------------------------

def test_a_member_passes_the_required_quiz_and_then_acknowledges(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    quiz = make_quiz(people["A1"], doc, required_for_ack=True, time_limit_seconds=600, max_attempts=3)
    member = browser(app, "M1")
    page = assert_page(member.get(f"/read/{doc}"))
    assert f'href="/quizzes/{quiz}"' in page and "Bắt buộc để xác nhận" in page
    # Acknowledging first: refused with the reason and a link to the quiz; nothing acknowledged.
    refused = post(member, f"/read/{doc}/acknowledge", {"version": "1"})
    text = assert_page(refused, 409)
    assert 'id="ack-error"' in text and f'href="/quizzes/{quiz}"' in text
    db.session.expire_all()
    assert db.session.get(Receipt, (doc, people["M1"].id)).acknowledged_at is None
    rules = assert_page(member.get(f"/quizzes/{quiz}"))
    assert "10 phút" in rules and "Còn 3/3 lượt" in rules
    # The attempt page: every option with its key, and nothing saying which is right.
    started = post(member, f"/quizzes/{quiz}/attempts")
    attempt_id = int(started.headers["Location"].rsplit("/", 1)[1])
    page = assert_page(member.get(f"/attempts/{attempt_id}"))
    assert "Nộp bài trước" in page                     # the time limit is shown
    for keys in right_keys(attempt_id).values():
        for key in keys:
            assert page.count(f'value="{key}"') == 1   # offered like any other option
    assert "ok-text" not in page and "✓" not in page and "correct" not in page
    # A wrong answer: not passed, still refused.
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    # Without CSRF: refused, the attempt stays open.
    assert member.post(f"/attempts/{attempt_id}", data={"token": token}).status_code == 400
    assert db.session.get(QuizAttempt, attempt_id).status == "started"
    assert post(member, f"/attempts/{attempt_id}", {"token": token}).status_code == 303
    result = assert_page(member.get(f"/attempts/{attempt_id}"))
    assert "Chưa đạt" in result and "0%" in result
    assert_page(post(member, f"/read/{doc}/acknowledge", {"version": "1"}), 409)
    # Right answers: passed, then the acknowledgement is accepted.
    _, result = take(member, quiz)
    assert "100%" in result and "Đạt" in result and "✓" in result
    acknowledged = post(member, f"/read/{doc}/acknowledge", {"version": "1"})
    assert acknowledged.status_code == 303
    db.session.expire_all()
    assert db.session.get(Receipt, (doc, people["M1"].id)).acknowledged_version == 1
    # Another member cannot open this member's attempt.
    assert browser(app, "M4").get(f"/attempts/{attempt_id}").status_code == 404


def test_reading_too_fast_is_explained_and_a_late_attempt_is_kept_ungraded(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    quizzes.set_ack_rules(people["A1"], doc, 30)
    quiz = make_quiz(people["A1"], doc, time_limit_seconds=60)
    member = browser(app, "M1")
    assert "ít nhất 30 giây" in assert_page(member.get(f"/read/{doc}"))
    text = assert_page(post(member, f"/read/{doc}/acknowledge", {"version": "1"}), 409)
    assert 'id="ack-error"' in text and "ít nhất 30 giây" in text
    db.session.expire_all()
    assert db.session.get(Receipt, (doc, people["M1"].id)).acknowledged_at is None
    started = post(member, f"/quizzes/{quiz}/attempts")
    attempt_id = int(started.headers["Location"].rsplit("/", 1)[1])
    token = re.search(r'name="token" value="([0-9a-f]+)"', member.get(f"/attempts/{attempt_id}")
                      .get_data(as_text=True)).group(1)
    attempt = db.session.get(QuizAttempt, attempt_id)
    attempt.started_at -= timedelta(minutes=10)
    attempt.due_at -= timedelta(minutes=10)
    db.session.commit()
    late = post(member, f"/attempts/{attempt_id}", {"token": token})
    assert late.status_code == 303
    assert "không được chấm" in assert_page(member.get(late.headers["Location"]))
    db.session.expire_all()
    assert db.session.get(QuizAttempt, attempt_id).status == "late"


# --- results, series, ranking ----------------------------------------------------------------------

def test_results_roll_up_with_a_chart_drill_down_and_exports_within_scope(app, tree, people):
    doc = publish(people["A1"], [tree["ba_dinh"]])
    quiz = make_quiz(people["A1"], doc)
    take(browser(app, "M1"), quiz)
    take(browser(app, "M4"), quiz, pick=lambda keys: [])
    committee = browser(app, "C1")
    assert "Vũ Thị Giang" not in (rules := assert_page(browser(app, "M1").get(f"/quizzes/{quiz}")))
    assert f'href="/quizzes/{quiz}/results"' not in rules             # a member has no results link
    assert f'href="/quizzes/{quiz}/results"' in assert_page(browser(app, "S1").get(f"/quizzes/{quiz}"))
    page = assert_page(committee.get(f"/quizzes/{quiz}/results"))
    assert "<svg" in page
    assert re.search(r"2 trên \d+ đảng viên đã làm; 1 đạt", page), page[:4000]
    assert "Chỉ thị yêu cầu những gì?" in page               # among the hardest questions
    drill = assert_page(committee.get(f"/quizzes/{quiz}/results?unit={tree['b1'].id}"))
    assert "Nguyễn Văn An" in drill and "Vũ Thị Giang" not in drill
    csv = committee.get(f"/quizzes/{quiz}/results?unit={tree['b1'].id}&format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv" and "Nguyễn Văn An" in csv.get_data(as_text=True)
    xlsx = committee.get(f"/quizzes/{quiz}/results?format=xlsx")
    assert xlsx.status_code == 200 and xlsx.get_data()[:2] == b"PK"
    # Scope: a member is not a follower (403); another district's committee does not follow it (404);
    # a branch secretary sees their branch only.
    assert browser(app, "M1").get(f"/quizzes/{quiz}/results").status_code == 403
    assert browser(app, "C2").get(f"/quizzes/{quiz}/results").status_code == 404
    assert browser(app, "S2").get(f"/quizzes/{quiz}/results?unit={tree['b1'].id}").status_code == 403
    own = assert_page(browser(app, "S2").get(f"/quizzes/{quiz}/results"))
    assert "Vũ Thị Giang" in own and "Nguyễn Văn An" not in own


def test_the_series_pages_and_a_contest_ranking(app, tree, people):
    author = people["A1"]
    series = documents.create_series(author, {"title": "Chuyên đề học tập năm 2026",
                                              "owner_unit": tree["city"].id}).id
    lessons = []
    for n in (1, 2):
        lesson = documents.create_document(author, {
            "kind": "study", "title": f"Bài {n}", "summary": "", "body_html": "<p>Bài học</p>", "requires_ack": False,
            "series_id": series, "lesson_no": n, "audience": {"org_units": [tree["ba_dinh"].id]}})
        documents.publish_document(author, lesson.id)
        lessons.append(lesson.id)
    quiz = make_quiz(author, lessons[0])
    contest = make_quiz(author, lessons[1], contest={"org_unit": tree["ba_dinh"].id})
    m1, m4 = browser(app, "M1"), browser(app, "M4")
    assert_page(m1.get(f"/read/{lessons[0]}"))
    take(m1, quiz)
    take(m1, contest)
    take(m4, contest, pick=lambda keys: keys[:1])
    mine = assert_page(m1.get(f"/series/{series}"))
    assert "Đã học 1/2 bài; đạt 2/2 bài kiểm tra" in mine, mine[:3000]
    committee = browser(app, "C1")
    members = assert_page(committee.get(f"/series/{series}/members"))
    assert "Nguyễn Văn An" in members and "Vũ Thị Giang" in members
    assert browser(app, "M1").get(f"/series/{series}/members").status_code == 403
    ranking = assert_page(committee.get(f"/quizzes/{contest}/ranking"))
    assert ranking.index("Nguyễn Văn An") < ranking.index("Vũ Thị Giang")
    by_units = assert_page(committee.get(f"/quizzes/{contest}/ranking?by=units"))
    assert "Đảng bộ phường" in by_units or "phường" in by_units
    # Only the organising committee: a branch secretary is refused; a quiz that is not a contest is 404.
    assert browser(app, "S1").get(f"/quizzes/{contest}/ranking").status_code == 403
    assert committee.get(f"/quizzes/{quiz}/ranking").status_code == 404
