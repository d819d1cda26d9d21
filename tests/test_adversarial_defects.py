"""Regression tests for the eleven defects of the outside adversarial run (issue 18), one or more per row,
on SQLite and PostgreSQL; each failed before its fix. The class behind each defect is tested where it can
be (every list, every column, every writer), not only the one reproduction.
"""
from __future__ import annotations

import base64
import json
import queue
import re
import runpy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from content.models import Receipt
from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.imports import import_members
from handbook.members import Member
from tests.factories import executed_statements, in_parallel, member
from tests.test_acknowledgements import API, assert_counters_exact, backdate, local_today, receipt
from tests.test_errors import assert_problem
from tests.test_imports import MEMBER_HEADER, write_csv


def pg_only(backend):
    if backend != "postgresql":
        pytest.skip("row-lock deadlocks exist only where rows are locked: PostgreSQL")


# --- 1: no deadlock between batch and single writers ---------------------------------------------------

def _branch_of(api, tree, size: int) -> list[str]:
    cards = [f"D{i:02d}" for i in range(size)]
    for card in cards:
        member(card, tree["b1"], name=f"Đảng viên {card}")
    db.session.commit()
    return cards


def test_a_briefing_racing_the_members_own_opens_never_deadlocks(backend, app, api, tree):
    """Row 1: the secretary briefs 12 members while each of them opens the document, six rounds. A batch
    writer used to lock receipt 1, move the unit's counter, then wait for receipt 2 held by a member who
    waited for that counter: PostgreSQL killed one of them (503)."""
    pg_only(backend)
    cards = _branch_of(api, tree, 12)
    auth = {card: api.auth(card) for card in cards}
    secretary = api.auth("S1")
    ids = [api.id(card) for card in cards]
    statuses: list[int] = []
    for _ in range(6):
        doc = api.publish("b1")
        calls = queue.Queue()
        for card in cards:
            calls.put(card)
        calls.put("S1")

        def request(c, doc=doc, calls=calls):
            who = calls.get()
            if who == "S1":
                return c.post(f"{API}/documents/{doc}/acknowledgements", headers=secretary, json={
                    "member_ids": list(reversed(ids)), "method": "briefing", "held_on": local_today().isoformat()})
            return c.post(f"{API}/documents/{doc}/open", headers=auth[who])

        statuses += in_parallel(app, len(cards) + 1, request)
    assert len(statuses) == 6 * 13
    assert set(statuses) <= {200, 204}, statuses
    assert_counters_exact()


def test_exemptions_racing_single_undos_never_deadlock(backend, app, api, tree):
    """Row 1, second reproduction: 20 threads exempting 3 members and undoing single exemptions, 200
    requests in all, on one document: every answer 200 or 204 (an undo of nothing is 404)."""
    pg_only(backend)
    doc = api.publish("b1")
    ids = [api.id(card) for card in ("M1", "M2", "CB")]
    secretary = api.auth("S1")
    statuses: list[int] = []
    for round_ in range(10):
        calls = queue.Queue()
        for i in range(20):
            calls.put(i)

        def request(c, calls=calls, round_=round_):
            i = calls.get()
            if i % 2 == 0:
                order = ids if (i + round_) % 4 else list(reversed(ids))
                return c.post(f"{API}/documents/{doc}/exemptions", headers=secretary,
                              json={"member_ids": order, "reason": "Ốm"})
            return c.delete(f"{API}/documents/{doc}/exemptions/{ids[i % 3]}", headers=secretary)

        statuses += in_parallel(app, 20, request)
    assert len(statuses) == 200
    assert set(statuses) <= {200, 204, 404}, statuses
    assert statuses.count(200) == 100   # every exemption batch went through
    assert_counters_exact()


