"""CSV/XLSX imports of org units and members (API.md "CSV imports" and "CLI").

Everything is real: files are written to a temp dir, imported into the real database (SQLite and
PostgreSQL) through `handbook.imports` or the `flask handbook import-*` commands, and the results are
read back from the database and through the HTTP API.
"""
from __future__ import annotations

import csv
import io
import unicodedata

from sqlalchemy import func, select

from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.imports import BATCH_SIZE, RowError, import_members, import_org_units
from handbook.members import Member, MemberTransfer, RoleGrant
from handbook.orgunits import OrgUnit, has_children, holds_members, subtree_of
from tests.factories import bearer, login, member, small_tree

UNIT_HEADER = ["code", "name", "kind", "parent_code"]
MEMBER_HEADER = ["card_number", "full_name", "phone", "org_unit_code", "roles", "password"]


# --- helpers -----------------------------------------------------------------------------------------

def write_csv(directory, name: str, header: list[str], rows: list[list], encoding: str = "utf-8") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = directory / name
    path.write_bytes(buffer.getvalue().encode(encoding))
    return str(path)


def errors_of(report) -> set[tuple[int, str, str]]:
    return {(e.line, e.column, e.code) for e in report.errors}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def units_by_code() -> dict[str, OrgUnit]:
    db.session.expire_all()
    return {u.code: u for u in db.session.scalars(select(OrgUnit))}


def member_by_card(card: str) -> Member:
    db.session.expire_all()
    return db.session.scalar(select(Member).where(Member.card_number == card))


def roles_of(card: str) -> set[tuple[str, str]]:
    m = member_by_card(card)
    return {(g.role, g.org_unit.code) for g in m.roles}


def assert_tree_consistent() -> dict[str, OrgUnit]:
    """Every unit's path/depth follows from its parent's; subtree_of(u) is exactly u's descendants."""
    units = units_by_code()
    by_id = {u.id: u for u in units.values()}
    for u in units.values():
        if u.parent_id is None:
            assert (u.path, u.depth) == (f"/{u.id}/", 0), u.code
        else:
            parent = by_id[u.parent_id]
            assert u.path == f"{parent.path}{u.id}/", u.code
            assert u.depth == parent.depth + 1, u.code
    children: dict[int, list[int]] = {}
    for u in units.values():
        if u.parent_id is not None:
            children.setdefault(u.parent_id, []).append(u.id)
    for u in units.values():
        expected, stack = set(), [u.id]
        while stack:
            uid = stack.pop()
            expected.add(by_id[uid].code)
            stack += children.get(uid, [])
        assert {s.code for s in db.session.scalars(subtree_of(u))} == expected, u.code
    return units


def subtree_codes(code: str) -> set[str]:
    unit = units_by_code()[code]
    return {u.code for u in db.session.scalars(subtree_of(unit))}


# Children deliberately come before their parents.
HANOI_ROWS = [
    ["HN.BD.DB.1", "Chi bộ Tổ dân phố số 1", "branch", "HN.BD.DB"],
    ["HN.BD.DB.BP1.A", "Chi bộ Khu tập thể A", "branch", "HN.BD.DB.BP1"],
    ["HN.BD.DB.BP1", "Đảng bộ bộ phận Khu 1", "sub", "HN.BD.DB"],
    ["HN.BD.DB", "Đảng bộ phường Điện Biên", "grassroots", "HN.BD"],
    ["HN.BD.DB.2", "Chi bộ Tổ dân phố số 2", "branch", "HN.BD.DB"],
    ["HN.DD.CB", "Chi bộ cơ sở Trường THCS Láng Thượng", "grassroots", "HN.DD"],
    ["HN.BD", "Quận ủy Ba Đình", "upper", "HN"],
    ["HN.DD", "Quận ủy Đống Đa", "upper", "HN"],
    ["HN.KCQ.SYT.VP", "Chi bộ Văn phòng Sở", "branch", "HN.KCQ.SYT"],
    ["HN.KCQ.SYT", "Đảng bộ Sở Y tế", "grassroots", "HN.KCQ"],
    ["HN.KCQ", "Đảng ủy Khối các cơ quan thành phố", "upper", "HN"],
    ["HN", "Thành ủy Hà Nội", "city", ""],
]


def import_hanoi(tmp_path):
    report = import_org_units(write_csv(tmp_path, "units.csv", UNIT_HEADER, HANOI_ROWS))
    assert report.ok, report.errors
    return report


# --- org units: happy path, re-import, moves ----------------------------------------------------------

