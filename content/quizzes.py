"""Quizzes: authoring (publishers), attempts (members, offline-friendly), grading, results up the tree,
exports and contest rankings. Models in content/quiz_models.py; the acknowledgement gate in
content/ackgate.py.

Attempts. `start_attempt` draws the questions (all, or `draw_count` at random from the bank), shuffles
their order and each question's options, and gives every option a random per-attempt key, so neither the
order nor the keys say which option the author wrote first; the key (which options are right) stays on
the server. The phone gets the questions and an attempt token (HMAC of the attempt id and a nonce),
answers offline and submits later with the token. While a member has an attempt that is still open
(not submitted, not past its time), starting again hands back that attempt: a retried download does not
spend an attempt. `max_attempts` counts started attempts.

Time. A timed attempt is due `time_limit_seconds` after the server's start; a submission reaching the
server later than `due + QUIZ_SUBMIT_MARGIN_SECONDS` (default 120 s) is refused (409 attempt_late); its
answers are kept as evidence (status `late`), ungraded. An untimed attempt may be submitted any time.
A contest's window bounds *starting*: an attempt started inside the window may be submitted after it
closes (offline phones), within its own time limit. The duration (ranking ties) is from the server's
start to the phone's `submitted_at` clamped to [start, arrival], or to the arrival.

Grading (each question's credit in [0, 1], the score is the points-weighted mean, in percent):
- single choice: 1 when exactly the right option is chosen, else 0;
- multiple choice: (right options chosen − wrong options chosen) / right options, at least 0;
  so every option ticked scores 0, and half the right ones with no wrong one scores 0.5;
- a question left unanswered: 0.
The attempt passes when score ≥ pass_mark, compared exactly (fractions), stored in hundredths of a
percent. Submitting is idempotent: the same attempt submitted again answers the stored result.

Results. `quiz_results` holds each member's best attempt (highest score, then quickest) and passes;
`quiz_unit_stats` per (quiz, member-holding unit) the members who took / passed and the sums of best
scores and durations; `quiz_question_stats` per (quiz, question, unit) how often each question was in
a submitted attempt and how often fully right. All three move in the submitting transaction; reads sum
the rows of a subtree (O(units)). Membership changes recount the affected units' `quiz_unit_stats`
from `quiz_results` (members are counted in their current unit); question statistics stay with the
unit where the attempt was made (a fact about the attempt).

Lock order (PostgreSQL), an extension of content/progress.py's: authoring first locks the document row
(FOR NO KEY UPDATE, as every document writer), then the quiz; starts and submissions take the quiz row
FOR SHARE (recounts take it FOR NO KEY UPDATE, so neither interleaves), then the member's
`quiz_results` row (the upsert's row lock: one member's starts and submissions are serialised), then
unit statistics by unit id, then question statistics by question id. Attempts never lock a document or
a receipt; the acknowledgement gate only reads.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from fractions import Fraction

from flask import current_app
from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.orm import lazyload

from content import followup
from content.access import managed_document, readable_document, reaches
from content.models import Document, ProgressCounter, Status
from content.progress import child_column, scope_condition, audience_members, levels
from content.quiz_models import (MULTIPLE, SINGLE, Quiz, QuizAttempt, QuizQuestion, QuizQuestionStat,
                                 QuizResult, QuizUnitStat)
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db, upsert
from handbook.members import Member, Role, membership_changed
from handbook.orgunits import OrgUnit, in_subtree
from handbook.pagination import decode_cursor, page
from handbook.permissions import PUBLISH_ROLES, forbidden, has_role_over, not_found, scope_roots
from handbook.text import nfc
from handbook.timeutil import as_utc, utcnow

FULL = 10000                      # a score of 100 %, in hundredths of a percent
RANKING_ROLES = frozenset({Role.COMMITTEE.value, Role.PUBLISHER.value, Role.ADMIN.value})
MAX_OPTIONS = 10


def _pg() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _margin() -> timedelta:
    return timedelta(seconds=current_app.config["QUIZ_SUBMIT_MARGIN_SECONDS"])


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError("validation_error", 422, errors={field: [message]})


# --- authoring (publishers managing the document) --------------------------------------------------

def _clean_questions(raw: list[dict]) -> list[dict]:
    out = []
    for index, question in enumerate(raw):
        where = f"questions.{index}"
        text = nfc(question["text"])
        if not text:
            raise _invalid(f"{where}.text", "required")
        options = [{"text": nfc(o["text"]), "correct": bool(o.get("correct", False))} for o in question["options"]]
        if any(not o["text"] for o in options):
            raise _invalid(f"{where}.options", "required")
        if len({o["text"] for o in options}) != len(options):
            raise _invalid(f"{where}.options", "duplicate_option")
        right = sum(o["correct"] for o in options)
        if question["kind"] == SINGLE and right != 1:
            raise _invalid(f"{where}.options", "single_needs_one_correct")
        if question["kind"] == MULTIPLE and right < 1:
            raise _invalid(f"{where}.options", "needs_a_correct_option")
        out.append({"kind": question["kind"], "text": text, "options": options,
                    "points": question.get("points") or 1})
    return out


def _apply_settings(actor: Member, quiz: Quiz, doc: Document, data: dict) -> None:
    for field in ("pass_mark", "time_limit_seconds", "max_attempts", "draw_count", "reveal_answers"):
        if field in data:
            setattr(quiz, field, data[field])
    if "title" in data:
        quiz.title = nfc(data["title"]) or quiz.title
    if "contest" in data:
        contest = data["contest"]
        if contest is None:
            quiz.contest, quiz.contest_unit_id, quiz.opens_at, quiz.closes_at = False, None, None, None
        else:
            unit = db.session.get(OrgUnit, contest["org_unit"])
            if unit is None or not has_role_over(actor, unit, PUBLISH_ROLES) or not reaches(doc, unit):
                raise _invalid("contest.org_unit", "unknown_unit")
            opens, closes = contest.get("opens_at"), contest.get("closes_at")
            if opens is not None and closes is not None and closes <= opens:
                raise _invalid("contest.closes_at", "closes_before_opening")
            quiz.contest, quiz.contest_unit_id, quiz.opens_at, quiz.closes_at = True, unit.id, opens, closes
    if "required_for_ack" in data:
        if data["required_for_ack"] and not doc.requires_ack:
            raise _invalid("required_for_ack", "ack_not_required")
        quiz.required_for_ack = bool(data["required_for_ack"])
    if quiz.required_for_ack and quiz.contest:
        # A contest is open to a subtree and a window only: it cannot be what every reader must pass.
        raise _invalid("required_for_ack", "contest_cannot_gate")


def _sync_gate(quiz: Quiz, doc: Document) -> None:
    """documents.ack_quiz_id names the one quiz that gates the acknowledgement (the last one marked)."""
    if quiz.required_for_ack:
        if doc.ack_quiz_id not in (None, quiz.id):
            other = db.session.get(Quiz, doc.ack_quiz_id)
            if other is not None:
                other.required_for_ack = False
        doc.ack_quiz_id = quiz.id
    elif doc.ack_quiz_id == quiz.id:
        doc.ack_quiz_id = None


def _active_questions(quiz_id: int) -> list[QuizQuestion]:
    return list(db.session.scalars(select(QuizQuestion).where(QuizQuestion.quiz_id == quiz_id,
                                                              QuizQuestion.retired.is_(False))
                                   .order_by(QuizQuestion.position, QuizQuestion.id)))


def _check_draw(quiz: Quiz, count: int) -> None:
    if count == 0:
        raise _invalid("questions", "required")
    if quiz.draw_count is not None and quiz.draw_count > count:
        raise _invalid("draw_count", "more_than_questions")


def _add_questions(quiz: Quiz, questions: list[dict]) -> None:
    for position, q in enumerate(questions, 1):
        db.session.add(QuizQuestion(quiz_id=quiz.id, position=position, **q))


def _writable(doc: Document) -> None:
    if doc.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 409)


def create_quiz(actor: Member, document_id: int, data: dict) -> Quiz:
    """POST /admin/documents/{id}/quizzes. The document row is locked first (the global order)."""
    doc = managed_document(actor, document_id, for_update=True)
    _writable(doc)
    questions = _clean_questions(data["questions"])
    quiz = Quiz(document_id=doc.id, title=nfc(data["title"]), created_by=actor.id)
    _apply_settings(actor, quiz, doc, {k: v for k, v in data.items() if k not in ("title", "questions")})
    _check_draw(quiz, len(questions))
    db.session.add(quiz)
    db.session.flush()
    _add_questions(quiz, questions)
    _sync_gate(quiz, doc)
    audit.record("quiz.create", actor_id=actor.id, target_type="quiz", target_id=quiz.id, document=doc.id,
                 questions=len(questions), required_for_ack=quiz.required_for_ack, contest=quiz.contest)
    db.session.commit()
    return quiz


def managed_quiz(actor: Member, quiz_id: int, *, for_update: bool = False) -> tuple[Quiz, Document]:
    quiz = db.session.get(Quiz, quiz_id)
    if quiz is None:
        raise not_found()
    doc = managed_document(actor, quiz.document_id, for_update=for_update)
    if for_update:
        quiz = _lock_quiz(quiz.id, exclusive=True)
    return quiz, doc


def update_quiz(actor: Member, quiz_id: int, data: dict) -> Quiz:
    """PATCH /admin/quizzes/{id}: settings, and optionally a new bank (the old questions are retired,
    never deleted: attempts already started keep their own copy and are graded on it)."""
    quiz, doc = managed_quiz(actor, quiz_id, for_update=True)
    _writable(doc)
    _apply_settings(actor, quiz, doc, {k: v for k, v in data.items() if k != "questions"})
    if "questions" in data:
        questions = _clean_questions(data["questions"])
        for old in _active_questions(quiz.id):
            old.retired = True
        _add_questions(quiz, questions)
        count = len(questions)
    else:
        count = len(_active_questions(quiz.id))
    _check_draw(quiz, count)
    _sync_gate(quiz, doc)
    quiz.updated_at = utcnow()
    audit.record("quiz.edit", actor_id=actor.id, target_type="quiz", target_id=quiz.id, document=doc.id,
                 fields=sorted(data), questions=count)
    db.session.commit()
    return quiz


def set_ack_rules(actor: Member, document_id: int, min_read_seconds: int | None) -> dict:
    """PUT /admin/documents/{id}/ack-rules: the minimum reading time (None or 0: none)."""
    doc = managed_document(actor, document_id, for_update=True)
    _writable(doc)
    if not doc.requires_ack:
        raise ProblemError("ack_not_required", 409)
    doc.min_read_seconds = min_read_seconds or None
    audit.record("document.ack_rules", actor_id=actor.id, target_type="document", target_id=doc.id,
                 min_read_seconds=doc.min_read_seconds)
    answer = ack_rules(doc)
    db.session.commit()
    return answer


def managed_quizzes(actor: Member, document_id: int) -> dict:
    """The quizzes of a document its managers see (the console's list; the API reads them one by one):
    each quiz's settings and bank size, and the document's acknowledgement rules."""
    doc = managed_document(actor, document_id)
    quizzes = list(db.session.scalars(select(Quiz).where(Quiz.document_id == doc.id).order_by(Quiz.id)))
    sizes = dict(db.session.execute(select(QuizQuestion.quiz_id, func.count()).where(
        QuizQuestion.quiz_id.in_([q.id for q in quizzes]), QuizQuestion.retired.is_(False))
        .group_by(QuizQuestion.quiz_id)).all()) if quizzes else {}
    return {"document": doc, "ack_rules": ack_rules(doc),
            "items": [{**_settings(q), "bank_size": sizes.get(q.id, 0)} for q in quizzes]}


def ack_rules(doc: Document) -> dict:
    return {"document_id": doc.id, "min_read_seconds": doc.min_read_seconds, "quiz_id": doc.ack_quiz_id}


def admin_view(quiz: Quiz) -> dict:
    questions = _active_questions(quiz.id)
    return {**_settings(quiz), "created_at": quiz.created_at, "updated_at": quiz.updated_at,
            "questions": [{"id": q.id, "kind": q.kind, "text": q.text, "points": q.points,
                           "options": [{"text": o["text"], "correct": o["correct"]} for o in q.options]}
                          for q in questions],
            "bank_size": len(questions)}


def _settings(quiz: Quiz) -> dict:
    contest = None
    if quiz.contest:
        unit = db.session.get(OrgUnit, quiz.contest_unit_id)
        contest = {"org_unit": unit.brief(), "opens_at": quiz.opens_at, "closes_at": quiz.closes_at}
    return {"id": quiz.id, "document_id": quiz.document_id, "title": quiz.title, "pass_mark": quiz.pass_mark,
            "time_limit_seconds": quiz.time_limit_seconds, "max_attempts": quiz.max_attempts,
            "draw_count": quiz.draw_count, "required_for_ack": quiz.required_for_ack,
            "reveal_answers": quiz.reveal_answers, "contest": contest}


# --- reading and attempts (members) ----------------------------------------------------------------

def _lock_quiz(quiz_id: int, *, exclusive: bool = False) -> Quiz:
    stmt = select(Quiz).where(Quiz.id == quiz_id).options(lazyload("*")).execution_options(populate_existing=True)
    if _pg():
        stmt = stmt.with_for_update(read=not exclusive, key_share=exclusive, of=Quiz)
    return db.session.scalars(stmt).one()


def _in_contest(quiz: Quiz, member: Member) -> bool:
    if not quiz.contest:
        return True
    unit = db.session.get(OrgUnit, quiz.contest_unit_id)
    return unit is not None and member.org_unit.path.startswith(unit.path)


def readable_quiz(member: Member, quiz_id: int) -> tuple[Quiz, Document]:
    """The quiz when the member reads its document (and, for a contest, is in its subtree); else 404."""
    quiz = db.session.get(Quiz, quiz_id)
    if quiz is None:
        raise not_found()
    doc = readable_document(member, quiz.document_id)
    if not _in_contest(quiz, member):
        raise not_found()
    return quiz, doc


def _open_attempt(quiz: Quiz, member_id: int, now: datetime) -> QuizAttempt | None:
    attempts = db.session.scalars(select(QuizAttempt).where(
        QuizAttempt.quiz_id == quiz.id, QuizAttempt.member_id == member_id, QuizAttempt.status == "started")
        .order_by(QuizAttempt.id.desc()))
    for attempt in attempts:
        if attempt.due_at is None or as_utc(attempt.due_at) + _margin() >= now:
            return attempt
    return None


def _my(quiz: Quiz, member_id: int, now: datetime) -> dict:
    result = db.session.get(QuizResult, (quiz.id, member_id))
    started = db.session.scalar(select(func.count()).select_from(QuizAttempt).where(
        QuizAttempt.quiz_id == quiz.id, QuizAttempt.member_id == member_id))
    open_attempt = _open_attempt(quiz, member_id, now)
    return {"attempts": started,
            "attempts_left": None if quiz.max_attempts is None else max(0, quiz.max_attempts - started),
            "best_score": _percent(result.best_score) if result and result.best_score is not None else None,
            "passed": bool(result and result.passed),
            "open_attempt_id": open_attempt.id if open_attempt else None}


def reader_view(quiz: Quiz, member: Member) -> dict:
    settings = _settings(quiz)
    settings.pop("reveal_answers")
    count = len(_active_questions(quiz.id))
    return {**settings, "questions_per_attempt": min(quiz.draw_count or count, count),
            "my": _my(quiz, member.id, utcnow())}


def document_quizzes(member: Member, document_id: int, *, limit: int = 20, cursor: str | None = None
                     ) -> tuple[list[dict], str | None, dict]:
    """GET /documents/{id}/quizzes: the document's quizzes the member may take (contests: their subtree),
    and the document's acknowledgement rules (so the phone can show a reading timer)."""
    doc = readable_document(member, document_id)
    stmt = select(Quiz).where(Quiz.document_id == document_id)
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(Quiz.id > last_id)
    quizzes = [q for q in db.session.scalars(stmt.order_by(Quiz.id)) if _in_contest(q, member)]
    quizzes, next_cursor = page(quizzes[:limit + 1], limit, key=lambda q: (q.id,))
    return [reader_view(q, member) for q in quizzes], next_cursor, ack_rules(doc)


def _token(attempt: QuizAttempt) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"quiz-attempt:{attempt.id}:{attempt.token_nonce}".encode(), hashlib.sha256).hexdigest()


