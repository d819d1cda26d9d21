"""Every access that exports members' data and every change of who may do what leaves an audit entry
(Decree 13/2023): exports, briefings, exemptions, role changes, removals and imports, each with its actor,
target and details, readable through GET /admin/audit, and none holding a password."""
from __future__ import annotations

from tests.test_acknowledgements import API
from tests.test_imports import write_csv

MEMBER_HEADER = ["card_number", "full_name", "phone", "org_unit_code", "roles", "password"]


def test_each_sensitive_action_is_audited_once_with_actor_target_and_details(app, api, tree, tmp_path):
    doc = api.publish("ba_dinh")
    cli = app.test_cli_runner()

    assert api.client.get(f"{API}/documents/{doc}/members", query_string={"format": "xlsx"},
                          headers=api.auth("S1")).status_code == 200
    assert api.brief("S1", doc, [api.id("M1")]).status_code == 200
    assert api.exempt("S1", doc, [api.id("M2")], reason="Ốm dài ngày").status_code == 200
    units = write_csv(tmp_path, "units.csv", ["code", "name", "kind", "parent_code"],
                      [["HN.BD.DB.3", "Chi bộ Tổ dân phố số 3", "branch", "HN.BD.DB"]])
    assert cli.invoke(args=["handbook", "import-org-units", units]).exit_code == 0
    members = write_csv(tmp_path, "members.csv", MEMBER_HEADER,
                        [["M1", "Nguyễn Văn An", "", "HN.BD.DB.1", "committee@HN.BD", ""],
                         ["N1", "Trần Văn Mới", "0912000111", "HN.BD.DB.3", "", "Mat-Khau-Ban-Dau-1"]])
    assert cli.invoke(args=["handbook", "import-members", members]).exit_code == 0
    assert api.client.post(f"{API}/admin/members/{api.id('M2')}/removal", json={"reason": "Từ trần"},
                           headers=api.auth("BT")).status_code == 204

    entries = _all(api)
    by_action: dict[str, list[dict]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)

    (export,) = by_action["export.members"]
    assert (export["actor"]["card_number"], export["target_type"], export["target_id"]) == ("S1", "document", str(doc))
    assert export["details"]["format"] == "xlsx"
    (briefing,) = by_action["acknowledgement.briefing"]
    assert briefing["actor"]["card_number"] == "S1" and briefing["target_id"] == str(doc)
    assert briefing["details"]["members"] == [api.id("M1")]
    (exemption,) = by_action["acknowledgement.exemption"]
    assert exemption["actor"]["card_number"] == "S1" and exemption["details"]["reason"] == "Ốm dài ngày"
    assert exemption["details"]["members"] == [api.id("M2")]
    (units_import,) = by_action["import.org_units"]
    assert units_import["actor"] is None and units_import["target_id"] == "units.csv"
    assert units_import["details"]["created"] == 1
    (members_import,) = by_action["import.members"]
    assert members_import["target_id"] == "members.csv"
    assert (members_import["details"]["created"], members_import["details"]["roles_granted"]) == (1, 1)
    (grant,) = by_action["role.grant"]
    assert (grant["target_id"], grant["details"]["role"], grant["details"]["org_unit"]) == (
        str(api.id("M1")), "committee", "HN.BD")
    (removal,) = by_action["member.remove"]
    assert removal["actor"]["card_number"] == "BT" and removal["target_id"] == str(api.id("M2"))
    assert removal["details"]["reason"] == "Từ trần"

    text = repr(entries)
    assert "Mat-Khau-Ban-Dau-1" not in text and "0912000111" not in text and "$argon2" not in text


def _all(api) -> list[dict]:
    """The whole trail, page by page, as the city's admin sees it."""
    items, cursor = [], None
    while True:
        query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"{API}/admin/audit", query_string=query, headers=api.auth("BT"))
        assert page.status_code == 200, page.get_data(as_text=True)
        items += page.json["items"]
        cursor = page.json["next_cursor"]
        if cursor is None:
            return items
