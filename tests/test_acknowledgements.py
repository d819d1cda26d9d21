"""Acknowledgements (API.md "Reading" and "Following up"): opening, acknowledging, offline sync,
briefings and exemptions, with their undo, their audit trail and their scope.

Everything goes through HTTP on the real app and database (SQLite and PostgreSQL); documents are
published through POST /admin/documents and /publish. After every change the per-unit progress counters
are checked against the raw rows (`assert_counters_exact`, used by tests/test_progress.py too).

The world (fixture `world`), 12 members in three member-holding units:
    b1   (Chi bộ TDP 1, phường Điện Biên, Ba Đình): M1, M2, S1 (secretary@b1), CB (committee@ba_dinh)
    b2   (Chi bộ TDP 2, phường Điện Biên, Ba Đình): M3, M4, S2 (secretary@b2), BT (publisher+admin@city)
    cbcs (chi bộ cơ sở, Đống Đa):                   M5, M6, SD (secretary@cbcs), CD (committee@dong_da)
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from content.models import Document, ProgressCounter, Receipt
from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.i18n import FIELD_MESSAGES_VI
from handbook.members import Member, RoleGrant
from handbook.orgunits import OrgUnit
from tests.factories import bearer, in_server_zone, login, member
from tests.test_errors import assert_problem

API = "/api/v1"
ADMIN = f"{API}/admin/documents"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

WORLD_MEMBERS = {
    # card: (unit key, full name, roles as (role, unit key))
    "M1": ("b1", "Nguyễn Văn An", ()),
    "M2": ("b1", "Trần Thị Bình", ()),
    "S1": ("b1", "Lê Văn Cường", (("secretary", "b1"),)),
    "CB": ("b1", "Phạm Thị Dung", (("committee", "ba_dinh"),)),
    "M3": ("b2", "Hoàng Văn Em", ()),
    "M4": ("b2", "Vũ Thị Giang", ()),
    "S2": ("b2", "Đặng Văn Hải", (("secretary", "b2"),)),
    "BT": ("b2", "Bùi Thị Hoa", (("publisher", "city"), ("admin", "city"))),
    "M5": ("cbcs", "Đỗ Văn Khánh", ()),
    "M6": ("cbcs", "Ngô Thị Lan", ()),
    "SD": ("cbcs", "Dương Văn Minh", (("secretary", "cbcs"),)),
    "CD": ("cbcs", "Lý Thị Ngọc", (("committee", "dong_da"),)),
}


def local_today() -> date:
    return datetime.now(ZONE).date()


class Api:
    """The HTTP calls of these tests, with one login per member (cached)."""

    def __init__(self, client, tree: dict[str, OrgUnit]):
        self.client, self.tree = client, tree
        self.tokens: dict[str, dict] = {}

    def auth(self, card: str) -> dict:
        if card not in self.tokens:
            response = login(self.client, card)
            assert response.status_code == 200, response.get_data(as_text=True)
            self.tokens[card] = bearer(response.json["access_token"])
        return self.tokens[card]

    def id(self, card: str) -> int:
        return db.session.scalar(select(Member.id).where(Member.card_number == card))

    # --- publishing (as BT, publisher and admin over the city) ---
    def publish(self, *units: str, kind: str = "directive", requires_ack: bool = True, roles=None,
                title: str = "Chỉ thị về tăng cường kỷ luật, kỷ cương", ack_days: int | None = None,
                by: str = "BT") -> int:
        data = {"kind": kind, "number": "24-CT/TU", "title": title, "summary": "Tóm tắt",
                "body_html": "<p>Nội dung</p>", "issuing_body": "Ban Thường vụ Thành ủy",
                "issued_on": "2023-08-07", "requires_ack": requires_ack,
                "audience": {"org_units": [self.tree[u].id for u in (units or ("city",))]}}
        if roles:
            data["audience"]["roles"] = list(roles)
        if ack_days is not None:
            data["ack_days"] = ack_days
        created = self.client.post(ADMIN, json=data, headers=self.auth(by))
        assert created.status_code == 201, created.get_data(as_text=True)
        published = self.client.post(f"{ADMIN}/{created.json['id']}/publish", json={}, headers=self.auth(by))
        assert published.status_code == 200, published.get_data(as_text=True)
        return created.json["id"]

    def patch(self, doc_id: int, *, reack: bool, by: str = "BT", **fields):
        fields.setdefault("body_html", f"<p>Nội dung sửa {datetime.now(UTC).timestamp()}</p>")
        response = self.client.patch(f"{ADMIN}/{doc_id}", json={**fields, "reack": reack}, headers=self.auth(by))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    def withdraw(self, doc_id: int, by: str = "BT"):
        response = self.client.post(f"{ADMIN}/{doc_id}/withdraw", json={"reason": "Văn bản thay thế"},
                                    headers=self.auth(by))
        assert response.status_code == 200, response.get_data(as_text=True)

    # --- reading ---
    def open(self, card: str, doc_id: int):
        return self.client.post(f"{API}/documents/{doc_id}/open", headers=self.auth(card))

    def ack(self, card: str, doc_id: int, version: int = 1, **extra):
        return self.client.put(f"{API}/documents/{doc_id}/acknowledgement", json={"version": version, **extra},
                               headers=self.auth(card))

    def sync(self, card: str, items: list[dict], **extra):
        return self.client.post(f"{API}/me/acknowledgements/sync", json={"items": items, **extra},
                                headers=self.auth(card))

    def my(self, card: str, doc_id: int) -> dict:
        response = self.client.get(f"{API}/documents/{doc_id}", headers=self.auth(card))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json["my"]

    # --- following up ---
    def brief(self, card: str, doc_id: int, member_ids: list[int], held_on: date | None = None, note=None):
        payload = {"member_ids": member_ids, "method": "briefing",
                   "held_on": (held_on or local_today()).isoformat()}
        if note is not None:
            payload["note"] = note
        return self.client.post(f"{API}/documents/{doc_id}/acknowledgements", json=payload, headers=self.auth(card))

    def unbrief(self, card: str, doc_id: int, member_id: int):
        return self.client.delete(f"{API}/documents/{doc_id}/acknowledgements/{member_id}", headers=self.auth(card))

    def exempt(self, card: str, doc_id: int, member_ids: list[int], reason: str = "Ốm dài ngày"):
        return self.client.post(f"{API}/documents/{doc_id}/exemptions", json={"member_ids": member_ids,
                                                                              "reason": reason},
                                headers=self.auth(card))

    def unexempt(self, card: str, doc_id: int, member_id: int):
        return self.client.delete(f"{API}/documents/{doc_id}/exemptions/{member_id}", headers=self.auth(card))

    def progress(self, card: str, doc_id: int, unit: str | int | None = None):
        query = {}
        if unit is not None:
            query["org_unit"] = unit if isinstance(unit, int) else self.tree[unit].id
        return self.client.get(f"{API}/documents/{doc_id}/progress", query_string=query, headers=self.auth(card))

    def figures(self, card: str, doc_id: int, unit: str | None = None) -> dict:
        response = self.progress(card, doc_id, unit)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json

    def members(self, card: str, doc_id: int, **query):
        if isinstance(query.get("org_unit"), str):
            query["org_unit"] = self.tree[query["org_unit"]].id
        return self.client.get(f"{API}/documents/{doc_id}/members", query_string=query, headers=self.auth(card))

    def all_members(self, card: str, doc_id: int, limit: int = 100, cursor: str | None = None,
                    **query) -> list[dict]:
        """Every row of the member list (from `cursor` on), walking the cursor with pages of `limit`."""
        rows = []
        while True:
            page = self.members(card, doc_id, limit=limit, **({"cursor": cursor} if cursor else {}), **query)
            assert page.status_code == 200, page.get_data(as_text=True)
            rows += page.json["items"]
            cursor = page.json["next_cursor"]
            if not cursor:
                return rows

    def audit(self, action: str, by: str = "BT") -> list[dict]:
        response = self.client.get(f"{API}/admin/audit", query_string={"action": action, "limit": 100},
                                   headers=self.auth(by))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json["items"]


def make_world(tree: dict[str, OrgUnit]) -> None:
    for card, (unit_key, name, roles) in WORLD_MEMBERS.items():
        member(card, tree[unit_key], name=name, roles=[(role, tree[over]) for role, over in roles])


def receipt(doc_id: int, member_id: int) -> Receipt | None:
    db.session.expire_all()
    return db.session.get(Receipt, (doc_id, member_id))


def counter(doc_id: int, unit: OrgUnit) -> tuple[int, int, int, int] | None:
    """(total, opened, acknowledged, exempt) of one unit's counter row."""
    db.session.expire_all()
    row = db.session.get(ProgressCounter, (doc_id, unit.id))
    return None if row is None else (row.total, row.opened, row.acknowledged, row.exempt)