def _draw(quiz: Quiz) -> list[dict]:
    rng = secrets.SystemRandom()
    bank = _active_questions(quiz.id)
    drawn = rng.sample(bank, min(quiz.draw_count or len(bank), len(bank)))
    rng.shuffle(drawn)
    out = []
    for q in drawn:
        options = list(q.options)
        rng.shuffle(options)
        keys: set[str] = set()
        presented = []
        for option in options:
            key = secrets.token_hex(4)
            while key in keys:
                key = secrets.token_hex(4)
            keys.add(key)
            presented.append({"key": key, "text": option["text"], "correct": bool(option["correct"])})
        out.append({"question_id": q.id, "kind": q.kind, "text": q.text, "points": q.points,
                    "options": presented})
    return out


def _result_for_update(quiz_id: int, member_id: int) -> QuizResult:
    """The member's result row, created if missing and locked (one INSERT … ON CONFLICT … RETURNING)."""
    stmt = upsert(QuizResult).values(quiz_id=quiz_id, member_id=member_id, attempts=0, passed=False)
    stmt = stmt.on_conflict_do_update(index_elements=["quiz_id", "member_id"],
                                      set_={"quiz_id": stmt.excluded.quiz_id}).returning(QuizResult)
    return db.session.scalars(select(QuizResult).from_statement(stmt)
                              .execution_options(populate_existing=True)).one()


