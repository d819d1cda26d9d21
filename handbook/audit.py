"""The audit trail: who did what to what, when. Written in the same transaction as the action."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from handbook.extensions import db
from handbook.timeutil import utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_id_at", "actor_id", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )


def record(action: str, *, actor_id: int | None = None, target_type: str | None = None,
           target_id: object = None, **details) -> AuditEntry:
    """Add an audit entry to the current session (the caller commits with its own change)."""
    entry = AuditEntry(action=action, actor_id=actor_id, target_type=target_type,
                       target_id=None if target_id is None else str(target_id), details=details)
    db.session.add(entry)
    return entry
