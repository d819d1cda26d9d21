"""Choosing units for a form (the audience of a document): the units a member may pick, found by name or
code within their scope. Names match accent-, case- and đ-insensitively (`ba dinh` finds `Quận ủy Ba
Đình`). A search reads the codes and names of the scope's units once (an index range scan per scope root):
O(units in scope), about 25,000 for a city, for a person typing in a search box."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select

from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.permissions import scope_roots
from handbook.text import fold


def pickable_units(member: Member, roles: str | Iterable[str], q: str | None = None, *,
                   limit: int = 50) -> list[OrgUnit]:
    """Without `q`: the member's scope roots for `roles` and their direct children. With `q`: units of
    those scopes whose code or name holds every word of `q`, shallowest first."""
    roots = scope_roots(member, roles)
    if not roots:
        return []
    if not (q or "").strip():
        children = db.session.scalars(select(OrgUnit).where(OrgUnit.parent_id.in_([r.id for r in roots]))
                                      .order_by(OrgUnit.path).limit(limit)).all()
        return [*roots, *children][:limit]
    words = fold(q).split()
    scope = or_(*(in_subtree(OrgUnit.path, r.path) for r in roots))
    found = []
    rows = db.session.execute(select(OrgUnit.id, OrgUnit.code, OrgUnit.name, OrgUnit.depth).where(scope)
                              .execution_options(yield_per=2000))
    for row in rows:
        text = f"{fold(row.code)} {fold(row.name)}"
        if all(w in text for w in words):
            found.append(row)
    found.sort(key=lambda r: (r.depth, r.name))
    ids = [r.id for r in found[:limit]]
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)))} if ids else {}
    return [units[i] for i in ids if i in units]


def units_by_id(ids: Iterable[int]) -> list[OrgUnit]:
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)))}
    return [units[i] for i in ids if i in units]