def start_attempt(member: Member, quiz_id: int, *, client_started_at: datetime | None = None,
                  platform: str | None = None, device: str | None = None) -> tuple[dict, bool]:
    """POST /quizzes/{id}/attempts → (the attempt with its questions and token, created?)."""
    quiz, doc = readable_quiz(member, quiz_id)
    now = utcnow()
    if quiz.opens_at is not None and now < as_utc(quiz.opens_at):
        raise ProblemError("quiz_not_open", 409, extra={"opens_at": as_utc(quiz.opens_at).isoformat()})
    if quiz.closes_at is not None and now >= as_utc(quiz.closes_at):
        raise ProblemError("quiz_closed", 409, extra={"closes_at": as_utc(quiz.closes_at).isoformat()})
    quiz = _lock_quiz(quiz.id)
    _result_for_update(quiz.id, member.id)       # serialises this member's starts and submissions
    current = _open_attempt(quiz, member.id, now)
    if current is not None:
        answer = attempt_view(current, token=True)
        db.session.commit()
        return answer, False
    started = db.session.scalar(select(func.count()).select_from(QuizAttempt).where(
        QuizAttempt.quiz_id == quiz.id, QuizAttempt.member_id == member.id))
    if quiz.max_attempts is not None and started >= quiz.max_attempts:
        raise ProblemError("no_attempts_left", 409, max_attempts=quiz.max_attempts,
                           extra={"max_attempts": quiz.max_attempts})
    questions = _draw(quiz)
    if not questions:
        raise ProblemError("quiz_has_no_questions", 409)
    attempt = QuizAttempt(quiz_id=quiz.id, member_id=member.id, org_unit_id=member.org_unit_id,
                          number=started + 1, document_version=doc.version, token_nonce=secrets.token_hex(16),
                          questions=questions, status="started", started_at=now,
                          due_at=now + timedelta(seconds=quiz.time_limit_seconds) if quiz.time_limit_seconds else None,
                          client_started_at=client_started_at, platform=platform, device=device)
    db.session.add(attempt)
    db.session.flush()
    audit.record("quiz.attempt_start", actor_id=member.id, target_type="quiz", target_id=quiz.id,
                 attempt=attempt.id, number=attempt.number, document_version=doc.version)
    answer = attempt_view(attempt, token=True)
    db.session.commit()
    return answer, True


