"""Questions and feedback on a document (góp ý): a member in its audience asks; the publishers over its
issuing unit answer; the answer reaches the asker's inbox with a push, and may be published under the
document as a public Q&A without the asker's name.

Each member may ask QUESTIONS_PER_DAY questions in any 24 hours (counted in the database, so every
instance agrees). Text is stored in NFC, at most MAX_TEXT characters.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select

from content.access import can_manage, readable_document
from content.models import Document, Question
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.pagination import decode_cursor, page
from handbook.permissions import PUBLISH_ROLES, forbidden, not_found, scope_roots
from handbook.text import nfc
from handbook.timeutil import utcnow

MAX_TEXT = 2000


def _text(value: str, field: str = "text") -> str:
    text = nfc(value) or ""
    if not text:
        raise ProblemError("validation_error", 422, errors={field: ["required"]})
    if len(text) > MAX_TEXT:
        raise ProblemError("validation_error", 422, errors={field: ["too_long_text"]})
    return text


def ask(member: Member, document_id: int, text: str) -> dict:
    """POST /documents/{id}/questions: 404 outside the audience; 429 past the daily budget."""
    doc = readable_document(member, document_id)
    text = _text(text)
    now = utcnow()
    # Serialise one member's questions so that parallel requests cannot overrun the budget.
    db.session.execute(select(Member.id).where(Member.id == member.id).with_for_update(key_share=True)
                       if db.session.get_bind().dialect.name == "postgresql" else select(Member.id))
    asked = db.session.scalar(select(func.count()).select_from(Question).where(
        Question.member_id == member.id, Question.created_at > now - timedelta(days=1)))
    limit = current_app.config["QUESTIONS_PER_DAY"]
    if asked >= limit:
        oldest = db.session.scalar(select(func.min(Question.created_at)).where(
            Question.member_id == member.id, Question.created_at > now - timedelta(days=1)))
        retry = max(1, int((oldest + timedelta(days=1) - now).total_seconds()) + 1)
        raise ProblemError("question_limit", 429, headers={"Retry-After": str(retry)}, limit=limit)
    question = Question(document_id=doc.id, member_id=member.id, text=text, created_at=now)
    db.session.add(question)
    db.session.flush()
    audit.record("question.ask", actor_id=member.id, target_type="document", target_id=doc.id, question=question.id)
    db.session.commit()
    return own_view(question, doc)


def own_view(q: Question, doc: Document | None = None) -> dict:
    doc = doc or db.session.get(Document, q.document_id)
    return {"id": q.id, "text": q.text, "status": "answered" if q.answered_at else "open",
            "created_at": q.created_at, "answer": q.answer, "answered_at": q.answered_at, "public": q.public,
            "document": {"id": doc.id, "number": doc.number, "title": doc.title}}


def _page(stmt, limit: int, cursor: str | None):
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(Question.id < last_id)
    return page(list(db.session.scalars(stmt.order_by(Question.id.desc()).limit(limit + 1))), limit,
                key=lambda q: (q.id,))


def mine(member: Member, *, limit: int = 20, cursor: str | None = None) -> dict:
    """GET /me/questions: the member's own, newest first."""
    rows, next_cursor = _page(select(Question).where(Question.member_id == member.id), limit, cursor)
    return {"items": [own_view(q) for q in rows], "next_cursor": next_cursor}


def public(member: Member, document_id: int, *, limit: int = 20, cursor: str | None = None) -> dict:
    """GET /documents/{id}/questions: the answers published as a Q&A, without askers' names."""
    doc = readable_document(member, document_id)
    rows, next_cursor = _page(select(Question).where(Question.document_id == doc.id, Question.public.is_(True),
                                                     Question.answered_at.is_not(None)), limit, cursor)
    return {"items": [{"id": q.id, "text": q.text, "answer": q.answer, "answered_at": q.answered_at}
                      for q in rows], "next_cursor": next_cursor}


def _managed_condition(actor: Member):
    """SQL condition on the document's owner unit (OrgUnit, joined): the actor publishes over it, as
    `content.access.can_manage` says of one document; 403 without any publishing role."""
    roots = scope_roots(actor, PUBLISH_ROLES)
    if not roots:
        raise forbidden()
    return or_(*[in_subtree(OrgUnit.path, r.path) for r in roots])


def for_publishers(actor: Member, *, document_id: int | None = None, status: str | None = None,
                   limit: int = 20, cursor: str | None = None) -> dict:
    """GET /admin/questions: the questions on documents the actor manages, newest first."""
    stmt = select(Question, Member.full_name).join(Document, Document.id == Question.document_id) \
        .join(OrgUnit, OrgUnit.id == Document.owner_unit_id).join(Member, Member.id == Question.member_id) \
        .where(_managed_condition(actor))
    if document_id is not None:
        stmt = stmt.where(Question.document_id == document_id)
    if status == "open":
        stmt = stmt.where(Question.answered_at.is_(None))
    elif status == "answered":
        stmt = stmt.where(Question.answered_at.is_not(None))
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(Question.id < last_id)
    rows, next_cursor = page(list(db.session.execute(stmt.order_by(Question.id.desc()).limit(limit + 1))), limit,
                             key=lambda row: (row[0].id,))
    return {"items": [{**own_view(q), "asker": {"id": q.member_id, "full_name": name}} for q, name in rows],
            "next_cursor": next_cursor}


def answer(actor: Member, question_id: int, text: str, public_: bool) -> dict:
    """POST /admin/questions/{id}/answer: answered (or the answer corrected); the asker gets an inbox item
    and a push in the same transaction (the outbox)."""
    from push.models import Notification, NotificationKind

    question = db.session.get(Question, question_id)
    doc = question and db.session.get(Document, question.document_id)
    if doc is None or not can_manage(actor, doc):
        raise not_found()
    now = utcnow()
    question.answer, question.answered_by, question.answered_at = _text(text), actor.id, now
    question.public = public_
    db.session.add(Notification(kind=NotificationKind.ANSWER.value, document_id=doc.id,
                                recipient_id=question.member_id, created_by=actor.id, created_at=now, due_at=now))
    audit.record("question.answer", actor_id=actor.id, target_type="document", target_id=doc.id,
                 question=question.id, public=public_)
    db.session.commit()
    return own_view(question, doc)


def counts_by_document(document_ids: list[int]) -> dict[int, dict]:
    """{document id: {"questions", "open"}} for the documents' statistics."""
    rows = db.session.execute(select(Question.document_id, func.count(), func.count().filter(
        Question.answered_at.is_(None))).where(Question.document_id.in_(document_ids))
        .group_by(Question.document_id)).all()
    return {d: {"questions": total, "open": still_open} for d, total, still_open in rows}