def test_batch_writers_lock_receipts_before_counters_in_one_order(backend, app, api, tree):
    """The lock order itself, seen in the statements a batch sends: every receipt (by member id) before
    any counter (by unit id), so no single writer (receipt → counter) can wait in a cycle with it."""
    doc = api.publish("ba_dinh")
    ids = [api.id(card) for card in ("M4", "M1", "M3", "M2")]   # two units, ids out of order
    responses = []
    executed = executed_statements(lambda: responses.append(api.exempt("BT", doc, ids)))
    kinds = {"INSERT INTO RECEIPTS": "receipt", "UPDATE PROGRESS_COUNTERS": "counter"}
    statements = [kind for text in executed for start, kind in kinds.items() if text.lstrip().upper().startswith(start)]
    response = responses[0]
    assert response.status_code == 200, response.get_data(as_text=True)
    assert statements == ["receipt"] * 4 + ["counter"] * 2, statements
    assert_counters_exact()


# --- 2: merged cells in an XLSX import -----------------------------------------------------------------

def _xlsx(tmp_path, rows, merges=(), formula_cells=()):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(MEMBER_HEADER)
    for row in rows:
        ws.append(row)
    for cell_range in merges:
        ws.merge_cells(cell_range)
    for ref, formula in formula_cells:
        ws[ref] = formula
    path = tmp_path / "members.xlsx"
    wb.save(path)
    return str(path)


@pytest.mark.parametrize("merge, column", [("E2:E3", "roles"), ("C2:C3", "phone"), ("D2:D3", "org_unit_code"),
                                           ("B2:B3", "full_name"), ("F2:F3", "password")])
def test_merged_cells_are_refused_in_every_column(app, tmp_path, tree, merge, column):
    """Row 2: openpyxl gives a merged range's value to its first cell only; the rows below silently lost it
    (a secretary role, a phone, a unit). Every merged cell is refused with its line and column."""
    path = _xlsx(tmp_path, [
        ["01000001", "Nguyễn Văn An", "0912000001", "HN.BD.DB.1", "secretary", "mat-khau-dai-du"],
        ["01000002", "Trần Văn Bình", "0912000002", "HN.BD.DB.1", "secretary", "mat-khau-dai-du"],
    ], merges=[merge])
    report = import_members(path)
    assert [(e.line, e.column, e.code) for e in report.errors] == [(3, column, "merged_cell")]
    assert "gộp" in report.errors[0].reason("vi") and "merged" in report.errors[0].reason("en")
    assert db.session.scalar(select(Member).where(Member.card_number == "01000001")) is None


def test_a_merged_range_across_columns_names_each_covered_cell(app, tmp_path, tree):
    path = _xlsx(tmp_path, [["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1", "", ""]], merges=["E2:F2"])
    report = import_members(path)
    assert [(e.line, e.column, e.code) for e in report.errors] == [(2, "password", "merged_cell")]


# --- 3: an admin cannot remove themselves, nor the last admin over a unit -------------------------------

def test_an_admin_cannot_remove_themselves(api, tree):
    """Row 3: the only city admin removed themselves; their tokens died and no admin was left."""
    body = assert_problem(api.client.post(f"{API}/admin/members/{api.id('BT')}/removal",
                                          json={"reason": "Nhầm"}, headers=api.auth("BT")), 409, "cannot_remove_self")
    assert "chính mình" in body["detail"]
    assert db.session.get(Member, api.id("BT")).active
    assert api.client.get(f"{API}/me", headers=api.auth("BT")).status_code == 200


