"""Removing a member: their tokens stop at once, their roles go, progress is recounted, all audited."""
from __future__ import annotations

from sqlalchemy import select

from handbook.extensions import db
from handbook.imports import import_members
from handbook.members import Member, RoleGrant
from tests.factories import bearer, login, member
from tests.test_acknowledgements import API, expected_counters, stored_counters
from tests.test_errors import assert_problem
from tests.test_imports import write_csv


def remove(api, card: str, by: str = "BT", reason: str = "Chuyển sinh hoạt ra ngoài thành phố"):
    return api.client.post(f"{API}/admin/members/{api.id(card)}/removal", json={"reason": reason},
                           headers=api.auth(by))


def test_a_removed_member_loses_every_session_role_and_count_at_once(api, tree):
    doc = api.publish("ba_dinh")
    tokens = login(api.client, "S1").json
    assert api.ack("S1", doc).status_code == 200
    assert api.figures("BT", doc, "b1")["total"] == 4

    assert remove(api, "S1").status_code == 204

    # The access token of each session stops working on the next request; so do refresh and login.
    assert_problem(api.client.get(f"{API}/me", headers=bearer(tokens["access_token"])), 401, "token_revoked")
    assert_problem(api.client.get(f"{API}/me", headers=api.auth("S1")), 401, "token_revoked")
    assert_problem(api.client.post(f"{API}/auth/refresh", headers=bearer(tokens["refresh_token"])), 401,
                   "token_revoked")
    assert_problem(login(api.client, "S1"), 401, "invalid_credentials")
    # Roles taken back; the unit's progress no longer counts them; their receipt is kept for the record.
    assert db.session.scalars(select(RoleGrant).where(RoleGrant.member_id == api.id("S1"))).all() == []
    figures = api.figures("BT", doc, "b1")
    assert (figures["total"], figures["acknowledged"]) == (3, 0)
    assert stored_counters() == expected_counters()
    assert sorted(row["member"]["card_number"] for row in api.all_members("BT", doc, org_unit="b1")) == [
        "CB", "M1", "M2"]

    entries = api.audit("member.remove")
    assert len(entries) == 1
    assert entries[0]["target_id"] == str(api.id("S1")) and entries[0]["actor"]["card_number"] == "BT"
    assert entries[0]["details"] == {"org_unit": "HN.BD.DB.1", "reason": "Chuyển sinh hoạt ra ngoài thành phố"}
    revoked = api.audit("role.revoke")
    assert [(e["target_id"], e["details"]["role"], e["details"]["org_unit"]) for e in revoked] == [
        (str(api.id("S1")), "secretary", "HN.BD.DB.1")]

    # Again: nothing changes, nothing more is audited.
    assert remove(api, "S1").status_code == 204
    assert len(api.audit("member.remove")) == 1


def test_only_an_admin_over_the_member_removes_them(api, tree):
    member("AD", tree["dong_da"], roles=[("admin", tree["dong_da"])])
    assert_problem(remove(api, "M1", by="S1"), 403, "forbidden")       # a secretary is no admin
    assert_problem(remove(api, "M1", by="AD"), 404, "not_found")       # another district's admin
    missing = api.client.post(f"{API}/admin/members/999999/removal", json={"reason": "x"}, headers=api.auth("BT"))
    assert_problem(missing, 404, "not_found")
    body = assert_problem(api.client.post(f"{API}/admin/members/{api.id('M1')}/removal", json={},
                                          headers=api.auth("BT")), 422, "validation_error")
    assert set(body["errors"]) == {"reason"}
    assert_problem(api.client.post(f"{API}/admin/members/{api.id('M1')}/removal", json={"reason": "x"}), 401,
                   "unauthorized")
    assert db.session.get(Member, api.id("M1")).active is True
    assert remove(api, "M5", by="AD").status_code == 204                # inside their own district
    assert db.session.get(Member, api.id("M5")).active is False


def test_the_command_line_removes_by_card_number_and_a_reimport_restores(app, api, tree, tmp_path):
    doc = api.publish("ba_dinh")
    token = api.auth("M1")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["handbook", "remove-member", "M1", "--reason", "Từ trần"])
    assert result.exit_code == 0, result.output
    assert "removed" in result.output
    assert_problem(api.client.get(f"{API}/me", headers=token), 401, "token_revoked")
    entry = api.audit("member.remove")[0]
    assert entry["actor"] is None and entry["details"]["reason"] == "Từ trần"
    assert api.figures("BT", doc, "b1")["total"] == 3

    again = runner.invoke(args=["handbook", "remove-member", "M1", "--reason", "Từ trần"])
    assert again.exit_code == 0 and "already inactive" in again.output
    unknown = runner.invoke(args=["handbook", "remove-member", "NOPE", "--reason", "x"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output

    # Listed again in an import (rejoined): active and counted again.
    path = write_csv(tmp_path, "m.csv", ["card_number", "full_name", "phone", "org_unit_code", "roles", "password"],
                     [["M1", "Nguyễn Văn An", "", "HN.BD.DB.1", "", ""]])
    report = import_members(path)
    assert report.errors == []
    assert db.session.get(Member, api.id("M1")).active is True
    assert api.figures("BT", doc, "b1")["total"] == 4
    assert stored_counters() == expected_counters()
    assert login(api.client, "M1").status_code == 200
