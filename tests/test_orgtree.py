"""The materialised-path org tree: subtree queries, ancestors, recomputation, scope checks."""
from __future__ import annotations

import pytest

from handbook import permissions
from handbook.errors import ProblemError
from handbook.extensions import db
from handbook.orgunits import OrgUnit, ancestors_of, in_subtree, path_upper_bound, recompute_paths, subtree_of
from tests.factories import member, small_tree, unit


def test_subtree_is_a_range_and_excludes_lookalike_ids(app):
    tree = small_tree()
    codes = [u.code for u in db.session.scalars(subtree_of(tree["ba_dinh"]))]
    assert codes == ["HN.BD", "HN.BD.DB", "HN.BD.DB.1", "HN.BD.DB.2"]
    # '/1/2/' must not capture '/1/20/...': the bound is '/1/20' exclusive of '/1/2' + digits.
    assert path_upper_bound("/1/2/") == "/1/20"
    assert "/1/20/" >= path_upper_bound("/1/2/")
    whole = list(db.session.scalars(subtree_of(tree["city"])))
    assert len(whole) == 7


def test_the_subtree_of_2_does_not_hold_20_nor_3_hold_30(app):
    """Siblings whose ids share a prefix (2 and 20, 3 and 30), each with a child, queried in the
    database: a subtree is its root and its descendants, never a lookalike sibling's (`LIKE '/1/2%'`)."""
    def add(unit_id: int, parent: OrgUnit | None, kind: str) -> OrgUnit:
        u = OrgUnit(id=unit_id, code=f"L{unit_id}", name=f"Đơn vị {unit_id}", kind=kind,
                    parent_id=parent.id if parent else None, depth=(parent.depth + 1) if parent else 0,
                    path=f"{parent.path if parent else '/'}{unit_id}/")
        db.session.add(u)
        db.session.flush()
        return u

    root = add(1, None, "city")
    units = {i: add(i, root, "district") for i in (2, 20, 3, 30)}
    for parent_id, child_id in ((2, 4), (20, 200), (3, 5), (30, 31)):
        units[child_id] = add(child_id, units[parent_id], "grassroots")
    db.session.commit()
    expected = {2: [2, 4], 20: [20, 200], 3: [3, 5], 30: [30, 31], 1: [1, 2, 4, 20, 200, 3, 5, 30, 31]}
    for root_id, ids in expected.items():
        found = [u.id for u in db.session.scalars(subtree_of(db.session.get(OrgUnit, root_id)))]
        assert found == ids, root_id
    assert db.session.scalar(db.select(db.func.count()).select_from(OrgUnit)
                             .where(in_subtree(OrgUnit.path, "/1/2/"))) == 2
    assert units[2].contains(units[4]) and not units[2].contains(units[20]) and not units[2].contains(units[200])


def test_ancestors_root_first(app):
    tree = small_tree()
    assert [u.code for u in ancestors_of(tree["b2"])] == ["HN", "HN.BD", "HN.BD.DB"]
    assert ancestors_of(tree["city"]) == []


def test_recompute_paths_after_a_move(app):
    tree = small_tree()
    phuong = tree["phuong"]
    phuong.parent_id = tree["dong_da"].id
    db.session.commit()
    changed = recompute_paths()
    db.session.commit()
    assert sorted(changed) == sorted([phuong.id, tree["b1"].id, tree["b2"].id])  # the unit and its branches
    db.session.expire_all()
    b1 = db.session.get(OrgUnit, tree["b1"].id)
    assert b1.path == f"{tree['dong_da'].path}{phuong.id}/{b1.id}/"
    assert b1.depth == 3
    assert recompute_paths() == []


def test_role_scope_reaches_the_subtree_only(app):
    tree = small_tree()
    secretary = member("01000001", tree["b1"], roles=[("secretary", tree["b1"])])
    committee = member("01000002", tree["b1"], roles=[("committee", tree["ba_dinh"]),
                                                      ("committee", tree["phuong"])])
    assert permissions.has_role_over(secretary, tree["b1"], "secretary")
    assert not permissions.has_role_over(secretary, tree["b2"], "secretary")
    assert not permissions.has_role_over(secretary, tree["b1"], "committee")
    assert permissions.has_role_over(committee, tree["b2"], permissions.FOLLOW_UP_ROLES)
    assert not permissions.has_role_over(committee, tree["cbcs"], permissions.FOLLOW_UP_ROLES)
    assert [u.code for u in permissions.scope_roots(committee, "committee")] == ["HN.BD"]
    other = member("01000003", tree["cbcs"])
    assert permissions.can_see_member(committee, secretary)
    assert not permissions.can_see_member(committee, other)
    assert permissions.can_see_member(secretary, committee, "secretary")  # same branch
    assert not permissions.can_see_member(secretary, other, "secretary")


def test_require_role_over_is_403_outside_the_scope(app):
    tree = small_tree()
    secretary = member("01000001", tree["b1"], roles=[("secretary", tree["b1"])])
    assert permissions.require_role_over(secretary, tree["b1"], "secretary") is None
    assert permissions.require_role_over(secretary, tree["b1"], ["committee", "secretary"]) is None
    for unit, roles in ((tree["b2"], "secretary"), (tree["b1"], "committee"), (tree["ba_dinh"], "secretary")):
        with pytest.raises(ProblemError) as refused:
            permissions.require_role_over(secretary, unit, roles)
        assert (refused.value.code, refused.value.status) == ("forbidden", 403)


def test_deep_tree_paths_hold(app):
    city = unit("C", "city")
    upper = unit("C.U", "upper", city)
    grass = unit("C.U.G", "grassroots", upper)
    sub = unit("C.U.G.S", "sub", grass)
    branch = unit("C.U.G.S.B", "branch", sub)
    assert branch.path == f"/{city.id}/{upper.id}/{grass.id}/{sub.id}/{branch.id}/"
    assert city.contains(branch) and not branch.contains(city)


def test_subtree_query_is_an_index_range_scan_on_postgresql(app, backend):
    if backend != "postgresql":
        pytest.skip("EXPLAIN and the index range scan are PostgreSQL's")
    tree = small_tree()
    stmt = subtree_of(tree["ba_dinh"]).compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        conn.execute(db.text("SET enable_seqscan = off"))  # tiny table: ask whether the index *can* serve it
        plan = "\n".join(row[0] for row in conn.execute(db.text(f"EXPLAIN {stmt}")))
    assert "ix_org_units_path" in plan and "Index" in plan
    assert "Filter" not in plan  # the whole predicate is the index range, nothing re-checked row by row