def test_org_units_happy_path_children_before_parents(app, tmp_path):
    report = import_hanoi(tmp_path)
    assert (report.rows, report.created, report.updated, report.unchanged) == (12, 12, 0, 0)

    units = assert_tree_consistent()
    assert set(units) == {r[0] for r in HANOI_ROWS}
    for code, name, kind, parent in HANOI_ROWS:
        u = units[code]
        assert (u.name, u.kind) == (name, kind)
        assert (units[parent].id if parent else None) == u.parent_id
    assert units["HN"].depth == 0 and units["HN.BD.DB.BP1.A"].depth == 4
    assert subtree_codes("HN.BD") == {"HN.BD", "HN.BD.DB", "HN.BD.DB.1", "HN.BD.DB.2", "HN.BD.DB.BP1",
                                      "HN.BD.DB.BP1.A"}
    assert subtree_codes("HN.DD") == {"HN.DD", "HN.DD.CB"}
    assert subtree_codes("HN.DD.CB") == {"HN.DD.CB"}
    assert len(subtree_codes("HN")) == 12
    # The chi bộ cơ sở holds members; the đảng bộ cơ sở with branches does not.
    cbcs, dbcs = units["HN.DD.CB"], units["HN.BD.DB"]
    assert holds_members(cbcs.kind, has_children(cbcs.id))
    assert not holds_members(dbcs.kind, has_children(dbcs.id))
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "import.org_units"))
    assert entry.details["created"] == 12


def test_org_units_reimport_is_idempotent(app, tmp_path):
    import_hanoi(tmp_path)
    before = {u.code: (u.id, u.name, u.parent_id, u.path, u.depth) for u in units_by_code().values()}
    report = import_org_units(write_csv(tmp_path, "again.csv", UNIT_HEADER, HANOI_ROWS))
    assert report.ok
    assert (report.rows, report.created, report.updated, report.unchanged) == (12, 0, 0, 12)
    after = {u.code: (u.id, u.name, u.parent_id, u.path, u.depth) for u in units_by_code().values()}
    assert after == before
    assert count(OrgUnit) == 12


def test_org_units_rename_updates_the_unit(app, tmp_path):
    import_hanoi(tmp_path)
    old_id = units_by_code()["HN.BD"].id
    report = import_org_units(write_csv(tmp_path, "rename.csv", UNIT_HEADER, [
        ["HN.BD", "Quận ủy Ba Đình (mới)", "upper", "HN"],
        ["HN.DD", "Quận ủy Đống Đa", "upper", "HN"],
    ]))
    assert report.ok
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    units = units_by_code()
    assert units["HN.BD"].name == "Quận ủy Ba Đình (mới)" and units["HN.BD"].id == old_id
    assert count(OrgUnit) == 12
    assert_tree_consistent()


def test_org_units_moving_a_grassroots_unit_moves_its_subtree(app, tmp_path):
    import_hanoi(tmp_path)
    moved = {"HN.BD.DB", "HN.BD.DB.1", "HN.BD.DB.2", "HN.BD.DB.BP1", "HN.BD.DB.BP1.A"}
    before = {c: u.depth for c, u in units_by_code().items()}

    report = import_org_units(write_csv(tmp_path, "move.csv", UNIT_HEADER, [
        ["HN.BD.DB", "Đảng bộ phường Điện Biên", "grassroots", "HN.DD"]]))
    assert report.ok and (report.updated, report.created) == (1, 0)
    units = assert_tree_consistent()
    assert units["HN.BD.DB"].parent_id == units["HN.DD"].id
    for code in moved:
        assert units[code].path.startswith(units["HN.DD"].path)
        assert units[code].depth == before[code]
    assert subtree_codes("HN.DD") == moved | {"HN.DD", "HN.DD.CB"}
    assert subtree_codes("HN.BD") == {"HN.BD"}

    # Directly under the city (allowed for grassroots): every depth in the subtree drops by one.
    report = import_org_units(write_csv(tmp_path, "move2.csv", UNIT_HEADER, [
        ["HN.BD.DB", "Đảng bộ phường Điện Biên", "grassroots", "HN"]]))
    assert report.ok
    units = assert_tree_consistent()
    for code in moved:
        assert units[code].depth == before[code] - 1
        assert units[code].path.startswith(f"/{units['HN'].id}/{units['HN.BD.DB'].id}/")
    assert subtree_codes("HN.DD") == {"HN.DD", "HN.DD.CB"}


