"""Demo data: a Hanoi-shaped tree, valid invariants, working demo logins, loaded only into an empty database."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handbook.demo import DEMO_PASSWORD, DemoExists, demo_logins, load_demo
from handbook.extensions import db
from handbook.members import Member, RoleGrant
from handbook.orgunits import OrgUnit, holds_members
from tests.factories import bearer, login


def test_demo_tree_is_consistent_and_logins_work(app, client):
    load_demo(600, seed=7)
    units = {u.id: u for u in db.session.scalars(select(OrgUnit))}
    kinds = {k: sum(1 for u in units.values() if u.kind == k) for k in ("city", "upper", "grassroots", "branch")}
    assert kinds["city"] == 1 and kinds["upper"] >= 2 and kinds["grassroots"] >= 2 and kinds["branch"] >= 3
    for unit in units.values():
        parent = units.get(unit.parent_id)
        assert unit.path == (parent.path if parent else "/") + f"{unit.id}/"
        assert unit.depth == (parent.depth + 1 if parent else 0)
    parents = {u.parent_id for u in units.values()}
    counts = dict(db.session.execute(select(Member.org_unit_id, func.count()).group_by(Member.org_unit_id)).all())
    assert sum(counts.values()) == 600
    for unit_id in counts:
        assert holds_members(units[unit_id].kind, unit_id in parents)
    assert db.session.scalar(select(func.count(func.distinct(Member.phone)))) == 600

    lines = demo_logins()
    assert len(lines) == 4 and all(DEMO_PASSWORD in line for line in lines)
    token = login(client, "01000003", DEMO_PASSWORD).json["access_token"]
    me = client.get("/api/v1/me", headers=bearer(token)).json
    assert [r["role"] for r in me["roles"]] == ["secretary"]
    assert me["roles"][0]["org_unit"]["id"] == me["org_unit"]["id"]
    board = login(client, "01000001", DEMO_PASSWORD).json["member"]
    assert {r["role"] for r in board["roles"]} == {"admin", "publisher"}
    assert all(r["org_unit"]["kind"] == "city" for r in board["roles"])
    # Every branch has a secretary.
    holding = set(counts)
    secretaries = set(db.session.scalars(select(RoleGrant.org_unit_id).where(RoleGrant.role == "secretary")))
    assert holding <= secretaries


def test_demo_refuses_a_database_with_data(app):
    load_demo(50)
    with pytest.raises(DemoExists):
        load_demo(50)
    result = app.test_cli_runner().invoke(args=["handbook", "demo", "--members", "50", "--if-empty"])
    assert result.exit_code == 0
    assert "already has data" in result.output and "01000001" in result.output
    assert db.session.scalar(select(func.count()).select_from(Member)) == 50