def test_the_last_admin_over_a_unit_cannot_be_removed(api, tree):
    """Row 3, the class: no removal may leave a unit with no active admin over it (its own or above).
    BT is the only admin over the city; M3, admin over Ba Đình (which holds BT's branch), removes BT."""
    from handbook.members import Role, RoleGrant

    db.session.add(RoleGrant(member_id=api.id("M3"), role=Role.ADMIN.value, org_unit_id=tree["ba_dinh"].id))
    db.session.commit()
    remove_bt = lambda by: api.client.post(f"{API}/admin/members/{api.id('BT')}/removal",  # noqa: E731
                                           json={"reason": "Nghỉ hưu"}, headers=api.auth(by))
    body = assert_problem(remove_bt("M3"), 409, "last_admin")
    assert tree["city"].name in body["detail"]
    db.session.expire_all()
    assert db.session.get(Member, api.id("BT")).active
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "member.remove")).all() == []

    # With a second admin over the city (M4), BT is not the last: the removal goes through, and M4 (who
    # covers Ba Đình from above) may then remove M3 too.
    db.session.add(RoleGrant(member_id=api.id("M4"), role=Role.ADMIN.value, org_unit_id=tree["city"].id))
    db.session.commit()
    assert remove_bt("M3").status_code == 204
    assert api.client.post(f"{API}/admin/members/{api.id('M3')}/removal", json={"reason": "Chuyển đi"},
                           headers=api.auth("M4")).status_code == 204
    # An inactive admin does not count: M4 is now the last over the city, and cannot remove themselves.
    assert_problem(api.client.post(f"{API}/admin/members/{api.id('M4')}/removal", json={"reason": "x"},
                                   headers=api.auth("M4")), 409, "cannot_remove_self")


# --- 4: NUL (and other characters the database cannot hold) in cursors ----------------------------------

def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("values", [[0, "\u0000", 1], [0, "/1/\u0000", 1], [0, "\ud800", 1], [0, "a\u0001", 1]])
def test_a_cursor_carrying_nul_is_an_invalid_cursor(api, tree, values):
    """Row 4: base64 of [0,"\\u0000",1] reached PostgreSQL as text and answered 500 (DataError)."""
    doc = api.publish()
    body = assert_problem(api.members("BT", doc, cursor=_cursor(values)), 422, "validation_error")
    assert body["errors"] == {"cursor": [body["errors"]["cursor"][0]]} and "cursor" in body["errors"]


def test_no_string_with_nul_reaches_the_database_on_any_list(api, tree):
    """The class: every list endpoint's cursor, and every string query parameter, with a NUL."""
    doc = api.publish()
    bad = _cursor(["2026-01-01T00:00:00+00:00\u0000", 1])
    for path in (f"{API}/documents", f"{API}/me/notifications", f"{API}/admin/documents", f"{API}/admin/audit",
                 f"{API}/documents/{doc}/members", f"{API}/org-units/{tree['city'].id}/compliance"):
        assert_problem(api.client.get(path, query_string={"cursor": bad}, headers=api.auth("BT")),
                       422, "validation_error")
    for query in ({"q": "a\u0000b"}, {"tag": "x\u0000"}):
        assert_problem(api.client.get(f"{API}/documents", query_string=query, headers=api.auth("BT")),
                       422, "validation_error")
    assert_problem(api.members("BT", doc, q="An\u0000"), 422, "validation_error")


# --- 5: opened_at <= acknowledged_at, and the earliest open is kept --------------------------------------

def _times(doc, card_id):
    db.session.expire_all()
    r = receipt(doc, card_id)
    as_utc = lambda t: t if t is None or t.tzinfo else t.replace(tzinfo=UTC)  # noqa: E731 - SQLite is naive
    return as_utc(r.opened_at), as_utc(r.acknowledged_at)


def test_an_earlier_offline_acknowledgement_moves_the_first_open_back(api, tree):
    """Row 5: opened online now, then a sync says it was opened and acknowledged 22 hours ago: the
    acknowledgement was stored 22 h before the stored first open."""
    doc = api.publish()
    backdate(doc, days=2)
    assert api.open("M1", doc).status_code == 204
    earlier = datetime.now(UTC) - timedelta(hours=22)
    result = api.sync("M1", [{"document_id": doc, "version": 1, "opened_at": earlier.isoformat(),
                              "acknowledged_at": (earlier + timedelta(minutes=5)).isoformat()}])
    assert result.status_code == 200 and result.json["results"][0]["status"] == "ok", result.json
    opened, acknowledged = _times(doc, api.id("M1"))
    assert abs((opened - earlier).total_seconds()) < 1
    assert opened <= acknowledged