# --- the oracle: counters recomputed from the raw rows, independently of content/progress.py ----------

def expected_state(rec: Receipt | None, ack_version: int) -> str:
    """A member's state from their receipt: acknowledged > exempt > opened > new (API.md, README)."""
    if rec is None:
        return "new"
    if rec.acknowledged_version is not None and rec.acknowledged_version >= ack_version:
        return "acknowledged"
    if rec.exempted_at is not None:
        return "exempt"
    if rec.opened_at is not None:
        return "opened"
    return "new"


def expected_counters() -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """{(document, unit): (total, opened, acknowledged, exempt)} for every active document, from members,
    role grants, units, audiences and receipts, computed in Python."""
    db.session.expire_all()
    units = {u.id: u for u in db.session.scalars(select(OrgUnit))}
    roles: dict[int, set[str]] = {}
    for member_id, role in db.session.execute(select(RoleGrant.member_id, RoleGrant.role)):
        roles.setdefault(member_id, set()).add(role)
    members = db.session.execute(select(Member.id, Member.org_unit_id).where(Member.active.is_(True))).all()
    receipts = {(r.document_id, r.member_id): r for r in db.session.scalars(select(Receipt))}
    out: dict[tuple[int, int], list[int]] = {}
    for doc in db.session.scalars(select(Document).where(Document.status.in_(("published", "scheduled")))):
        audience_paths = [units[a.org_unit_id].path for a in doc.audience]
        wanted_roles = set(doc.audience_roles)
        for member_id, unit_id in members:
            path = units[unit_id].path
            if not any(path.startswith(p) for p in audience_paths):
                continue
            if wanted_roles and not (roles.get(member_id, set()) & wanted_roles):
                continue
            figures = out.setdefault((doc.id, unit_id), [0, 0, 0, 0])
            figures[0] += 1
            state = expected_state(receipts.get((doc.id, member_id)), doc.ack_version)
            index = {"opened": 1, "acknowledged": 2, "exempt": 3}.get(state)
            if index:
                figures[index] += 1
    return {key: tuple(v) for key, v in out.items()}


def stored_counters() -> dict[tuple[int, int], tuple[int, int, int, int]]:
    db.session.expire_all()
    active = set(db.session.scalars(select(Document.id).where(Document.status.in_(("published", "scheduled")))))
    return {(c.document_id, c.org_unit_id): (c.total, c.opened, c.acknowledged, c.exempt)
            for c in db.session.scalars(select(ProgressCounter)) if c.document_id in active}


def backdate(*doc_ids: int, days: int = 1) -> None:
    """Move publications into the past (so that client times are not clamped to them)."""
    for doc_id in doc_ids:
        db.session.get(Document, doc_id).published_at = datetime.now(UTC) - timedelta(days=days)
    db.session.commit()


def assert_counters_exact() -> None:
    """Every counter row of an active document equals the count from the raw rows (and none is missing),
    and its l1..l3 columns name the unit's ancestors at depths 1-3."""
    assert stored_counters() == expected_counters()
    units = {u.id: u for u in db.session.scalars(select(OrgUnit))}
    for c in db.session.scalars(select(ProgressCounter)):
        ids = [int(p) for p in units[c.org_unit_id].path.strip("/").split("/")]
        assert (c.l1_id, c.l2_id, c.l3_id) == tuple(ids[i] if len(ids) > i else None for i in (1, 2, 3))


# --- state transitions -------------------------------------------------------------------------------

def test_new_opened_acknowledged(api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    assert api.my("M1", doc)["state"] == "new"
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)

    assert api.open("M1", doc).status_code == 204
    first = receipt(doc, m1)
    assert first.opened_at is not None and first.acknowledged_at is None
    assert api.my("M1", doc)["state"] == "opened"
    assert counter(doc, tree["b1"]) == (4, 1, 0, 0)

    assert api.open("M1", doc).status_code == 204  # a second open keeps the first opened_at
    assert receipt(doc, m1).opened_at == first.opened_at
    assert counter(doc, tree["b1"]) == (4, 1, 0, 0)

    acked = api.ack("M1", doc, 1)
    assert acked.status_code == 200, acked.json
    assert acked.json["state"] == "acknowledged" and acked.json["acknowledged_version"] == 1
    assert datetime.fromisoformat(acked.json["acknowledged_at"]).utcoffset() is not None
    stored = receipt(doc, m1)
    assert stored.opened_at == first.opened_at and stored.method == "app" and stored.recorded_by == m1
    assert stored.acknowledged_at >= stored.opened_at
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    my = api.my("M1", doc)
    assert my["state"] == "acknowledged" and my["acknowledged_version"] == 1

    again = api.ack("M1", doc, 1)  # idempotent
    assert again.status_code == 200 and again.json == acked.json
    assert receipt(doc, m1).acknowledged_at == stored.acknowledged_at
    assert receipt(doc, m1).recorded_at == stored.recorded_at
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert api.open("M1", doc).status_code == 204  # opening after acknowledging changes nothing
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1
    assert_counters_exact()