def test_org_units_xlsx(app, tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Code", "Name", "Kind", "Parent_code"])
    for row in HANOI_ROWS[:4] + HANOI_ROWS[6:7] + HANOI_ROWS[-1:]:
        ws.append([v or None for v in row])
    path = tmp_path / "units.xlsx"
    wb.save(path)
    report = import_org_units(str(path))
    assert report.ok, report.errors
    assert report.created == 6
    units = assert_tree_consistent()
    assert units["HN.BD.DB.BP1.A"].name == "Chi bộ Khu tập thể A"


# --- org units: bad rows ----------------------------------------------------------------------------

def test_org_units_every_bad_row_is_reported_and_nothing_is_written(app, tmp_path):
    small_tree()
    before = count(OrgUnit)
    path = write_csv(tmp_path, "bad.csv", UNIT_HEADER, [
        ["", "Thiếu mã", "branch", "HN.BD.DB"],                 # 2
        ["X1", "", "branch", "HN.BD.DB"],                       # 3
        ["X2", "Chi bộ X2", "chibo", "HN.BD.DB"],               # 4
        ["X3", "Chi bộ X3", "branch", "NOPE"],                  # 5
        ["X4", "Chi bộ X4", "branch", "HN.BD.DB"],              # 6 good
        ["X4", "Chi bộ X4 lần hai", "branch", "HN.BD.DB"],      # 7
        ["X5", "Chi bộ dưới quận", "branch", "HN.BD"],          # 8
        ["HCM", "Thành ủy TP Hồ Chí Minh", "city", ""],         # 9
        ["X6", "Đảng bộ X6", "grassroots", "HN.DD"],            # 10 good
        ["HN.BD", "Quận ủy Ba Đình (đổi tên)", "upper", "HN"],  # 11 good (rename)
    ])
    report = import_org_units(path)
    assert not report.ok
    assert errors_of(report) == {
        (2, "code", "missing_value"),
        (3, "name", "missing_value"),
        (4, "kind", "bad_kind"),
        (5, "parent_code", "unknown_parent"),
        (7, "code", "duplicate"),
        (8, "kind", "bad_parent_kind"),
        (9, "parent_code", "second_root"),
    }
    by_line = {e.line: e for e in report.errors}
    assert by_line[7].params == {"other_line": 6}
    assert by_line[9].params == {"value": "HN"}
    assert by_line[8].params == {"kind": "branch", "parent_kind": "upper"}
    assert "chibo" in by_line[4].reason("en")
    # All-or-nothing: not even the good rows were written.
    units = units_by_code()
    assert count(OrgUnit) == before
    assert not {"X4", "X6", "HCM"} & set(units)
    assert units["HN.BD"].name == "Quận ủy Ba Đình"
    assert count(AuditEntry) == 0
    assert report.summary_lines() == ["org_units: 10 rows read, 7 bad; nothing was imported."]


def test_org_units_cycle_from_reimport_is_rejected(app, tmp_path):
    t = small_tree()
    paths_before = {u.code: (u.parent_id, u.path) for u in units_by_code().values()}
    # A (HN.BD.DB) under B (HN.BD) and B under A.
    report = import_org_units(write_csv(tmp_path, "cycle.csv", UNIT_HEADER, [
        ["HN.BD.DB", "Đảng bộ phường Điện Biên", "grassroots", "HN.BD"],
        ["HN.BD", "Quận ủy Ba Đình", "upper", "HN.BD.DB"],
    ]))
    assert not report.ok
    cycles = [e for e in report.errors if e.code == "cycle"]
    assert len(cycles) == 1
    assert cycles[0].line in (2, 3) and cycles[0].column == "parent_code"
    assert {"HN.BD", "HN.BD.DB"} <= set(cycles[0].params["value"].split(" → "))
    # (A cycle always also breaks the kind order: an upper unit under a grassroots one.)
    assert (3, "kind", "bad_parent_kind") in errors_of(report)
    assert {u.code: (u.parent_id, u.path) for u in units_by_code().values()} == paths_before
    assert units_by_code()["HN.BD"].parent_id == t["city"].id


def test_org_units_unit_with_members_cannot_get_children(app, tmp_path):
    t = small_tree()
    member("01000001", t["cbcs"], password=None)
    member("01000002", t["b1"], password=None)
    report = import_org_units(write_csv(tmp_path, "children.csv", UNIT_HEADER, [
        ["HN.DD.CB.1", "Chi bộ Giáo viên", "branch", "HN.DD.CB"],   # 2: a chi bộ cơ sở with members
        ["HN.BD.DB.1", "Chi bộ Tổ dân phố số 1", "sub", "HN.BD.DB"],  # 3: a branch with members → sub
        ["HN.DD.X", "Chi bộ cơ sở mới", "grassroots", "HN.DD"],      # 4: good
    ]))
    assert errors_of(report) == {(2, "parent_code", "unit_has_members"), (3, "kind", "unit_has_members")}
    assert {e.params["value"] for e in report.errors} == {"HN.DD.CB", "HN.BD.DB.1"}
    units = units_by_code()
    assert "HN.DD.CB.1" not in units and "HN.DD.X" not in units
    assert units["HN.BD.DB.1"].kind == "branch"


def test_org_units_unit_has_members_reported_along_with_other_errors(app, tmp_path):
    t = small_tree()
    member("01000001", t["cbcs"], password=None)
    report = import_org_units(write_csv(tmp_path, "mixed.csv", UNIT_HEADER, [
        ["X3", "Chi bộ X3", "branch", "NOPE"],                       # 2
        ["HN.DD.CB.1", "Chi bộ Giáo viên", "branch", "HN.DD.CB"],    # 3
    ]))
    assert errors_of(report) == {(2, "parent_code", "unknown_parent"), (3, "parent_code", "unit_has_members")}


# --- file problems ----------------------------------------------------------------------------------

def test_non_utf8_file_is_rejected(app, tmp_path):
    path = tmp_path / "cp1258.csv"
    # "Chi bộ" in Windows-1258 (ô + combining dot below): not valid UTF-8.
    path.write_bytes("code,name,kind,parent_code\nHN,Thanh uy,city,\n".encode()
                     + "HN.B,Chi b\u00f4\u0323 1,upper,HN\n".encode("cp1258"))
    report = import_org_units(str(path))
    assert [e.code for e in report.errors] == ["not_utf8"]
    assert "UTF-8" in report.errors[0].reason("en")
    assert count(OrgUnit) == 0

    members = tmp_path / "members-cp1258.csv"
    members.write_bytes("card_number,full_name,org_unit_code\n".encode()
                        + "01000001,Nguy\u00ea\u0303n V\u0103n An,HN\n".encode("cp1258"))
    report = import_members(str(members))
    assert [e.code for e in report.errors] == ["not_utf8"]
    assert count(Member) == 0


def test_non_utf8_error_names_the_line_of_the_bad_byte(app, tmp_path):
    path = tmp_path / "cp1258.csv"
    path.write_bytes("code,name,kind,parent_code\nHN,Thành ủy,city,\n".encode()
                     + "HN.B,Chi b\u00f4\u0323 1,upper,HN\n".encode("cp1258"))
    report = import_org_units(str(path))
    assert [(e.line, e.code) for e in report.errors] == [(3, "not_utf8")]


def test_empty_file_and_bom_header(app, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    report = import_org_units(str(empty))
    assert errors_of(report) == {(1, "", "empty_file")}
    assert report.summary_lines() == ["org_units: 0 rows read, 1 bad; nothing was imported."]
    assert errors_of(import_members(str(empty))) == {(1, "", "empty_file")}

    header_only = write_csv(tmp_path, "header-only.csv", UNIT_HEADER, [])
    report = import_org_units(header_only)
    assert report.ok and report.rows == 0 and count(OrgUnit) == 0

    # A UTF-8 BOM and capitalised headers (what Excel's "CSV UTF-8" writes) are fine.
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffCode,Name,Kind,Parent_Code\nHN,Thành ủy Hà Nội,city,\n".encode())
    report = import_org_units(str(bom))
    assert report.ok and report.created == 1
    assert units_by_code()["HN"].name == "Thành ủy Hà Nội"



def test_org_units_missing_column_is_reported(app, tmp_path):
    path = write_csv(tmp_path, "missing.csv", ["code", "name", "kind"], [["HN", "Thành ủy", "city"]])
    report = import_org_units(path)
    assert errors_of(report) == {(1, "parent_code", "missing_column")}
    assert "parent_code" in report.errors[0].reason("en")
    assert count(OrgUnit) == 0


def test_org_units_unknown_column_is_reported(app, tmp_path):
    path = write_csv(tmp_path, "unknown.csv", UNIT_HEADER + ["ghi_chu"], [["HN", "Thành ủy", "city", "", "x"]])
    report = import_org_units(path)
    assert errors_of(report) == {(1, "ghi_chu", "unknown_column")}
    assert count(OrgUnit) == 0


def test_members_missing_column_is_reported(app, tmp_path):
    small_tree()
    path = write_csv(tmp_path, "m.csv", ["card_number", "full_name", "phone"], [["01000001", "An", ""]])
    report = import_members(path)
    assert errors_of(report) == {(1, "org_unit_code", "missing_column")}
    assert count(Member) == 0


def test_cli_missing_column_reports_instead_of_crashing(app, tmp_path):
    path = write_csv(tmp_path, "missing.csv", ["code", "name", "kind"], [["HN", "Thành ủy", "city"]])
    result = app.test_cli_runner().invoke(args=["handbook", "import-org-units", path])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "line 1, column parent_code [missing_column]: " in result.stderr


# --- members: happy path, XLSX ---------------------------------------------------------------------

HUONG_NFC = "Nguyễn Thị Hương"


def member_rows():
    return [
        ["01000001", unicodedata.normalize("NFD", HUONG_NFC), "0912 345 678", "HN.BD.DB.1", "secretary",
         "mat-khau-so-1"],
        ["01000002", "Trần Văn Nam", "+84987654321", "HN.BD.DB.1", "committee@HN.BD.DB", "mat-khau-so-2"],
        ["01000003", "Lê Văn Tám", "", "HN.DD.CB", "publisher;admin@HN", "mat-khau-so-3"],
        ["01000004", "Phạm Thị Lan", "0977.000.111", "HN.BD.DB.2", "", ""],
    ]


def import_member_rows(tmp_path, rows, name="members.csv", header=MEMBER_HEADER):
    return import_members(write_csv(tmp_path, name, header, rows))


def me_roles(client, username, password):
    response = login(client, username, password)
    assert response.status_code == 200, response.json
    me = client.get("/api/v1/me", headers=bearer(response.json["access_token"]))
    assert me.status_code == 200
    return me.json, {(r["role"], r["org_unit"]["code"]) for r in me.json["roles"]}


def test_members_happy_path_roles_passwords_and_login(app, client, tmp_path):
    t = small_tree()
    report = import_member_rows(tmp_path, member_rows())
    assert report.ok, report.errors
    assert (report.rows, report.created, report.updated, report.unchanged) == (4, 4, 0, 0)
    assert (report.roles_granted, report.roles_revoked, report.transfers) == (4, 0, 0)

    huong = member_by_card("01000001")
    assert huong.full_name == HUONG_NFC and unicodedata.is_normalized("NFC", huong.full_name)
    assert huong.phone == "0912345678" and huong.org_unit_id == t["b1"].id
    assert member_by_card("01000002").phone == "0987654321"
    assert member_by_card("01000003").phone is None
    assert member_by_card("01000004").phone == "0977000111"
    assert member_by_card("01000004").password_hash is None
    # Every new member's history starts with an arrival in their unit.
    transfers = db.session.execute(select(MemberTransfer.member_id, MemberTransfer.from_unit_id,
                                          MemberTransfer.to_unit_id)).all()
    assert sorted(transfers) == sorted((member_by_card(c).id, None, member_by_card(c).org_unit_id)
                                       for c in ("01000001", "01000002", "01000003", "01000004"))

    me, roles = me_roles(client, "01000001", "mat-khau-so-1")
    assert me["full_name"] == HUONG_NFC and me["org_unit"]["code"] == "HN.BD.DB.1"
    assert roles == {("secretary", "HN.BD.DB.1")}
    assert me_roles(client, "0987654321", "mat-khau-so-2")[1] == {("committee", "HN.BD.DB")}
    assert me_roles(client, "01000003", "mat-khau-so-3")[1] == {("publisher", "HN.DD.CB"), ("admin", "HN")}
    assert login(client, "01000001", "wrong-password").status_code == 401
    assert login(client, "01000004", "anything-at-all").status_code == 401  # no initial password

    grants = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "role.grant")).all()
    assert {(g.details["role"], g.details["org_unit"]) for g in grants} == {
        ("secretary", "HN.BD.DB.1"), ("committee", "HN.BD.DB"), ("publisher", "HN.DD.CB"), ("admin", "HN")}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "import.members"))
    assert entry.details["created"] == 4 and entry.details["roles_granted"] == 4


