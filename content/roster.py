"""A follow-up member list searched by name (the secretary's "find Bình in my branch").

Names are matched accent-, case- and đ-insensitively (`binh` finds `Trần Thị Bình`), every word of the
query as a substring of the folded name. Same access rules, rows and order as `followup.members`; the
rows of the unit's subtree are streamed and folded in Python, so the cost is O(members of the unit):
meant for a branch or a grassroots unit, where a name is looked for, and refused at the root of the
tree (every member of a city or province), where it would read them all.
"""
from __future__ import annotations

from content.followup import _member_query, _row, followed_document, resolve_unit
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.text import fold
from handbook.timeutil import utcnow


def find_members(viewer: Member, document_id: int, q: str, *, org_unit: int | None = None,
                 state: str | None = None, limit: int = 100) -> list[dict]:
    """The first `limit` audience members of the unit's subtree whose name matches `q`, pending first."""
    unit = resolve_unit(viewer, org_unit)
    doc = followed_document(viewer, document_id, unit)
    if unit.depth == 0:
        raise ProblemError("validation_error", 422, errors={"q": ["narrow_unit"]})
    words = fold(q or "").split()
    stmt, rank = _member_query(doc, unit, state, utcnow())
    stmt = stmt.order_by(rank, OrgUnit.path, Member.id).execution_options(yield_per=1000)
    found = []
    for row in db.session.execute(stmt):
        name = fold(row.full_name)
        if all(word in name for word in words):
            found.append(_row(row))
            if len(found) >= limit:
                break
    return found