def test_an_inverted_sync_item_is_not_stored_inverted(api, tree):
    doc = api.publish()
    backdate(doc, days=2)
    ack_at = datetime.now(UTC) - timedelta(hours=5)
    result = api.sync("M2", [{"document_id": doc, "version": 1, "opened_at": (ack_at + timedelta(hours=2)).isoformat(),
                              "acknowledged_at": ack_at.isoformat()}])
    assert result.status_code == 200 and result.json["results"][0]["status"] == "ok"
    opened, acknowledged = _times(doc, api.id("M2"))
    assert opened <= acknowledged
    assert abs((acknowledged - ack_at).total_seconds()) < 1


def test_acknowledged_online_then_an_earlier_open_synced_keeps_the_order(api, tree):
    doc = api.publish()
    backdate(doc, days=2)
    assert api.ack("M3", doc).status_code == 200
    earlier = datetime.now(UTC) - timedelta(hours=3)
    assert api.sync("M3", [{"document_id": doc, "opened_at": earlier.isoformat()}]).status_code == 200
    opened, acknowledged = _times(doc, api.id("M3"))
    assert abs((opened - earlier).total_seconds()) < 1 and opened <= acknowledged
    later = datetime.now(UTC) - timedelta(seconds=1)
    assert api.sync("M3", [{"document_id": doc, "opened_at": later.isoformat()}]).status_code == 200
    assert _times(doc, api.id("M3"))[0] == opened   # a later open changes nothing


# --- 6: query strings bounded to what the server's request line holds -----------------------------------

REQUEST_LINE_LIMIT = 8190  # gunicorn.conf.py's limit_request_line: gunicorn's own maximum
ASCII_PATTERNS = {"^[A-Za-z0-9_-]*$"}   # cursors: base64url


def _worst_bytes(schema: dict) -> int | None:
    """The longest a query value of `schema` can be on the request line, percent-encoded; None if unbounded."""
    if schema.get("type") == "array":
        item = _worst_bytes(schema.get("items", {}))
        return None if item is None or "maxItems" not in schema else schema["maxItems"] * item
    if schema.get("type") == "string":
        if "enum" in schema:
            return max(len(str(v)) for v in schema["enum"]) * 3
        if "maxLength" not in schema:
            return 40 if schema.get("format") in ("date", "date-time") else None
        ascii_only = schema.get("pattern") in ASCII_PATTERNS
        return schema["maxLength"] * (1 if ascii_only else 12)   # a 4-byte character is %XX%XX%XX%XX
    return 24   # integers, booleans


def test_every_query_fits_the_request_line(client):
    """Row 6: q of 1,000 × 'ệ' (9,000 bytes encoded) met gunicorn's 4,094-byte request line and got its
    414 text/html. Every GET's largest valid query, all parameters at their longest, fits the line."""
    from gunicorn.config import Config

    spec = client.get("/api/v1/openapi.json").json
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "get":
                continue
            total = len("GET /api/v1") + len(path) + 30 + len(" HTTP/1.1")
            for parameter in operation.get("parameters", []):
                if "$ref" in parameter:
                    parameter = spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
                if parameter["in"] != "query":
                    continue
                worst = _worst_bytes(parameter["schema"])
                assert worst is not None, f"{path} ?{parameter['name']} has no bound"
                total += len(parameter["name"]) + 2 + worst
                checked += 1
            assert total <= REQUEST_LINE_LIMIT, (path, total)
    assert checked > 20
    settings = runpy.run_path(str(Path(__file__).parent.parent / "gunicorn.conf.py"))
    assert settings["limit_request_line"] == REQUEST_LINE_LIMIT
    config = Config()   # gunicorn accepts it (it refuses a line limit past its own maximum)
    config.set("limit_request_line", settings["limit_request_line"])
    assert config.limit_request_line == REQUEST_LINE_LIMIT


def test_a_long_query_is_a_problem_not_an_html_414(api, tree):
    response = api.client.get(f"{API}/documents", query_string={"q": "ệ" * 1000}, headers=api.auth("M1"))
    body = assert_problem(response, 422, "validation_error")
    assert "q" in body["errors"]
    ok = api.client.get(f"{API}/documents", query_string={"q": "ệ" * 200}, headers=api.auth("M1"))
    assert ok.status_code == 200, ok.get_data(as_text=True)


