"""The acknowledgement's extra rules (issue 17), checked before anything of an acknowledgement is written:

- `min_read_seconds`: the acknowledgement (its time clamped as for offline sync: never before
  publication, never in the future) must come at least that long after the member's first open; never
  opened, or sooner → 409 `read_too_fast`.
- `ack_quiz_id`: the member must have passed that quiz in an attempt started on the version to
  acknowledge or a later one (`quiz_results.passed_version >= ack_version`), so a material change
  (a new `ack_version`) needs a new pass and a correction does not → 409 `quiz_required` with the quiz id.

A member who already acknowledged the version to acknowledge is never refused (acknowledging is
idempotent). Briefings and exemptions do not come here. `content.acknowledgements` calls `check` only when
the document (already read under its share lock) has a rule, so an acknowledgement of a document without
rules costs no statement more; with rules, one primary-key read of the receipt and one of the quiz result,
without locks (the global lock order is untouched).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from content.models import Document, Receipt
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.timeutil import as_utc


def has_rules(doc: Document) -> bool:
    return bool(doc.min_read_seconds or doc.ack_quiz_id)


def check(doc: Document, member_id: int, at: datetime) -> None:
    from content.quiz_models import QuizResult

    row = db.session.execute(select(Receipt.opened_at, Receipt.acknowledged_version).where(
        Receipt.document_id == doc.id, Receipt.member_id == member_id)).first()
    if row is not None and row.acknowledged_version is not None and row.acknowledged_version >= doc.ack_version:
        return
    if doc.min_read_seconds:
        opened = row.opened_at if row is not None else None
        if opened is None or (as_utc(at) - as_utc(opened)).total_seconds() < doc.min_read_seconds:
            raise ProblemError("read_too_fast", 409, min_read_seconds=doc.min_read_seconds,
                               extra={"min_read_seconds": doc.min_read_seconds,
                                      "opened_at": as_utc(opened).isoformat() if opened else None})
    if doc.ack_quiz_id:
        passed_version = db.session.scalar(select(QuizResult.passed_version).where(
            QuizResult.quiz_id == doc.ack_quiz_id, QuizResult.member_id == member_id))
        if passed_version is None or passed_version < doc.ack_version:
            raise ProblemError("quiz_required", 409, extra={"quiz_id": doc.ack_quiz_id})