def test_acknowledging_implies_opening(api, tree):
    doc = api.publish()
    response = api.ack("M2", doc, 1, platform="android", device="Pixel 7")
    assert response.status_code == 200
    stored = receipt(doc, api.id("M2"))
    assert stored.opened_at is not None and stored.opened_at == stored.acknowledged_at
    assert (stored.platform, stored.device, stored.method) == ("android", "Pixel 7", "app")
    assert response.json["opened_at"] is not None
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_an_acknowledgement_s_statements_are_each_seen_by_the_engine_s_cursor_events(api, tree):
    """An acknowledgement is, after the caller's member row: the document under its lock, the receipt
    upserted, the receipt's UPDATE and the counter's UPDATE; on PostgreSQL the two UPDATEs and the COMMIT
    go in one round trip (content.acknowledgements._pipelined), yet each statement is seen by the engine's
    cursor events before and after it runs, with the events' usual arguments and the parameters the driver
    got (what logs, statement counts and timings listen to). Acknowledging again writes nothing."""
    from tests.factories import cursor_events

    doc = api.publish()
    api.auth("M1")   # logged in before: only the acknowledgement's request is looked at
    responses = []
    events = cursor_events(lambda: responses.append(api.ack("M1", doc)))
    assert responses[0].status_code == 200, responses[0].get_data(as_text=True)
    # Every statement: "before", then "after" with the same statement and parameters, nothing in between.
    assert [kind for kind, *_ in events] == ["before", "after"] * (len(events) // 2) and len(events) % 2 == 0
    assert all(events[i][1:] == events[i + 1][1:] for i in range(0, len(events), 2))
    # One statement each (not executemany), with the engine's connection and the driver's cursor.
    assert {(executemany, from_the_engine) for *_, executemany, from_the_engine in events} == {(False, True)}
    writes = [statement.split()[:3] for _, statement, *_ in events[::2] if not statement.startswith("SELECT")]
    assert writes == [["INSERT", "INTO", "receipts"], ["UPDATE", "receipts", "SET"], ["UPDATE", "progress_counters", "SET"]]
    written = events[-4][2]   # the receipt's UPDATE, as the driver got it (the pipelined one compiled by hand)
    if isinstance(written, dict):   # psycopg's named parameters; SQLite's are positional
        assert (written["acknowledged_version"], written["method"], written["k_member_id"]) == (1, "app", api.id("M1"))
    else:
        assert {1, "app", api.id("M1")} <= set(written)
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)   # the pipelined COMMIT took effect
    assert_counters_exact()

    again = cursor_events(lambda: responses.append(api.ack("M1", doc)))
    assert responses[1].status_code == 200 and responses[1].json["state"] == "acknowledged"
    assert [s.split()[0] for kind, s, *_ in again if kind == "before"][-2:] == ["SELECT", "INSERT"]   # no UPDATE


@pytest.mark.parametrize("payload, field", [
    ({"version": 2}, "version"),                 # above the current version
    ({"version": 0}, "version"),
    ({"version": "1"}, "version"),
    ({}, "version"),
    ({"version": 1, "acknowledged_at": "2030-01-01T08:00:00"}, "acknowledged_at"),  # naive
    ({"version": 1, "acknowledged_at": "hôm qua"}, "acknowledged_at"),
    ({"version": 1, "platform": "symbian"}, "platform"),
    ({"version": 1, "colour": "red"}, "colour"),
])
def test_bad_acknowledgements_are_422_and_change_nothing(api, tree, payload, field):
    doc = api.publish()
    response = api.client.put(f"{API}/documents/{doc}/acknowledgement", json=payload, headers=api.auth("M1"))
    assert_problem(response, 422, "validation_error")
    assert field in response.json["errors"]
    if payload == {"version": 2}:   # the domain's own check, worded as the API words it
        assert response.json["errors"] == {"version": [FIELD_MESSAGES_VI["unknown_version"]]}
    assert receipt(doc, api.id("M1")) is None
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)


def test_material_change_asks_again_and_old_version_is_stale(api, tree):
    doc = api.publish()
    assert api.ack("M1", doc, 1).status_code == 200
    assert api.open("M2", doc).status_code == 204
    api.ack("M3", doc, 1)
    assert counter(doc, tree["b1"]) == (4, 1, 1, 0)
    edited = api.patch(doc, reack=True)
    assert (edited["version"], edited["ack_version"]) == (2, 2)
    # M1 acknowledged version 1 only: pending again (opened), the evidence of version 1 kept.
    assert counter(doc, tree["b1"]) == (4, 2, 0, 0)
    assert counter(doc, tree["b2"]) == (4, 1, 0, 0)
    my = api.my("M1", doc)
    assert my["state"] == "opened" and my["acknowledged_version"] == 1
    assert receipt(doc, api.id("M1")).acknowledged_version == 1

    stale = api.ack("M1", doc, 1)
    body = assert_problem(stale, 409, "stale_version")
    assert (body["current_version"], body["ack_version"]) == (2, 2)
    assert "(2)" in body["detail"]   # the detail names the current version
    assert counter(doc, tree["b1"]) == (4, 2, 0, 0)
    stale_new = api.ack("M4", doc, 1)  # never acknowledged, and reads an old copy
    assert assert_problem(stale_new, 409, "stale_version")["current_version"] == 2
    assert receipt(doc, api.id("M4")) is None

    fresh = api.ack("M1", doc, 2)
    assert fresh.status_code == 200 and fresh.json["acknowledged_version"] == 2
    assert counter(doc, tree["b1"]) == (4, 1, 1, 0)
    assert_problem(api.ack("M1", doc, 3), 422, "validation_error")
    assert_counters_exact()


