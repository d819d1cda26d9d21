"""Who may read and who may manage a document. The rules live in handbook.permissions; this applies them.

- A member reads a document when it is out (published, or scheduled and due), its audience holds one of
  the units on the member's path (their unit or any ancestor), and either the audience names no roles
  or the member holds one of them. Anything else is 404, never 403 (no existence leak).
- A publisher (or admin) manages a document when they hold `publisher`/`admin` over its owner unit;
  a publisher of another district gets 404 too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, and_, bindparam, exists, or_, select

from content.models import Document, DocumentAudience, Status, roles_to_mask
from content.progress import share_locked
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.permissions import PUBLISH_ROLES, has_role_over, not_found, scope_roots
from handbook.timeutil import as_utc, utcnow

OUT_STATUSES = (Status.PUBLISHED.value, Status.SCHEDULED.value)


@dataclass(frozen=True)
class Reader:
    """What decides a member's audience: the units on their path and the roles they hold."""

    member_id: int
    unit_ids: tuple[int, ...]
    roles_mask: int

    @classmethod
    def of(cls, member: Member) -> Reader:
        unit = member.org_unit
        return cls(member.id, (*unit.ancestor_ids, unit.id), roles_to_mask({g.role for g in member.roles}))


def in_audience(reader: Reader):
    """SQL condition: the reader is in the document's audience (whatever its status)."""
    return and_(
        exists().where(DocumentAudience.document_id == Document.id,
                       DocumentAudience.org_unit_id.in_(reader.unit_ids)),
        or_(Document.roles_mask == 0, Document.roles_mask.op("&")(reader.roles_mask) != 0),
    )


def in_audience_param():
    """`in_audience`, with the reader's unit ids (`:units`) and roles mask (`:mask`) as bound parameters,
    for statements built once (`reader_params` gives their values)."""
    return and_(
        exists().where(DocumentAudience.document_id == Document.id,
                       DocumentAudience.org_unit_id.in_(bindparam("units", expanding=True))),
        or_(Document.roles_mask == 0, Document.roles_mask.op("&")(bindparam("mask", type_=Integer)) != 0),
    )


def reader_params(reader: Reader) -> dict:
    return {"units": list(reader.unit_ids), "mask": reader.roles_mask}


def is_out(now: datetime | None = None):
    """SQL condition: the document is published, or scheduled and its time has come."""
    return and_(Document.status.in_(OUT_STATUSES), Document.published_at <= (utcnow() if now is None else now))


def was_out():
    """SQL condition: withdrawn after readers could see it (not a scheduled one withdrawn in time)."""
    return and_(Document.status == Status.WITHDRAWN.value, Document.published_at <= Document.withdrawn_at)


def went_out(doc: Document, now: datetime | None = None) -> bool:
    """In Python, for one loaded document: is_out() or was_out(), i.e. readers could see it at some point."""
    if doc.published_at is None:
        return False
    if doc.status in OUT_STATUSES:
        return as_utc(doc.published_at) <= (now or utcnow())
    return (doc.status == Status.WITHDRAWN.value and doc.withdrawn_at is not None
            and as_utc(doc.published_at) <= as_utc(doc.withdrawn_at))


def readable(reader: Reader, now: datetime | None = None):
    return and_(is_out(now), in_audience(reader))


def readable_document(member: Member, document_id: int, *, lock: bool = False) -> Document:
    """The document if the member may read it (out, and in its audience), else 404. With `lock`, read
    afresh under the shared lock that member-level writers hold (see content.progress)."""
    reader = Reader.of(member)
    stmt = select(Document).where(Document.id == document_id, is_out(), in_audience(reader))
    doc = db.session.scalar(share_locked(stmt) if lock else stmt)
    if doc is None:
        raise not_found()
    return doc


def reaches(doc: Document, unit: OrgUnit) -> bool:
    """The document's audience covers the unit, or lies (partly) inside its subtree."""
    return any(a.org_unit.contains(unit) or unit.contains(a.org_unit) for a in doc.audience)


def can_manage(member: Member, doc: Document) -> bool:
    return has_role_over(member, doc.owner_unit, PUBLISH_ROLES)


def managed_document(member: Member, document_id: int, *, for_update: bool = False) -> Document:
    """The document if the member may manage it, else 404 (optionally locked for the transaction)."""
    stmt = select(Document).where(Document.id == document_id)
    if for_update:
        stmt = stmt.with_for_update(of=Document, key_share=True)
    doc = db.session.scalar(stmt)
    if doc is None or not can_manage(member, doc):
        raise not_found()
    return doc


def publish_scope_condition(member: Member, unit_column=OrgUnit.path):
    """SQL condition on an org unit path: inside one of the member's publishing scopes."""
    roots = scope_roots(member, PUBLISH_ROLES)
    if not roots:
        return None
    return or_(*[in_subtree(unit_column, r.path) for r in roots])
