"""Authorisation in one place.

Roles are granted over a unit and reach its whole subtree. Every reader is a member; the follow-up
roles see their scope. A unit outside the caller's scope answers 403; a member or document outside it
answers 404 (no existence leak) — callers pick `forbidden()` or `not_found()` accordingly.
"""
from __future__ import annotations

from collections.abc import Iterable

from handbook.errors import ProblemError
from handbook.members import Member, Role
from handbook.orgunits import OrgUnit

FOLLOW_UP_ROLES = frozenset({Role.SECRETARY.value, Role.COMMITTEE.value, Role.PUBLISHER.value, Role.ADMIN.value})
PUBLISH_ROLES = frozenset({Role.PUBLISHER.value, Role.ADMIN.value})
ADMIN_ROLES = frozenset({Role.ADMIN.value})


def _as_set(roles: str | Iterable[str]) -> frozenset[str]:
    return frozenset({roles}) if isinstance(roles, str) else frozenset(roles)


def scope_roots(member: Member, roles: str | Iterable[str]) -> list[OrgUnit]:
    """The topmost units over which the member holds any of `roles` (nested grants collapsed)."""
    wanted = _as_set(roles)
    units = sorted({g.org_unit.path: g.org_unit for g in member.roles if g.role in wanted}.values(),
                   key=lambda u: u.path)
    roots: list[OrgUnit] = []
    for unit in units:
        if not any(unit.path.startswith(r.path) for r in roots):
            roots.append(unit)
    return roots


def has_role_over(member: Member, unit: OrgUnit, roles: str | Iterable[str]) -> bool:
    wanted = _as_set(roles)
    return any(g.role in wanted and unit.path.startswith(g.org_unit.path) for g in member.roles)


def require_role_over(member: Member, unit: OrgUnit, roles: str | Iterable[str]) -> None:
    """403 when the unit is outside every scope in which the member holds one of `roles`."""
    if not has_role_over(member, unit, roles):
        raise forbidden()


def can_see_member(viewer: Member, other: Member, roles: str | Iterable[str] = FOLLOW_UP_ROLES) -> bool:
    return viewer.id == other.id or has_role_over(viewer, other.org_unit, roles)


def can_import(member: Member) -> bool:
    """A file of units or members may touch any unit of the tree (a row moves a member anywhere, grants a
    role anywhere): importing one through the web is for an admin over a root unit only."""
    return any(g.role in ADMIN_ROLES and g.org_unit.depth == 0 for g in member.roles)


def forbidden() -> ProblemError:
    return ProblemError("forbidden", 403)


def not_found() -> ProblemError:
    return ProblemError("not_found", 404)
