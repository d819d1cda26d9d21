"""Quizzes (issue 17): authoring, attempts (shuffled, offline, timed, retried), grading, the acknowledgement
gate and the minimum reading time, results rolled up the tree, exports, contest rankings and scoping.

Everything through HTTP on the real app and database (SQLite and PostgreSQL), in the 12-member world of
tests/test_acknowledgements.py (b1: M1 M2 S1 CB; b2: M3 M4 S2 BT; cbcs: M5 M6 SD CD). Time passing is
simulated by moving stored times back (attempt starts, contest windows, publications).
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from content import quizzes
from content.models import Document
from content.quiz_models import Quiz, QuizAttempt, QuizQuestionStat, QuizResult, QuizUnitStat
from handbook.extensions import db
from handbook.members import Member, membership_changed
from tests.factories import executed_statements
from tests.test_acknowledgements import ADMIN, API, assert_counters_exact, backdate
from tests.test_errors import assert_problem

QUESTIONS = [
    {"kind": "single", "text": "Chỉ thị 24-CT/TU được ban hành năm nào?",
     "options": [{"text": "2023", "correct": True}, {"text": "2021"}, {"text": "2019"}, {"text": "2025"}]},
    {"kind": "multiple", "text": "Chỉ thị yêu cầu những gì?",
     "options": [{"text": "Tăng cường kỷ luật", "correct": True}, {"text": "Nâng cao trách nhiệm", "correct": True},
                 {"text": "Giảm họp chi bộ"}, {"text": "Bỏ phê bình"}]},
    {"kind": "single", "text": "Cơ quan ban hành?",
     "options": [{"text": "Ban Thường vụ Thành ủy", "correct": True}, {"text": "Quốc hội"}]},
]


# --- helpers -----------------------------------------------------------------------------------------

def make_quiz(api, doc_id: int, questions=None, by: str = "BT", **settings) -> dict:
    body = {"title": "Kiểm tra hiểu Chỉ thị 24", "pass_mark": 60, "questions": questions or QUESTIONS, **settings}
    response = api.client.post(f"{ADMIN}/{doc_id}/quizzes", json=body, headers=api.auth(by))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def start(api, card: str, quiz_id: int, **body):
    return api.client.post(f"{API}/quizzes/{quiz_id}/attempts", json=body, headers=api.auth(card))


def started(api, card: str, quiz_id: int) -> dict:
    response = start(api, card, quiz_id)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.json


def submit(api, card: str, attempt: dict, answers: list[dict], **extra):
    return api.client.post(f"{API}/quiz-attempts/{attempt['id']}/submission",
                           json={"token": attempt["token"], "answers": answers, **extra}, headers=api.auth(card))


KEY = {q["text"]: {o["text"] for o in q["options"] if o.get("correct")} for q in QUESTIONS}


def answers_for(attempt: dict, pick) -> list[dict]:
    """`pick(question text, {option text: key})` → option texts chosen; as the phone would send them."""
    out = []
    for q in attempt["questions"]:
        keys = {o["text"]: o["key"] for o in q["options"]}
        chosen = pick(q["text"], keys)
        if chosen is not None:
            out.append({"question_id": q["id"], "options": [keys[t] for t in chosen]})
    return out


def right(text, keys):
    return sorted(KEY[text])


def wrong(text, keys):
    return [next(t for t in keys if t not in KEY[text])]


def take(api, card: str, quiz_id: int, pick=right, **extra) -> dict:
    attempt = started(api, card, quiz_id)
    response = submit(api, card, attempt, answers_for(attempt, pick), **extra)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def walk(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def move_attempt_back(attempt_id: int, seconds: int) -> None:
    a = db.session.get(QuizAttempt, attempt_id)
    a.started_at -= timedelta(seconds=seconds)
    if a.due_at is not None:
        a.due_at -= timedelta(seconds=seconds)
    db.session.commit()


# --- grading -------------------------------------------------------------------------------------------

def _q(qid, kind, right_keys, wrong_keys, points=1):
    return {"question_id": qid, "kind": kind, "points": points,
            "options": [{"key": k, "correct": True} for k in right_keys] + [{"key": k, "correct": False}
                                                                            for k in wrong_keys]}


def test_grading_rule_single_multiple_and_partial(app):
    single = _q(1, "single", ["a"], ["b", "c"])
    multiple = _q(2, "multiple", ["a", "b"], ["c", "d"])
    three = _q(3, "multiple", ["a", "b", "c"], ["d"], points=2)

    def score(q, chosen):
        per, total, _ = quizzes.grade([q], {str(q["question_id"]): chosen}, 50)
        return per[str(q["question_id"])], total

    assert score(single, ["a"]) == (10000, 10000)
    assert score(single, ["b"]) == (0, 0)
    assert score(single, []) == (0, 0)
    assert score(multiple, ["a", "b"]) == (10000, 10000)
    assert score(multiple, ["a"]) == (5000, 5000)                 # half the right ones, no wrong one
    assert score(multiple, ["a", "c"]) == (0, 0)                  # one right, one wrong
    assert score(multiple, ["a", "b", "c"]) == (5000, 5000)       # (2 - 1) / 2
    assert score(multiple, ["a", "b", "c", "d"]) == (0, 0)        # everything ticked
    assert score(multiple, ["c"]) == (0, 0)                       # never below zero
    assert score(three, ["a"]) == (3333, 3333)                    # 1/3, rounded to hundredths of a percent
    assert score(three, ["a", "b"]) == (6667, 6667)
    # Weighted mean over questions, unanswered ones count zero; the pass mark is compared exactly.
    per, total, passed = quizzes.grade([single, multiple, three], {"1": ["a"], "2": ["a"]}, 50)
    assert per == {"1": 10000, "2": 5000, "3": 0}
    assert total == 3750 and passed is False                       # (1 + 0.5 + 0) / 4
    _, total, passed = quizzes.grade([single, multiple], {"1": ["a"]}, 50)
    assert total == 5000 and passed is True                        # exactly the pass mark passes
    _, _, passed = quizzes.grade([three], {"3": ["a"]}, 33)
    assert passed is True and Fraction(1, 3) * 100 >= 33


def test_grading_through_the_api(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc)
    result = take(api, "M1", quiz["id"])
    assert (result["score"], result["passed"], result["status"]) == (100.0, True, "submitted")
    assert {q["score"] for q in result["questions"]} == {100.0}

    def partial(text, keys):
        if text == QUESTIONS[1]["text"]:
            return ["Tăng cường kỷ luật"]            # half of the multiple-choice question
        if text == QUESTIONS[2]["text"]:
            return None                              # left unanswered
        return right(text, keys)

    result = take(api, "M2", quiz["id"], pick=partial)
    assert result["score"] == 50.0 and result["passed"] is False   # (1 + 0.5 + 0) / 3, pass mark 60
    by_text = {q["text"]: q for q in result["questions"]}
    assert by_text[QUESTIONS[1]["text"]]["score"] == 50.0
    assert by_text[QUESTIONS[2]["text"]]["chosen"] == [] and by_text[QUESTIONS[2]["text"]]["score"] == 0.0
    # After submission the key is shown (reveal_answers defaults to true)
    options = by_text[QUESTIONS[0]["text"]]["options"]
    assert {o["text"] for o in options if o["correct"]} == {"2023"}


def test_bad_answers_are_422(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc)
    attempt = started(api, "M1", quiz["id"])
    single = next(q for q in attempt["questions"] if q["kind"] == "single")
    two = [o["key"] for o in single["options"][:2]]
    for answers, field in (([{"question_id": single["id"], "options": two}], "answers.0.options"),
                           ([{"question_id": single["id"], "options": ["nope"]}], "answers.0.options"),
                           ([{"question_id": 999999, "options": []}], "answers.0.question_id")):
        body = assert_problem(submit(api, "M1", attempt, answers), 422, "validation_error")
        assert field in body["errors"]
    assert db.session.get(QuizAttempt, attempt["id"]).status == "started"


# --- shuffling, drawing, no leak of the key --------------------------------------------------------------

def test_start_sends_shuffled_questions_without_the_key(api, tree):
    doc = api.publish()
    six = [{"kind": "single", "text": "Câu hỏi sáu phương án",
            "options": [{"text": f"Phương án {i}", "correct": i == 1} for i in range(1, 7)]}]
    quiz = make_quiz(api, doc, questions=six + QUESTIONS)
    orders, keys = set(), []
    for card in ("M1", "M2", "M3", "M4", "M5", "M6", "S1", "S2"):
        response = start(api, card, quiz["id"])
        assert response.status_code == 201
        body = response.json
        assert "correct" not in set(walk(body)) and "correct" not in response.get_data(as_text=True)
        assert "score" not in body and "passed" not in body
        q = next(q for q in body["questions"] if q["text"] == "Câu hỏi sáu phương án")
        orders.add(tuple(o["text"] for o in q["options"]))
        keys.append(tuple(o["key"] for o in q["options"]))
        assert body["token"] and len(body["questions"]) == 4
        # Reading it back before submission shows no key either, and no token.
        again = api.client.get(f"{API}/quiz-attempts/{body['id']}", headers=api.auth(card))
        assert again.status_code == 200 and "correct" not in again.get_data(as_text=True)
        assert "token" not in again.json
    assert len(orders) > 1                                   # options shuffled per attempt
    assert len(set(keys)) == len(keys)                       # keys are per attempt, not the author's order
    assert all(k not in {"1", "2", "3", "4", "5", "6", "0"} for ks in keys for k in ks)
    info = api.client.get(f"{API}/quizzes/{quiz['id']}", headers=api.auth("M1"))
    assert info.status_code == 200 and "questions" not in info.json and "Phương án" not in info.get_data(as_text=True)


def test_questions_drawn_at_random_from_the_bank(api, tree):
    doc = api.publish()
    bank = [{"kind": "single", "text": f"Câu {i}", "options": [{"text": "Đúng", "correct": True}, {"text": "Sai"}]}
            for i in range(1, 9)]
    quiz = make_quiz(api, doc, questions=bank, draw_count=3)
    drawn = []
    for card in ("M1", "M2", "M3", "M4", "M5", "M6"):
        texts = [q["text"] for q in started(api, card, quiz["id"])["questions"]]
        assert len(texts) == len(set(texts)) == 3
        drawn.append(frozenset(texts))
    assert len(set(drawn)) > 1
    assert_problem(api.client.patch(f"{API}/admin/quizzes/{quiz['id']}", json={"draw_count": 9},
                                    headers=api.auth("BT")), 422, "validation_error")


# --- attempts: resuming, retries, idempotency, time ---------------------------------------------------

def test_retries_up_to_the_limit_and_an_open_attempt_is_handed_back(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc, max_attempts=2)
    first = start(api, "M1", quiz["id"])
    again = start(api, "M1", quiz["id"])                   # a retried download: the same attempt
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["token"] == first.json["token"]
    assert again.json["questions"] == first.json["questions"]
    assert submit(api, "M1", first.json, answers_for(first.json, wrong)).json["passed"] is False
    second = started(api, "M1", quiz["id"])
    assert second["number"] == 2
    assert submit(api, "M1", second, answers_for(second, right)).json["passed"] is True
    body = assert_problem(start(api, "M1", quiz["id"]), 409, "no_attempts_left")
    assert body["max_attempts"] == 2
    mine = api.client.get(f"{API}/me/quiz-attempts", query_string={"quiz": quiz["id"]}, headers=api.auth("M1")).json
    assert [a["number"] for a in mine["items"]] == [2, 1] and mine["next_cursor"] is None
    my = api.client.get(f"{API}/quizzes/{quiz['id']}", headers=api.auth("M1")).json["my"]
    assert my == {"attempts": 2, "attempts_left": 0, "best_score": 100.0, "passed": True, "open_attempt_id": None}
    result = db.session.get(QuizResult, (quiz["id"], api.id("M1")))
    assert (result.attempts, result.best_score, result.passed) == (2, 10000, True)


def test_submission_is_idempotent_and_needs_the_token(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc)
    attempt = started(api, "M1", quiz["id"])
    assert_problem(submit(api, "M1", {**attempt, "token": "0" * 64}, []), 403, "attempt_token_mismatch")
    first = submit(api, "M1", attempt, answers_for(attempt, right))
    assert first.status_code == 200
    second = submit(api, "M1", attempt, answers_for(attempt, wrong))   # a replay with other answers
    assert second.status_code == 200 and second.json == first.json
    assert db.session.get(QuizResult, (quiz["id"], api.id("M1"))).attempts == 1
    stat = db.session.get(QuizUnitStat, (quiz["id"], tree["b1"].id))
    assert (stat.took, stat.passed, stat.score_sum) == (1, 1, 10000)
    assert_problem(submit(api, "M2", attempt, []), 404, "not_found")    # someone else's attempt


def test_time_limit_with_a_margin(api, tree, app):
    doc = api.publish()
    quiz = make_quiz(api, doc, time_limit_seconds=600)
    margin = app.config.get("QUIZ_SUBMIT_MARGIN_SECONDS", 120)
    attempt = started(api, "M1", quiz["id"])
    assert attempt["due_at"] and attempt["submit_by"]
    move_attempt_back(attempt["id"], 600 + margin - 30)        # inside the margin: accepted
    assert submit(api, "M1", attempt, answers_for(attempt, right)).json["status"] == "submitted"

    late = started(api, "M2", quiz["id"])
    move_attempt_back(late["id"], 600 + margin + 30)           # past the limit and the margin: refused
    body = assert_problem(submit(api, "M2", late, answers_for(late, right)), 409, "attempt_late")
    assert body["due_at"]
    row = db.session.get(QuizAttempt, late["id"])
    assert row.status == "late" and row.score is None and row.answers   # kept as evidence, not graded
    assert_problem(submit(api, "M2", late, []), 409, "attempt_late")
    assert db.session.get(QuizResult, (quiz["id"], api.id("M2"))).attempts == 0
    # A lapsed attempt is not handed back: the next start is a new attempt.
    assert started(api, "M2", quiz["id"])["number"] == 2


def test_contest_window_and_offline_submission_after_it(api, tree):
    doc = api.publish()
    now = datetime.now(UTC)
    quiz = make_quiz(api, doc, time_limit_seconds=3600,
                     contest={"org_unit": tree["ba_dinh"].id, "opens_at": (now + timedelta(hours=1)).isoformat(),
                              "closes_at": (now + timedelta(hours=2)).isoformat()})
    assert_problem(start(api, "M1", quiz["id"]), 409, "quiz_not_open")
    assert_problem(start(api, "M5", quiz["id"]), 404, "not_found")       # Đống Đa: outside the contest
    assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}", headers=api.auth("M5")), 404, "not_found")
    listed = api.client.get(f"{API}/documents/{doc}/quizzes", headers=api.auth("M5")).json["items"]
    assert listed == []
    row = db.session.get(Quiz, quiz["id"])
    row.opens_at, row.closes_at = now - timedelta(minutes=30), now + timedelta(minutes=30)
    db.session.commit()
    attempt = started(api, "M1", quiz["id"])            # inside the window; the phone goes offline
    row = db.session.get(Quiz, quiz["id"])
    row.opens_at, row.closes_at = now - timedelta(hours=2), now - timedelta(minutes=1)   # the window closed
    db.session.commit()
    move_attempt_back(attempt["id"], 20 * 60)
    assert_problem(start(api, "M2", quiz["id"]), 409, "quiz_closed")
    offline_at = datetime.now(UTC) - timedelta(minutes=5)
    result = submit(api, "M1", attempt, answers_for(attempt, right), submitted_at=offline_at.isoformat())
    assert result.status_code == 200 and result.json["passed"] is True
    assert 14 * 60 <= result.json["duration_seconds"] <= 15 * 60 + 5     # to the phone's time, not arrival


# --- the acknowledgement gate and the reading time ----------------------------------------------------

def test_acknowledgement_needs_a_pass_of_the_current_version(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc, required_for_ack=True)
    rules = api.client.get(f"{API}/documents/{doc}/quizzes", headers=api.auth("M1")).json["items"]
    assert [q["required_for_ack"] for q in rules] == [True]
    body = assert_problem(api.ack("M1", doc, 1), 409, "quiz_required")
    assert body["quiz_id"] == quiz["id"]
    [item] = api.sync("M1", [{"document_id": doc, "version": 1}]).json["results"]
    assert item == {"document_id": doc, "status": "quiz_required", "quiz_id": quiz["id"]}
    take(api, "M1", quiz["id"], pick=wrong)                            # a failed attempt unlocks nothing
    assert_problem(api.ack("M1", doc, 1), 409, "quiz_required")
    take(api, "M1", quiz["id"])
    assert api.ack("M1", doc, 1).status_code == 200
    assert api.ack("M1", doc, 1).status_code == 200                    # idempotent
    # Briefings and exemptions are not gated.
    assert api.brief("S1", doc, [api.id("M2")]).json["results"][0]["status"] == "ok"
    assert api.exempt("S2", doc, [api.id("M3")]).json["results"][0]["status"] == "ok"
    # A correction keeps the pass; a material change needs a new pass on the new version.
    api.patch(doc, reack=False, title="Chỉ thị (đính chính)")
    take(api, "M4", quiz["id"])                                        # passed on version 2
    assert api.ack("M4", doc, 2).status_code == 200
    api.patch(doc, reack=True)                                         # version 3 to acknowledge
    assert_problem(api.ack("M1", doc, 3), 409, "quiz_required")
    assert_problem(api.ack("M4", doc, 3), 409, "quiz_required")
    take(api, "M4", quiz["id"])
    assert api.ack("M4", doc, 3).status_code == 200
    assert api.my("M4", doc)["state"] == "acknowledged"
    assert api.my("M1", doc)["state"] == "opened"
    assert_counters_exact()


def test_reading_time_with_clamped_client_times(api, tree):
    doc = api.publish()
    response = api.client.put(f"{ADMIN}/{doc}/ack-rules", json={"min_read_seconds": 60}, headers=api.auth("BT"))
    assert response.status_code == 200 and response.json["min_read_seconds"] == 60
    listed = api.client.get(f"{API}/documents/{doc}/quizzes", headers=api.auth("M1")).json
    assert listed["ack_rules"] == {"document_id": doc, "min_read_seconds": 60, "quiz_id": None}
    body = assert_problem(api.ack("M1", doc, 1), 409, "read_too_fast")   # never opened
    assert body["min_read_seconds"] == 60
    assert api.open("M1", doc).status_code == 204
    assert_problem(api.ack("M1", doc, 1), 409, "read_too_fast")          # opened a moment ago
    en = api.client.put(f"{API}/documents/{doc}/acknowledgement", json={"version": 1},
                        headers={**api.auth("M1"), "Accept-Language": "en"})
    assert assert_problem(en, 409, "read_too_fast")["title"] == "Read too fast"
    # Offline: the phone's open time is clamped to the publication, which is only seconds ago.
    now = datetime.now(UTC)
    [item] = api.sync("M2", [{"document_id": doc, "version": 1, "opened_at": (now - timedelta(days=1)).isoformat(),
                              "acknowledged_at": now.isoformat()}]).json["results"]
    assert item["status"] == "read_too_fast"
    backdate(doc, days=1)
    [item] = api.sync("M3", [{"document_id": doc, "version": 1, "opened_at": (now - timedelta(minutes=5)).isoformat(),
                              "acknowledged_at": (now - timedelta(minutes=3)).isoformat()}]).json["results"]
    assert item["status"] == "ok"
    [item] = api.sync("M4", [{"document_id": doc, "version": 1, "opened_at": (now - timedelta(seconds=30)).isoformat(),
                              "acknowledged_at": now.isoformat()}]).json["results"]
    assert item["status"] == "read_too_fast"
    assert api.my("M4", doc)["state"] == "opened"                        # the open itself counted
    # The reading time runs to the phone's acknowledgement time, not to when the sync arrives: opened
    # 5 minutes ago and acknowledged 30 s later is too fast, though the open is 5 minutes old now.
    [item] = api.sync("M5", [{"document_id": doc, "version": 1, "opened_at": (now - timedelta(minutes=5)).isoformat(),
                              "acknowledged_at": (now - timedelta(minutes=4, seconds=30)).isoformat()}]).json["results"]
    assert item["status"] == "read_too_fast"
    assert api.my("M5", doc)["state"] == "opened"
    assert_counters_exact()


def _statements(app, run) -> list[str]:
    return executed_statements(run)


def test_no_rules_no_extra_statement_on_the_acknowledgement(api, tree, app):
    """The hot path: acknowledging a document without rules sends no statement for the rules: the
    document under its share lock, the receipt upsert (which returns the member's unit), its UPDATE and
    one counter (issue 16 folded the member's unit into the upsert: four, where there were five); the
    gate's reads (receipt, quiz result) happen only for a document with rules."""
    from content import acknowledgements
    from handbook.errors import ProblemError

    plain, ruled = api.publish(), api.publish()
    make_quiz(api, ruled, required_for_ack=True)
    m1 = db.session.get(Member, api.id("M1"))
    _ = (m1.org_unit.path, [g.role for g in m1.roles])           # the principal, as a request has it

    without = _statements(app, lambda: acknowledgements.acknowledge(m1, plain, 1))
    assert len(without) == 4, [s[:70] for s in without]
    assert not any("quiz_results" in s or "FROM receipts" in s for s in without)

    def refused():
        with pytest.raises(ProblemError):
            acknowledgements.acknowledge(m1, ruled, 1)

    gated = _statements(app, refused)
    db.session.rollback()
    assert sum("quiz_results" in s for s in gated) == 1 and sum("FROM receipts" in s for s in gated) == 1


# --- results up the tree, against an independent recount ----------------------------------------------

def expected_unit_stats() -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """From the attempts alone, in Python: per (quiz, member's current unit) took, passed, the sum of best
    scores and of the durations of those best attempts (best: highest score, then quickest)."""
    db.session.expire_all()
    best: dict[tuple[int, int], tuple[int, int]] = {}
    passed: set[tuple[int, int]] = set()
    for a in db.session.scalars(select(QuizAttempt).where(QuizAttempt.status == "submitted")):
        key = (a.quiz_id, a.member_id)
        if key not in best or (a.score, -a.duration_seconds) > (best[key][0], -best[key][1]):
            best[key] = (a.score, a.duration_seconds)
        if a.passed:
            passed.add(key)
    members = {m.id: m for m in db.session.scalars(select(Member))}
    out: dict = defaultdict(lambda: [0, 0, 0, 0])
    for (quiz_id, member_id), (score, duration) in best.items():
        if not members[member_id].active:
            continue
        row = out[(quiz_id, members[member_id].org_unit_id)]
        row[0] += 1
        row[1] += (quiz_id, member_id) in passed
        row[2] += score
        row[3] += duration
    return {k: tuple(v) for k, v in out.items()}


def stored_unit_stats():
    db.session.expire_all()
    return {(s.quiz_id, s.org_unit_id): (s.took, s.passed, s.score_sum, s.duration_sum)
            for s in db.session.scalars(select(QuizUnitStat)) if s.took}


def test_results_roll_up_the_tree_and_match_a_recount(api, tree, app):
    doc = api.publish()
    quiz = make_quiz(api, doc)
    plan = {"M1": [wrong, right], "M2": [wrong], "S1": [right], "M3": [right, wrong], "M5": [wrong, wrong],
            "M6": [right], "CD": [wrong]}
    for card, picks in plan.items():
        for pick in picks:
            take(api, card, quiz["id"], pick=pick)
    assert stored_unit_stats() == expected_unit_stats()
    city = api.client.get(f"{API}/quizzes/{quiz['id']}/results", headers=api.auth("BT")).json
    assert (city["members"], city["took"], city["passed"]) == (12, 7, 4)
    assert city["average_score"] == round(4 * 100 / 7, 2)
    children = {c["org_unit"]["code"]: (c["members"], c["took"], c["passed"]) for c in city["children"]}
    assert children == {"HN.BD": (8, 4, 3), "HN.DD": (4, 3, 1)}
    b1 = api.client.get(f"{API}/quizzes/{quiz['id']}/results", query_string={"org_unit": tree["b1"].id},
                        headers=api.auth("S1")).json
    assert (b1["took"], b1["passed"], b1["average_score"]) == (3, 2, round(200 / 3, 2))
    hardest = city["hardest_questions"]
    assert len(hardest) == 3 and hardest[0]["correct_rate"] <= hardest[-1]["correct_rate"]
    total_stats = db.session.scalars(select(QuizQuestionStat)).all()
    assert sum(s.answered for s in total_stats) == 3 * sum(len(p) for p in plan.values())
    # A transfer (membership change) moves the member's result to their new unit.
    m1 = db.session.get(Member, api.id("M1"))
    m1.org_unit_id = tree["cbcs"].id
    membership_changed.send(None, unit_ids={tree["b1"].id, tree["cbcs"].id})
    db.session.commit()
    assert stored_unit_stats() == expected_unit_stats()
    assert quizzes.recount() > 0
    db.session.commit()
    assert stored_unit_stats() == expected_unit_stats()
    # The repair command: counters spoilt by hand come back equal to the recount.
    db.session.get(QuizUnitStat, (quiz["id"], tree["b2"].id)).took += 5
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["handbook", "recount-quizzes", "--quiz", str(quiz["id"])])
    assert result.exit_code == 0 and "quiz unit rows written" in result.output
    assert stored_unit_stats() == expected_unit_stats()


def test_member_results_and_exports(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc)
    take(api, "M1", quiz["id"])
    take(api, "M2", quiz["id"], pick=wrong)
    rows = api.client.get(f"{API}/quizzes/{quiz['id']}/members", query_string={"limit": 2},
                          headers=api.auth("S1")).json
    assert len(rows["items"]) == 2 and rows["next_cursor"]
    rest = api.client.get(f"{API}/quizzes/{quiz['id']}/members", query_string={"cursor": rows["next_cursor"]},
                          headers=api.auth("S1")).json
    everyone = {r["member"]["card_number"]: r for r in rows["items"] + rest["items"]}
    assert set(everyone) == {"M1", "M2", "S1", "CB"}                   # the secretary's branch only
    assert (everyone["M1"]["best_score"], everyone["M1"]["passed"]) == (100.0, True)
    assert (everyone["M2"]["attempts"], everyone["M2"]["passed"]) == (1, False)
    assert everyone["S1"]["attempts"] == 0 and everyone["S1"]["best_score"] is None
    exported = api.client.get(f"{API}/quizzes/{quiz['id']}/members", query_string={"format": "csv"},
                              headers=api.auth("S1"))
    assert exported.status_code == 200 and exported.data.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert table[0][0] == "Số thẻ đảng viên" and len(table) == 5
    assert {r[0]: r[7] for r in table[1:]}["M1"] == "Đạt"
    xlsx = api.client.get(f"{API}/quizzes/{quiz['id']}/members", query_string={"format": "xlsx"},
                          headers=api.auth("S1"))
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert len(api.audit("export.quiz_results")) == 2


def test_contest_ranking_ties_broken_by_time(api, tree):
    doc = api.publish()
    quiz = make_quiz(api, doc, contest={"org_unit": tree["city"].id})
    for card, pick, seconds in (("M1", right, 300), ("M3", right, 120), ("M5", wrong, 60), ("M6", right, 500)):
        attempt = started(api, card, quiz["id"])
        move_attempt_back(attempt["id"], seconds)
        assert submit(api, card, attempt, answers_for(attempt, pick)).status_code == 200
    ranked = api.client.get(f"{API}/quizzes/{quiz['id']}/ranking", headers=api.auth("BT")).json
    assert [(i["rank"], i["member"]["card_number"]) for i in ranked["items"]] == \
        [(1, "M3"), (2, "M1"), (3, "M6"), (4, "M5")]
    first = api.client.get(f"{API}/quizzes/{quiz['id']}/ranking", query_string={"limit": 2}, headers=api.auth("BT")).json
    second = api.client.get(f"{API}/quizzes/{quiz['id']}/ranking", query_string={"cursor": first["next_cursor"]},
                            headers=api.auth("BT")).json
    assert [i["rank"] for i in first["items"] + second["items"]] == [1, 2, 3, 4]
    assert [i["member"]["card_number"] for i in second["items"]] == ["M6", "M5"]
    units = api.client.get(f"{API}/quizzes/{quiz['id']}/ranking", query_string={"by": "units"},
                           headers=api.auth("BT")).json
    assert [i["org_unit"]["code"] for i in units["items"]] == ["HN.BD", "HN.DD"]
    # The organising committee only: a branch secretary is refused; a plain quiz has no ranking.
    assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}/ranking", headers=api.auth("S1")), 403, "forbidden")
    plain = make_quiz(api, doc)
    assert_problem(api.client.get(f"{API}/quizzes/{plain['id']}/ranking", headers=api.auth("BT")), 404, "not_found")