# --- 7: the OpenAPI document says what the server enforces ------------------------------------------------

def test_an_empty_cursor_means_the_first_page_on_every_list(api, tree):
    """Row 7: `cursor=` was 422 on /me/notifications but 200 on /documents; the same input gets the same
    answer on every list: the first page."""
    doc = api.publish()
    for path in (f"{API}/documents", f"{API}/me/notifications", f"{API}/admin/documents", f"{API}/admin/audit",
                 f"{API}/documents/{doc}/members", f"{API}/org-units/{tree['city'].id}/compliance"):
        first = api.client.get(path, headers=api.auth("BT"))
        empty = api.client.get(path, query_string={"cursor": ""}, headers=api.auth("BT"))
        assert first.status_code == 200, (path, first.get_data(as_text=True))
        assert empty.status_code == 200, (path, empty.get_data(as_text=True))
        assert empty.json["items"] == first.json["items"], path


def test_the_publish_body_is_optional_as_the_server_treats_it(api, client):
    spec = client.get("/api/v1/openapi.json").json
    publish = spec["paths"]["/api/v1/admin/documents/{document_id}/publish"]["post"]
    assert publish["requestBody"].get("required", False) is False
    # ...and every documented-required body is refused when missing.
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue   # path-level parameters
            body = operation.get("requestBody")
            if body and body.get("required") and "application/json" in body["content"]:
                schema = body["content"]["application/json"]["schema"]
                ref = schema.get("$ref", "").rsplit("/", 1)[-1]
                component = spec["components"]["schemas"].get(ref, schema)
                assert component.get("required"), (path, method, "a required body with no required field")


def test_the_spec_says_control_characters_are_refused_and_devices_need_fid_or_token(client):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    login = schemas["Login"]["properties"]["username"]
    assert "pattern" in login and re.fullmatch(login["pattern"], "01000001")
    assert not re.fullmatch(login["pattern"].replace("\\u", "\\u"), "a\u0001b")
    device = schemas["DeviceIn"]
    assert {"required": ["fid"]} in device.get("anyOf", []) and {"required": ["token"]} in device["anyOf"]
    document = schemas["DocumentCreate"]["properties"]["series_id"]
    assert "study" in document.get("description", "")


# --- 8: a malformed JSON body is 400 on every endpoint, including the ones that read none ----------------

@pytest.mark.parametrize("method, path", [("post", "/documents/{doc}/open"), ("post", "/me/notifications/read-all"),
                                          ("post", "/auth/logout")])
def test_malformed_json_is_400_even_where_no_body_is_read(api, tree, method, path):
    doc = api.publish()
    response = getattr(api.client, method)(f"{API}{path.format(doc=doc)}", data="{bad json",
                                           content_type="application/json", headers=api.auth("M1"))
    assert_problem(response, 400, "malformed_json")
    assert receipt(doc, api.id("M1")) is None


# --- 9: when the next manual reminder may be sent, as a local time ---------------------------------------

def test_a_second_manual_reminder_says_when_in_local_time(api, tree):
    doc = api.publish("b1")
    first = api.client.post(f"{API}/documents/{doc}/reminders", json={"org_unit": tree["b1"].id},
                            headers=api.auth("S1"))
    assert first.status_code in (200, 202), first.get_data(as_text=True)
    second = api.client.post(f"{API}/documents/{doc}/reminders", json={"org_unit": tree["b1"].id},
                             headers=api.auth("S1"))
    body = assert_problem(second, 429, "reminder_too_soon")
    assert "giây" not in body["detail"]
    when = datetime.fromisoformat(body["retry_at"])
    assert when.utcoffset() == timedelta(hours=7)
    assert timedelta(hours=23, minutes=59) < when - datetime.now(UTC) <= timedelta(hours=24, seconds=5)
    assert when.strftime("%H:%M") in body["detail"] and when.strftime("%d/%m/%Y") in body["detail"]
    english = api.client.post(f"{API}/documents/{doc}/reminders", json={"org_unit": tree["b1"].id},
                              headers={**api.auth("S1"), "Accept-Language": "en"})
    assert "seconds" not in english.json["detail"] and when.strftime("%H:%M") in english.json["detail"]
    assert int(second.headers["Retry-After"]) > 86000