def test_members_xlsx_with_numeric_phone_and_card(app, tmp_path):
    from openpyxl import Workbook

    small_tree()
    wb = Workbook()
    ws = wb.active
    ws.append(MEMBER_HEADER)
    ws.append([12345678, "Trần Văn Bình", 912345678, "HN.BD.DB.1", "secretary", None])
    ws.append([1000003, "Lê Thị Cúc", 987654321.0, "HN.DD.CB", None, "mat-khau-xlsx"])
    ws.append(["01000004", "Đỗ Văn Dũng", "0966 111 222", "HN.BD.DB.2", None, None])
    ws.append([None, None, None, None, None, None])  # Excel's trailing empty rows are skipped
    path = tmp_path / "members.xlsx"
    wb.save(path)

    report = import_members(str(path))
    assert report.ok, report.errors
    assert report.created == 3 and report.rows == 3
    binh = member_by_card("12345678")
    assert binh.phone == "0912345678" and binh.full_name == "Trần Văn Bình"
    assert roles_of("12345678") == {("secretary", "HN.BD.DB.1")}
    cuc = member_by_card("01000003")  # the number lost its leading zero in Excel
    assert cuc is not None and cuc.phone == "0987654321" and cuc.password_hash
    assert member_by_card("01000004").phone == "0966111222"