def attempt_view(attempt: QuizAttempt, *, token: bool = False, reveal: bool | None = None) -> dict:
    """What the phone (or a follow-up viewer) sees. Before submission: never which option is right."""
    submitted = attempt.status == "submitted"
    if reveal is None:
        reveal = submitted and db.session.get(Quiz, attempt.quiz_id).reveal_answers
    answers = attempt.answers or {}
    scores = attempt.question_scores or {}
    questions = []
    for q in attempt.questions:
        item = {"id": q["question_id"], "kind": q["kind"], "text": q["text"], "points": q["points"],
                "options": [{"key": o["key"], "text": o["text"], **({"correct": o["correct"]} if reveal else {})}
                            for o in q["options"]]}
        if attempt.answers is not None:
            item["chosen"] = answers.get(str(q["question_id"]), [])
        if submitted:
            item["score"] = _percent(scores.get(str(q["question_id"]), 0))
        questions.append(item)
    due = as_utc(attempt.due_at) if attempt.due_at else None
    out = {"id": attempt.id, "quiz_id": attempt.quiz_id, "member_id": attempt.member_id, "number": attempt.number,
           "status": attempt.status, "document_version": attempt.document_version, "started_at": attempt.started_at,
           "due_at": due, "submit_by": due + _margin() if due else None, "submitted_at": attempt.submitted_at,
           "client_submitted_at": attempt.client_submitted_at, "platform": attempt.platform,
           "device": attempt.device, "questions": questions}
    if token:
        out["token"] = _token(attempt)
    if submitted:
        out.update(score=_percent(attempt.score), passed=attempt.passed, duration_seconds=attempt.duration_seconds)
    return out


