"""A study series' progress through its lessons and their quizzes (issue 17).

- `my_series_study` (GET /series/{id}/study): the member's lessons in order, each with the member's
  state (done: acknowledged when the lesson asks for it, else opened) and its quizzes with the member's
  best score, plus totals.
- `series_members` (GET /series/{id}/members, follow-up roles within their scope): one row per member of
  the unit's subtree in the audience of a lesson, with each lesson's state and each quiz's best score
  and pass. Keyset-paginated by (unit path, member id); each page costs one query for its members, one
  for their receipts and one for their quiz results (O(page × lessons)).
"""
from __future__ import annotations

from sqlalchemy import and_, or_, select

from content import followup
from content.access import Reader, readable, reaches, went_out
from content.models import Document, Receipt, Series
from content.progress import audience_members, classify
from content.quiz_models import Quiz, QuizResult
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.pagination import decode_cursor, page
from handbook.timeutil import utcnow


def _order(stmt):
    return stmt.order_by(Document.lesson_no.is_(None), Document.lesson_no, Document.published_at, Document.id)


def _done(doc: Document, receipt: Receipt | None) -> str:
    state = classify(receipt, doc.ack_version)
    if state == "acknowledged" or (not doc.requires_ack and receipt is not None and receipt.opened_at):
        return "done"
    return "opened" if receipt is not None and receipt.opened_at else "new"


def _quizzes(doc_ids: list[int]) -> dict[int, list[Quiz]]:
    out: dict[int, list[Quiz]] = {d: [] for d in doc_ids}
    if doc_ids:
        for quiz in db.session.scalars(select(Quiz).where(Quiz.document_id.in_(doc_ids)).order_by(Quiz.id)):
            out[quiz.document_id].append(quiz)
    return out


def _lesson_brief(doc: Document, quizzes: list[Quiz]) -> dict:
    return {"id": doc.id, "lesson_no": doc.lesson_no, "title": doc.title, "requires_ack": doc.requires_ack,
            "quizzes": [{"id": q.id, "title": q.title, "pass_mark": q.pass_mark} for q in quizzes]}


def my_series_study(member: Member, series_id: int) -> dict:
    """GET /series/{id}/study."""
    series = db.session.get(Series, series_id)
    rows = [] if series is None else db.session.execute(_order(
        select(Document, Receipt)
        .outerjoin(Receipt, and_(Receipt.document_id == Document.id, Receipt.member_id == member.id))
        .where(Document.series_id == series_id, readable(Reader.of(member), utcnow())))).all()
    if not rows:
        raise ProblemError("not_found", 404)
    quizzes = _quizzes([d.id for d, _ in rows])
    reachable = [q for qs in quizzes.values() for q in qs
                 if not q.contest or member.org_unit.path.startswith(db.session.get(OrgUnit, q.contest_unit_id).path)]
    results = {r.quiz_id: r for r in db.session.scalars(select(QuizResult).where(
        QuizResult.member_id == member.id, QuizResult.quiz_id.in_([q.id for q in reachable])))} if reachable else {}
    lessons = []
    for doc, receipt in rows:
        mine = [q for q in quizzes[doc.id] if q in reachable]
        lesson = _lesson_brief(doc, mine)
        lesson["state"] = _done(doc, receipt)
        for brief, quiz in zip(lesson["quizzes"], mine, strict=True):
            result = results.get(quiz.id)
            brief["best_score"] = result.best_score / 100 if result and result.best_score is not None else None
            brief["passed"] = bool(result and result.passed)
        lessons.append(lesson)
    return {"id": series.id, "title": series.title, "lessons": lessons,
            "progress": {"lessons": len(lessons), "completed": sum(lesson["state"] == "done" for lesson in lessons),
                         "quizzes": len(reachable), "quizzes_passed": sum(r.passed for r in results.values())}}


def series_members(viewer: Member, series_id: int, *, org_unit: int | None = None, limit: int = 20,
                   cursor: str | None = None) -> tuple[dict, str | None]:
    """GET /series/{id}/members: each member's progress through the series' lessons and quizzes."""
    unit = followup.resolve_unit(viewer, org_unit)
    series = db.session.get(Series, series_id)
    docs = [] if series is None else [
        d for d in db.session.scalars(_order(select(Document).where(Document.series_id == series_id)))
        if went_out(d) and reaches(d, unit)]
    if not docs:
        raise ProblemError("not_found", 404)
    quizzes = _quizzes([d.id for d in docs])
    stmt = (select(Member.id, Member.card_number, Member.full_name, OrgUnit.id.label("unit_id"), OrgUnit.code,
                   OrgUnit.name, OrgUnit.kind, OrgUnit.path)
            .join(OrgUnit, OrgUnit.id == Member.org_unit_id)
            .where(in_subtree(OrgUnit.path, unit.path), or_(*[audience_members(d) for d in docs])))
    if cursor:
        last_path, last_id = decode_cursor(cursor, str, int)
        stmt = stmt.where(or_(OrgUnit.path > last_path, and_(OrgUnit.path == last_path, Member.id > last_id)))
    rows = db.session.execute(stmt.order_by(OrgUnit.path, Member.id).limit(limit + 1)).all()
    rows, next_cursor = page(rows, limit, key=lambda r: (r.path, r.id))
    ids = [r.id for r in rows]
    receipts = {(r.document_id, r.member_id): r for r in db.session.scalars(select(Receipt).where(
        Receipt.member_id.in_(ids), Receipt.document_id.in_([d.id for d in docs])))} if ids else {}
    all_quizzes = [q for qs in quizzes.values() for q in qs]
    results = {(r.quiz_id, r.member_id): r for r in db.session.scalars(select(QuizResult).where(
        QuizResult.member_id.in_(ids), QuizResult.quiz_id.in_([q.id for q in all_quizzes])))} \
        if ids and all_quizzes else {}
    items = []
    for r in rows:
        lessons = [{"document_id": d.id, "state": _done(d, receipts.get((d.id, r.id)))} for d in docs]
        scores = []
        for q in all_quizzes:
            result = results.get((q.id, r.id))
            scores.append({"quiz_id": q.id, "attempts": result.attempts if result else 0,
                           "best_score": result.best_score / 100 if result and result.best_score is not None else None,
                           "passed": bool(result and result.passed)})
        items.append({"member": {"id": r.id, "card_number": r.card_number, "full_name": r.full_name,
                                 "org_unit": {"id": r.unit_id, "code": r.code, "name": r.name, "kind": r.kind}},
                      "lessons_completed": sum(lesson["state"] == "done" for lesson in lessons),
                      "quizzes_passed": sum(s["passed"] for s in scores), "lessons": lessons, "quizzes": scores})
    return {"id": series.id, "title": series.title, "org_unit": unit.brief(),
            "lessons": [_lesson_brief(d, quizzes[d.id]) for d in docs], "items": items}, next_cursor