# --- scoping and authoring rules -------------------------------------------------------------------------

def test_scoping_is_404_for_documents_and_members_403_for_units(api, tree):
    doc = api.publish("b1")                                   # Chi bộ 1 only
    quiz = make_quiz(api, doc)
    attempt = started(api, "M1", quiz["id"])
    for card in ("M3", "M5"):
        assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}", headers=api.auth(card)), 404, "not_found")
        assert_problem(start(api, card, quiz["id"]), 404, "not_found")
        assert_problem(api.client.get(f"{API}/quiz-attempts/{attempt['id']}", headers=api.auth(card)), 404,
                       "not_found")
    assert api.client.get(f"{API}/quiz-attempts/{attempt['id']}", headers=api.auth("S1")).status_code == 200
    assert_problem(api.client.get(f"{API}/quiz-attempts/{attempt['id']}", headers=api.auth("S2")), 404, "not_found")
    assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}/results", headers=api.auth("M1")), 403, "forbidden")
    assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}/results", query_string={"org_unit": tree["b1"].id},
                                  headers=api.auth("S2")), 403, "forbidden")
    assert_problem(api.client.get(f"{API}/quizzes/{quiz['id']}/results", headers=api.auth("SD")), 404, "not_found")
    assert_problem(api.client.get(f"{API}/admin/quizzes/{quiz['id']}", headers=api.auth("S1")), 404, "not_found")
    assert "correct" in json.dumps(api.client.get(f"{API}/admin/quizzes/{quiz['id']}", headers=api.auth("BT")).json)


