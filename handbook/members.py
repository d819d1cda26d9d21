"""Party members, their transfers between units, and the roles granted to them over units."""
from __future__ import annotations

import enum

from blinker import Namespace
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from handbook.extensions import db
from handbook.orgunits import OrgUnit, ancestors_of
from handbook.text import normalise_phone, nfc
from handbook.timeutil import UTCDateTime, utcnow


class Role(str, enum.Enum):
    SECRETARY = "secretary"   # bí thư / phó bí thư: sees progress, records briefings, sends reminders
    COMMITTEE = "committee"   # cấp ủy: sees progress
    PUBLISHER = "publisher"   # publishes to the subtree
    ADMIN = "admin"           # manages units, members, roles


ROLE_VALUES = {r.value for r in Role}

# Sent inside the writer's transaction when members join, leave or move between units, or their roles
# change, with `unit_ids` (every unit that gained or lost one) and optionally `joined` ({unit id: count}
# of members just created there, with no role and no history, so far not in `unit_ids`). content/ keeps
# its counters exact by it.
membership_changed = Namespace().signal("membership-changed")


class Member(db.Model):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_number: Mapped[str] = mapped_column(String(32), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The first login ever (adoption figures): sessions are pruned, this stays.
    first_signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")
    roles: Mapped[list[RoleGrant]] = relationship(
        back_populates="member", cascade="all, delete-orphan", lazy="selectin",
        foreign_keys="RoleGrant.member_id",
    )

    __table_args__ = (Index("ix_members_org_unit_id_id", "org_unit_id", "id"),)

    def brief(self) -> dict:
        return {"id": self.id, "card_number": self.card_number, "full_name": self.full_name,
                "org_unit": self.org_unit.brief()}


class MemberTransfer(db.Model):
    """One move of a member between units; the member's history."""

    __tablename__ = "member_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    from_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    to_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    transferred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="import")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))


class RoleGrant(db.Model):
    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    role: Mapped[str] = mapped_column(String(16))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))

    member: Mapped[Member] = relationship(back_populates="roles", foreign_keys=[member_id])
    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("member_id", "role", "org_unit_id"),)


def find_by_login(username: str) -> Member | None:
    """A member by party card number or by phone number (any common spelling of it)."""
    username = nfc(username) or ""
    member = db.session.scalar(select(Member).where(Member.card_number == username))
    if member is not None:
        return member
    try:
        phone = normalise_phone(username)
    except ValueError:
        return None
    if phone is None:
        return None
    return db.session.scalar(select(Member).where(Member.phone == phone))


def profile(member: Member) -> dict:
    """What `GET /me` returns."""
    return {
        "id": member.id,
        "card_number": member.card_number,
        "full_name": member.full_name,
        "phone": member.phone,
        "org_unit": member.org_unit.brief(),
        "ancestors": [u.brief() for u in ancestors_of(member.org_unit)],
        "roles": [{"role": g.role, "org_unit": g.org_unit.brief()}
                  for g in sorted(member.roles, key=lambda g: (g.org_unit.path, g.role))],
    }