# --- members: re-import, transfers, roles ----------------------------------------------------------

def test_members_reimport_idempotent_then_transfer_and_role_changes(app, tmp_path):
    t = small_tree()
    assert import_member_rows(tmp_path, member_rows()).ok
    transfers_before = count(MemberTransfer)
    grants_before = {(g.member_id, g.role, g.org_unit_id) for g in db.session.scalars(select(RoleGrant))}

    again = import_member_rows(tmp_path, member_rows(), name="again.csv")
    assert again.ok
    assert (again.created, again.updated, again.unchanged, again.transfers) == (0, 0, 4, 0)
    assert (again.roles_granted, again.roles_revoked) == (0, 0)
    assert count(MemberTransfer) == transfers_before and count(Member) == 4
    assert {(g.member_id, g.role, g.org_unit_id) for g in db.session.scalars(select(RoleGrant))} == grants_before

    rows = member_rows()
    rows[0][3] = "HN.BD.DB.2"                # transfer; "secretary" follows the member's own unit
    rows[1][1] = "Trần Văn Nam (đổi tên)"    # plain update
    rows[2][4] = "publisher"                 # admin@HN revoked
    rows[3][4] = "committee@HN.BD"           # granted
    report = import_member_rows(tmp_path, rows, name="changed.csv")
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged, report.transfers) == (0, 2, 2, 1)
    assert (report.roles_granted, report.roles_revoked) == (2, 2)

    huong = member_by_card("01000001")
    assert huong.org_unit_id == t["b2"].id
    moves = db.session.execute(select(MemberTransfer.from_unit_id, MemberTransfer.to_unit_id)
                               .where(MemberTransfer.member_id == huong.id)
                               .order_by(MemberTransfer.id)).all()
    assert [tuple(m) for m in moves] == [(None, t["b1"].id), (t["b1"].id, t["b2"].id)]
    assert count(MemberTransfer) == transfers_before + 1
    assert member_by_card("01000002").full_name == "Trần Văn Nam (đổi tên)"
    assert roles_of("01000001") == {("secretary", "HN.BD.DB.2")}
    assert roles_of("01000003") == {("publisher", "HN.DD.CB")}
    assert roles_of("01000004") == {("committee", "HN.BD")}
    assert roles_of("01000002") == {("committee", "HN.BD.DB")}

    def audit_roles(action):
        return {(e.target_id, e.details["role"], e.details["org_unit"])
                for e in db.session.scalars(select(AuditEntry).where(AuditEntry.action == action))}

    ids = {c: str(member_by_card(c).id) for c in ("01000001", "01000003", "01000004")}
    assert audit_roles("role.revoke") == {(ids["01000001"], "secretary", "HN.BD.DB.1"),
                                          (ids["01000003"], "admin", "HN")}
    assert {(ids["01000001"], "secretary", "HN.BD.DB.2"), (ids["01000004"], "committee", "HN.BD")} \
        <= audit_roles("role.grant")
    assert len(audit_roles("role.grant")) == 6
    imports = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import.members")
                                 .order_by(AuditEntry.id)).all()
    assert len(imports) == 3
    assert imports[-1].details["transfers"] == 1 and imports[-1].details["roles_revoked"] == 2