def test_correction_keeps_acknowledgements(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    edited = api.patch(doc, reack=False, summary="Sửa lỗi chính tả")
    assert (edited["version"], edited["ack_version"]) == (2, 1)
    assert counter(doc, tree["b1"]) == (4, 1, 1, 0)
    assert api.my("M1", doc)["state"] == "acknowledged"
    # Version 1 is still good enough (it is the one to acknowledge); version 2 too; 3 does not exist.
    assert api.ack("M2", doc, 1).status_code == 200
    assert api.ack("M3", doc, 2).status_code == 200
    assert_problem(api.ack("M4", doc, 3), 422, "validation_error")
    assert counter(doc, tree["b1"]) == (4, 0, 2, 0)
    assert counter(doc, tree["b2"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_material_change_after_correction(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.patch(doc, reack=False, summary="Sửa chính tả")   # v2, ack_version 1
    api.ack("M2", doc, 2)
    api.patch(doc, reack=True)                            # v3, ack_version 3
    assert counter(doc, tree["b1"]) == (4, 2, 0, 0)
    assert assert_problem(api.ack("M2", doc, 2), 409, "stale_version")["current_version"] == 3
    assert api.ack("M2", doc, 3).status_code == 200
    assert_counters_exact()


def test_notice_without_acknowledgement(api, tree):
    notice = api.publish(kind="notice", requires_ack=False, title="Thông báo lịch sinh hoạt")
    assert api.open("M1", notice).status_code == 204
    assert_problem(api.ack("M1", notice, 1), 409, "ack_not_required")
    stored = receipt(notice, api.id("M1"))
    assert stored.acknowledged_at is None and stored.opened_at is not None
    assert_problem(api.brief("S1", notice, [api.id("M2")]), 409, "ack_not_required")
    assert receipt(notice, api.id("M2")) is None
    assert_counters_exact()


def test_client_time_is_clamped_and_server_time_kept(api, tree):
    doc = api.publish()
    published_at = db.session.get(Document, doc).published_at
    future = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    before = datetime.now(UTC)
    assert api.ack("M1", doc, 1, acknowledged_at=future.isoformat()).status_code == 200
    after = datetime.now(UTC)
    stored = receipt(doc, api.id("M1"))
    assert before <= stored.recorded_at <= after
    assert stored.acknowledged_at == stored.recorded_at  # clamped to now
    assert stored.client_acknowledged_at == future        # what the phone said is kept

    past = (published_at - timedelta(days=3)).astimezone(ZONE)  # another offset on purpose
    response = api.ack("M2", doc, 1, acknowledged_at=past.isoformat())
    assert response.status_code == 200
    stored = receipt(doc, api.id("M2"))
    assert stored.acknowledged_at == published_at       # clamped to the publication
    assert stored.client_acknowledged_at == past
    assert before <= stored.recorded_at <= datetime.now(UTC)
    assert datetime.fromisoformat(response.json["acknowledged_at"]) == published_at

    inside = published_at + (datetime.now(UTC) - published_at) / 2
    with in_server_zone("Etc/GMT-14"):   # the phone's own time, kept, is answered in UTC whatever the server's zone
        answered = api.ack("M3", doc, 1, acknowledged_at=inside.astimezone(ZONE).isoformat()).json["acknowledged_at"]
    stored = receipt(doc, api.id("M3"))
    assert abs(stored.acknowledged_at - inside) < timedelta(milliseconds=1)
    assert datetime.fromisoformat(answered) == stored.acknowledged_at
    assert datetime.fromisoformat(answered).utcoffset() == timedelta(0), answered
    assert stored.recorded_at > stored.acknowledged_at


def test_outside_the_audience_is_404(api, tree):
    doc = api.publish("ba_dinh")
    for card in ("M5", "SD", "CD"):  # Đống Đa
        assert_problem(api.open(card, doc), 404, "not_found")
        assert_problem(api.ack(card, doc, 1), 404, "not_found")
        assert_problem(api.client.get(f"{API}/documents/{doc}", headers=api.auth(card)), 404, "not_found")
    only_secretaries = api.publish("city", roles=["secretary"], title="Hướng dẫn dành cho bí thư chi bộ")
    assert_problem(api.ack("M1", only_secretaries, 1), 404, "not_found")
    assert_problem(api.open("M1", only_secretaries), 404, "not_found")
    assert api.ack("S1", only_secretaries, 1).status_code == 200
    for missing in (999999, 0):
        assert_problem(api.ack("M1", missing, 1), 404, "not_found")
        assert_problem(api.open("M1", missing), 404, "not_found")
    # A draft does not exist for readers.
    draft = api.client.post(ADMIN, headers=api.auth("BT"), json={
        "kind": "directive", "title": "Bản nháp", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    assert_problem(api.open("M1", draft), 404, "not_found")
    assert_problem(api.ack("M1", draft, 1), 404, "not_found")
    # Nor does a document scheduled for tomorrow, yet.
    scheduled = api.client.post(ADMIN, headers=api.auth("BT"), json={
        "kind": "directive", "title": "Hẹn giờ", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert api.client.post(f"{ADMIN}/{scheduled}/publish", json={"publish_at": at},
                           headers=api.auth("BT")).json["status"] == "scheduled"
    assert_problem(api.open("M1", scheduled), 404, "not_found")
    assert_problem(api.ack("M1", scheduled, 1), 404, "not_found")
    assert api.sync("M1", [{"document_id": scheduled, "version": 1, "acknowledged_at": at}]).json["results"] == [
        {"document_id": scheduled, "status": "not_found"}]
    assert db.session.scalar(select(func.count()).select_from(Receipt).where(Receipt.member_id != api.id("S1"))) == 0
    assert_counters_exact()


def test_a_draft_withdrawn_before_it_went_out_does_not_exist_for_briefings(api, tree):
    """A withdrawn document that was out is 409 `document_withdrawn` for secretaries (above); one withdrawn
    while still a draft never reached anyone: 404, even for its publisher, who is also an admin (a briefing
    role) over the whole audience."""
    draft = api.client.post(ADMIN, headers=api.auth("BT"), json={
        "kind": "directive", "title": "Bản nháp bỏ", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    api.withdraw(draft)
    for card in ("BT", "S1"):
        assert_problem(api.brief(card, draft, [api.id("M1")]), 404, "not_found")
        assert_problem(api.exempt(card, draft, [api.id("M1")]), 404, "not_found")
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_anonymous_is_401(api, tree):
    doc = api.publish()
    assert_problem(api.client.post(f"{API}/documents/{doc}/open"), 401, "unauthorized")
    assert_problem(api.client.put(f"{API}/documents/{doc}/acknowledgement", json={"version": 1}), 401,
                   "unauthorized")
    assert_problem(api.client.post(f"{API}/me/acknowledgements/sync", json={"items": []}), 401, "unauthorized")
    assert_problem(api.client.post(f"{API}/documents/{doc}/acknowledgements",
                                   json={"member_ids": [1], "method": "briefing", "held_on": "2026-01-01"}),
                   401, "unauthorized")
    assert_problem(api.client.post(f"{API}/documents/{doc}/exemptions", json={"member_ids": [1], "reason": "x"}),
                   401, "unauthorized")
    assert_problem(api.client.get(f"{API}/documents/{doc}/progress"), 401, "unauthorized")
    assert_problem(api.client.get(f"{API}/documents/{doc}/members"), 401, "unauthorized")
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_withdrawn_document_keeps_its_receipts(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    assert api.brief("S2", doc, [api.id("M3")]).json["results"][0]["status"] == "ok"
    api.exempt("S2", doc, [api.id("M4")], "Đi công tác nước ngoài")
    before = {(r.member_id, r.opened_at, r.acknowledged_at, r.acknowledged_version, r.method, r.exempt_reason)
              for r in db.session.scalars(select(Receipt))}
    assert len(before) == 4
    api.withdraw(doc)
    # Nothing can change the receipts of a withdrawn document any more, and nothing deletes them.
    assert_problem(api.open("M5", doc), 404, "not_found")
    assert_problem(api.ack("M2", doc, 1), 404, "not_found")
    assert api.sync("M2", [{"document_id": doc, "version": 1,
                            "acknowledged_at": datetime.now(UTC).isoformat()}]).json["results"] == [
        {"document_id": doc, "status": "not_found"}]
    for response in (api.brief("S1", doc, [api.id("M2")]), api.exempt("S1", doc, [api.id("M2")]),
                     api.unbrief("S2", doc, api.id("M3")), api.unexempt("S2", doc, api.id("M4"))):
        assert_problem(response, 409, "document_withdrawn")
    db.session.expire_all()
    after = {(r.member_id, r.opened_at, r.acknowledged_at, r.acknowledged_version, r.method, r.exempt_reason)
             for r in db.session.scalars(select(Receipt))}
    assert after == before
    assert_problem(api.client.get(f"{API}/documents/{doc}", headers=api.auth("M1")), 410, "document_withdrawn")


# --- offline sync ----------------------------------------------------------------------------------

def test_sync_results_per_item(api, tree):
    a = api.publish(title="Chỉ thị A")
    b = api.publish(title="Chỉ thị B")
    c = api.publish("dong_da", title="Kế hoạch của Quận ủy Đống Đa")    # not M1's
    notice = api.publish(kind="notice", requires_ack=False, title="Thông báo")
    api.patch(b, reack=True)  # b is at version 2 and asks again
    backdate(a, notice)
    now = datetime.now(UTC)
    opened_at = now - timedelta(minutes=30)
    response = api.sync("M1", [
        {"document_id": a, "version": 1, "acknowledged_at": (now - timedelta(minutes=5)).isoformat()},
        {"document_id": b, "version": 1, "acknowledged_at": (now - timedelta(minutes=4)).isoformat()},
        {"document_id": c, "version": 1, "acknowledged_at": now.isoformat()},
        {"document_id": 987654, "version": 1, "opened_at": now.isoformat()},
        {"document_id": notice, "opened_at": opened_at.isoformat()},
    ], platform="ios", device="iPhone 12")
    assert response.status_code == 200, response.json
    assert response.json["results"] == [
        {"document_id": a, "status": "ok"},
        {"document_id": b, "status": "stale_version", "current_version": 2},
        {"document_id": c, "status": "not_found"},
        {"document_id": 987654, "status": "not_found"},
        {"document_id": notice, "status": "ok"},
    ]
    m1 = api.id("M1")
    stored = receipt(a, m1)
    assert stored.acknowledged_version == 1 and stored.method == "app" and stored.platform == "ios"
    assert stored.device == "iPhone 12"
    assert abs(stored.acknowledged_at - (now - timedelta(minutes=5))) < timedelta(milliseconds=1)
    assert receipt(b, m1) is None and receipt(c, m1) is None
    assert abs(receipt(notice, m1).opened_at - opened_at) < timedelta(milliseconds=1)
    assert api.my("M1", a)["state"] == "acknowledged"
    assert_counters_exact()


def test_sync_items_with_a_version_alone_an_acknowledgement_without_one_or_nothing(api, tree):
    """A version alone acknowledges (now); an acknowledgement time without a version is `invalid` and
    changes nothing; an item with nothing to do is `ok` and changes nothing."""
    a, b, c = (api.publish(title=f"Chỉ thị {name}") for name in "ABC")
    backdate(a, b, c)
    response = api.sync("M1", [
        {"document_id": a, "version": 1},
        {"document_id": b, "acknowledged_at": datetime.now(UTC).isoformat()},
        {"document_id": c},
    ])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["results"] == [{"document_id": a, "status": "ok"}, {"document_id": b, "status": "invalid"},
                                         {"document_id": c, "status": "ok"}]
    m1 = api.id("M1")
    assert receipt(a, m1).acknowledged_version == 1 and receipt(a, m1).method == "app"
    assert receipt(b, m1) is None or receipt(b, m1).acknowledged_at is None
    assert receipt(c, m1) is None or (receipt(c, m1).opened_at, receipt(c, m1).acknowledged_at) == (None, None)
    assert_counters_exact()


def test_sync_mix_of_opened_and_acknowledged_items_and_duplicates(api, tree):
    a = api.publish(title="Chỉ thị A")
    b = api.publish(title="Chỉ thị B")
    now = datetime.now(UTC)
    first_open = now - timedelta(hours=2)
    response = api.sync("M2", [
        {"document_id": a, "opened_at": (now - timedelta(hours=1)).isoformat()},
        {"document_id": a, "opened_at": first_open.isoformat()},   # later in the list, earlier in time
        {"document_id": b, "version": 1, "opened_at": (now - timedelta(minutes=9)).isoformat()},  # opened only
        {"document_id": b, "version": 1, "acknowledged_at": (now - timedelta(minutes=3)).isoformat()},
        {"document_id": b, "version": 1, "acknowledged_at": (now - timedelta(minutes=1)).isoformat()},  # again
    ])
    assert response.status_code == 200, response.json
    assert [r["status"] for r in response.json["results"]] == ["ok"] * 5
    m2 = api.id("M2")
    ra, rb = receipt(a, m2), receipt(b, m2)
    # Opened only: the publication is a few seconds old, so both client times are clamped to it.
    published_a = db.session.get(Document, a).published_at
    assert ra.opened_at == published_a and ra.acknowledged_at is None
    assert rb.acknowledged_version == 1
    assert rb.opened_at <= rb.acknowledged_at
    # The first acknowledgement counts; the duplicate changes nothing.
    assert abs(rb.acknowledged_at - max(now - timedelta(minutes=3), db.session.get(Document, b).published_at)) \
        < timedelta(milliseconds=1)
    assert counter(a, tree["b1"]) == (4, 1, 0, 0)
    assert counter(b, tree["b1"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_an_acknowledgement_synced_again_changes_nothing(api, tree):
    """A receipt that already acknowledges the version asked for is left alone by a later offline item for
    the same version: its time, platform and device stay those of the first acknowledgement."""
    doc = api.publish()
    backdate(doc)
    now = datetime.now(UTC)
    first, second = now - timedelta(hours=2), now - timedelta(hours=1)
    assert api.sync("M1", [{"document_id": doc, "version": 1, "acknowledged_at": first.isoformat()}],
                    platform="ios", device="iPhone 12").json["results"] == [{"document_id": doc, "status": "ok"}]
    again = api.sync("M1", [{"document_id": doc, "version": 1, "acknowledged_at": second.isoformat()}],
                     platform="android", device="Pixel 7")
    assert again.json["results"] == [{"document_id": doc, "status": "ok"}]
    rec = receipt(doc, api.id("M1"))
    assert abs(rec.acknowledged_at - first) < timedelta(milliseconds=1), rec.acknowledged_at
    assert (rec.platform, rec.device, rec.method) == ("ios", "iPhone 12", "app")
    assert_counters_exact()


def test_sync_item_with_both_times_keeps_the_client_open_time(api, tree):
    doc = api.publish()
    backdate(doc)
    now = datetime.now(UTC)
    opened_at, acknowledged_at = now - timedelta(hours=3), now - timedelta(hours=1)
    response = api.sync("M1", [{"document_id": doc, "version": 1, "opened_at": opened_at.isoformat(),
                                "acknowledged_at": acknowledged_at.isoformat()}])
    assert response.json["results"] == [{"document_id": doc, "status": "ok"}]
    rec = receipt(doc, api.id("M1"))
    assert abs(rec.acknowledged_at - acknowledged_at) < timedelta(milliseconds=1)
    assert abs(rec.opened_at - opened_at) < timedelta(milliseconds=1)


def test_sync_of_an_offline_acknowledgement_made_before_a_material_change(api, tree):
    doc = api.publish()
    api.patch(doc, reack=True)
    response = api.sync("M3", [{"document_id": doc, "version": 1, "opened_at": datetime.now(UTC).isoformat(),
                                "acknowledged_at": datetime.now(UTC).isoformat()},
                               {"document_id": doc, "version": 2, "acknowledged_at": datetime.now(UTC).isoformat()}])
    assert response.json["results"] == [{"document_id": doc, "status": "stale_version", "current_version": 2},
                                        {"document_id": doc, "status": "ok"}]
    assert receipt(doc, api.id("M3")).acknowledged_version == 2
    assert counter(doc, tree["b2"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_sync_accepts_500_items_and_refuses_501(api, tree):
    doc = api.publish()
    items = [{"document_id": doc, "version": 1, "acknowledged_at": datetime.now(UTC).isoformat()}]
    items += [{"document_id": 100000 + i, "version": 1, "opened_at": datetime.now(UTC).isoformat()}
              for i in range(499)]
    response = api.sync("M5", items)
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.json["results"]
    assert len(results) == 500 and results[0] == {"document_id": doc, "status": "ok"}
    assert [r["document_id"] for r in results] == [i["document_id"] for i in items]
    assert {r["status"] for r in results[1:]} == {"not_found"}
    too_many = api.sync("M6", items + [{"document_id": doc, "version": 1,
                                        "acknowledged_at": datetime.now(UTC).isoformat()}])
    assert_problem(too_many, 422, "validation_error")
    assert "items" in too_many.json["errors"]
    assert receipt(doc, api.id("M6")) is None
    assert counter(doc, tree["cbcs"]) == (4, 0, 1, 0)


@pytest.mark.parametrize("item", [
    {"version": 1, "acknowledged_at": "2026-01-05T08:00:00"},           # naive
    {"version": 1, "opened_at": "2026-01-05 08:00"},                     # naive
    {"version": "1", "acknowledged_at": "2026-01-05T08:00:00+07:00"},
    {"version": 1, "acknowledged_at": "2026-01-05T08:00:00+07:00", "extra": 1},
])
def test_sync_validation(api, tree, item):
    doc = api.publish()
    response = api.sync("M1", [{"document_id": doc, "version": 1, "acknowledged_at": datetime.now(UTC).isoformat()},
                               {"document_id": doc, **item}])
    assert_problem(response, 422, "validation_error")
    assert "items" in response.json["errors"]
    assert receipt(doc, api.id("M1")) is None  # all or nothing: the valid item was not applied either
    assert_problem(api.client.post(f"{API}/me/acknowledgements/sync", json={}, headers=api.auth("M1")), 422,
                   "validation_error")


# --- briefings -------------------------------------------------------------------------------------

def test_briefing_results_receipts_undo_and_audit(api, tree):
    doc = api.publish()
    m1, m2, s1, m3 = api.id("M1"), api.id("M2"), api.id("S1"), api.id("M3")
    api.ack("M1", doc, 1)                  # acknowledged in the app already
    api.open("M2", doc)
    today = local_today()
    response = api.brief("S1", doc, [m1, m2, m3, 987654, m2], held_on=today, note="Sinh hoạt chi bộ tháng 8")
    assert response.status_code == 200, response.json
    assert response.json["results"] == [
        {"member_id": m1, "status": "already_acknowledged"},
        {"member_id": m2, "status": "ok"},
        {"member_id": m3, "status": "not_found"},       # another branch's member
        {"member_id": 987654, "status": "not_found"},   # no such member
    ]
    stored = receipt(doc, m2)
    assert (stored.method, stored.held_on, stored.note, stored.recorded_by, stored.acknowledged_version) == (
        "briefing", today, "Sinh hoạt chi bộ tháng 8", s1, 1)
    assert stored.opened_at is not None and stored.recorded_at is not None
    assert receipt(doc, m1).method == "app"
    assert receipt(doc, m3) is None
    assert counter(doc, tree["b1"]) == (4, 0, 2, 0)
    assert counter(doc, tree["b2"]) == (4, 0, 0, 0)
    rows = {r["member"]["card_number"]: r for r in api.all_members("S1", doc)}
    assert (rows["M2"]["state"], rows["M2"]["method"], rows["M2"]["held_on"]) == ("acknowledged", "briefing",
                                                                                   today.isoformat())
    assert rows["M1"]["method"] == "app"
    assert api.my("M2", doc)["state"] == "acknowledged"
    # Briefing again: already acknowledged, nothing moves.
    again = api.brief("S1", doc, [m2], held_on=today)
    assert again.json["results"] == [{"member_id": m2, "status": "already_acknowledged"}]
    assert receipt(doc, m2).note == "Sinh hoạt chi bộ tháng 8"
    assert_counters_exact()

    # Undo: back to pending (opened, since M2 had opened it).
    assert api.unbrief("S1", doc, m2).status_code == 204
    stored = receipt(doc, m2)
    assert stored.acknowledged_at is None and stored.method is None and stored.opened_at is not None
    assert counter(doc, tree["b1"]) == (4, 1, 1, 0)
    assert api.my("M2", doc)["state"] == "opened"
    assert_problem(api.unbrief("S1", doc, m2), 404, "not_found")       # nothing left to undo
    assert_problem(api.unbrief("S1", doc, m1), 404, "not_found")       # an app acknowledgement
    assert receipt(doc, m1).acknowledged_version == 1
    assert_problem(api.unbrief("S1", doc, 987654), 404, "not_found")
    assert_counters_exact()

    briefings = api.audit("acknowledgement.briefing")
    assert len(briefings) == 2
    first = briefings[-1]
    assert first["actor"]["card_number"] == "S1" and first["target_id"] == str(doc)
    assert first["details"]["members"] == [m2] and first["details"]["held_on"] == today.isoformat()
    assert first["details"]["note"] == "Sinh hoạt chi bộ tháng 8"
    undo = api.audit("acknowledgement.briefing_undo")
    assert len(undo) == 1 and undo[0]["actor"]["card_number"] == "S1" and undo[0]["details"]["member"] == m2
    assert (undo[0]["target_type"], undo[0]["target_id"]) == ("document", str(doc))
    assert first["target_type"] == "document"


def test_briefing_dates_are_days_in_hanoi_whatever_the_server_s_zone(api, tree):
    """held_on is a day in Hà Nội, on a server whose own zone is 12 hours behind UTC or 14 ahead: today
    there is never in the future and tomorrow there always is (between the two zones, one of them is on
    another date than Hà Nội at any hour), and the day before the publication's day in Hà Nội is refused
    though in the server's zone (12 hours behind) the document came out on that day."""
    doc = api.publish()
    m1, m2 = api.id("M1"), api.id("M2")
    published_day = local_today() - timedelta(days=3)
    stored = db.session.get(Document, doc)
    stored.published_at = datetime.combine(published_day, time(0, 30), tzinfo=ZONE).astimezone(UTC)
    db.session.commit()
    answers = {}
    for zone in ("Etc/GMT+12", "Etc/GMT-14"):   # POSIX signs: UTC-12 and UTC+14
        with in_server_zone(zone):
            answers[zone] = (api.brief("S1", doc, [m1], held_on=local_today()),
                             api.brief("S1", doc, [m2], held_on=local_today() + timedelta(days=1)),
                             api.brief("S1", doc, [m2], held_on=published_day - timedelta(days=1)))
    for zone, (today, tomorrow, before) in answers.items():
        assert today.status_code == 200, (zone, today.get_data(as_text=True))
        assert_problem(tomorrow, 422, "validation_error")
        assert tomorrow.json["errors"] == {"held_on": [FIELD_MESSAGES_VI["not_in_future"]]}, zone
        assert_problem(before, 422, "validation_error")
        assert before.json["errors"] == {"held_on": [FIELD_MESSAGES_VI["before_publication"]]}, zone
    assert receipt(doc, m1).held_on == local_today() and receipt(doc, m2) is None


def test_briefing_of_a_member_who_never_opened(api, tree):
    doc = api.publish()
    m4 = api.id("M4")
    assert api.brief("S2", doc, [m4]).json["results"] == [{"member_id": m4, "status": "ok"}]
    assert counter(doc, tree["b2"]) == (4, 0, 1, 0)
    # The member acknowledges in the app afterwards: idempotent, the briefing stays the evidence.
    assert api.ack("M4", doc, 1).status_code == 200
    assert receipt(doc, m4).method == "briefing"
    assert counter(doc, tree["b2"]) == (4, 0, 1, 0)
    assert api.unbrief("S2", doc, m4).status_code == 204
    assert counter(doc, tree["b2"]) == (4, 1, 0, 0)
    # Acknowledging in the app implied opening even though the briefing stood: after the undo, opened.
    assert api.my("M4", doc)["state"] == "opened"
    assert_counters_exact()


def test_briefing_dates(api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    tomorrow = api.brief("S1", doc, [m1], held_on=local_today() + timedelta(days=1))
    assert_problem(tomorrow, 422, "validation_error")
    assert tomorrow.json["errors"] == {"held_on": [FIELD_MESSAGES_VI["not_in_future"]]}
    before = api.brief("S1", doc, [m1], held_on=local_today() - timedelta(days=1))
    assert_problem(before, 422, "validation_error")
    assert before.json["errors"] == {"held_on": [FIELD_MESSAGES_VI["before_publication"]]}
    for bad in ({"held_on": "07/08/2026"}, {"held_on": None}, {"method": "app"}, {"member_ids": []},
                {"member_ids": ["1"]}, {"member_ids": list(range(1, 502))}, {"note": "x" * 2001}):
        payload = {"member_ids": [m1], "method": "briefing", "held_on": local_today().isoformat(), **bad}
        response = api.client.post(f"{API}/documents/{doc}/acknowledgements", json=payload, headers=api.auth("S1"))
        assert_problem(response, 422, "validation_error")
    assert receipt(doc, m1) is None
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like("acknowledgement.%"))) == 0
    # A briefing held on the day of publication (a document published days ago) is fine.
    stored = db.session.get(Document, doc)
    stored.published_at = datetime.now(UTC) - timedelta(days=3)
    db.session.commit()
    held = (stored.published_at.astimezone(ZONE)).date()
    response = api.brief("S1", doc, [m1], held_on=held)
    assert response.json["results"] == [{"member_id": m1, "status": "ok"}]
    rec = receipt(doc, m1)
    assert rec.held_on == held and rec.acknowledged_at >= db.session.get(Document, doc).published_at
    # A briefing held on a later day counts from 12:00 local time that day; no app fields on the receipt.
    m2, day = api.id("M2"), held + timedelta(days=1)
    assert api.brief("S1", doc, [m2], held_on=day).json["results"] == [{"member_id": m2, "status": "ok"}]
    rec = receipt(doc, m2)
    assert rec.acknowledged_at == datetime.combine(day, time(12, 0), tzinfo=ZONE), rec.acknowledged_at
    assert (rec.method, rec.platform, rec.device, rec.client_acknowledged_at) == ("briefing", None, None, None)
    assert_counters_exact()


def test_only_secretaries_and_admins_record_briefings(api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    for card in ("M2", "CB"):  # a plain member, a committee member over the district
        assert_problem(api.brief(card, doc, [m1]), 403, "forbidden")
        assert_problem(api.exempt(card, doc, [m1]), 403, "forbidden")
    assert receipt(doc, m1) is None
    assert api.brief("BT", doc, [m1]).json["results"] == [{"member_id": m1, "status": "ok"}]  # admin@city


def test_secretary_of_another_branch_gets_not_found(api, tree):
    doc = api.publish()
    m1, m3, m5 = api.id("M1"), api.id("M3"), api.id("M5")
    assert api.brief("S2", doc, [m1, m5]).json["results"] == [{"member_id": m1, "status": "not_found"},
                                                            {"member_id": m5, "status": "not_found"}]
    assert api.exempt("S2", doc, [m1]).json["results"] == [{"member_id": m1, "status": "not_found"}]
    api.brief("S1", doc, [m1])
    api.exempt("S1", doc, [api.id("M2")])
    assert_problem(api.unbrief("S2", doc, m1), 404, "not_found")
    assert_problem(api.unexempt("S2", doc, api.id("M2")), 404, "not_found")
    assert_problem(api.unbrief("SD", doc, m1), 404, "not_found")
    assert receipt(doc, m1).method == "briefing" and receipt(doc, api.id("M2")).exempted_at is not None
    assert receipt(doc, m3) is None and receipt(doc, m5) is None
    assert_counters_exact()


def test_briefing_on_a_document_outside_the_secretarys_scope_is_404(api, tree):
    doc = api.publish("dong_da", title="Kế hoạch của Quận ủy Đống Đa")
    m5 = api.id("M5")
    assert_problem(api.brief("S1", doc, [m5]), 404, "not_found")
    assert_problem(api.exempt("S1", doc, [m5]), 404, "not_found")
    api.withdraw(doc)
    assert_problem(api.brief("S1", doc, [m5]), 404, "not_found")
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like("acknowledgement.%"))) == 0


def test_briefing_after_material_change(api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    api.brief("S1", doc, [m1])
    api.patch(doc, reack=True)
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)  # the briefing of version 1 no longer counts
    assert api.brief("S1", doc, [m1]).json["results"] == [{"member_id": m1, "status": "ok"}]
    assert receipt(doc, m1).acknowledged_version == 2
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_an_app_acknowledgement_after_a_stale_briefing_keeps_nothing_of_the_briefing(api, tree):
    """Briefed on version 1, asked again by a material change, then acknowledged in the app: the receipt
    is the app's acknowledgement alone, without the old briefing's day and note."""
    doc = api.publish()
    m2 = api.id("M2")
    assert api.brief("S1", doc, [m2], note="Sinh hoạt chi bộ tháng 8").json["results"][0]["status"] == "ok"
    api.patch(doc, reack=True)
    assert api.ack("M2", doc, 2).status_code == 200
    rec = receipt(doc, m2)
    assert (rec.method, rec.acknowledged_version, rec.recorded_by, rec.held_on, rec.note) == ("app", 2, m2, None, None)
    assert_counters_exact()


# --- exemptions ------------------------------------------------------------------------------------

def test_exemption_leaves_the_denominator_and_undo(api, tree):
    doc = api.publish()
    m1, m2, s1 = api.id("M1"), api.id("M2"), api.id("S1")
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    before = api.figures("S1", doc)
    assert (before["total"], before["pending"], before["exempt"], before["opened"]) == (4, 3, 0, 1)
    response = api.exempt("S1", doc, [m2, m1, 987654], "Ốm dài ngày, điều trị tại bệnh viện")
    assert response.status_code == 200, response.json
    assert response.json["results"] == [{"member_id": m2, "status": "ok"},
                                        {"member_id": m1, "status": "already_acknowledged"},
                                        {"member_id": 987654, "status": "not_found"}]
    after = api.figures("S1", doc)
    assert (after["total"], after["pending"], after["exempt"], after["opened"], after["acknowledged"]) == (
        4, 2, 1, 0, 1)
    stored = receipt(doc, m2)
    assert stored.exempt_reason == "Ốm dài ngày, điều trị tại bệnh viện" and stored.exempted_by == s1
    assert stored.exempted_at is not None
    acknowledged = receipt(doc, m1)   # nothing to excuse: nothing written
    assert (acknowledged.exempted_at, acknowledged.exempt_reason, acknowledged.exempted_by) == (None, None, None)
    rows = {r["member"]["card_number"]: r for r in api.all_members("S1", doc)}
    assert rows["M2"]["state"] == "exempt" and rows["M2"]["exempt_reason"] == "Ốm dài ngày, điều trị tại bệnh viện"
    assert rows["M1"]["state"] == "acknowledged"
    assert api.my("M2", doc)["state"] == "exempt"
    assert_counters_exact()

    assert api.unexempt("S1", doc, m2).status_code == 204
    stored = receipt(doc, m2)
    assert (stored.exempted_at, stored.exempt_reason, stored.exempted_by) == (None, None, None)
    assert stored.opened_at is not None
    undone = api.figures("S1", doc)
    assert (undone["pending"], undone["exempt"], undone["opened"]) == (3, 0, 1)
    assert_problem(api.unexempt("S1", doc, m2), 404, "not_found")
    assert_problem(api.unexempt("S1", doc, api.id("M3")), 404, "not_found")
    assert_counters_exact()

    exemptions = api.audit("acknowledgement.exemption")
    assert len(exemptions) == 1 and exemptions[0]["actor"]["card_number"] == "S1"
    assert exemptions[0]["details"]["reason"] == "Ốm dài ngày, điều trị tại bệnh viện"
    assert exemptions[0]["details"]["members"] == [m2]   # neither the acknowledged M1 nor the unknown id
    undo = api.audit("acknowledgement.exemption_undo")
    assert len(undo) == 1 and undo[0]["details"]["member"] == m2 and undo[0]["target_id"] == str(doc)
    assert undo[0]["actor"]["card_number"] == "S1" and undo[0]["target_type"] == "document"
    assert exemptions[0]["target_type"] == "document" and exemptions[0]["target_id"] == str(doc)


def test_exempt_member_who_then_acknowledges(api, tree):
    doc = api.publish()
    m3 = api.id("M3")
    api.exempt("S2", doc, [m3])
    assert counter(doc, tree["b2"]) == (4, 0, 0, 1)
    assert api.ack("M3", doc, 1).status_code == 200
    assert counter(doc, tree["b2"]) == (4, 0, 1, 0)
    # A material change: the acknowledgement no longer counts, the exemption does again.
    api.patch(doc, reack=True)
    assert counter(doc, tree["b2"]) == (4, 0, 0, 1)
    assert api.my("M3", doc)["state"] == "exempt"
    assert_counters_exact()


def test_exemption_needs_a_reason(api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    for payload in ({"member_ids": [m1]}, {"member_ids": [m1], "reason": ""}, {"member_ids": [m1], "reason": "   "},
                    {"member_ids": [], "reason": "Ốm"}, {"member_ids": [m1], "reason": "x" * 2001}):
        response = api.client.post(f"{API}/documents/{doc}/exemptions", json=payload, headers=api.auth("S1"))
        assert_problem(response, 422, "validation_error")
    assert receipt(doc, m1) is None
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)


def test_an_exemption_without_a_reason_names_the_field(api, tree):
    """A reason that is empty once normalised (blank: the schema lets it through, being of length 1 to 2000)
    is refused with the field named and why, as every 422."""
    doc = api.publish()
    for reason in ("   ", "\t \u00a0"):
        response = api.exempt("S1", doc, [api.id("M1")], reason)
        assert_problem(response, 422, "validation_error")
        assert response.json["errors"] == {"reason": [FIELD_MESSAGES_VI["required"]]}, reason
    assert receipt(doc, api.id("M1")) is None


def test_a_secretary_s_recording_reads_only_the_members_it_lists(api, tree):
    """Exemptions, briefings and their undo load the rows of the members they list (and the secretary's
    own), not every member of the audience in the secretary's scope: a ward's directive reaches thousands."""
    from sqlalchemy import event

    doc = api.publish()
    m1, s1 = api.id("M1"), api.id("S1")
    api.auth("S1")
    loaded = []

    def keep(target, context):
        loaded.append(target.id)

    event.listen(Member, "load", keep)
    try:
        assert api.exempt("S1", doc, [m1]).status_code == 200
        assert api.unexempt("S1", doc, m1).status_code == 204
        assert api.brief("S1", doc, [m1]).status_code == 200
        assert api.unbrief("S1", doc, m1).status_code == 204
    finally:
        event.remove(Member, "load", keep)
    assert m1 in loaded   # the listener saw the loads
    assert set(loaded) <= {m1, s1}, sorted(set(loaded) - {m1, s1})
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)


def test_exemption_twice_keeps_one_count(api, tree):
    doc = api.publish()
    m5 = api.id("M5")
    first = api.exempt("SD", doc, [m5], "Ốm")
    assert first.status_code == 200 and receipt(doc, m5).exempt_reason == "Ốm"
    second = api.exempt("SD", doc, [m5, m5], "Miễn sinh hoạt đảng")
    assert second.status_code == 200, second.get_data(as_text=True)
    assert second.json == first.json  # one result for the member listed twice, as for the first call
    assert counter(doc, tree["cbcs"]) == (4, 0, 0, 1)
    assert receipt(doc, m5).exempt_reason == "Miễn sinh hoạt đảng"  # the latest reason is kept
    assert_counters_exact()