def _percent(value: int | None) -> float | None:
    return None if value is None else value / 100


def _credit(question: dict, chosen: set[str]) -> Fraction:
    right = {o["key"] for o in question["options"] if o["correct"]}
    if question["kind"] == SINGLE:
        return Fraction(1) if chosen == right else Fraction(0)
    hits, misses = len(chosen & right), len(chosen - right)
    return max(Fraction(0), Fraction(hits - misses, len(right)))


def _hundredths(fraction: Fraction) -> int:
    """Round half up to an integer number of hundredths of a percent."""
    scaled = fraction * FULL
    return int(scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)


def grade(questions: list[dict], answers: dict[str, list[str]], pass_mark: int) -> tuple[dict[str, int], int, bool]:
    """(credit per question in hundredths of a percent, score, passed) — see the module's rules."""
    per_question: dict[str, int] = {}
    earned, total = Fraction(0), 0
    for q in questions:
        credit = _credit(q, set(answers.get(str(q["question_id"]), [])))
        per_question[str(q["question_id"])] = _hundredths(credit)
        earned += credit * q["points"]
        total += q["points"]
    fraction = earned / total if total else Fraction(0)
    return per_question, _hundredths(fraction), fraction * 100 >= pass_mark


def _clean_answers(attempt: QuizAttempt, answers: list[dict]) -> dict[str, list[str]]:
    by_id = {str(q["question_id"]): q for q in attempt.questions}
    out: dict[str, list[str]] = {}
    for index, answer in enumerate(answers):
        qid = str(answer["question_id"])
        question = by_id.get(qid)
        if question is None:
            raise _invalid(f"answers.{index}.question_id", "not_in_attempt")
        if qid in out:
            raise _invalid(f"answers.{index}.question_id", "answered_twice")
        keys = list(dict.fromkeys(answer["options"]))
        if set(keys) - {o["key"] for o in question["options"]}:
            raise _invalid(f"answers.{index}.options", "unknown_option")
        if question["kind"] == SINGLE and len(keys) > 1:
            raise _invalid(f"answers.{index}.options", "one_option_only")
        out[qid] = keys
    return out


def own_attempt(member: Member, attempt_id: int) -> QuizAttempt:
    attempt = db.session.get(QuizAttempt, attempt_id)
    if attempt is None or attempt.member_id != member.id:
        raise not_found()
    return attempt


def submit_attempt(member: Member, attempt_id: int, token: str, answers: list[dict], *,
                   client_submitted_at: datetime | None = None) -> dict:
    """POST /quiz-attempts/{id}/submission: grade once; the same attempt again answers the stored result."""
    attempt = own_attempt(member, attempt_id)
    if not hmac.compare_digest(token.encode(), _token(attempt).encode()):
        raise ProblemError("attempt_token_mismatch", 403)
    quiz = _lock_quiz(attempt.quiz_id)
    result = _result_for_update(quiz.id, member.id)
    db.session.refresh(attempt)
    if attempt.status == "submitted":
        answer = attempt_view(attempt)
        db.session.commit()
        return answer
    if attempt.status == "late":
        raise ProblemError("attempt_late", 409, extra={"due_at": as_utc(attempt.due_at).isoformat()})
    chosen = _clean_answers(attempt, answers)
    now = utcnow()
    if attempt.due_at is not None and now > as_utc(attempt.due_at) + _margin():
        attempt.status, attempt.answers, attempt.submitted_at = "late", chosen, now
        attempt.client_submitted_at = client_submitted_at
        audit.record("quiz.attempt_late", actor_id=member.id, target_type="quiz", target_id=quiz.id,
                     attempt=attempt.id)
        due = as_utc(attempt.due_at).isoformat()
        db.session.commit()
        raise ProblemError("attempt_late", 409, extra={"due_at": due})
    per_question, score, passed = grade(attempt.questions, chosen, quiz.pass_mark)
    started = as_utc(attempt.started_at)
    finished = now if client_submitted_at is None else max(started, min(client_submitted_at, now))
    attempt.answers, attempt.question_scores, attempt.score, attempt.passed = chosen, per_question, score, passed
    attempt.status, attempt.submitted_at, attempt.client_submitted_at = "submitted", now, client_submitted_at
    attempt.duration_seconds = int((finished - started).total_seconds())
    attempt.org_unit_id = member.org_unit_id
    _record_result(quiz, member, result, attempt)
    audit.record("quiz.attempt_submit", actor_id=member.id, target_type="quiz", target_id=quiz.id,
                 attempt=attempt.id, score=_percent(score), passed=passed)
    answer = attempt_view(attempt)
    db.session.commit()
    return answer


def _record_result(quiz: Quiz, member: Member, result: QuizResult, attempt: QuizAttempt) -> None:
    """Move the member's best result and the unit's counters by the difference this attempt makes."""
    before_took, before_passed = result.attempts > 0, result.passed
    before_score, before_duration = result.best_score or 0, result.best_duration or 0
    result.attempts += 1
    result.last_submitted_at = attempt.submitted_at
    if (result.best_score is None or attempt.score > result.best_score
            or (attempt.score == result.best_score and attempt.duration_seconds < (result.best_duration or 0))):
        result.best_score, result.best_duration = attempt.score, attempt.duration_seconds
        result.best_attempt_id = attempt.id
    if attempt.passed:
        result.passed = True
        result.passed_version = max(result.passed_version or 0, attempt.document_version)
    unit = member.org_unit
    delta = {"took": int(not before_took), "passed": int(result.passed and not before_passed),
             "score_sum": result.best_score - before_score,
             "duration_sum": result.best_duration - before_duration}
    _bump(QuizUnitStat, {"quiz_id": quiz.id, "org_unit_id": unit.id, **levels(unit.path)},
          ["quiz_id", "org_unit_id"], delta)
    scores = attempt.question_scores
    for q in sorted(attempt.questions, key=lambda q: q["question_id"]):
        _bump(QuizQuestionStat, {"quiz_id": quiz.id, "question_id": q["question_id"], "org_unit_id": unit.id,
                                 **levels(unit.path)}, ["quiz_id", "question_id", "org_unit_id"],
              {"answered": 1, "correct": int(scores[str(q["question_id"])] == FULL)})