def test_members_initial_password_does_not_overwrite_an_existing_one(app, client, tmp_path):
    t = small_tree()
    member("01000001", t["b1"], password="mat-khau-cu-123")
    member("01000002", t["b1"], password=None)
    report = import_member_rows(tmp_path, [
        ["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1", "", "mat-khau-moi-1"],
        ["01000002", "Nguyễn Văn Bảo", "", "HN.BD.DB.1", "", "mat-khau-moi-2"],
    ])
    assert report.ok
    assert login(client, "01000001", "mat-khau-cu-123").status_code == 200
    assert login(client, "01000002", "mat-khau-moi-2").status_code == 200


def test_members_swap_phone_numbers(app, tmp_path):
    t = small_tree()
    member("01000001", t["b1"], phone="0911111111", password=None)
    member("01000002", t["b2"], phone="0922222222", password=None)
    report = import_member_rows(tmp_path, [
        ["01000001", "Nguyễn Văn An", "0922222222", "HN.BD.DB.1", "", ""],
        ["01000002", "Nguyễn Văn An", "0911 111 111", "HN.BD.DB.2", "", ""],
    ])
    assert report.ok, report.errors
    assert report.updated == 2
    assert member_by_card("01000001").phone == "0922222222"
    assert member_by_card("01000002").phone == "0911111111"


def test_members_phone_moves_between_batches(app, tmp_path):
    t = small_tree()
    member("01000001", t["b1"], phone="0911111111", password=None)
    member("01000002", t["b2"], phone="0922222222", password=None)
    rows = [["01000001", "Nguyễn Văn An", "0922222222", "HN.BD.DB.1", "", ""]]
    rows += [[f"02{i:06d}", f"Đảng viên {i}", "", "HN.BD.DB.1", "", ""] for i in range(BATCH_SIZE)]
    rows += [["01000002", "Nguyễn Văn An", "0933333333", "HN.BD.DB.2", "", ""]]
    report = import_member_rows(tmp_path, rows)
    assert report.ok, report.errors[:3]
    assert member_by_card("01000001").phone == "0922222222"
    assert member_by_card("01000002").phone == "0933333333"


def test_members_file_without_phone_column_keeps_phones(app, tmp_path):
    t = small_tree()
    member("01000001", t["b1"], phone="0911111111", password=None)
    report = import_member_rows(tmp_path, [["01000001", "Nguyễn Văn An (sửa)", "HN.BD.DB.1"]],
                                header=["card_number", "full_name", "org_unit_code"])
    assert report.ok
    m = member_by_card("01000001")
    assert m.full_name == "Nguyễn Văn An (sửa)"
    assert m.phone == "0911111111"


def test_members_file_without_roles_column_keeps_roles(app, tmp_path):
    t = small_tree()
    member("01000001", t["b1"], password=None, roles=[("admin", t["city"]), ("secretary", t["b1"])])
    report = import_member_rows(tmp_path, [["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1"]],
                                header=["card_number", "full_name", "phone", "org_unit_code"])
    assert report.ok
    assert roles_of("01000001") == {("admin", "HN"), ("secretary", "HN.BD.DB.1")}


# --- members: bad rows ------------------------------------------------------------------------------

