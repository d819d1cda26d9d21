"""Quizzes (comprehension checks and contests) on documents, their question banks, attempts and results.

- `Quiz`: attached to one document (a study lesson, a directive...); pass mark, optional time limit,
  number of attempts and number of questions drawn per attempt; optionally the gate of the document's
  acknowledgement (`documents.ack_quiz_id`); optionally a contest (open to a unit's subtree in a window).
- `QuizQuestion`: the bank. Text NFC; options (JSON) with their correctness. A question replaced by an
  edit is retired, never deleted (attempts and statistics still name it).
- `QuizAttempt`: one attempt of one member, kept for good as evidence: the questions as presented (order,
  shuffled options with per-attempt keys, the key itself), the answers, score, times, device.
- `QuizResult`: one row per (quiz, member): attempts, best score and the time it took, passed.
- `QuizUnitStat` / `QuizQuestionStat`: per (quiz, member-holding unit) counters kept in the submitting
  transaction, with the unit's ancestors at depths 1-3 (as `progress_counters`), so results for any
  unit are one GROUP BY over its subtree's rows: O(units), never O(members).

Scores are integers in hundredths of a percent (0-10000), so sums and comparisons are exact.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from handbook.extensions import db
from handbook.timeutil import UTCDateTime, utcnow

DateTime = UTCDateTime
SINGLE, MULTIPLE = "single", "multiple"


class Quiz(db.Model):
    __tablename__ = "quizzes"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    pass_mark: Mapped[int] = mapped_column(Integer, default=80)              # percent, 0-100
    time_limit_seconds: Mapped[int | None] = mapped_column(Integer)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    draw_count: Mapped[int | None] = mapped_column(Integer)                  # None: every question
    required_for_ack: Mapped[bool] = mapped_column(Boolean, default=False)
    reveal_answers: Mapped[bool] = mapped_column(Boolean, default=True)      # the key, after submission
    # Contest: open to this unit's subtree (within the document's audience) between opens_at and closes_at.
    contest: Mapped[bool] = mapped_column(Boolean, default=False)
    contest_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    opens_at: Mapped[datetime | None] = mapped_column(DateTime)
    closes_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class QuizQuestion(db.Model):
    __tablename__ = "quiz_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))                            # single | multiple
    text: Mapped[str] = mapped_column(Text)
    # [{"text": ..., "correct": bool}, ...] in the author's order (never sent to readers as such).
    options: Mapped[list] = mapped_column(JSON)
    points: Mapped[int] = mapped_column(Integer, default=1)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_quiz_questions_quiz_id_position", "quiz_id", "position"),)


class QuizAttempt(db.Model):
    __tablename__ = "quiz_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))     # the member's unit when started
    number: Mapped[int] = mapped_column(Integer)                             # 1, 2, ... per member and quiz
    document_version: Mapped[int] = mapped_column(Integer)                   # the document's version at start
    token_nonce: Mapped[str] = mapped_column(String(64))   # the attempt token is HMAC(secret, id, nonce)
    # As presented: [{"question_id", "kind", "text", "points", "options": [{"key", "text", "correct"}]}].
    questions: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="started")       # started | submitted | late
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)                # started_at + time limit
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)          # server time
    client_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    client_submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    answers: Mapped[dict | None] = mapped_column(JSON)                       # {question_id: [option keys]}
    question_scores: Mapped[dict | None] = mapped_column(JSON)               # {question_id: 0-10000}
    score: Mapped[int | None] = mapped_column(Integer)                       # 0-10000 (hundredths of %)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    platform: Mapped[str | None] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_quiz_attempts_quiz_id_member_id", "quiz_id", "member_id"),
        Index("ix_quiz_attempts_member_id_id", "member_id", "id"),
    )


class QuizResult(db.Model):
    """A member's standing in a quiz: the best submitted attempt (ties: the quicker), and passes."""

    __tablename__ = "quiz_results"

    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)                # submitted ones
    best_score: Mapped[int | None] = mapped_column(Integer)
    best_duration: Mapped[int | None] = mapped_column(Integer)
    best_attempt_id: Mapped[int | None] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The highest document version a passed attempt was started on (the acknowledgement gate reads it).
    passed_version: Mapped[int | None] = mapped_column(Integer)
    last_submitted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_quiz_results_quiz_id_best_score", "quiz_id", "best_score", "best_duration"),)


class _QuizUnitColumns:
    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    l1_id: Mapped[int | None] = mapped_column(Integer)
    l2_id: Mapped[int | None] = mapped_column(Integer)
    l3_id: Mapped[int | None] = mapped_column(Integer)


class QuizUnitStat(_QuizUnitColumns, db.Model):
    """Per (quiz, member-holding unit): members who took it, passed it, and the sums of their best scores
    and of the times of those best attempts (averages are sums / took)."""

    __tablename__ = "quiz_unit_stats"

    took: Mapped[int] = mapped_column(Integer, default=0)
    passed: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[int] = mapped_column(Integer, default=0)
    duration_sum: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = tuple(Index(f"ix_quiz_unit_stats_quiz_id_{c}", "quiz_id", c) for c in ("l1_id", "l2_id", "l3_id"))


class QuizQuestionStat(db.Model):
    """Per (quiz, question, unit where the attempt was made): how often the question was answered in a
    submitted attempt, and how often fully right (hardest questions: lowest share right)."""

    __tablename__ = "quiz_question_stats"

    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("quiz_questions.id", ondelete="CASCADE"), primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    l1_id: Mapped[int | None] = mapped_column(Integer)
    l2_id: Mapped[int | None] = mapped_column(Integer)
    l3_id: Mapped[int | None] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    correct: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = tuple(Index(f"ix_quiz_question_stats_quiz_id_{c}", "quiz_id", c)
                           for c in ("l1_id", "l2_id", "l3_id"))