# --- 10: file problems named as they are -----------------------------------------------------------------

def test_a_utf16_csv_without_bom_is_named_not_utf8(app, tmp_path, tree):
    path = tmp_path / "utf16.csv"
    path.write_bytes("card_number,full_name,org_unit_code\n01000001,Nguyễn Văn An,HN.BD.DB.1\n"
                     .encode("utf-16-le"))
    report = import_members(str(path))
    assert [(e.line, e.code) for e in report.errors] == [(1, "utf16")]
    assert "UTF-16" in report.errors[0].reason("en") and "UTF-8" in report.errors[0].reason("vi")


def test_a_formula_cell_without_a_cached_value_is_named_as_such(app, tmp_path, tree):
    path = _xlsx(tmp_path, [["01000001", "Nguyễn Văn An", "", "HN.BD.DB.1", "", ""]],
                 formula_cells=[("B2", '=CONCAT("Nguyễn ","An")')])
    report = import_members(path)
    assert [(e.line, e.column, e.code) for e in report.errors] == [(2, "full_name", "formula_without_value")]
    assert "công thức" in report.errors[0].reason("vi") and "formula" in report.errors[0].reason("en")


# --- 11: exempting a member who already acknowledged writes nothing --------------------------------------

def test_exempting_an_acknowledged_member_writes_nothing_for_them(api, tree):
    doc = api.publish("b1")
    assert api.ack("M1", doc).status_code == 200
    response = api.exempt("S1", doc, [api.id("M1"), api.id("M2")], reason="Đi công tác")
    assert response.status_code == 200
    assert {r["member_id"]: r["status"] for r in response.json["results"]} == {
        api.id("M1"): "already_acknowledged", api.id("M2"): "ok"}
    db.session.expire_all()
    acknowledged = receipt(doc, api.id("M1"))
    assert acknowledged.exempt_reason is None and acknowledged.exempted_at is None
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "acknowledgement.exemption")).one()
    assert entry.details["members"] == [api.id("M2")]
    rows = api.all_members("S1", doc)
    m1 = next(r for r in rows if r["member"]["id"] == api.id("M1"))
    assert m1.get("exempt_reason") in (None, "") and m1["state"] == "acknowledged"
    assert_counters_exact()


# --- the class: every writer kind at once ------------------------------------------------------------------

STORM_SECONDS = 8.0
STORM_THREADS = 8


def _deadlocks() -> int:
    """PostgreSQL's own count of deadlocks detected in this database (what its log reports one by one).
    Backends publish their statistics when they exit, so the pool is closed first."""
    from sqlalchemy import text

    db.session.remove()
    db.engine.dispose()
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return conn.execute(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
                            ).scalar_one()