@pytest.mark.parametrize(("change", "field"), [
    ({"questions": [{"kind": "single", "text": "Hai đáp án đúng?",
                     "options": [{"text": "A", "correct": True}, {"text": "B", "correct": True}]}]},
     "questions.0.options"),
    ({"questions": [{"kind": "multiple", "text": "Không đáp án đúng?", "options": [{"text": "A"}, {"text": "B"}]}]},
     "questions.0.options"),
    ({"questions": [{"kind": "single", "text": "Trùng?", "options": [{"text": "A", "correct": True}, {"text": "A"}]}]},
     "questions.0.options"),
    ({"draw_count": 4}, "draw_count"),
    ({"required_for_ack": True, "contest": {"org_unit": 1}}, "required_for_ack"),
])
def test_bad_quizzes_are_422(api, tree, change, field):
    doc = api.publish()
    if "contest" in change:
        change = {**change, "contest": {"org_unit": tree["city"].id}}
    body = {"title": "Kiểm tra", "questions": QUESTIONS, **change}
    response = api.client.post(f"{ADMIN}/{doc}/quizzes", json=body, headers=api.auth("BT"))
    assert field in assert_problem(response, 422, "validation_error")["errors"]
    assert db.session.scalar(select(Quiz.id)) is None


def test_a_notice_cannot_gate_its_acknowledgement_and_text_is_nfc(api, tree):
    notice = api.publish(requires_ack=False, kind="notice")
    response = api.client.post(f"{ADMIN}/{notice}/quizzes", json={"title": "Kiểm tra", "questions": QUESTIONS,
                                                                  "required_for_ack": True}, headers=api.auth("BT"))
    assert "required_for_ack" in assert_problem(response, 422, "validation_error")["errors"]
    doc = api.publish()
    decomposed = "Chi\u0309 thi\u0323 24"            # NFD input
    quiz = make_quiz(api, doc, questions=[{"kind": "single", "text": decomposed,
                                           "options": [{"text": "Đúng", "correct": True}, {"text": "Sai"}]}])
    assert quiz["questions"][0]["text"] == "Chỉ thị 24"
    edited = api.client.patch(f"{API}/admin/quizzes/{quiz['id']}", json={"required_for_ack": True, "pass_mark": 100},
                              headers=api.auth("BT"))
    assert edited.status_code == 200 and edited.json["required_for_ack"] is True
    assert db.session.get(Document, doc).ack_quiz_id == quiz["id"]
    assert [e["target_id"] for e in api.audit("quiz.edit")] == [str(quiz["id"])]


