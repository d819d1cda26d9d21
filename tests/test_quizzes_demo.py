"""Demo quizzes (issue 17): a quiz on Chỉ thị 24-CT/TU (required to acknowledge) and on each lesson of the
series, with attempts spread over the members; counters equal a recount; loading twice adds nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from content.demo import load_demo_documents
from content.models import Document, Receipt
from content.quiz_demo import load_demo_quizzes
from content.quiz_models import Quiz, QuizAttempt, QuizResult
from handbook.demo import DEMO_PASSWORD, load_demo
from handbook.extensions import db
from tests.factories import bearer, login
from tests.test_quizzes import expected_unit_stats, stored_unit_stats


def test_demo_quizzes_on_the_directive_and_every_lesson(app, client):
    assert load_demo_quizzes()[0].startswith("No demo board account")
    load_demo(300)
    load_demo_documents()
    lines = load_demo_quizzes(sample=40)
    assert lines[0].startswith("Demo quizzes: 4")
    ct24 = db.session.scalar(select(Document).where(Document.number == "24-CT/TU"))
    assert ct24.ack_quiz_id is not None and ct24.min_read_seconds == 60
    quizzes = list(db.session.scalars(select(Quiz)))
    lessons = set(db.session.scalars(select(Document.id).where(Document.series_id.is_not(None))))
    assert {q.document_id for q in quizzes} == lessons | {ct24.id}
    assert sum(q.contest for q in quizzes) == 1
    for quiz in quizzes:
        takers = db.session.scalar(select(func.count(func.distinct(QuizAttempt.member_id)))
                                   .where(QuizAttempt.quiz_id == quiz.id))
        assert takers >= 30, (quiz.title, takers)
    passed = db.session.scalar(select(func.count()).select_from(QuizResult).where(
        QuizResult.quiz_id == ct24.ack_quiz_id, QuizResult.passed.is_(True)))
    acknowledged = db.session.scalar(select(func.count()).select_from(Receipt).where(
        Receipt.document_id == ct24.id, Receipt.acknowledged_version.is_not(None)))
    assert 0 < passed == acknowledged
    assert stored_unit_stats() == expected_unit_stats()
    # The demo member sees the gate: 24-CT/TU asks for its quiz first (unless the sample passed it).
    token = login(client, "01000004", DEMO_PASSWORD).json["access_token"]
    listed = client.get(f"/api/v1/documents/{ct24.id}/quizzes", headers=bearer(token)).json["items"]
    assert listed[0]["required_for_ack"] is True and listed[0]["questions_per_attempt"] == 5
    assert load_demo_quizzes() == ["Database already has quizzes; demo quizzes not loaded."]
