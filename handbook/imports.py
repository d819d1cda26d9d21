"""CSV/XLSX imports of org units and members (columns in ../shared/API.md).

- Streaming: rows are read one at a time (csv module / openpyxl read-only) and members are written in
  batches, so a 440,000-row file never sits in memory (only the set of card numbers seen so far).
- All-or-nothing per file: everything happens in one transaction, rolled back if any row is bad.
- Every bad row is reported (line number, column, machine code and a Vietnamese/English reason), not
  just the first one; once a row is bad, later rows are still validated but nothing more is written.
- Idempotent: re-importing the same file changes nothing; org units update by `code`, members by
  `card_number`, and a changed `org_unit_code` is recorded as a transfer.
"""
from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, insert, select, update

from handbook import audit
from handbook.extensions import db
from handbook.members import ROLE_VALUES, Member, MemberTransfer, RoleGrant
from handbook.orgunits import ALLOWED_PARENTS, OrgUnit, UnitKind, holds_members, recompute_paths
from handbook.text import nfc, normalise_phone
from handbook.timeutil import utcnow

ORG_UNIT_COLUMNS = ("code", "name", "kind", "parent_code")
MEMBER_COLUMNS = ("card_number", "full_name", "phone", "org_unit_code", "roles", "password")
MEMBER_REQUIRED = ("card_number", "full_name", "org_unit_code")
BATCH_SIZE = 2000
MAX_ERRORS = 10000  # beyond this the report is cut (the file is clearly the wrong one)

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$")
CARD_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-/]{0,31}$")

# code: (Vietnamese, English). `{…}` is filled from the error's parameters.
MESSAGES = {
    "not_utf8": ("Tệp không phải UTF-8 (hãy lưu dạng \"CSV UTF-8\"), lỗi ở byte {offset}.",
                 "The file is not UTF-8 (save it as \"CSV UTF-8\"); bad byte at offset {offset}."),
    "unreadable": ("Không đọc được tệp: {detail}.", "Cannot read the file: {detail}."),
    "empty_file": ("Tệp rỗng, thiếu dòng tiêu đề.", "The file is empty; the header row is missing."),
    "missing_column": ("Thiếu cột bắt buộc \"{column}\".", "Required column \"{column}\" is missing."),
    "unknown_column": ("Cột không được hỗ trợ \"{column}\".", "Unsupported column \"{column}\"."),
    "malformed_row": ("Dòng có {count} cột, tiêu đề có {expected}.", "The row has {count} fields; the header has {expected}."),
    "missing_value": ("Thiếu giá trị.", "Value is missing."),
    "too_long": ("Dài quá {max} ký tự.", "Longer than {max} characters."),
    "bad_code": ("Mã không hợp lệ (chỉ dùng chữ, số và . _ - /).", "Invalid code (letters, digits and . _ - / only)."),
    "bad_kind": ("Loại \"{value}\" không hợp lệ (city, upper, grassroots, sub, branch).",
                 "Invalid kind \"{value}\" (city, upper, grassroots, sub, branch)."),
    "duplicate": ("Trùng với dòng {other_line}.", "Duplicates line {other_line}."),
    "unknown_parent": ("Không có đơn vị cấp trên mã \"{value}\".", "No parent unit with code \"{value}\"."),
    "root_has_parent": ("Thành ủy (city) không có đơn vị cấp trên.", "The city unit has no parent."),
    "missing_parent": ("Đơn vị loại {kind} phải có đơn vị cấp trên.", "A unit of kind {kind} needs a parent."),
    "second_root": ("Đã có đơn vị gốc \"{value}\"; chỉ có một Thành ủy.", "There is already a root \"{value}\"; only one city unit."),
    "bad_parent_kind": ("Đơn vị loại {kind} không thể trực thuộc đơn vị loại {parent_kind}.",
                        "A unit of kind {kind} cannot sit under a unit of kind {parent_kind}."),
    "child_kind_conflict": ("Đổi loại thành {kind} không phù hợp với đơn vị trực thuộc \"{value}\" ({child_kind}).",
                            "Changing the kind to {kind} conflicts with child unit \"{value}\" ({child_kind})."),
    "cycle": ("Quan hệ cấp trên tạo thành vòng lặp: {value}.", "The parent links form a cycle: {value}."),
    "unit_has_members": ("Đơn vị \"{value}\" đang có đảng viên, không thể có đơn vị trực thuộc.",
                         "Unit \"{value}\" holds members and cannot get child units."),
    "unknown_unit": ("Không có đơn vị mã \"{value}\".", "No unit with code \"{value}\"."),
    "unit_holds_no_members": ("Đơn vị \"{value}\" không trực tiếp quản lý đảng viên (chỉ chi bộ hoặc chi bộ cơ sở).",
                              "Unit \"{value}\" does not hold members (only a branch or a chi bộ cơ sở does)."),
    "bad_card_number": ("Số thẻ đảng viên không hợp lệ.", "Invalid party card number."),
    "bad_phone": ("Số điện thoại không hợp lệ \"{value}\".", "Invalid phone number \"{value}\"."),
    "phone_taken": ("Số điện thoại đã thuộc về đảng viên {value}.", "The phone number already belongs to member {value}."),
    "bad_role": ("Vai trò \"{value}\" không hợp lệ (secretary, committee, publisher, admin).",
                 "Invalid role \"{value}\" (secretary, committee, publisher, admin)."),
    "weak_password": ("Mật khẩu cần ít nhất {min} ký tự.", "The password needs at least {min} characters."),
    "too_many_errors": ("Quá nhiều lỗi; dừng báo cáo sau {max} lỗi.", "Too many errors; the report stops after {max}."),
}


