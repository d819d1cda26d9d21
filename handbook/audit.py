"""The audit trail: who did what to what, when. Written in the same transaction as the action."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.pagination import decode_cursor, page
from handbook.permissions import ADMIN_ROLES, forbidden, scope_roots
from handbook.timeutil import UTCDateTime, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
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


def entries(viewer, *, actor: int | None = None, action: str | None = None, since: datetime | None = None,
            limit: int = 20, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """GET /admin/audit: newest first. An admin sees what actors inside their scope did; entries with no
    actor (CLI imports, scheduled publications) only an admin over a root unit."""
    roots = scope_roots(viewer, ADMIN_ROLES)
    if not roots:
        raise forbidden()
    visible = [in_subtree(OrgUnit.path, r.path) for r in roots]
    if any(r.depth == 0 for r in roots):
        visible.append(AuditEntry.actor_id.is_(None))
    stmt = (select(AuditEntry, Member).outerjoin(Member, Member.id == AuditEntry.actor_id)
            .outerjoin(OrgUnit, OrgUnit.id == Member.org_unit_id).where(or_(*visible)))
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(AuditEntry.id < last_id)
    rows, next_cursor = page(db.session.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit + 1)).all(),
                             limit, key=lambda row: (row[0].id,))
    return [{"id": e.id, "at": e.at, "action": e.action, "target_type": e.target_type, "target_id": e.target_id,
             "details": e.details or {},
             "actor": {"id": m.id, "card_number": m.card_number, "full_name": m.full_name} if m else None}
            for e, m in rows], next_cursor