def test_every_writer_kind_at_once_keeps_counters_exact_without_deadlock(backend, app, api, tree, tmp_path):
    """Issue 18's class-level test: for a bounded time, threads acknowledge, open, sync several documents,
    brief and excuse batches in random orders, undo both, send manual reminders, publish new versions that
    need a new acknowledgement, move members between branches by import, and close branch meetings that
    brief their present members on the same documents, all at once. No 5xx, no
    deadlock counted by PostgreSQL, and the counters equal a recount from the raw rows."""
    import random
    import threading
    import time

    pg_only(backend)
    from tests.test_progress import write_members

    cards = _branch_of(api, tree, 10)
    for i in range(10):
        member(f"E{i:02d}", tree["b2"], name=f"Đảng viên E{i:02d}")
    db.session.commit()
    cards += [f"E{i:02d}" for i in range(10)]
    docs = [api.publish("phuong", title=f"Văn bản số {n}") for n in range(3)]
    backdate(*docs, days=1)
    auth = {card: api.auth(card) for card in cards + ["S1", "S2", "BT"]}
    ids = {card: api.id(card) for card in cards}
    unit_of = {"S1": tree["b1"].id, "S2": tree["b2"].id}
    moves = [write_members(tmp_path, f"move{n}.csv", [[card, f"Đảng viên {card}", unit]
                                                     for card in cards[n * 3:n * 3 + 3]])
             for n, unit in enumerate(["HN.BD.DB.2", "HN.BD.DB.1", "HN.BD.DB.2", "HN.BD.DB.1"])]
    meetings = _open_meetings(api, tree, docs, [ids[c] for c in cards[:10]])
    before = _deadlocks()
    statuses: dict[str, list[int]] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + STORM_SECONDS
    barrier = threading.Barrier(STORM_THREADS)

    def operations(rng: random.Random, c):
        doc = rng.choice(docs)
        card = rng.choice(cards)
        version = rng.choice([1, 2, 3])
        secretary = rng.choice(["S1", "S2"])
        batch = rng.sample([ids[c] for c in cards], 6)
        today = local_today().isoformat()
        yield "ack", lambda: c.put(f"{API}/documents/{doc}/acknowledgement", json={"version": version},
                                   headers=auth[card])
        yield "open", lambda: c.post(f"{API}/documents/{doc}/open", headers=auth[card])
        yield "sync", lambda: c.post(f"{API}/me/acknowledgements/sync", headers=auth[card], json={"items": [
            {"document_id": d, "version": version,
             "acknowledged_at": datetime.now(UTC).isoformat()} for d in rng.sample(docs, 3)]})
        yield "brief", lambda: c.post(f"{API}/documents/{doc}/acknowledgements", headers=auth[secretary], json={
            "member_ids": batch, "method": "briefing", "held_on": today})
        yield "exempt", lambda: c.post(f"{API}/documents/{doc}/exemptions", headers=auth[secretary],
                                       json={"member_ids": batch, "reason": "Ốm"})
        yield "unbrief", lambda: c.delete(f"{API}/documents/{doc}/acknowledgements/{ids[card]}",
                                          headers=auth[secretary])
        yield "unexempt", lambda: c.delete(f"{API}/documents/{doc}/exemptions/{ids[card]}", headers=auth[secretary])
        yield "remind", lambda: c.post(f"{API}/documents/{doc}/reminders", headers=auth[secretary],
                                       json={"org_unit": unit_of[secretary]})
        yield "reack", lambda: c.patch(f"/api/v1/admin/documents/{doc}", headers=auth["BT"], json={
            "body_html": f"<p>Bản sửa {rng.random()}</p>", "reack": True})
        yield "import", lambda: types_status(import_members(rng.choice(moves)).ok)
        meeting = rng.choice(meetings)
        yield "close", lambda: c.post(f"{API}/meetings/{meeting}/close", headers=auth["S1"])

    crashes: list[BaseException] = []

    def run(seed: int):
        try:
            storm(seed)
        except BaseException as e:   # a thread's failure is the test's failure
            crashes.append(e)

    def storm(seed: int):
        rng = random.Random(seed)
        with app.app_context():
            c = app.test_client()
            barrier.wait()
            while time.monotonic() < deadline:
                kinds = list(operations(rng, c))
                weights = [6, 4, 3, 2, 2, 2, 2, 1, 0.3, 0.3, 0.5]
                kind, call = rng.choices(kinds, weights=weights)[0]
                status = call().status_code
                with lock:
                    statuses.setdefault(kind, []).append(status)
                db.session.remove()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(STORM_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=STORM_SECONDS + 60)
    assert not any(t.is_alive() for t in threads)
    assert crashes == []

    allowed = {"ack": {200, 409, 422}, "open": {204}, "sync": {200}, "brief": {200}, "exempt": {200},
               "unbrief": {204, 404}, "unexempt": {204, 404}, "remind": {202, 409, 429}, "reack": {200},
               "import": {200}, "close": {200}}
    for kind, seen in statuses.items():
        assert set(seen) <= allowed[kind], (kind, sorted(set(seen)))
    assert set(statuses) == set(allowed), sorted(statuses)   # every writer kind ran
    assert sum(map(len, statuses.values())) > 100
    assert _deadlocks() == before
    assert_counters_exact()