def _bump(model, key: dict, index: list[str], delta: dict) -> None:
    stmt = upsert(model).values(**key, **delta)
    stmt = stmt.on_conflict_do_update(index_elements=index,
                                      set_={n: getattr(model, n) + getattr(stmt.excluded, n) for n in delta})
    db.session.execute(stmt)


def my_attempts(member: Member, *, quiz: int | None = None, limit: int = 20, cursor: str | None = None
                ) -> tuple[list[dict], str | None]:
    """GET /me/quiz-attempts: the member's attempts, newest first (questions left out: see the attempt)."""
    stmt = select(QuizAttempt).where(QuizAttempt.member_id == member.id)
    if quiz is not None:
        stmt = stmt.where(QuizAttempt.quiz_id == quiz)
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(QuizAttempt.id < last_id)
    rows, next_cursor = page(list(db.session.scalars(stmt.order_by(QuizAttempt.id.desc()).limit(limit + 1))),
                             limit, key=lambda a: (a.id,))
    return [_attempt_brief(a) for a in rows], next_cursor


def _attempt_brief(a: QuizAttempt) -> dict:
    return {"id": a.id, "quiz_id": a.quiz_id, "number": a.number, "status": a.status,
            "document_version": a.document_version, "started_at": a.started_at, "submitted_at": a.submitted_at,
            "score": _percent(a.score), "passed": a.passed, "duration_seconds": a.duration_seconds}


def view_attempt(viewer: Member, attempt_id: int) -> dict:
    """GET /quiz-attempts/{id}: the member's own attempt, or (evidence) one of a member within the
    viewer's follow-up scope on a document that reaches it; else 404."""
    attempt = db.session.get(QuizAttempt, attempt_id)
    if attempt is None:
        raise not_found()
    if attempt.member_id == viewer.id:
        return attempt_view(attempt)
    owner = db.session.get(Member, attempt.member_id)
    quiz = db.session.get(Quiz, attempt.quiz_id)
    if owner is None or not has_role_over(viewer, owner.org_unit, followup.FOLLOW_UP_ROLES):
        raise not_found()
    try:
        followup.followed_document(viewer, quiz.document_id, owner.org_unit)
    except ProblemError:
        raise not_found() from None
    return attempt_view(attempt, reveal=attempt.status == "submitted")


# --- results (follow-up roles within their scope) --------------------------------------------------

def _followed_quiz(viewer: Member, quiz_id: int, org_unit: int | None, roles=None) -> tuple[Quiz, Document, OrgUnit]:
    if roles is None:
        unit = followup.resolve_unit(viewer, org_unit)
    else:
        roots = scope_roots(viewer, roles)
        if not roots:
            raise forbidden()
        unit = roots[0] if org_unit is None else db.session.get(OrgUnit, org_unit)
        if unit is None:
            raise not_found()
        if not has_role_over(viewer, unit, roles):
            raise forbidden()
    quiz = db.session.get(Quiz, quiz_id)
    if quiz is None:
        raise not_found()
    doc = followup.followed_document(viewer, quiz.document_id, unit)
    return quiz, doc, unit


def _sums(model, columns, quiz_or_doc_filter, unit: OrgUnit) -> dict:
    """{child unit id: sums} for `unit`'s subtree, and the subtree's totals under key None."""
    child = child_column(model, unit.depth)
    stmt = select(child, *[func.sum(c) for c in columns]).where(quiz_or_doc_filter).group_by(child)
    scope = scope_condition(model, unit)
    if scope is not None:
        stmt = stmt.where(scope)
    rows = db.session.execute(stmt).all()
    out = {r[0]: [int(v or 0) for v in r[1:]] for r in rows}
    out[None] = [sum(r[i] for r in out.values()) for i in range(len(columns))]
    return out


def _figures(took: int, passed: int, score_sum: int, duration_sum: int, members: int) -> dict:
    return {"members": members, "took": took, "passed": passed,
            "average_score": round(score_sum / took / 100, 2) if took else None,
            "average_duration_seconds": round(duration_sum / took, 1) if took else None}


def unit_results(viewer: Member, quiz_id: int, org_unit: int | None) -> dict:
    """GET /quizzes/{id}/results: took, passed, average best score for the unit's subtree and each child,
    and the hardest questions there. Sums per-unit counters: O(units in scope)."""
    quiz, doc, unit = _followed_quiz(viewer, quiz_id, org_unit)
    stats = _sums(QuizUnitStat, (QuizUnitStat.took, QuizUnitStat.passed, QuizUnitStat.score_sum,
                                 QuizUnitStat.duration_sum), QuizUnitStat.quiz_id == quiz.id, unit)
    members = _sums(ProgressCounter, (ProgressCounter.total,), ProgressCounter.document_id == doc.id, unit)
    zero = [0, 0, 0, 0]
    child_ids = sorted({k for k in (*stats, *members) if k is not None and k != unit.id})
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(child_ids)))} if child_ids else {}
    children = [{"org_unit": units[c].brief(), **_figures(*stats.get(c, zero), members.get(c, [0])[0])}
                for c in sorted(units, key=lambda c: units[c].path)]
    return {"org_unit": unit.brief(), "quiz": {"id": quiz.id, "title": quiz.title, "pass_mark": quiz.pass_mark},
            **_figures(*stats[None], members[None][0]), "children": children,
            "hardest_questions": _hardest(quiz, unit)}


