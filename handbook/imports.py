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
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, insert, select, update

from handbook import audit
from handbook.extensions import db, one_of
from handbook.members import ROLE_VALUES, Member, MemberTransfer, RoleGrant, membership_changed
from handbook.orgunits import ALLOWED_PARENTS, OrgUnit, UnitKind, holds_members, recompute_paths
from handbook.text import has_bad_characters, nfc, normalise_phone
from handbook.timeutil import utcnow

ORG_UNIT_COLUMNS = ("code", "name", "kind", "parent_code")
MEMBER_COLUMNS = ("card_number", "full_name", "phone", "org_unit_code", "roles", "password")
MEMBER_REQUIRED = ("card_number", "full_name", "org_unit_code")
BATCH_SIZE = 2000
MAX_ERRORS = 10000  # beyond this the report is cut (the file is clearly the wrong one)
PROGRESS_EVERY = 1000  # rows between two calls of an import's `progress` callback (background jobs)

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$")
CARD_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-/]{0,31}$")

# code: (Vietnamese, English). `{…}` is filled from the error's parameters.
MESSAGES = {
    "not_utf8": ("Tệp không phải UTF-8 (hãy lưu dạng \"CSV UTF-8\"), lỗi ở byte thứ {offset} của dòng.",
                 "The file is not UTF-8 (save it as \"CSV UTF-8\"); bad byte at position {offset} of the line."),
    "utf16": ("Tệp không phải UTF-8 (có vẻ là UTF-16); hãy lưu dạng \"CSV UTF-8\".",
              "The file is not UTF-8 (it looks like UTF-16); save it as \"CSV UTF-8\"."),
    "merged_cell": ("Ô này nằm trong vùng ô gộp (merged); Excel chỉ giữ giá trị ở ô đầu. Hãy bỏ gộp ô và điền "
                    "giá trị vào từng dòng.",
                    "This cell is part of a merged range; Excel keeps the value in its first cell only. Unmerge "
                    "the cells and fill in each row."),
    "formula_without_value": ("Ô chứa công thức chưa được tính (không có giá trị); hãy mở tệp trong Excel, lưu "
                              "lại, hoặc dán giá trị thay cho công thức.",
                              "A formula cell with no computed value; open and save the file in Excel, or paste "
                              "the value instead of the formula."),
    "unreadable": ("Không đọc được tệp: {detail}.", "Cannot read the file: {detail}."),
    "empty_file": ("Tệp rỗng, thiếu dòng tiêu đề.", "The file is empty; the header row is missing."),
    "missing_column": ("Thiếu cột bắt buộc \"{name}\".", "Required column \"{name}\" is missing."),
    "unknown_column": ("Cột không được hỗ trợ \"{name}\".", "Unsupported column \"{name}\"."),
    "malformed_row": ("Dòng có {count} cột, tiêu đề có {expected}.", "The row has {count} fields; the header has {expected}."),
    "missing_value": ("Thiếu giá trị.", "Value is missing."),
    "bad_characters": ("Chứa ký tự điều khiển không hợp lệ (như NUL).",
                       "Contains a control character that is not allowed (such as NUL)."),
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

    def summary_lines(self) -> list[str]:
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


def _decoded_lines(raw) -> Iterator[str]:
    """Decode one physical line at a time (b"\\n" never occurs inside a UTF-8 sequence), so that a bad
    byte is reported on its own line. NUL bytes in the header are UTF-16 (valid UTF-8 byte by byte, but
    every other byte NUL), named as such rather than as a missing column."""
    for number, data in enumerate(raw, start=1):
        if number == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if number == 1 and (b"\x00" in data or data.startswith((b"\xff\xfe", b"\xfe\xff"))):
            raise FileProblem(1, "", "utf16")
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FileProblem(number, "", "not_utf8", offset=e.start + 1) from None


def _rows_csv(path: str) -> Iterator[tuple[int, list[str]]]:
    with open(path, "rb") as raw:
        reader = csv.reader(_decoded_lines(raw))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise FileProblem(reader.line_num, "", "unreadable", detail=str(e)) from None
            yield reader.line_num, row


# In a worksheet's XML: a merged range, and a cell whose only content is a formula (no cached <v>alue).
_MERGE_RE = re.compile(rb"<(?:\w+:)?mergeCell\b[^>]*?\bref=\"([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?\"")
_FORMULA_ONLY_RE = re.compile(
    rb"<(?:\w+:)?c\b[^>]*?\br=\"([A-Z]+)(\d+)\"[^>]*>\s*(?:<(?:\w+:)?f\b[^>]*/>|<(?:\w+:)?f\b[^>]*>[^<]*</(?:\w+:)?f>)"
    rb"\s*(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>")
_SCAN_CHUNK = 4 * 1024 * 1024


def _column_index(letters: bytes) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + letter - 64
    return index - 1


@dataclass
class _SheetTraps:
    """Cells whose value openpyxl cannot give faithfully: (row, column index) → problem code."""
    cells: dict[tuple[int, int], str] = field(default_factory=dict)

    def add_merge(self, c1: bytes, r1: bytes, c2: bytes | None, r2: bytes | None) -> None:
        first_col, first_row = _column_index(c1), int(r1)
        last_col, last_row = (_column_index(c2), int(r2)) if c2 else (first_col, first_row)
        for row in range(first_row, last_row + 1):
            for col in range(first_col, last_col + 1):
                if (row, col) != (first_row, first_col):   # the first cell holds the value
                    self.cells.setdefault((row, col), "merged_cell")


def _sheet_traps(sheet) -> _SheetTraps:
    """Scan the worksheet's XML once, in chunks (read-only openpyxl exposes neither merged ranges nor
    whether an empty cell is an uncomputed formula): merged ranges, whose rows after the first lost their
    value, and formula cells saved without a cached value (data_only reads them as empty)."""
    traps = _SheetTraps()
    with sheet.parent._archive.open(sheet._worksheet_path) as stream:
        tail = b""
        while True:
            chunk = stream.read(_SCAN_CHUNK)
            data = tail + chunk
            # Scan up to the last whole cell; the rest waits for the next chunk (all of it at the end).
            last_cell = data.rfind(b"</c>")
            cut = len(data) if not chunk else (last_cell + 4 if last_cell >= 0 else 0)
            body, tail = data[:cut], data[cut:]
            for match in _FORMULA_ONLY_RE.finditer(body):
                traps.cells[(int(match.group(2)), _column_index(match.group(1)))] = "formula_without_value"
            for match in _MERGE_RE.finditer(body):
                traps.add_merge(*match.groups())
            if not chunk:
                return traps


def _rows_xlsx(path: str, traps: _SheetTraps | None = None) -> Iterator[tuple[int, list]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable workbook is a file problem
        raise FileProblem(1, "", "unreadable", detail=type(e).__name__) from None
    try:
        sheet = workbook.worksheets[0]
        if traps is not None:
            traps.cells.update(_sheet_traps(sheet).cells)
        for index, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield index, list(values)
    finally:
        workbook.close()


def read_table(path: str, columns: tuple[str, ...], required: tuple[str, ...],
               report: ImportReport) -> Iterator[tuple[int, dict]]:
    """Yield (line number, {column: text}) for each data row; only the columns the header names are keys.

    Counts every data row in `report.rows`. File and header problems raise FileProblem; a malformed
    row is reported and skipped."""
    traps = _SheetTraps()
    rows = _rows_xlsx(path, traps) if _is_xlsx(path) else _rows_csv(path)
    header = None
    for line, values in rows:
        if header is None:
            header = [str(v or "").strip().lower().lstrip("\ufeff") for v in values]
            while header and header[-1] == "":
                header.pop()
            for name in required:
                if name not in header:
                    raise FileProblem(line, name, "missing_column", name=name)
            for name in header:
                if name not in columns:
                    raise FileProblem(line, name, "unknown_column", name=name)
            continue
        if all(v is None or str(v).strip() == "" for v in values):
            continue  # blank lines (and Excel's trailing empty rows) are skipped
        report.rows += 1
        trapped = [(name, traps.cells[(line, i)]) for i, name in enumerate(header) if (line, i) in traps.cells]
        if trapped:
            for name, code in trapped:
                report.add(line, name, code)
            continue
        if len(values) > len(header) and any(str(v or "").strip() for v in values[len(header):]):
            report.add(line, "", "malformed_row", count=len(values), expected=len(header))
            continue
        row = {name: nfc(_cell_text(values[i] if i < len(values) else None, name)) or "" for i, name in
               enumerate(header)}
        bad = [name for name, value in row.items() if has_bad_characters(value)]
        if bad:
            for name in bad:
                report.add(line, name, "bad_characters")
            continue
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


def import_org_units(path: str, *, actor_id: int | None = None,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """`progress(rows read)` is called every PROGRESS_EVERY rows (a background job shows it)."""
    started = time.perf_counter()
    report = ImportReport("org_units")
    rows: dict[str, _UnitRow] = {}
    invalid_codes: set[str] = set()  # codes of rows that were bad themselves: no extra noise for children
    try:
        for line, row in read_table(path, ORG_UNIT_COLUMNS, ORG_UNIT_COLUMNS, report):
            if progress is not None and report.rows % PROGRESS_EVERY == 0:
                progress(report.rows)
            unit = _validate_unit_row(report, line, row)
            if unit is None:
                invalid_codes.add(row.get("code", ""))
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

    _check_tree(report, rows, final, invalid_codes)
    _check_member_holders(report, rows, existing, final)
    if report.errors:
        return report

    _write_units(report, rows, existing)
    moved = recompute_paths()
    if moved:  # units that moved in the tree (and new ones): their progress rows follow them
        membership_changed.send(None, unit_ids=set(moved))
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


def _check_tree(report: ImportReport, rows: dict[str, _UnitRow], final: dict, invalid_codes: set[str]) -> None:
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
            if unit.parent_code not in invalid_codes:
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
    for _kind, parent in final.values():
        if parent is not None:
            children_count[parent] = children_count.get(parent, 0) + 1
    if not existing:
        return  # only units already in the database can hold members
    with_members = set(db.session.scalars(select(Member.org_unit_id).where(Member.active.is_(True))
                                          .group_by(Member.org_unit_id)))
    for code, (kind, _parent) in final.items():
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

KEEP = object()  # an optional column the file does not have: leave the stored value alone


@dataclass
class _MemberRow:
    line: int
    card_number: str
    full_name: str
    phone: object  # str | None | KEEP
    unit_id: int
    roles: set[tuple[str, int]] | None  # None: the file has no roles column
    password: str | None


class _UnitIndex:
    """Unit code -> (id, holds members), loaded once (25,000 rows for Hanoi)."""

    def __init__(self):
        parents = set(db.session.scalars(select(OrgUnit.parent_id).where(OrgUnit.parent_id.is_not(None))
                                         .distinct()))
        self.by_code = {code: (uid, holds_members(kind, uid in parents)) for uid, code, kind in
                        db.session.execute(select(OrgUnit.id, OrgUnit.code, OrgUnit.kind))}
        self.code_of = {uid: code for code, (uid, _) in self.by_code.items()}


def import_members(path: str, *, actor_id: int | None = None,
                   progress: Callable[[int], None] | None = None) -> ImportReport:
    """`progress(rows read)` is called every PROGRESS_EVERY rows (a background job shows it)."""
    return _MemberImport(actor_id, progress).run(path)


class _MemberImport:
    """One members file: validate every row, write batches while the file is clean, commit or roll back."""

    def __init__(self, actor_id: int | None, progress: Callable[[int], None] | None = None):
        self.report = ImportReport("members")
        self.actor_id = actor_id
        self.progress = progress
        self.units = _UnitIndex()
        self.min_password = current_app.config["PASSWORD_MIN_LENGTH"]
        self.seen_cards: dict[str, int] = {}             # card -> line
        self.seen_phones: dict[str, tuple[int, str]] = {}  # phone -> (line, card)
        # Phones still held in the database by a member whose row has not been read yet: written last,
        # once that member's row has released them (or reported as taken if it never does).
        self.deferred_phones: dict[str, tuple[int, str, str]] = {}  # card -> (line, phone, holder card)
        self.role_audit: list[dict] = []
        self.changed_units: set[int] = set()  # units whose members moved, left or changed roles
        self.joined: Counter[int] = Counter()  # unit -> members created there
        self.now = utcnow()

    def run(self, path: str) -> ImportReport:
        started = time.perf_counter()
        report = self.report
        batch: list[_MemberRow] = []
        try:
            for line, row in read_table(path, MEMBER_COLUMNS, MEMBER_REQUIRED, report):
                if self.progress is not None and report.rows % PROGRESS_EVERY == 0:
                    self.progress(report.rows)
                member = self.validate(line, row)
                if member is not None:
                    batch.append(member)
                if len(batch) >= BATCH_SIZE:
                    self.write_batch(batch)
                    batch = []
            if batch:
                self.write_batch(batch)
        except FileProblem as e:
            report.add(e.line, e.column, e.code, **e.params)
        self.settle_deferred_phones()
        if report.errors:
            db.session.rollback()
            return report
        if self.changed_units or self.joined:
            joined = {unit: n for unit, n in self.joined.items() if unit not in self.changed_units}
            membership_changed.send(self, unit_ids=self.changed_units, joined=joined)
        if self.role_audit:
            db.session.execute(insert(audit.AuditEntry), self.role_audit)
        audit.record("import.members", actor_id=self.actor_id, target_type="file",
                     target_id=os.path.basename(path), rows=report.rows, created=report.created,
                     updated=report.updated, transfers=report.transfers, roles_granted=report.roles_granted,
                     roles_revoked=report.roles_revoked)
        db.session.commit()
        report.seconds = time.perf_counter() - started
        return report

    # -- validation of one row (no database access) --

    def validate(self, line: int, row: dict) -> _MemberRow | None:
        report = self.report
        errors_before = len(report.errors)
        for column in MEMBER_REQUIRED:
            if not row.get(column):
                report.add(line, column, "missing_value")
        card, name = row.get("card_number", ""), row.get("full_name", "")
        if card and not CARD_RE.match(card):
            report.add(line, "card_number", "bad_card_number")
        elif card in self.seen_cards:
            report.add(line, "card_number", "duplicate", other_line=self.seen_cards[card])
        elif card:
            self.seen_cards[card] = line
        if len(name) > 255:
            report.add(line, "full_name", "too_long", max=255)
        phone = self.validate_phone(line, row, card)
        unit_id = None
        if unit_code := row.get("org_unit_code", ""):
            found = self.units.by_code.get(unit_code)
            if found is None:
                report.add(line, "org_unit_code", "unknown_unit", value=unit_code)
            elif not found[1]:
                report.add(line, "org_unit_code", "unit_holds_no_members", value=unit_code)
            else:
                unit_id = found[0]
        roles = self.validate_roles(line, row["roles"], unit_id) if "roles" in row else None
        password = row.get("password") or None
        if password is not None and len(password) < self.min_password:
            report.add(line, "password", "weak_password", min=self.min_password)
        if len(report.errors) > errors_before:
            return None
        return _MemberRow(line, card, name, phone, unit_id, roles, password)

    def validate_phone(self, line: int, row: dict, card: str):
        if "phone" not in row:
            return KEEP
        try:
            phone = normalise_phone(row["phone"])
        except ValueError:
            self.report.add(line, "phone", "bad_phone", value=row["phone"])
            return None
        if phone is not None:
            if phone in self.seen_phones and self.seen_phones[phone][1] != card:
                self.report.add(line, "phone", "duplicate", other_line=self.seen_phones[phone][0])
            else:
                self.seen_phones[phone] = (line, card)
        return phone

    def validate_roles(self, line: int, text: str, unit_id: int | None) -> set[tuple[str, int]]:
        roles: set[tuple[str, int]] = set()
        for item in filter(None, (part.strip() for part in text.split(";"))):
            role, _, scope_code = item.partition("@")
            role, scope_code = role.strip().lower(), scope_code.strip()
            if role not in ROLE_VALUES:
                self.report.add(line, "roles", "bad_role", value=item)
            elif scope_code and scope_code not in self.units.by_code:
                self.report.add(line, "roles", "unknown_unit", value=scope_code)
            elif scope_code:
                roles.add((role, self.units.by_code[scope_code][0]))
            elif unit_id is not None:
                roles.add((role, unit_id))
        return roles

    # -- writing a batch (validated against the database first) --

    def write_batch(self, batch: list[_MemberRow]) -> None:
        existing = {r.card_number: r for r in db.session.execute(
            select(Member.id, Member.card_number, Member.full_name, Member.phone, Member.org_unit_id,
                   Member.active, Member.password_hash.is_not(None).label("has_password"))
            .where(one_of(Member.card_number, [m.card_number for m in batch])))}
        self.defer_taken_phones(batch)
        if self.report.errors:
            return  # keep validating the rest of the file, but write nothing more
        updates, transfers = self.changes(batch, existing)
        # Phones may move between members of one batch: release the old numbers first (unique constraint).
        moving = [u for u in updates if "phone" in u]
        if moving:
            db.session.execute(update(Member), [{"id": u["id"], "phone": None} for u in moving])
        ids = {card: r.id for card, r in existing.items()}
        new_rows = [m for m in batch if m.card_number not in existing]
        if new_rows:
            ids.update(self.insert_members(new_rows))
        for keys in {tuple(sorted(u)) for u in updates}:  # one executemany per shape of change
            db.session.execute(update(Member), [u for u in updates if tuple(sorted(u)) == keys])
        if transfers:
            db.session.execute(insert(MemberTransfer), transfers)
            self.changed_units.update(u for t in transfers for u in (t["from_unit_id"], t["to_unit_id"]) if u)
        self.joined.update(m.unit_id for m in new_rows)
        report = self.report
        report.created += len(new_rows)
        report.updated += len(updates)
        report.unchanged += len(batch) - len(new_rows) - len(updates)
        report.transfers += len(transfers)
        self.sync_roles([m for m in batch if m.roles is not None], ids)

    def defer_taken_phones(self, batch: list[_MemberRow]) -> None:
        """A phone held in the database by another member: fine if that member's row, earlier in this
        file or in this batch, gives it up; deferred if the row may still come; wrong otherwise."""
        phones = [m.phone for m in batch if isinstance(m.phone, str)]
        if not phones:
            return
        holders = dict(db.session.execute(
            select(Member.phone, Member.card_number).where(one_of(Member.phone, phones))).all())
        for m in batch:
            holder = holders.get(m.phone) if isinstance(m.phone, str) else None
            if holder is None or holder == m.card_number or holder in self.seen_cards:
                continue
            self.deferred_phones[m.card_number] = (m.line, m.phone, holder)
            m.phone = None  # written without it for now; settle_deferred_phones sets it

    def settle_deferred_phones(self) -> None:
        if not self.deferred_phones:
            return
        for line, _phone, holder in self.deferred_phones.values():
            if holder not in self.seen_cards:
                self.report.add(line, "phone", "phone_taken", value=holder)
        if self.report.errors:
            return
        ids = dict(db.session.execute(select(Member.card_number, Member.id)
                                      .where(Member.card_number.in_(list(self.deferred_phones)))).all())
        db.session.execute(update(Member), [{"id": ids[card], "phone": phone}
                                            for card, (_, phone, _) in self.deferred_phones.items()])

    def changes(self, batch: list[_MemberRow], existing: dict) -> tuple[list[dict], list[dict]]:
        from handbook.auth import hash_password

        updates, transfers = [], []
        for m in batch:
            old = existing.get(m.card_number)
            if old is None:
                continue
            change = {}
            if old.full_name != m.full_name:
                change["full_name"] = m.full_name
            if m.phone is not KEEP and old.phone != m.phone:
                change["phone"] = m.phone
            if old.org_unit_id != m.unit_id:
                change["org_unit_id"] = m.unit_id
                transfers.append(self.transfer(old.id, old.org_unit_id, m.unit_id))
            if m.password and not old.has_password:
                change["password_hash"] = hash_password(m.password)
            if not old.active:  # a removed member listed again has rejoined: counted from now on
                change["active"] = True
                self.changed_units.add(m.unit_id)
            if change:
                change.update(id=old.id, updated_at=self.now)
                updates.append(change)
        return updates, transfers

    def insert_members(self, rows: list[_MemberRow]) -> dict[str, int]:
        from handbook.auth import hash_password

        # A plain executemany (pipelined by psycopg), then the ids by card number: an INSERT … RETURNING of
        # many rows is rendered as one huge statement whose parsing alone cost more than the insert.
        db.session.execute(insert(Member), [
            {"card_number": m.card_number, "full_name": m.full_name,
             "phone": None if m.phone is KEEP else m.phone, "org_unit_id": m.unit_id,
             "password_hash": hash_password(m.password) if m.password else None, "active": True,
             "created_at": self.now, "updated_at": self.now} for m in rows])
        ids = dict(db.session.execute(select(Member.card_number, Member.id)
                                      .where(one_of(Member.card_number, [m.card_number for m in rows]))).all())
        db.session.execute(insert(MemberTransfer), [self.transfer(ids[m.card_number], None, m.unit_id)
                                                    for m in rows])
        return ids

    def transfer(self, member_id: int, from_unit: int | None, to_unit: int) -> dict:
        return {"member_id": member_id, "from_unit_id": from_unit, "to_unit_id": to_unit,
                "transferred_at": self.now, "source": "import", "actor_id": self.actor_id}

    def sync_roles(self, batch: list[_MemberRow], ids: dict[str, int]) -> None:
        """The roles column is the member's whole set of roles: grant what is new, revoke what is gone."""
        if not batch:
            return
        current: dict[int, set[tuple[str, int]]] = {}
        for member_id, role, unit_id in db.session.execute(
                select(RoleGrant.member_id, RoleGrant.role, RoleGrant.org_unit_id)
                .where(one_of(RoleGrant.member_id, [ids[m.card_number] for m in batch]))):
            current.setdefault(member_id, set()).add((role, unit_id))
        grants, revokes = [], []
        for m in batch:
            member_id = ids[m.card_number]
            have = current.get(member_id, set())
            grants += [(member_id, role, unit) for role, unit in sorted(m.roles - have)]
            revokes += [(member_id, role, unit) for role, unit in sorted(have - m.roles)]
        if grants:
            db.session.execute(insert(RoleGrant), [
                {"member_id": member_id, "role": role, "org_unit_id": unit, "granted_at": self.now,
                 "granted_by": self.actor_id} for member_id, role, unit in grants])
        for member_id, role, unit in revokes:
            db.session.execute(delete(RoleGrant).where(RoleGrant.member_id == member_id, RoleGrant.role == role,
                                                       RoleGrant.org_unit_id == unit))
        role_changed = {member_id for member_id, _, _ in grants + revokes}
        self.changed_units.update(m.unit_id for m in batch if ids[m.card_number] in role_changed)
        self.report.roles_granted += len(grants)
        self.report.roles_revoked += len(revokes)
        for action, items in (("role.grant", grants), ("role.revoke", revokes)):
            self.role_audit += [
                {"at": self.now, "actor_id": self.actor_id, "action": action, "target_type": "member",
                 "target_id": str(member_id), "details": {"role": role, "org_unit": self.units.code_of[unit]}}
                for member_id, role, unit in items]
