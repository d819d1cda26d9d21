"""Removing a member from the organisation (death, expulsion, moving out of the city's party organisation).

The member is kept, with every receipt and transfer, for the record; they stop being active. In the same
transaction every session they hold is revoked (their tokens stop working on the very next request), every
role they held is taken back, their unit's progress counters are recounted without them, and the removal
and each role taken back are audited. Removing an inactive member again changes nothing.
"""
from __future__ import annotations

from sqlalchemy import select

from handbook import audit
from handbook.auth import revoke_member_sessions
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member, RoleGrant, membership_changed
from handbook.orgunits import OrgUnit
from handbook.permissions import ADMIN_ROLES, forbidden, has_role_over, not_found, scope_roots


def remove(member: Member, *, reason: str, actor_id: int | None = None) -> bool:
    """Deactivate `member` (see the module); False if they were already inactive. The caller commits."""
    if not member.active:
        return False
    member.active = False
    revoke_member_sessions(member.id, "member_removed")
    for grant in list(member.roles):
        audit.record("role.revoke", actor_id=actor_id, target_type="member", target_id=member.id,
                     role=grant.role, org_unit=grant.org_unit.code, reason="member_removed")
        member.roles.remove(grant)
    audit.record("member.remove", actor_id=actor_id, target_type="member", target_id=member.id,
                 org_unit=member.org_unit.code, reason=reason)
    db.session.flush()
    membership_changed.send(None, unit_ids={member.org_unit_id})
    return True


def remove_by_admin(viewer: Member, member_id: int, reason: str) -> None:
    """An admin removes a member of their scope: 403 without the admin role, 404 for a member outside
    every scope of it (no existence leak), 409 for themselves (`cannot_remove_self`) and for the last
    active admin over a unit (`last_admin`): either would leave a unit that only the command line can
    administer again."""
    if not scope_roots(viewer, ADMIN_ROLES):
        raise forbidden()
    member = db.session.get(Member, member_id)
    if member is None or not has_role_over(viewer, member.org_unit, ADMIN_ROLES):
        raise not_found()
    if member.id == viewer.id:
        raise ProblemError("cannot_remove_self", 409)
    orphaned = units_left_without_admin(member)
    if orphaned:
        raise ProblemError("last_admin", 409, unit=orphaned[0].name, extra={"org_unit_id": orphaned[0].id})
    remove(member, reason=reason, actor_id=viewer.id)
    db.session.commit()


def units_left_without_admin(member: Member) -> list[OrgUnit]:
    """The units over which `member` holds the admin role and no other active member holds it over the
    unit or one of its ancestors (locked, so two admins removing each other at once cannot both pass)."""
    units = [g.org_unit for g in member.roles if g.role in ADMIN_ROLES]
    if not units:
        return []
    stmt = (select(OrgUnit.path).join(RoleGrant, RoleGrant.org_unit_id == OrgUnit.id)
            .join(Member, Member.id == RoleGrant.member_id)
            .where(RoleGrant.role.in_(ADMIN_ROLES), Member.active.is_(True), Member.id != member.id))
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=RoleGrant, key_share=True)
    others = list(db.session.scalars(stmt))
    return [u for u in units if not any(u.path.startswith(path) for path in others)]


def remove_by_card(card_number: str, reason: str) -> bool:
    """The command line's removal (no actor: an operator on the server)."""
    member = db.session.scalar(select(Member).where(Member.card_number == card_number))
    if member is None:
        raise LookupError(card_number)
    removed = remove(member, reason=reason)
    db.session.commit()
    return removed