@dataclass
class RowError:
    line: int
    column: str
    code: str
    params: dict = field(default_factory=dict)

    def reason(self, language: str = "vi") -> str:
        vi, en = MESSAGES[self.code]
        return (en if language == "en" else vi).format(**self.params)


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    transfers: int = 0
    roles_granted: int = 0
    roles_revoked: int = 0
    seconds: float = 0.0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, line: int, column: str, code: str, **params) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(line, column, code, params))
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append(RowError(line, "", "too_many_errors", {"max": MAX_ERRORS}))

    def summary_lines(self, language: str = "en") -> list[str]:
        if self.errors:
            return [f"{self.kind}: {self.rows} rows read, {len(self.errors)} bad; nothing was imported."]
        parts = [f"{self.created} created", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.kind == "members":
            parts += [f"{self.transfers} transfers", f"{self.roles_granted} roles granted",
                      f"{self.roles_revoked} roles revoked"]
        return [f"{self.kind}: {self.rows} rows in {self.seconds:.1f} s: " + ", ".join(parts) + "."]


class FileProblem(Exception):
    def __init__(self, line: int, column: str, code: str, **params):
        super().__init__(code)
        self.line, self.column, self.code, self.params = line, column, code, params


# --- reading ---------------------------------------------------------------------------------------

def _is_xlsx(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _cell_text(value, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        # Excel turns '0912345678' into 912345678 and '01000001' into 1000001.
        if column == "phone" and len(text) in (9, 10):
            return "0" + text
        if column == "card_number" and len(text) < 8:
            return text.zfill(8)
        return text
    return str(value)


def _rows_csv(path: str) -> Iterator[tuple[int, list[str]]]:
    raw = open(path, "rb")
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    line = 0
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as e:
                raise FileProblem(reader.line_num + 1, "", "not_utf8", offset=e.start) from None
            except csv.Error as e:
                raise FileProblem(reader.line_num, "", "unreadable", detail=str(e)) from None
            line = reader.line_num
            yield line, row
    finally:
        text.close()


def _rows_xlsx(path: str) -> Iterator[tuple[int, list]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable workbook is a file problem
        raise FileProblem(1, "", "unreadable", detail=type(e).__name__) from None
    try:
        sheet = workbook.worksheets[0]
        for index, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield index, list(values)
    finally:
        workbook.close()


def read_table(path: str, columns: tuple[str, ...], required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, {column: text}) for each data row; header problems raise FileProblem."""
    rows = _rows_xlsx(path) if _is_xlsx(path) else _rows_csv(path)
    header = None
    for line, values in rows:
        if header is None:
            header = [str(v or "").strip().lower().lstrip("\ufeff") for v in values]
            while header and header[-1] == "":
                header.pop()
            for name in required:
                if name not in header:
                    raise FileProblem(line, name, "missing_column", column=name)
            for name in header:
                if name not in columns:
                    raise FileProblem(line, name, "unknown_column", column=name)
            continue
        if all(v is None or str(v).strip() == "" for v in values):
            continue  # blank lines (and Excel's trailing empty rows) are skipped
        if len(values) > len(header) and any(str(v or "").strip() for v in values[len(header):]):
            raise FileProblem(line, "", "malformed_row", count=len(values), expected=len(header))
        row = {name: nfc(_cell_text(values[i] if i < len(values) else None, name)) or "" for i, name in
               enumerate(header)}
        yield line, row
    if header is None:
        raise FileProblem(1, "", "empty_file")


# --- org units -------------------------------------------------------------------------------------

@dataclass
class _UnitRow:
    line: int
    code: str
    name: str
    kind: str
    parent_code: str


def import_org_units(path: str, *, actor_id: int | None = None) -> ImportReport:
    started = time.perf_counter()
    report = ImportReport("org_units")
    rows: dict[str, _UnitRow] = {}
    try:
        for line, row in read_table(path, ORG_UNIT_COLUMNS, ORG_UNIT_COLUMNS):
            report.rows += 1
            unit = _validate_unit_row(report, line, row)
            if unit is None:
                continue
            if unit.code in rows:
                report.add(line, "code", "duplicate", other_line=rows[unit.code].line)
                continue
            rows[unit.code] = unit
    except FileProblem as e:
        report.add(e.line, e.column, e.code, **e.params)
        return report

    existing = {u.code: u for u in db.session.execute(
        select(OrgUnit.id, OrgUnit.code, OrgUnit.kind, OrgUnit.parent_id, OrgUnit.name))}
    code_of = {u.id: u.code for u in existing.values()}
    # The tree as it will be after the import: code -> (kind, parent code).
    final: dict[str, tuple[str, str | None]] = {
        u.code: (u.kind, code_of.get(u.parent_id)) for u in existing.values()}
    for unit in rows.values():
        final[unit.code] = (unit.kind, unit.parent_code or None)

    _check_tree(report, rows, final)
    if report.errors:
        return report
    _check_member_holders(report, rows, existing, final)
    if report.errors:
        return report

    _write_units(report, rows, existing)
    recompute_paths()
    audit.record("import.org_units", actor_id=actor_id, target_type="file", target_id=os.path.basename(path),
                 rows=report.rows, created=report.created, updated=report.updated)
    db.session.commit()
    report.seconds = time.perf_counter() - started
    return report


def _validate_unit_row(report: ImportReport, line: int, row: dict) -> _UnitRow | None:
    bad = False
    for column in ("code", "name", "kind"):
        if not row.get(column):
            report.add(line, column, "missing_value")
            bad = True
    code, name, kind = row.get("code", ""), row.get("name", ""), row.get("kind", "").lower()
    parent_code = row.get("parent_code", "")
    if code and not CODE_RE.match(code):
        report.add(line, "code", "bad_code")
        bad = True
    if len(name) > 255:
        report.add(line, "name", "too_long", max=255)
        bad = True
    if kind and kind not in {k.value for k in UnitKind}:
        report.add(line, "kind", "bad_kind", value=row.get("kind"))
        bad = True
    if parent_code and not CODE_RE.match(parent_code):
        report.add(line, "parent_code", "bad_code")
        bad = True
    return None if bad else _UnitRow(line, code, name, kind, parent_code)


def _check_tree(report: ImportReport, rows: dict[str, _UnitRow], final: dict) -> None:
    roots = [code for code, (kind, parent) in final.items() if parent is None and kind == UnitKind.CITY.value]
    for unit in rows.values():
        kind = UnitKind(unit.kind)
        if not unit.parent_code:
            if kind is not UnitKind.CITY:
                report.add(unit.line, "parent_code", "missing_parent", kind=unit.kind)
            elif len(roots) > 1:
                other = next(code for code in roots if code != unit.code)
                report.add(unit.line, "parent_code", "second_root", value=other)
            continue
        if kind is UnitKind.CITY:
            report.add(unit.line, "parent_code", "root_has_parent")
            continue
        if unit.parent_code not in final:
            report.add(unit.line, "parent_code", "unknown_parent", value=unit.parent_code)
            continue
        parent_kind = final[unit.parent_code][0]
        if UnitKind(parent_kind) not in ALLOWED_PARENTS[kind]:
            report.add(unit.line, "kind", "bad_parent_kind", kind=unit.kind, parent_kind=parent_kind)
    # A changed kind must still fit the units already under it.
    changed = {code for code in rows}
    for code, (kind, parent) in final.items():
        if parent in changed and code not in rows:
            parent_row = rows[parent]
            if UnitKind(parent_row.kind) not in ALLOWED_PARENTS[UnitKind(kind)]:
                report.add(parent_row.line, "kind", "child_kind_conflict", kind=parent_row.kind, value=code,
                           child_kind=kind)
    # Cycles: follow parent links from each imported unit.
    reported: set[str] = set()
    for unit in rows.values():
        seen: list[str] = []
        node: str | None = unit.code
        while node is not None and node in final and node not in seen:
            seen.append(node)
            node = final[node][1]
        if node is not None and node in seen:
            cycle = seen[seen.index(node):]
            if not reported.intersection(cycle):
                reported.update(cycle)
                report.add(unit.line, "parent_code", "cycle", value=" → ".join(cycle + [node]))


def _check_member_holders(report: ImportReport, rows: dict[str, _UnitRow], existing: dict, final: dict) -> None:
    """A unit that holds members cannot get children, nor become a kind that holds none."""
    children_count: dict[str, int] = {}
    for code, (_, parent) in final.items():
        if parent is not None:
            children_count[parent] = children_count.get(parent, 0) + 1
    candidates = [existing[c].id for c in final if c in existing]
    if not candidates:
        return
    with_members = set(db.session.scalars(select(Member.org_unit_id).where(Member.active.is_(True))
                                          .group_by(Member.org_unit_id)))
    for code, (kind, parent) in final.items():
        unit = existing.get(code)
        if unit is None or unit.id not in with_members:
            continue
        if holds_members(kind, children_count.get(code, 0) > 0):
            continue
        # Attribute the problem to the row that causes it: the unit's own row, or a new child's.
        row = rows.get(code) or next((r for r in rows.values() if r.parent_code == code), None)
        if row is not None:
            report.add(row.line, "parent_code" if row.code != code else "kind", "unit_has_members", value=code)


def _write_units(report: ImportReport, rows: dict[str, _UnitRow], existing: dict) -> None:
    now = utcnow()
    new = [r for r in rows.values() if r.code not in existing]
    ids = {code: u.id for code, u in existing.items()}
    if new:
        result = db.session.execute(
            insert(OrgUnit).returning(OrgUnit.id, OrgUnit.code, sort_by_parameter_order=True),
            [{"code": r.code, "name": r.name, "kind": r.kind, "path": f"~new/{r.code}", "depth": 0,
              "created_at": now, "updated_at": now} for r in new],
        )
        ids.update({row.code: row.id for row in result})
    report.created = len(new)
    changes = []
    for r in rows.values():
        parent_id = ids[r.parent_code] if r.parent_code else None
        old = existing.get(r.code)
        if old is not None and (old.name, old.kind, old.parent_id) == (r.name, r.kind, parent_id):
            report.unchanged += 1
            continue
        if old is not None:
            report.updated += 1
        changes.append({"id": ids[r.code], "name": r.name, "kind": r.kind, "parent_id": parent_id,
                        "updated_at": now})
    if changes:
        db.session.execute(update(OrgUnit), changes)


# --- members ---------------------------------------------------------------------------------------

@dataclass
class _MemberRow:
    line: int
    card_number: str
    full_name: str
    phone: str | None
    unit_id: int
    roles: set[tuple[str, int]]
    password: str | None


class _UnitIndex:
    """Unit code -> (id, kind, holds members), loaded once (25,000 rows for Hanoi)."""

    def __init__(self):
        parents = set(db.session.scalars(select(OrgUnit.parent_id).where(OrgUnit.parent_id.is_not(None))
                                         .distinct()))
        self.by_code = {code: (uid, holds_members(kind, uid in parents)) for uid, code, kind in
                        db.session.execute(select(OrgUnit.id, OrgUnit.code, OrgUnit.kind))}
        self.code_of = {uid: code for code, (uid, _) in self.by_code.items()}


def import_members(path: str, *, actor_id: int | None = None) -> ImportReport:
    started = time.perf_counter()
    report = ImportReport("members")
    units = _UnitIndex()
    seen_cards: dict[str, int] = {}
    seen_phones: dict[str, tuple[int, str]] = {}
    min_password = current_app.config["PASSWORD_MIN_LENGTH"]
    batch: list[_MemberRow] = []
    role_audit: list[dict] = []
    try:
        for line, row in read_table(path, MEMBER_COLUMNS, MEMBER_REQUIRED):
            report.rows += 1
            member = _validate_member_row(report, line, row, units, seen_cards, seen_phones, min_password)
            if member is None:
                continue
            batch.append(member)
            if len(batch) >= BATCH_SIZE:
                _member_batch(report, batch, units, seen_cards, role_audit, actor_id)
                batch = []
        if batch:
            _member_batch(report, batch, units, seen_cards, role_audit, actor_id)
    except FileProblem as e:
        report.add(e.line, e.column, e.code, **e.params)
    if report.errors:
        db.session.rollback()
        return report
    if role_audit:
        db.session.execute(insert(audit.AuditEntry), role_audit)
    audit.record("import.members", actor_id=actor_id, target_type="file", target_id=os.path.basename(path),
                 rows=report.rows, created=report.created, updated=report.updated,
                 transfers=report.transfers, roles_granted=report.roles_granted,
                 roles_revoked=report.roles_revoked)
    db.session.commit()
    report.seconds = time.perf_counter() - started
    return report


def _validate_member_row(report, line, row, units: _UnitIndex, seen_cards, seen_phones,
                         min_password) -> _MemberRow | None:
    errors_before = len(report.errors)
    for column in MEMBER_REQUIRED:
        if not row.get(column):
            report.add(line, column, "missing_value")
    card, name = row.get("card_number", ""), row.get("full_name", "")
    if card and not CARD_RE.match(card):
        report.add(line, "card_number", "bad_card_number")
    elif card in seen_cards:
        report.add(line, "card_number", "duplicate", other_line=seen_cards[card])
    elif card:
        seen_cards[card] = line
    if len(name) > 255:
        report.add(line, "full_name", "too_long", max=255)
    phone = None
    if row.get("phone"):
        try:
            phone = normalise_phone(row["phone"])
        except ValueError:
            report.add(line, "phone", "bad_phone", value=row["phone"])
        if phone is not None:
            if phone in seen_phones and seen_phones[phone][1] != card:
                report.add(line, "phone", "duplicate", other_line=seen_phones[phone][0])
            else:
                seen_phones[phone] = (line, card)
    unit_code = row.get("org_unit_code", "")
    unit_id = None
    if unit_code:
        found = units.by_code.get(unit_code)
        if found is None:
            report.add(line, "org_unit_code", "unknown_unit", value=unit_code)
        elif not found[1]:
            report.add(line, "org_unit_code", "unit_holds_no_members", value=unit_code)
        else:
            unit_id = found[0]
    roles: set[tuple[str, int]] = set()
    for item in (row.get("roles") or "").split(";"):
        item = item.strip()
        if not item:
            continue
        role, _, scope_code = item.partition("@")
        role = role.strip().lower()
        if role not in ROLE_VALUES:
            report.add(line, "roles", "bad_role", value=item)
            continue
        scope_code = scope_code.strip()
        if scope_code:
            found = units.by_code.get(scope_code)
            if found is None:
                report.add(line, "roles", "unknown_unit", value=scope_code)
                continue
            roles.add((role, found[0]))
        elif unit_id is not None:
            roles.add((role, unit_id))
    password = row.get("password") or None
    if password is not None and len(password) < min_password:
        report.add(line, "password", "weak_password", min=min_password)
    if len(report.errors) > errors_before:
        return None
    return _MemberRow(line, card, name, phone, unit_id, roles, password)


def _member_batch(report: ImportReport, batch: list[_MemberRow], units: _UnitIndex, seen_cards: dict,
                  role_audit: list[dict], actor_id: int | None) -> None:
    """Validate the batch against the database and, while the file is still clean, write it."""
    cards = [m.card_number for m in batch]
    existing = {r.card_number: r for r in db.session.execute(
        select(Member.id, Member.card_number, Member.full_name, Member.phone, Member.org_unit_id,
               Member.password_hash.is_not(None).label("has_password"))
        .where(Member.card_number.in_(cards)))}
    phones = [m.phone for m in batch if m.phone]
    if phones:
        holders = dict(db.session.execute(
            select(Member.phone, Member.card_number).where(Member.phone.in_(phones))).all())
        for m in batch:
            holder = holders.get(m.phone) if m.phone else None
            # A holder that appears in the file (earlier, or in this batch) gives the number up: two
            # rows with one phone were already reported as duplicates.
            if holder is not None and holder != m.card_number and holder not in seen_cards:
                report.add(m.line, "phone", "phone_taken", value=holder)
    if report.errors:
        return  # keep validating the rest of the file, but write nothing more

    from handbook.auth import hash_password

    now = utcnow()
    updates, transfers = [], []
    for m in batch:
        old = existing.get(m.card_number)
        if old is None:
            continue
        change = {}
        if old.full_name != m.full_name:
            change["full_name"] = m.full_name
        if old.phone != m.phone:
            change["phone"] = m.phone
        if old.org_unit_id != m.unit_id:
            change["org_unit_id"] = m.unit_id
            transfers.append({"member_id": old.id, "from_unit_id": old.org_unit_id, "to_unit_id": m.unit_id,
                              "transferred_at": now, "source": "import", "actor_id": actor_id})
        if m.password and not old.has_password:
            change["password_hash"] = hash_password(m.password)
        if change:
            change.update(id=old.id, updated_at=now)
            updates.append(change)
    # Phones may move between members of one batch: release the old numbers first (unique constraint).
    moving = [u for u in updates if "phone" in u]
    if moving:
        db.session.execute(update(Member), [{"id": u["id"], "phone": None} for u in moving])

    new_rows = [m for m in batch if m.card_number not in existing]
    ids = {card: r.id for card, r in existing.items()}
    if new_rows:
        result = db.session.execute(
            insert(Member).returning(Member.id, Member.card_number, sort_by_parameter_order=True),
            [{"card_number": m.card_number, "full_name": m.full_name, "phone": m.phone, "org_unit_id": m.unit_id,
              "password_hash": hash_password(m.password) if m.password else None, "active": True,
              "created_at": now, "updated_at": now} for m in new_rows],
        )
        ids.update({r.card_number: r.id for r in result})
        db.session.execute(insert(MemberTransfer), [
            {"member_id": ids[m.card_number], "from_unit_id": None, "to_unit_id": m.unit_id,
             "transferred_at": now, "source": "import", "actor_id": actor_id} for m in new_rows])
    for keys in {tuple(sorted(u)) for u in updates}:  # one executemany per shape of change
        db.session.execute(update(Member), [u for u in updates if tuple(sorted(u)) == keys])
    if transfers:
        db.session.execute(insert(MemberTransfer), transfers)
    report.created += len(new_rows)
    report.updated += len(updates)
    report.unchanged += len(batch) - len(new_rows) - len(updates)
    report.transfers += len(transfers)
    _sync_roles(report, batch, ids, units, role_audit, actor_id, now)


def _sync_roles(report, batch, ids, units: _UnitIndex, role_audit, actor_id, now) -> None:
    """The roles column is the member's full set of roles: grant what is new, revoke what is gone."""
    member_ids = [ids[m.card_number] for m in batch]
    current: dict[int, set[tuple[str, int]]] = {}
    for member_id, role, unit_id in db.session.execute(
            select(RoleGrant.member_id, RoleGrant.role, RoleGrant.org_unit_id)
            .where(RoleGrant.member_id.in_(member_ids))):
        current.setdefault(member_id, set()).add((role, unit_id))
    grants, revokes = [], []
    for m in batch:
        member_id = ids[m.card_number]
        have = current.get(member_id, set())
        grants += [{"member_id": member_id, "role": r, "org_unit_id": u, "granted_at": now, "granted_by": actor_id}
                   for r, u in sorted(m.roles - have)]
        revokes += [(member_id, r, u) for r, u in sorted(have - m.roles)]
    if grants:
        db.session.execute(insert(RoleGrant), grants)
    for member_id, role, unit_id in revokes:
        db.session.execute(delete(RoleGrant).where(RoleGrant.member_id == member_id, RoleGrant.role == role,
                                                   RoleGrant.org_unit_id == unit_id))
    report.roles_granted += len(grants)
    report.roles_revoked += len(revokes)
    for action, items in (("role.grant", [(g["member_id"], g["role"], g["org_unit_id"]) for g in grants]),
                          ("role.revoke", revokes)):
        role_audit += [{"at": now, "actor_id": actor_id, "action": action, "target_type": "member",
                        "target_id": str(member_id), "details": {"role": role, "org_unit": units.code_of[unit_id]}}
                       for member_id, role, unit_id in items]