def _hardest(quiz: Quiz, unit: OrgUnit, limit: int = 5) -> list[dict]:
    stmt = (select(QuizQuestionStat.question_id, func.sum(QuizQuestionStat.answered),
                   func.sum(QuizQuestionStat.correct))
            .where(QuizQuestionStat.quiz_id == quiz.id).group_by(QuizQuestionStat.question_id))
    scope = scope_condition(QuizQuestionStat, unit)
    if scope is not None:
        stmt = stmt.where(scope)
    rows = [(qid, int(a or 0), int(c or 0)) for qid, a, c in db.session.execute(stmt) if a]
    rows.sort(key=lambda r: (r[2] / r[1], -r[1], r[0]))
    rows = rows[:limit]
    texts = dict(db.session.execute(select(QuizQuestion.id, QuizQuestion.text)
                                    .where(QuizQuestion.id.in_([r[0] for r in rows]))).all()) if rows else {}
    return [{"question_id": qid, "text": texts.get(qid, ""), "answered": a, "correct": c,
             "correct_rate": round(c / a, 4)} for qid, a, c in rows]


def _member_rows(quiz: Quiz, doc: Document, unit: OrgUnit):
    return (select(Member.id, Member.card_number, Member.full_name, OrgUnit.id.label("unit_id"), OrgUnit.code,
                   OrgUnit.name, OrgUnit.kind, OrgUnit.path, QuizResult.attempts, QuizResult.best_score,
                   QuizResult.best_duration, QuizResult.passed, QuizResult.last_submitted_at)
            .join(OrgUnit, OrgUnit.id == Member.org_unit_id)
            .outerjoin(QuizResult, and_(QuizResult.quiz_id == quiz.id, QuizResult.member_id == Member.id))
            .where(audience_members(doc, in_subtree(OrgUnit.path, unit.path))))


def _member_row(r) -> dict:
    return {"member": {"id": r.id, "card_number": r.card_number, "full_name": r.full_name,
                       "org_unit": {"id": r.unit_id, "code": r.code, "name": r.name, "kind": r.kind}},
            "attempts": r.attempts or 0, "best_score": _percent(r.best_score),
            "best_duration_seconds": r.best_duration, "passed": bool(r.passed),
            "last_submitted_at": r.last_submitted_at}


