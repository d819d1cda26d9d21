"""Finding a member for an admin: by party card number or phone number (exact, any spelling of the
phone), or by a part of the name (as typed, case-insensitive), within the admin's scope only. A member
outside it does not exist for them (404, as everywhere)."""
from __future__ import annotations

from sqlalchemy import or_, select

from handbook.extensions import db
from handbook.members import Member, find_by_login
from handbook.orgunits import OrgUnit, in_subtree
from handbook.permissions import ADMIN_ROLES, forbidden, has_role_over, not_found, scope_roots
from handbook.text import nfc


def _roots(viewer: Member):
    roots = scope_roots(viewer, ADMIN_ROLES)
    if not roots:
        raise forbidden()
    return roots


def search(viewer: Member, q: str, *, limit: int = 30) -> list[Member]:
    """Members of the admin's scope matching `q`: the one with that card number or phone, else those whose
    name contains it (an index-free scan of the scope's members, one statement), by name."""
    roots = _roots(viewer)
    q = (nfc(q) or "")[:100]
    if not q:
        return []
    exact = find_by_login(q)
    if exact is not None and has_role_over(viewer, exact.org_unit, ADMIN_ROLES):
        return [exact]
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return list(db.session.scalars(
        select(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .where(Member.full_name.ilike(pattern, escape="\\"), or_(*(in_subtree(OrgUnit.path, r.path) for r in roots)))
        .order_by(Member.full_name, Member.id).limit(limit)))


def member_for_admin(viewer: Member, member_id: int) -> Member:
    """A member of the admin's scope; 403 without the admin role, 404 outside its scope."""
    _roots(viewer)
    member = db.session.get(Member, member_id)
    if member is None or not has_role_over(viewer, member.org_unit, ADMIN_ROLES):
        raise not_found()
    return member