def test_members_every_bad_row_is_reported_and_nothing_is_written(app, tmp_path):
    t = small_tree()
    member("09999999", t["b2"], phone="0911111111", password=None, roles=[("secretary", t["b2"])])
    member("08888888", t["b2"], password=None)
    before = (count(Member), count(MemberTransfer), count(RoleGrant), count(AuditEntry))
    rows = [
        ["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1", "", ""],                    # 2 good
        ["01000001", "Nguyễn Văn An 2", "", "HN.BD.DB.2", "", ""],                  # 3 duplicate card
        ["01000003", "Trần Văn Bình", "", "NOPE", "", ""],                          # 4 unknown unit
        ["01000004", "Lê Thị Cúc", "", "HN.BD", "", ""],                            # 5 upper unit
        ["01000005", "Đỗ Văn Dũng", "", "HN.BD.DB", "", ""],                        # 6 grassroots w/ branches
        ["01000006", "Phan Thị Em", "12345", "HN.BD.DB.1", "", ""],                 # 7 bad phone
        ["01000007", "Hoàng Văn Giang", "0922222222", "HN.BD.DB.1", "", ""],        # 8 good
        ["01000008", "Vũ Thị Hà", "0922 222 222", "HN.BD.DB.2", "", ""],            # 9 duplicate phone
        ["01000009", "Bùi Văn Khánh", "0911111111", "HN.BD.DB.1", "", ""],          # 10 phone taken
        ["01000010", "Đặng Thị Lan", "", "HN.BD.DB.1", "boss", ""],                 # 11 bad role
        ["01000011", "Ngô Văn Minh", "", "HN.BD.DB.1", "committee@UNKNOWN", ""],    # 12 role@UNKNOWN
        ["01000012", "", "", "HN.BD.DB.1", "", ""],                                 # 13 no name
        ["01000013", "Dương Thị Nga", "", "HN.BD.DB.1", "", "short"],               # 14 weak password
        ["01000014", "Lý Thị Oanh", "0933333333", "HN.DD.CB", "secretary", "mat-khau-dai-1"],  # 15 good
        ["08888888", "Người đã có (sửa)", "0944444444", "HN.BD.DB.1", "", ""],      # 16 good (update)
    ]
    report = import_member_rows(tmp_path, rows)
    assert errors_of(report) == {
        (3, "card_number", "duplicate"),
        (4, "org_unit_code", "unknown_unit"),
        (5, "org_unit_code", "unit_holds_no_members"),
        (6, "org_unit_code", "unit_holds_no_members"),
        (7, "phone", "bad_phone"),
        (9, "phone", "duplicate"),
        (10, "phone", "phone_taken"),
        (11, "roles", "bad_role"),
        (12, "roles", "unknown_unit"),
        (13, "full_name", "missing_value"),
        (14, "password", "weak_password"),
    }
    by_line = {e.line: e for e in report.errors}
    assert by_line[3].params == {"other_line": 2}
    assert by_line[9].params == {"other_line": 8}
    assert by_line[10].params == {"value": "09999999"}
    assert by_line[12].params == {"value": "UNKNOWN"}
    assert by_line[14].params == {"min": app.config["PASSWORD_MIN_LENGTH"]}
    assert by_line[5].params == {"value": "HN.BD"}
    # Nothing written: not the good rows, not the update of the existing member, no roles, no audit.
    assert (count(Member), count(MemberTransfer), count(RoleGrant), count(AuditEntry)) == before
    assert member_by_card("09999999").phone == "0911111111"
    existing = member_by_card("08888888")
    assert existing.full_name == "Nguyễn Văn An" and existing.phone is None
    assert existing.org_unit_id == t["b2"].id
    assert roles_of("09999999") == {("secretary", "HN.BD.DB.2")}
    assert report.summary_lines() == ["members: 15 rows read, 11 bad; nothing was imported."]


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_imports_succeed_with_summary(app, tmp_path):
    runner = app.test_cli_runner()
    units = write_csv(tmp_path, "units.csv", UNIT_HEADER, HANOI_ROWS)
    result = runner.invoke(args=["handbook", "import-org-units", units])
    assert result.exit_code == 0, result.output
    assert "org_units: 12 rows" in result.output and "12 created, 0 updated, 0 unchanged." in result.output
    assert count(OrgUnit) == 12

    members = write_csv(tmp_path, "members.csv", MEMBER_HEADER, member_rows())
    result = runner.invoke(args=["handbook", "import-members", members])
    assert result.exit_code == 0, result.output
    assert "members: 4 rows" in result.output
    assert "4 created, 0 updated, 0 unchanged, 0 transfers, 4 roles granted, 0 roles revoked." in result.output
    assert count(Member) == 4

    result = runner.invoke(args=["handbook", "import-members", members])
    assert result.exit_code == 0
    assert "0 created, 0 updated, 4 unchanged" in result.output


def test_cli_import_failure_exit_code_and_error_lines(app, tmp_path):
    runner = app.test_cli_runner()
    small_tree()
    units = write_csv(tmp_path, "bad-units.csv", UNIT_HEADER, [
        ["X1", "Chi bộ X1", "branch", "HN.BD.DB"],
        ["X2", "Chi bộ X2", "chibo", "HN.BD.DB"],
        ["X3", "Chi bộ X3", "branch", "NOPE"],
    ])
    result = runner.invoke(args=["handbook", "import-org-units", units])
    assert result.exit_code == 1
    assert "org_units: 3 rows read, 2 bad; nothing was imported." in result.stdout
    assert "line 3, column kind [bad_kind]: " in result.stderr
    assert "line 4, column parent_code [unknown_parent]: " in result.stderr
    assert count(OrgUnit) == 7

    members = write_csv(tmp_path, "bad-members.csv", MEMBER_HEADER, [
        ["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1", "", ""],
        ["01000002", "Trần Văn Bình", "123", "HN.BD.DB.1", "", ""],
    ])
    result = runner.invoke(args=["handbook", "import-members", members])
    assert result.exit_code == 1
    assert "line 3, column phone [bad_phone]: " in result.stderr
    assert count(Member) == 0

    result = runner.invoke(args=["handbook", "import-members", str(tmp_path / "no-such-file.csv")])
    assert result.exit_code != 0 and count(Member) == 0