def member_results(viewer: Member, quiz_id: int, *, org_unit: int | None = None, limit: int = 20,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
    """GET /quizzes/{id}/members: every audience member of the subtree with attempts and best score."""
    quiz, doc, unit = _followed_quiz(viewer, quiz_id, org_unit)
    stmt = _member_rows(quiz, doc, unit)
    if cursor:
        last_path, last_id = decode_cursor(cursor, str, int)
        stmt = stmt.where(or_(OrgUnit.path > last_path, and_(OrgUnit.path == last_path, Member.id > last_id)))
    rows = db.session.execute(stmt.order_by(OrgUnit.path, Member.id).limit(limit + 1)).all()
    rows, next_cursor = page(rows, limit, key=lambda r: (r.path, r.id))
    return [_member_row(r) for r in rows], next_cursor


EXPORT_HEADERS = ("Số thẻ đảng viên", "Họ và tên", "Mã đơn vị", "Đơn vị", "Số lần làm bài", "Điểm cao nhất (%)",
                  "Thời gian làm bài (giây)", "Đạt", "Nộp bài gần nhất")


def _export_cells(r) -> list:
    return [r.card_number, r.full_name, r.code, r.name, r.attempts or 0,
            "" if r.best_score is None else r.best_score / 100, "" if r.best_duration is None else r.best_duration,
            "Đạt" if r.passed else ("Chưa đạt" if r.attempts else "Chưa làm"), followup._local(r.last_submitted_at)]


def export_results(viewer: Member, quiz_id: int, *, org_unit: int | None = None, fmt: str = "csv"
                   ) -> tuple[Iterator[bytes], str]:
    """The member results as CSV (UTF-8 with BOM) or XLSX, streamed; audited before the first byte."""
    quiz, doc, unit = _followed_quiz(viewer, quiz_id, org_unit)
    stmt = _member_rows(quiz, doc, unit).order_by(OrgUnit.path, Member.id).execution_options(yield_per=2000)
    audit.record("export.quiz_results", actor_id=viewer.id, target_type="quiz", target_id=quiz.id,
                 org_unit=unit.id, format=fmt)
    db.session.commit()
    name = f"ket-qua-{quiz.id}-{unit.code}.{fmt}"
    if fmt == "xlsx":
        return followup._xlsx(stmt, EXPORT_HEADERS, _export_cells, "Kết quả"), name
    return followup._csv(stmt, EXPORT_HEADERS, _export_cells), name


# --- contests: rankings for the organising committee ----------------------------------------------

def ranking(viewer: Member, quiz_id: int, *, org_unit: int | None = None, by: str = "members", limit: int = 20,
            cursor: str | None = None) -> tuple[dict, str | None]:
    """GET /quizzes/{id}/ranking (contests only, committee/publisher/admin within their scope): members by
    best score, ties broken by the time that best attempt took (then by id); or the unit's children by
    average best score, ties by average time."""
    quiz = db.session.get(Quiz, quiz_id)
    if quiz is None or not quiz.contest:
        raise not_found()
    default = org_unit
    if default is None:
        contest_unit = db.session.get(OrgUnit, quiz.contest_unit_id)
        if contest_unit is not None and has_role_over(viewer, contest_unit, RANKING_ROLES):
            default = contest_unit.id
    quiz, doc, unit = _followed_quiz(viewer, quiz_id, default, RANKING_ROLES)
    head = {"org_unit": unit.brief(), "by": by}
    if by == "units":
        stats = _sums(QuizUnitStat, (QuizUnitStat.took, QuizUnitStat.passed, QuizUnitStat.score_sum,
                                     QuizUnitStat.duration_sum), QuizUnitStat.quiz_id == quiz.id, unit)
        ids = [k for k in stats if k is not None and k != unit.id and stats[k][0]]
        units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)))} if ids else {}
        order = sorted(units, key=lambda c: (-stats[c][2] / stats[c][0], stats[c][3] / stats[c][0], c))
        items = [{"rank": n, "org_unit": units[c].brief(), **_figures(*stats[c], 0)}
                 for n, c in enumerate(order, 1)]
        for item in items:
            item.pop("members")
            item["passed_members"] = item.pop("passed")
        return {**head, "items": items}, None
    stmt = (select(Member.id, Member.card_number, Member.full_name, OrgUnit.id.label("unit_id"), OrgUnit.code,
                   OrgUnit.name, OrgUnit.kind, QuizResult.best_score, QuizResult.best_duration, QuizResult.passed,
                   QuizResult.attempts)
            .join(Member, Member.id == QuizResult.member_id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
            .where(QuizResult.quiz_id == quiz.id, QuizResult.attempts > 0, Member.active.is_(True),
                   in_subtree(OrgUnit.path, unit.path)))
    rank = 0
    if cursor:
        score, duration, last_id, rank = decode_cursor(cursor, int, int, int, int)
        stmt = stmt.where(or_(QuizResult.best_score < score,
                              and_(QuizResult.best_score == score, QuizResult.best_duration > duration),
                              and_(QuizResult.best_score == score, QuizResult.best_duration == duration,
                                   Member.id > last_id)))
    rows = db.session.execute(stmt.order_by(QuizResult.best_score.desc(), QuizResult.best_duration, Member.id)
                              .limit(limit + 1)).all()
    ranked = [(rank + n, r) for n, r in enumerate(rows, 1)]
    ranked, next_cursor = page(ranked, limit, key=lambda p: (p[1].best_score, p[1].best_duration, p[1].id, p[0]))
    items = [{"rank": n, "member": {"id": r.id, "card_number": r.card_number, "full_name": r.full_name,
                                    "org_unit": {"id": r.unit_id, "code": r.code, "name": r.name, "kind": r.kind}},
              "best_score": _percent(r.best_score), "best_duration_seconds": r.best_duration, "passed": r.passed,
              "attempts": r.attempts} for n, r in ranked]
    return {**head, "items": items}, next_cursor


# --- recounts: repair, and membership changes ------------------------------------------------------

def recount(quiz_ids=None, unit_ids=None) -> int:
    """Rebuild `quiz_unit_stats` (all quizzes or some, all units or some) from `quiz_results` and the
    members' current units; the quizzes are locked exclusively first, so no submission interleaves."""
    stmt = select(Quiz.id).order_by(Quiz.id)
    if quiz_ids is not None:
        stmt = stmt.where(Quiz.id.in_(list(quiz_ids)))
    if _pg():
        stmt = stmt.with_for_update(key_share=True, of=Quiz)
    ids = list(db.session.scalars(stmt))
    if not ids:
        return 0
    units = None if unit_ids is None else sorted(set(unit_ids))
    where = [QuizUnitStat.quiz_id.in_(ids)]
    if units is not None:
        where.append(QuizUnitStat.org_unit_id.in_(units))
    db.session.execute(delete(QuizUnitStat).where(*where))
    query = (select(QuizResult.quiz_id, Member.org_unit_id, OrgUnit.path, func.count(),
                    func.sum(case((QuizResult.passed.is_(True), 1), else_=0)),
                    func.sum(QuizResult.best_score), func.sum(QuizResult.best_duration))
             .join(Member, Member.id == QuizResult.member_id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
             .where(QuizResult.quiz_id.in_(ids), QuizResult.attempts > 0, Member.active.is_(True))
             .group_by(QuizResult.quiz_id, Member.org_unit_id, OrgUnit.path))
    if units is not None:
        query = query.where(Member.org_unit_id.in_(units))
    rows = [{"quiz_id": q, "org_unit_id": u, **levels(path), "took": took, "passed": int(passed or 0),
             "score_sum": int(score or 0), "duration_sum": int(duration or 0)}
            for q, u, path, took, passed, score, duration in db.session.execute(query)]
    if rows:
        db.session.execute(insert(QuizUnitStat), rows)
    return len(rows)


@membership_changed.connect
def on_membership_changed(sender, unit_ids: set[int], **_) -> None:
    """Members left, joined or moved between these units: their quiz counters are recounted. (New
    members with no results, the `joined` of an import, change nothing.)"""
    if unit_ids:
        recount(unit_ids=unit_ids)