# --- a study series: lessons and quizzes ----------------------------------------------------------------

def test_series_progress_through_lessons_and_quizzes(api, tree):
    bt = api.auth("BT")
    series = api.client.post(f"{API}/admin/series", json={"title": "Chuyên đề 2025"}, headers=bt).json["id"]
    lessons = []
    for n in (1, 2):
        created = api.client.post(ADMIN, headers=bt, json={
            "kind": "study", "title": f"Bài {n}", "series_id": series, "lesson_no": n, "requires_ack": n == 2,
            "audience": {"org_units": [tree["city"].id]}}).json["id"]
        assert api.client.post(f"{ADMIN}/{created}/publish", json={}, headers=bt).status_code == 200
        lessons.append(created)
    quiz = make_quiz(api, lessons[1])
    api.open("M1", lessons[0])
    take(api, "M1", quiz["id"])
    assert api.ack("M1", lessons[1], 1).status_code == 200
    api.open("M2", lessons[1])
    take(api, "M2", quiz["id"], pick=wrong)
    mine = api.client.get(f"{API}/series/{series}/study", headers=api.auth("M1")).json
    assert [(lesson["lesson_no"], lesson["state"]) for lesson in mine["lessons"]] == [(1, "done"), (2, "done")]
    assert mine["lessons"][1]["quizzes"][0] | {"title": None} == {"id": quiz["id"], "title": None, "pass_mark": 60,
                                                                  "best_score": 100.0, "passed": True}
    assert mine["progress"] == {"lessons": 2, "completed": 2, "quizzes": 1, "quizzes_passed": 1}
    rows = api.client.get(f"{API}/series/{series}/members", headers=api.auth("S1")).json
    assert [lesson["id"] for lesson in rows["lessons"]] == lessons
    by_card = {r["member"]["card_number"]: r for r in rows["items"]}
    assert set(by_card) == {"M1", "M2", "S1", "CB"}
    assert (by_card["M1"]["lessons_completed"], by_card["M1"]["quizzes_passed"]) == (2, 1)
    assert [lesson["state"] for lesson in by_card["M2"]["lessons"]] == ["new", "opened"]
    assert by_card["M2"]["quizzes"] == [{"quiz_id": quiz["id"], "attempts": 1, "best_score": 0.0, "passed": False}]
    page1 = api.client.get(f"{API}/series/{series}/members", query_string={"limit": 3}, headers=api.auth("BT")).json
    page2 = api.client.get(f"{API}/series/{series}/members", query_string={"cursor": page1["next_cursor"]},
                           headers=api.auth("BT")).json
    assert len(page1["items"]) + len(page2["items"]) == 12 and page2["next_cursor"] is None
    assert_problem(api.client.get(f"{API}/series/{series}/members", headers=api.auth("M1")), 403, "forbidden")


# --- concurrency: one member's parallel starts and submissions ------------------------------------------

def test_parallel_starts_and_submissions_of_one_member(api, tree, app):
    from tests.factories import in_parallel

    doc = api.publish()
    quiz = make_quiz(api, doc, max_attempts=1)
    headers = api.auth("M1")
    statuses = in_parallel(app, 4, lambda c: c.post(f"{API}/quizzes/{quiz['id']}/attempts", json={}, headers=headers))
    assert sorted(statuses) == [200, 200, 200, 201]
    assert db.session.scalar(select(func.count()).select_from(QuizAttempt)) == 1
    attempt = started(api, "M1", quiz["id"])
    body = {"token": attempt["token"], "answers": answers_for(attempt, right)}
    statuses = in_parallel(app, 4, lambda c: c.post(f"{API}/quiz-attempts/{attempt['id']}/submission", json=body,
                                                    headers=headers))
    assert statuses == [200] * 4
    db.session.expire_all()
    assert db.session.get(QuizResult, (quiz["id"], api.id("M1"))).attempts == 1
    assert stored_unit_stats() == expected_unit_stats()
    assert sum(s.answered for s in db.session.scalars(select(QuizQuestionStat))) == 3