def _open_meetings(api, tree, docs: list[int], present: list[int]) -> list[int]:
    """Meetings of b1 with every document on the agenda, started, some members marked present: closing
    one briefs them (receipts and counters) after locking the meeting, in the storm."""
    from datetime import datetime as dt

    from content.models import Meeting

    out = []
    for _ in range(4):
        starts = dt.now(UTC) + timedelta(hours=2)
        created = api.client.post(f"{API}/org-units/{tree['b1'].id}/meetings", headers=api.auth("S1"), json={
            "title": "Sinh hoạt chi bộ", "kind": "regular", "place": "Hội trường", "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "agenda": [{"title": f"Văn bản {d}", "document_id": d} for d in docs]})
        assert created.status_code == 201, created.get_data(as_text=True)
        out.append(created.json["id"])
        db.session.get(Meeting, out[-1]).starts_at = dt.now(UTC) - timedelta(minutes=5)
        db.session.commit()
        marked = api.client.put(f"{API}/meetings/{out[-1]}/attendance", headers=api.auth("S1"),
                                json={"present": present})
        assert marked.status_code == 200, marked.get_data(as_text=True)
    return out


def types_status(ok: bool):
    import types

    return types.SimpleNamespace(status_code=200 if ok else 500)


def test_gunicorn_with_the_projects_settings_answers_problem_json_past_its_line(tmp_path):
    """Row 6 over real HTTP: gunicorn started as `make run` starts it (reading gunicorn.conf.py). A query
    that fits the line reaches the API (401 problem+json without a token); one past gunicorn's line limit
    (the reported 1,000 × 'ệ' is 9,000 bytes) is gunicorn's own 414, now in problem+json too."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    root = Path(__file__).parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}", "HANDBOOK_ENV": "development"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                               "wsgi:app"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def get(query: str):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/documents?{query}", timeout=5) as r:
                    return r.status, r.headers["Content-Type"], json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, e.headers["Content-Type"], json.loads(e.read())

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        fits = urllib.parse.urlencode({"q": "ệ" * 600})   # 5,400 bytes: the app answers
        assert get(fits)[:2] == (401, "application/problem+json")
        too_long = urllib.parse.urlencode({"q": "ệ" * 1000})
        status, content_type, body = get(too_long)
        assert (status, content_type, body["code"], body["status"]) == (414, "application/problem+json",
                                                                         "uri_too_long", 414)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_json_boolean_is_true_or_false_only(api, tree):
    """Found by the fuzzing after the eleven (issue 19's run): `{"urgent": 0.0}` was taken as false and
    published, though the document says boolean. Every boolean of every JSON body, in nested objects
    too; query strings keep their true/false."""
    from content.models import Document

    created = api.client.post("/api/v1/admin/documents", headers=api.auth("BT"), json={
        "kind": "notice", "title": "Thông báo", "audience": {"org_units": [tree["city"].id]}})
    doc = created.json["id"]
    for value in (0.0, 1, "yes", "true", [], {}):
        response = api.client.post(f"/api/v1/admin/documents/{doc}/publish", json={"urgent": value},
                                   headers=api.auth("BT"))
        assert "urgent" in assert_problem(response, 422, "validation_error")["errors"], value
    assert db.session.get(Document, doc).status == "draft"
    assert "requires_ack" in assert_problem(api.client.post("/api/v1/admin/documents", headers=api.auth("BT"), json={
        "kind": "notice", "title": "x", "requires_ack": 0, "audience": {"org_units": [tree["city"].id]}}),
        422, "validation_error")["errors"]
    assert api.client.get(f"{API}/me/notifications", query_string={"unread": "true"},
                          headers=api.auth("M1")).status_code == 200
    assert api.client.post(f"/api/v1/admin/documents/{doc}/publish", json={"urgent": False},
                           headers=api.auth("BT")).status_code == 200
