"""The materialised-path org tree: subtree queries, ancestors, recomputation, scope checks."""
from __future__ import annotations

from handbook import permissions
from handbook.extensions import db
from handbook.orgunits import OrgUnit, ancestors_of, path_upper_bound, recompute_paths, subtree_of
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
        return
    tree = small_tree()
    stmt = subtree_of(tree["ba_dinh"]).compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        conn.execute(db.text("SET enable_seqscan = off"))  # tiny table: ask whether the index *can* serve it
        plan = "\n".join(row[0] for row in conn.execute(db.text(f"EXPLAIN {stmt}")))
    assert "ix_org_units_path" in plan and "Index" in plan
    assert "Filter" not in plan  # the whole predicate is the index range, nothing re-checked row by row