def test_cli_error_lines_carry_the_human_reason(app, tmp_path):
    small_tree()
    units = write_csv(tmp_path, "bad-units.csv", UNIT_HEADER, [["X2", "Chi bộ X2", "chibo", "HN.BD.DB"]])
    result = app.test_cli_runner().invoke(args=["handbook", "import-org-units", units])
    assert result.exit_code == 1
    error = RowError(2, "kind", "bad_kind", {"value": "chibo"})
    assert "bound method" not in result.output
    assert f"line 2, column kind [bad_kind]: {error.reason('vi')}" in result.stderr


# --- a moderately large file ------------------------------------------------------------------------

def big_rows(n: int) -> list[list[str]]:
    units = ["HN.BD.DB.1", "HN.BD.DB.2", "HN.DD.CB"]
    return [[f"1{i:07d}", f"Đảng viên số {i}", f"09{i:08d}" if i % 2 else "", units[i % 3],
             "secretary" if i % 1000 == 0 else "", ""] for i in range(n)]


def test_large_member_file_across_batches(app, tmp_path):
    t = small_tree()
    n = 5000
    assert n > 2 * BATCH_SIZE
    path = write_csv(tmp_path, "big.csv", MEMBER_HEADER, big_rows(n))
    report = import_members(path)
    assert report.ok, report.errors[:3]
    assert (report.rows, report.created, report.roles_granted) == (n, n, 5)
    assert count(Member) == n and count(MemberTransfer) == n and count(RoleGrant) == 5
    last = member_by_card(f"1{n - 1:07d}")
    assert last.full_name == f"Đảng viên số {n - 1}" and last.phone == f"09{n - 1:08d}"
    assert last.org_unit_id == t["b2"].id  # 4999 % 3 == 1

    again = import_members(path)
    assert again.ok and (again.created, again.unchanged, again.transfers) == (0, n, 0)
    assert count(Member) == n and count(MemberTransfer) == n


def test_large_member_file_bad_last_row_rolls_back_earlier_batches(app, tmp_path):
    small_tree()
    n = 5000
    rows = big_rows(n) + [["19999999", "Dòng cuối sai", "", "NOPE", "", ""]]
    report = import_members(write_csv(tmp_path, "big-bad.csv", MEMBER_HEADER, rows))
    assert errors_of(report) == {(n + 2, "org_unit_code", "unknown_unit")}
    assert report.rows == n + 1
    assert count(Member) == 0 and count(MemberTransfer) == 0 and count(RoleGrant) == 0
    assert count(AuditEntry) == 0


# --- more org-unit and file checks ------------------------------------------------------------------

def test_org_units_kind_change_must_fit_existing_children(app, tmp_path):
    small_tree()
    # HN.BD.DB has branches: turned into a branch itself, its branches could no longer sit under it.
    report = import_org_units(write_csv(tmp_path, "kind.csv", UNIT_HEADER, [
        ["HN.BD.DB", "Đảng bộ phường Điện Biên", "branch", "HN.BD"],
    ]))
    codes = {e.code for e in report.errors}
    assert "child_kind_conflict" in codes
    conflict = next(e for e in report.errors if e.code == "child_kind_conflict")
    assert (conflict.line, conflict.column) == (2, "kind")
    assert conflict.params["value"] in {"HN.BD.DB.1", "HN.BD.DB.2"}
    assert units_by_code()["HN.BD.DB"].kind == "grassroots"


def test_malformed_row_does_not_hide_later_bad_rows(app, tmp_path):
    small_tree()
    path = write_csv(tmp_path, "malformed.csv", UNIT_HEADER, [
        ["X1", "Chi bộ X1", "branch", "HN.BD.DB", "thừa"],   # 2: one field too many
        ["X2", "Chi bộ X2", "chibo", "HN.BD.DB"],            # 3: bad kind
    ])
    report = import_org_units(path)
    assert errors_of(report) == {(2, "", "malformed_row"), (3, "kind", "bad_kind")}


def test_nul_characters_are_row_errors_not_crashes(app, tmp_path):
    small_tree()
    path = write_csv(tmp_path, "nul.csv", MEMBER_HEADER, [
        ["01000001", "Nguyễn\x00 Văn An", "", "HN.BD.DB.1", "", ""],
        ["01000002", "Trần Văn Bình", "", "HN.BD.DB.1", "", ""],
    ])
    report = import_members(path)
    assert [(e.line, e.column, e.code) for e in report.errors] == [(2, "full_name", "bad_characters")]
    assert count(Member) == 0
