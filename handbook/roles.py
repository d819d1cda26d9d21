"""Granting and taking back one role of one member (admins within their scope): the API's
/admin/members/{id}/roles and the console's member page call these.

Rules (`handbook.permissions`, as for removals): the caller needs the admin role; the member must be in
their admin scope (404 otherwise: no existence leak); the unit the role is granted over must be in it
too (403 otherwise, as for any org unit outside the caller's scope). Taking back the admin role of the
last active admin over a unit is refused (409 `last_admin`), as is a member taking back their own admin
role (409 `cannot_revoke_self`): either would leave a unit only the command line can administer.
Granting a role already held, or taking back one not held, changes nothing (idempotent). Every change is
audited (`role.grant`, `role.revoke`) and recounts the member's unit's progress (documents may be
addressed to roles), in one transaction.
"""
from __future__ import annotations

from sqlalchemy import select

from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import ROLE_VALUES, Member, Role, RoleGrant, membership_changed
from handbook.membersearch import member_for_admin
from handbook.orgunits import OrgUnit
from handbook.permissions import ADMIN_ROLES, forbidden, has_role_over
from handbook.removal import units_left_without_admin

ROLES = tuple(r.value for r in Role)


def grants(viewer: Member, member_id: int) -> list[dict]:
    """The member's roles, each with its unit, shallowest unit first."""
    member = member_for_admin(viewer, member_id)
    return [{"role": g.role, "org_unit": g.org_unit.brief()}
            for g in sorted(member.roles, key=lambda g: (g.org_unit.path, g.role))]


def _checked(viewer: Member, member_id: int, role: str, org_unit_id: int) -> tuple[Member, OrgUnit]:
    member = member_for_admin(viewer, member_id)
    errors = {}
    if role not in ROLE_VALUES:
        errors["role"] = [f"Must be one of: {', '.join(ROLES)}."]
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        errors["org_unit"] = ["unknown_unit"]
    if errors:
        raise ProblemError("validation_error", 422, errors=errors)
    if not has_role_over(viewer, unit, ADMIN_ROLES):
        raise forbidden()
    return member, unit


def _grant_row(member: Member, role: str, unit: OrgUnit) -> RoleGrant | None:
    return db.session.scalar(select(RoleGrant).where(RoleGrant.member_id == member.id, RoleGrant.role == role,
                                                     RoleGrant.org_unit_id == unit.id))


def grant(viewer: Member, member_id: int, role: str, org_unit_id: int) -> tuple[dict, bool]:
    """Grant `role` over the unit; returns ({role, org_unit}, created)."""
    member, unit = _checked(viewer, member_id, role, org_unit_id)
    if not member.active:
        raise ProblemError("conflict", 409)
    created = _grant_row(member, role, unit) is None
    if created:
        member.roles.append(RoleGrant(role=role, org_unit=unit))
        audit.record("role.grant", actor_id=viewer.id, target_type="member", target_id=member.id, role=role,
                     org_unit=unit.code)
        db.session.flush()
        membership_changed.send(None, unit_ids={member.org_unit_id})
    db.session.commit()
    return {"role": role, "org_unit": unit.brief()}, created


def revoke(viewer: Member, member_id: int, role: str, org_unit_id: int) -> bool:
    """Take back `role` over the unit; False when the member did not hold it."""
    member, unit = _checked(viewer, member_id, role, org_unit_id)
    row = _grant_row(member, role, unit)
    if row is None:
        return False
    if role in ADMIN_ROLES:
        if member.id == viewer.id:
            raise ProblemError("cannot_revoke_self", 409)
        orphaned = [u for u in units_left_without_admin(member) if u.id == unit.id]
        if orphaned:
            raise ProblemError("last_admin", 409, unit=unit.name, extra={"org_unit_id": unit.id})
    member.roles.remove(row)
    audit.record("role.revoke", actor_id=viewer.id, target_type="member", target_id=member.id, role=role,
                 org_unit=unit.code, reason="admin")
    db.session.flush()
    membership_changed.send(None, unit_ids={member.org_unit_id})
    db.session.commit()
    return True
