"""The reading side through HTTP: feed, audience, visibility in time, withdrawal, pagination, states,
ETags, delta sync, transfers, the badge, study series, and (PostgreSQL) the feed's query plans.

Everything goes through the Flask test client against the real database; rows are written directly only
where the endpoint that would write them does not exist yet (receipts) or to let time pass (timestamps).
"""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select, text, update

from content.models import Document, DocumentAudience, Receipt
from handbook.extensions import db
from handbook.members import Member, MemberTransfer
from handbook.timeutil import utcnow
from tests.factories import bearer, document, executed_with_parameters, login, member, unit

API = "/api/v1"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
ITEM_KEYS = {"id", "kind", "number", "title", "summary", "issuing_body", "issued_on", "published_at",
             "requires_ack", "deadline", "version", "updated_at", "my"}
MY_KEYS = {"state", "opened_at", "acknowledged_at", "acknowledged_version"}


# --- helpers ---------------------------------------------------------------------------------------

def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.json
    assert PROBLEM_KEYS <= set(body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code
    text_ = response.get_data(as_text=True)
    for leak in ("Traceback", "SELECT", "sqlalchemy", "psycopg", "File \""):
        assert leak not in text_
    return body


def ts(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value!r} has no UTC offset"
    return parsed


def b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


class As:
    """A signed-in member talking to the API."""

    def __init__(self, client, card: str):
        r = login(client, card)
        assert r.status_code == 200, r.get_data(as_text=True)
        self.client = client
        self.headers = bearer(r.json["access_token"])
        self.id = r.json["member"]["id"]

    def get(self, path: str, headers: dict | None = None, **params):
        return self.client.get(API + path, query_string=params, headers={**self.headers, **(headers or {})})

    def post(self, path: str, body: dict | None = None):
        return self.client.post(API + path, json=body if body is not None else {}, headers=self.headers)

    def patch(self, path: str, body: dict):
        return self.client.patch(API + path, json=body, headers=self.headers)

    def feed(self, **params) -> dict:
        r = self.get("/documents", **params)
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.json

    def ids(self, **params) -> list[int]:
        params.setdefault("limit", 100)
        return [i["id"] for i in self.feed(**params)["items"]]

    def walk(self, **params) -> tuple[list[dict], int]:
        """Every item over every page; and how many pages it took."""
        items, cursor, pages = [], None, 0
        while True:
            page_params = dict(params)
            if cursor:
                page_params["cursor"] = cursor
            body = self.feed(**page_params)
            pages += 1
            items.extend(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                return items, pages
            assert pages < 100, "pagination does not end"

    def create(self, **fields) -> int:
        fields.setdefault("kind", "directive")
        fields.setdefault("title", "Văn bản thử")
        r = self.post("/admin/documents", fields)
        assert r.status_code == 201, r.get_data(as_text=True)
        return r.json["id"]

    def publish(self, doc_id: int, publish_at: datetime | None = None) -> dict:
        body = {"publish_at": publish_at.isoformat()} if publish_at is not None else {}
        r = self.post(f"/admin/documents/{doc_id}/publish", body)
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.json

    def withdraw(self, doc_id: int, reason: str = "Ban hành nhầm") -> None:
        r = self.post(f"/admin/documents/{doc_id}/withdraw", {"reason": reason})
        assert r.status_code == 200, r.get_data(as_text=True)


def set_doc(doc_id: int, **values) -> None:
    db.session.execute(update(Document).where(Document.id == doc_id).values(**values))
    db.session.commit()


def add_receipt(doc_id: int, member_id: int, *, opened: datetime | None = None, acked: datetime | None = None,
                version: int | None = None, method: str | None = "app") -> None:
    db.session.add(Receipt(document_id=doc_id, member_id=member_id, opened_at=opened, acknowledged_at=acked,
                           acknowledged_version=version, method=method if (opened or acked) else None,
                           recorded_at=utcnow()))
    db.session.commit()


def ack(doc_id: int, member_id: int, version: int = 1) -> None:
    now = utcnow()
    add_receipt(doc_id, member_id, opened=now - timedelta(minutes=5), acked=now, version=version)


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture()
def people(tree):
    """Publisher over the city; readers in branch 1, branch 2 (sibling) and Đống Đa; a secretary of b1."""
    return {
        "pub": member("09000001", tree["city"], name="Trần Văn Phát", roles=[("publisher", tree["city"])]),
        "an": member("01000001", tree["b1"], name="Nguyễn Văn An"),
        "binh": member("01000002", tree["b2"], name="Lê Thị Bình"),
        "chi": member("01000003", tree["cbcs"], name="Phạm Minh Chí"),
        "sec": member("01000004", tree["b1"], name="Hoàng Văn Sơn", roles=[("secretary", tree["b1"])]),
        "com": member("01000005", tree["b2"], name="Đỗ Thị Cúc", roles=[("committee", tree["phuong"])]),
        "sec_dd": member("01000006", tree["cbcs"], name="Vũ Văn Đông", roles=[("secretary", tree["cbcs"])]),
    }


@pytest.fixture()
def pub(client, people):
    return As(client, "09000001")


@pytest.fixture()
def an(client, people):
    return As(client, "01000001")


# --- authentication --------------------------------------------------------------------------------

ANONYMOUS_PATHS = ["/documents", "/documents/1", "/documents?q=chi",
                   "/documents?updated_since=2020-01-01T00:00:00Z", "/me/summary", "/series", "/series/1"]


def test_anonymous_is_401_everywhere(client, tree):
    document(tree["city"], [tree["city"]])
    for path in ANONYMOUS_PATHS:
        assert_problem(client.get(API + path), 401)
        assert_problem(client.get(API + path, headers={"Authorization": "Bearer not-a-token"}), 401)


# --- audience --------------------------------------------------------------------------------------

def test_member_sees_documents_for_their_unit_and_ancestors_only(client, tree, people):
    t = tree
    docs = {name: document(t["city"], [t[name]], title=f"Văn bản cho {name}").id
            for name in ("city", "ba_dinh", "phuong", "b1", "b2", "dong_da", "cbcs")}
    both = document(t["city"], [t["b2"], t["cbcs"]], title="Cho chi bộ 2 và Láng Thượng").id

    an, binh, chi = As(client, "01000001"), As(client, "01000002"), As(client, "01000003")
    assert set(an.ids()) == {docs["city"], docs["ba_dinh"], docs["phuong"], docs["b1"]}
    assert set(binh.ids()) == {docs["city"], docs["ba_dinh"], docs["phuong"], docs["b2"], both}
    assert set(chi.ids()) == {docs["city"], docs["dong_da"], docs["cbcs"], both}

    # Outside the audience: 404 (never 403), whether a sibling branch or another district.
    for hidden in (docs["b2"], docs["dong_da"], docs["cbcs"], both):
        assert_problem(an.get(f"/documents/{hidden}"), 404, "not_found")
    for visible in (docs["city"], docs["b1"]):
        r = an.get(f"/documents/{visible}")
        assert r.status_code == 200
        assert r.json["id"] == visible
    # And one that does not exist at all looks the same.
    missing = assert_problem(an.get("/documents/987654"), 404, "not_found")
    hidden = assert_problem(an.get(f"/documents/{docs['cbcs']}"), 404, "not_found")
    assert {k: v for k, v in missing.items() if k not in ("instance", "request_id")} == \
           {k: v for k, v in hidden.items() if k not in ("instance", "request_id")}


def test_a_document_reaching_me_through_several_units_is_listed_once(client, tree, people, an):
    t = tree
    start = (utcnow() - timedelta(seconds=1)).isoformat()
    doc = document(t["city"], [t["city"], t["ba_dinh"], t["phuong"], t["b1"], t["b2"]], title="Gửi nhiều cấp").id
    other = document(t["city"], [t["b1"]], title="Chỉ chi bộ 1").id
    assert an.ids() == [other, doc]
    assert an.ids(q="gui nhieu cap") == [doc]
    assert [i["id"] for i in an.feed(updated_since=start)["items"]] == [doc, other]
    assert an.ids(state="pending") == [other, doc]
    assert an.get("/me/summary").json["pending"] == 2
    items, pages = an.walk(limit=1)
    assert [i["id"] for i in items] == [other, doc] and pages == 2


def test_a_huge_document_id_is_404_not_500(client, tree, an):
    document(tree["city"], [tree["city"]])
    assert_problem(an.get("/documents/99999999999999999999999"), 404, "not_found")
    assert_problem(an.get(f"/documents/{2**63}"), 404, "not_found")


def test_role_restricted_audience(client, tree, people):
    t = tree
    secretaries = document(t["city"], [t["city"]], title="Gửi bí thư chi bộ", roles=["secretary"]).id
    committees = document(t["city"], [t["ba_dinh"]], title="Gửi cấp ủy và bí thư", roles=["secretary", "committee"]).id
    b1_secretaries = document(t["city"], [t["b1"]], title="Gửi bí thư chi bộ 1", roles=["secretary"]).id
    everyone = document(t["city"], [t["city"]], title="Gửi mọi đảng viên").id

    an, sec, com, sec_dd = (As(client, c) for c in ("01000001", "01000004", "01000005", "01000006"))
    assert set(an.ids()) == {everyone}
    assert set(sec.ids()) == {everyone, secretaries, committees, b1_secretaries}
    assert set(com.ids()) == {everyone, committees}
    # A secretary in another district: the role matches but the unit does not.
    assert set(sec_dd.ids()) == {everyone, secretaries}

    for hidden in (secretaries, committees, b1_secretaries):
        assert_problem(an.get(f"/documents/{hidden}"), 404, "not_found")
    assert_problem(sec_dd.get(f"/documents/{b1_secretaries}"), 404, "not_found")
    assert sec.get(f"/documents/{b1_secretaries}").status_code == 200


# --- time: drafts, scheduling, withdrawal ----------------------------------------------------------

def test_drafts_and_future_scheduled_documents_are_invisible_until_due(client, tree, pub, an):
    t = tree
    before = utcnow() - timedelta(hours=1)
    draft = pub.create(title="Dự thảo chưa ban hành", audience={"org_units": [t["city"].id]})
    scheduled = pub.create(title="Kế hoạch sẽ ban hành", audience={"org_units": [t["city"].id]})
    result = pub.publish(scheduled, utcnow() + timedelta(hours=2))
    assert result["status"] == "scheduled"

    def invisible(doc_id):
        assert doc_id not in an.ids()
        assert doc_id not in [i["id"] for i in an.feed(updated_since=before.isoformat(), limit=100)["items"]]
        assert doc_id not in an.ids(q="ban hanh")
        assert_problem(an.get(f"/documents/{doc_id}"), 404, "not_found")

    invisible(draft)
    invisible(scheduled)
    assert an.get("/me/summary").json["pending"] == 0

    # Time passes (the publication instant is moved into the past) but nobody runs `push run-due`.
    due = utcnow() - timedelta(minutes=1)
    set_doc(scheduled, published_at=due, sync_at=due, deadline=due + timedelta(days=14))
    assert db.session.scalar(select(Document.status).where(Document.id == scheduled)) == "scheduled"
    assert scheduled in an.ids()
    assert an.get(f"/documents/{scheduled}").status_code == 200
    synced = an.feed(updated_since=before.isoformat(), limit=100)["items"]
    assert [i["id"] for i in synced] == [scheduled]
    assert scheduled in an.ids(q="ban hanh")
    assert an.get("/me/summary").json["pending"] == 1
    invisible(draft)


def test_a_scheduled_document_appears_when_its_time_comes_without_the_worker(client, tree, pub, an):
    doc = pub.create(title="Thông báo hẹn giờ", audience={"org_units": [tree["b1"].id]})
    start = utcnow()
    at = start + timedelta(seconds=1)
    assert pub.publish(doc, at)["status"] == "scheduled"
    assert doc not in an.ids()
    assert_problem(an.get(f"/documents/{doc}"), 404, "not_found")
    time.sleep(max(0.0, (at - utcnow()).total_seconds()) + 0.2)
    assert an.ids() == [doc]
    detail = an.get(f"/documents/{doc}")
    assert detail.status_code == 200
    assert ts(detail.json["published_at"]) == at
    assert [i["id"] for i in an.feed(updated_since=start.isoformat())["items"]] == [doc]
    assert db.session.scalar(select(Document.status).where(Document.id == doc)) == "scheduled"


def test_withdrawn_document_leaves_the_feed_and_answers_410(client, tree, pub, an, people):
    keep = pub.create(title="Văn bản vẫn hiệu lực", audience={"org_units": [tree["b1"].id]})
    gone = pub.create(title="Văn bản bị thu hồi", audience={"org_units": [tree["b1"].id]})
    pub.publish(keep)
    pub.publish(gone)
    add_receipt(gone, an.id, opened=utcnow())
    assert set(an.ids()) == {keep, gone}
    assert an.get("/me/summary").json["pending"] == 2

    pub.withdraw(gone)
    assert an.ids() == [keep]
    assert an.ids(state="opened") == []
    assert gone not in an.ids(q="thu hoi")
    assert_problem(an.get(f"/documents/{gone}"), 410, "document_withdrawn")
    assert an.get("/me/summary").json["pending"] == 1
    # Someone outside the audience still gets 404: withdrawal does not reveal it.
    chi = As(client, "01000003")
    assert_problem(chi.get(f"/documents/{gone}"), 404, "not_found")
    # The member's receipt is kept.
    assert db.session.get(Receipt, (gone, an.id)) is not None


def test_a_document_withdrawn_the_instant_it_came_out_had_come_out(client, tree, pub, an, people):
    """`was_out` (SQL) and `went_out` (Python) agree at the boundary: withdrawn at the very instant it
    was published, readers could have seen it (410); withdrawn a moment before, never (404)."""
    from content.access import went_out

    at = utcnow().replace(microsecond=0) - timedelta(hours=1)
    both = document(tree["city"], [tree["b1"]], title="Thu hồi đúng lúc đăng").id
    early = document(tree["city"], [tree["b1"]], title="Thu hồi trước khi đăng").id
    set_doc(both, status="withdrawn", published_at=at, withdrawn_at=at)
    set_doc(early, status="withdrawn", published_at=at, withdrawn_at=at - timedelta(seconds=1))
    assert went_out(db.session.get(Document, both)) and not went_out(db.session.get(Document, early))
    assert_problem(an.get(f"/documents/{both}"), 410, "document_withdrawn")
    assert_problem(an.get(f"/documents/{early}"), 404, "not_found")


def test_a_document_is_out_from_the_very_instant_of_its_publication(client, tree, people):
    """`is_out` (SQL, at a given instant) and `went_out` (Python) agree at the boundary: a document
    scheduled for T is out at T itself, and not a microsecond before."""
    from content.access import Reader, readable, went_out

    at = utcnow().replace(microsecond=0) + timedelta(hours=1)
    doc = document(tree["city"], [tree["b1"]], title="Hẹn giờ đúng lúc", status="scheduled").id
    set_doc(doc, published_at=at)
    reader = Reader.of(people["an"])
    instants = (at - timedelta(microseconds=1), at, at + timedelta(microseconds=1))

    def readable_at(now):
        return db.session.scalars(select(Document.id).where(Document.id == doc, readable(reader, now))).all() == [doc]

    assert [readable_at(now) for now in instants] == [False, True, True]
    loaded = db.session.get(Document, doc)
    assert [went_out(loaded, now) for now in instants] == [False, True, True]


def test_a_document_withdrawn_before_its_scheduled_time_never_existed_for_readers(client, tree, pub, an):
    start = utcnow() - timedelta(seconds=1)
    doc = pub.create(title="Hẹn giờ rồi hủy", audience={"org_units": [tree["b1"].id]})
    pub.publish(doc, utcnow() + timedelta(hours=3))
    pub.withdraw(doc, "Hủy trước khi ban hành")
    assert doc not in an.ids()
    assert an.feed(updated_since=start.isoformat())["items"] == []
    assert_problem(an.get(f"/documents/{doc}"), 404, "not_found")


# --- ordering and pagination -----------------------------------------------------------------------

def test_feed_is_newest_first_with_id_breaking_ties(client, tree, an):
    base = utcnow() - timedelta(days=3)
    offsets = [5, 1, 9, 1, 3, 9, 0]  # hours after base; two pairs of ties
    ids = []
    for i, hours in enumerate(offsets):
        d = document(tree["city"], [tree["city"]], title=f"Văn bản {i}")
        set_doc(d.id, published_at=base + timedelta(hours=hours), sync_at=base + timedelta(hours=hours))
        ids.append(d.id)
    expected = [i for _, i in sorted(zip(offsets, ids), key=lambda p: (p[0], p[1]), reverse=True)]
    items = an.feed()["items"]
    assert [i["id"] for i in items] == expected
    published = [ts(i["published_at"]) for i in items]
    assert published == sorted(published, reverse=True)


def test_cursor_pagination_walks_every_item_exactly_once(client, tree, an):
    base = utcnow().replace(microsecond=0) - timedelta(days=2)   # whole seconds: isoformat() has no fraction
    ids = []
    for i in range(25):
        d = document(tree["city"], [tree["city"] if i % 2 else tree["b1"]], title=f"Văn bản số {i}")
        # Groups of three share one publication instant: the cursor must break ties.
        at = base + timedelta(minutes=i // 3)
        set_doc(d.id, published_at=at, sync_at=at)
        ids.append(d.id)
    document(tree["city"], [tree["b2"]], title="Không phải của tôi")

    full = an.ids()
    assert len(full) == 25 and set(full) == set(ids)
    items, pages = an.walk(limit=7)
    assert pages == 4
    assert [i["id"] for i in items] == full
    # A page size that divides the total leaves no empty trailing page.
    items, pages = an.walk(limit=5)
    assert pages == 5 and [i["id"] for i in items] == full


def test_documents_published_while_paging_do_not_shift_pages(client, tree, an):
    base = utcnow() - timedelta(days=1)
    for i in range(10):
        d = document(tree["city"], [tree["city"]], title=f"Cũ {i}")
        set_doc(d.id, published_at=base + timedelta(minutes=i))
    full = an.ids()
    first = an.feed(limit=4)
    newcomer = document(tree["city"], [tree["city"]], title="Mới ban hành giữa chừng").id
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        body = an.feed(limit=4, cursor=cursor)
        seen.extend(i["id"] for i in body["items"])
        cursor = body["next_cursor"]
    assert seen == full
    assert an.ids()[0] == newcomer


GARBAGE_CURSORS = [
    "garbage", "!!!!", "%%%", "eyJ", b64({"a": 1}), b64([]), b64(["2026-01-01T00:00:00+00:00"]),
    b64(["not a time", 5]), b64([5, 5]), b64(["2026-01-01T00:00:00+00:00", "7"]),
    b64(["2026-01-01T00:00:00+00:00", True]), b64([None, None]), b64(["2026-01-01T00:00:00+00:00", 1, 2]),
    base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(), "x" * 513,
]


def test_garbage_cursor_is_422(client, tree, an):
    document(tree["city"], [tree["city"]])
    for cursor in GARBAGE_CURSORS:
        body = assert_problem(an.get("/documents", cursor=cursor), 422, "validation_error")
        assert "cursor" in body["errors"], cursor


def test_cursor_with_a_naive_time_is_422(client, tree, an):
    document(tree["city"], [tree["city"]])
    body = assert_problem(an.get("/documents", cursor=b64(["2026-01-01T00:00:00", 5])), 422, "validation_error")
    assert "cursor" in body["errors"]


@pytest.mark.parametrize("cursor", [
    b64(["2026-01-01T00:00:00+00:00", 10**30]),
    b64(["9999-12-31T23:59:59+00:00", 2**63]),
    b64(["2000-01-01T00:00:00+00:00", -(10**20)]),
    b64(["0001-01-01T00:00:00+07:00", 5]),
    b64(["9999-12-31T23:59:59-05:00", 5]),
], ids=["id-1e30", "id-2^63", "id-negative-1e20", "year-1-plus-7", "year-9999-minus-5"])
def test_forged_cursor_with_out_of_range_values_is_not_a_server_error(client, tree, an, cursor):
    document(tree["city"], [tree["city"]])
    r = an.get("/documents", cursor=cursor)
    assert r.status_code in (200, 422), r.get_data(as_text=True)
    if r.status_code == 422:
        assert_problem(r, 422, "validation_error")


def test_limit_bounds(client, tree, an):
    for i in range(3):
        document(tree["city"], [tree["city"]], title=f"Văn bản {i}")
    for limit in (0, 101, -1, "abc", "1.5", ""):
        body = assert_problem(an.get("/documents", limit=limit), 422, "validation_error")
        assert "limit" in body["errors"]
    for limit in (1, 2, 3, 100):
        body = an.feed(limit=limit)
        assert len(body["items"]) == min(limit, 3)
        assert (body["next_cursor"] is None) == (limit >= 3)


def test_default_page_is_20(client, tree, an):
    for i in range(21):
        document(tree["city"], [tree["city"]], title=f"Văn bản {i}")
    body = an.feed()
    assert len(body["items"]) == 20 and body["next_cursor"]


INVALID_PARAMS = [{"kind": "law"}, {"kind": ""}, {"state": "read"}, {"updated_since": "yesterday"},
                  {"updated_since": "2026-01-01T00:00:00"}, {"updated_since": "2026-01-01"}, {"q": ""},
                  {"q": "x" * 201}]


def test_invalid_query_parameters_are_422(client, tree, an):
    document(tree["city"], [tree["city"]])
    for params in INVALID_PARAMS:
        body = assert_problem(an.get("/documents", **params), 422, "validation_error")
        assert set(params) <= set(body["errors"]), params


@pytest.mark.parametrize("params", [{"unknown": "1"}, {"stat": "pending"}])
def test_unknown_query_parameters_are_422(client, tree, an, params):
    document(tree["city"], [tree["city"]])
    body = assert_problem(an.get("/documents", **params), 422, "validation_error")
    assert set(params) <= set(body["errors"])


# --- item shape and `my` ---------------------------------------------------------------------------

def test_items_carry_the_contract_fields_and_my_state(client, tree, pub, an):
    doc = pub.create(kind="resolution", number="05-NQ/TU", title="Nghị quyết về chuyển đổi số",
                     summary="Tóm tắt", issuing_body="Thành ủy Hà Nội", issued_on="2026-03-02",
                     audience={"org_units": [tree["city"].id]}, ack_days=10, tags=["chuyển đổi số"])
    info = pub.create(kind="notice", title="Thông báo không cần xác nhận", requires_ack=False,
                      audience={"org_units": [tree["b1"].id]})
    published = pub.publish(doc)
    pub.publish(info)

    items = {i["id"]: i for i in an.feed()["items"]}
    it = items[doc]
    assert ITEM_KEYS <= set(it)
    assert set(it["my"]) >= MY_KEYS
    assert (it["kind"], it["number"], it["title"], it["summary"], it["issuing_body"], it["issued_on"]) == \
           ("resolution", "05-NQ/TU", "Nghị quyết về chuyển đổi số", "Tóm tắt", "Thành ủy Hà Nội", "2026-03-02")
    assert it["requires_ack"] is True and it["version"] == 1
    assert it["my"] == {"state": "new", "opened_at": None, "acknowledged_at": None, "acknowledged_version": None}
    # The deadline is the end of a local (Asia/Ho_Chi_Minh) day, `ack_days` after publication.
    deadline = ts(it["deadline"])
    assert deadline.utcoffset() == timedelta(hours=7)
    assert (deadline.hour, deadline.minute, deadline.second) == (23, 59, 59)
    local_publication = ts(it["published_at"]).astimezone(deadline.tzinfo)
    assert (deadline.date() - local_publication.date()).days == 10
    assert deadline == ts(published["deadline"])
    assert ts(it["published_at"]).utcoffset() is not None and ts(it["updated_at"]) is not None
    assert items[info]["requires_ack"] is False and items[info]["deadline"] is None

    opened = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    acked = opened + timedelta(minutes=1)
    add_receipt(doc, an.id, opened=opened, acked=acked, version=1)
    add_receipt(info, an.id, opened=opened)
    items = {i["id"]: i for i in an.feed()["items"]}
    my = items[doc]["my"]
    assert my["state"] == "acknowledged" and my["acknowledged_version"] == 1
    assert ts(my["opened_at"]) == opened and ts(my["acknowledged_at"]) == acked
    assert items[info]["my"]["state"] == "opened" and ts(items[info]["my"]["opened_at"]) == opened

    detail = an.get(f"/documents/{doc}").json
    assert {"body_html", "attachments"} <= set(detail) and detail["attachments"] == []
    assert detail["my"] == items[doc]["my"]
    # Another member's receipt is not mine.
    assert As(client, "01000004").get(f"/documents/{doc}").json["my"]["state"] == "new"


def test_detail_body_is_sanitised(client, tree, pub, an):
    doc = pub.create(title="Văn bản có mã độc", audience={"org_units": [tree["b1"].id]},
                     body_html='<p onclick="x()">Nội dung</p><script>alert(1)</script><a href="javascript:x()">l</a>')
    pub.publish(doc)
    body = an.get(f"/documents/{doc}").json["body_html"]
    assert "Nội dung" in body
    for bad in ("<script", "onclick", "javascript:", "alert(1)"):
        assert bad not in body


# --- state filters ---------------------------------------------------------------------------------

@pytest.fixture()
def states(tree, people):
    """One document per situation, for member An (b1)."""
    t, an_id = tree, people["an"].id
    now = utcnow()
    past = now - timedelta(days=1)

    def doc(title, requires_ack=True, kind="directive"):
        return document(t["city"], [t["b1"]], title=title, requires_ack=requires_ack, kind=kind).id

    d = {
        "new": doc("Chưa mở"),
        "opened": doc("Đã mở, chưa xác nhận"),
        "acked": doc("Đã xác nhận", kind="plan"),
        "overdue": doc("Quá hạn, chưa mở"),
        "overdue_opened": doc("Quá hạn, đã mở"),
        "info_new": doc("Thông báo chưa mở", requires_ack=False, kind="notice"),
        "info_opened": doc("Thông báo đã mở", requires_ack=False, kind="notice"),
        "acked_late": doc("Xác nhận sau hạn", kind="plan"),
    }
    add_receipt(d["opened"], an_id, opened=now)
    ack(d["acked"], an_id)
    add_receipt(d["overdue_opened"], an_id, opened=now - timedelta(days=2))
    add_receipt(d["info_opened"], an_id, opened=now)
    ack(d["acked_late"], an_id)
    for name in ("overdue", "overdue_opened", "acked_late"):
        set_doc(d[name], deadline=past)
    return d


def test_state_of_each_document(client, states, an):
    d = states
    by_id = {i["id"]: i["my"]["state"] for i in an.feed()["items"]}
    assert by_id == {d["new"]: "new", d["opened"]: "opened", d["acked"]: "acknowledged",
                     d["overdue"]: "overdue", d["overdue_opened"]: "overdue", d["info_new"]: "new",
                     d["info_opened"]: "opened", d["acked_late"]: "acknowledged"}


def test_state_filters(client, states, an):
    d = states
    assert set(an.ids(state="pending")) == {d["new"], d["opened"], d["overdue"], d["overdue_opened"]}
    assert set(an.ids(state="overdue")) == {d["overdue"], d["overdue_opened"]}
    assert set(an.ids(state="acknowledged")) == {d["acked"], d["acked_late"]}
    assert {d["new"], d["info_new"]} <= set(an.ids(state="new"))
    assert {d["opened"], d["info_opened"]} <= set(an.ids(state="opened"))
    assert not {d["acked"], d["acked_late"], d["opened"], d["info_opened"]} & set(an.ids(state="new"))
    assert not {d["acked"], d["acked_late"], d["new"], d["info_new"]} & set(an.ids(state="opened"))
    # Filters combine with kind and still paginate.
    assert set(an.ids(state="acknowledged", kind="plan")) == {d["acked"], d["acked_late"]}
    assert an.ids(state="acknowledged", kind="notice") == []
    assert set(an.ids(kind="notice")) == {d["info_new"], d["info_opened"]}
    items, pages = an.walk(state="pending", limit=3)
    assert pages == 2 and sorted(i["id"] for i in items) == sorted(an.ids(state="pending"))
    # Another member has none of An's receipts.
    sec = As(client, "01000004")
    assert set(sec.ids(state="pending")) == {d["new"], d["opened"], d["acked"], d["overdue"],
                                             d["overdue_opened"], d["acked_late"]}
    assert sec.ids(state="acknowledged") == []


def test_each_state_filter_returns_exactly_the_items_in_that_state(client, states, an):
    for state in ("new", "opened", "acknowledged", "overdue"):
        items = an.feed(state=state, limit=100)["items"]
        assert items, state
        assert {i["my"]["state"] for i in items} == {state}, state
    everything = an.feed(limit=100)["items"]
    for state in ("new", "opened", "acknowledged", "overdue"):
        assert set(an.ids(state=state)) == {i["id"] for i in everything if i["my"]["state"] == state}


def test_briefed_member_is_not_new(client, tree, people, an):
    doc = document(tree["city"], [tree["b1"]], title="Đã phổ biến tại chi bộ").id
    add_receipt(doc, an.id, acked=utcnow(), version=1, method="briefing")
    assert an.feed()["items"][0]["my"]["state"] == "acknowledged"
    assert an.ids(state="acknowledged") == [doc]
    assert an.ids(state="new") == []


def test_material_change_asks_again_and_a_correction_does_not(client, tree, pub, an):
    material = pub.create(title="Kế hoạch ban đầu", audience={"org_units": [tree["b1"].id]})
    correction = pub.create(title="Hướng dẫn có lỗi chính tả", audience={"org_units": [tree["b1"].id]})
    pub.publish(material)
    pub.publish(correction)
    ack(material, an.id)
    ack(correction, an.id)
    assert set(an.ids(state="acknowledged")) == {material, correction}
    assert an.get("/me/summary").json["pending"] == 0
    etag = an.get(f"/documents/{material}").headers["ETag"]

    r = pub.patch(f"/admin/documents/{material}", {"title": "Kế hoạch sửa đổi nội dung", "reack": True,
                                                   "note": "Thay đổi thời gian thực hiện"})
    assert r.status_code == 200 and r.json["version"] == 2 and r.json["ack_version"] == 2
    r = pub.patch(f"/admin/documents/{correction}", {"title": "Hướng dẫn đã sửa lỗi chính tả", "reack": False})
    assert r.status_code == 200 and r.json["version"] == 2 and r.json["ack_version"] == 1

    items = {i["id"]: i for i in an.feed()["items"]}
    assert items[material]["my"]["state"] == "opened"  # read (and acknowledged) before: opened, not new
    assert items[material]["my"]["acknowledged_version"] == 1
    assert items[material]["version"] == 2 and items[material]["title"] == "Kế hoạch sửa đổi nội dung"
    assert items[correction]["my"]["state"] == "acknowledged"
    assert items[correction]["version"] == 2 and items[correction]["title"] == "Hướng dẫn đã sửa lỗi chính tả"
    assert an.ids(state="pending") == [material]
    assert an.ids(state="acknowledged") == [correction]
    assert an.get("/me/summary").json == {"pending": 1, "overdue": 0, "unread_notifications": 0}
    # A fresh deadline in the future for the material change.
    assert ts(items[material]["deadline"]) > utcnow() + timedelta(days=13)
    r = an.get(f"/documents/{material}", headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag


# --- ETags -----------------------------------------------------------------------------------------

def test_feed_etag_and_if_none_match(client, tree, pub, an):
    doc = pub.create(title="Văn bản gốc", audience={"org_units": [tree["b1"].id]})
    pub.publish(doc)
    r = an.get("/documents")
    etag = r.headers.get("ETag")
    assert r.status_code == 200 and etag
    again = an.get("/documents", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    # A different page or filter has its own tag.
    assert an.get("/documents", headers={"If-None-Match": etag}, kind="notice").status_code == 200

    assert pub.patch(f"/admin/documents/{doc}", {"title": "Văn bản đã đính chính"}).status_code == 200
    changed = an.get("/documents", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json["items"][0]["title"] == "Văn bản đã đính chính"
    # A new document also changes it.
    etag2 = changed.headers["ETag"]
    document(tree["city"], [tree["city"]], title="Văn bản mới")
    assert an.get("/documents", headers={"If-None-Match": etag2}).status_code == 200
    # A receipt (my state) changes it too.
    etag3 = an.get("/documents").headers["ETag"]
    add_receipt(doc, an.id, opened=utcnow())
    assert an.get("/documents", headers={"If-None-Match": etag3}).status_code == 200


def test_detail_etag_and_if_none_match(client, tree, pub, an):
    doc = pub.create(title="Chi tiết", body_html="<p>Bản đầu</p>", audience={"org_units": [tree["b1"].id]})
    pub.publish(doc)
    r = an.get(f"/documents/{doc}")
    etag = r.headers.get("ETag")
    assert r.status_code == 200 and etag
    not_modified = an.get(f"/documents/{doc}", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.get_data() == b""
    assert an.get(f"/documents/{doc}", headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert an.get(f"/documents/{doc}", headers={"If-None-Match": f'"x", {etag}'}).status_code == 304

    assert pub.patch(f"/admin/documents/{doc}", {"body_html": "<p>Bản sửa</p>"}).status_code == 200
    r2 = an.get(f"/documents/{doc}", headers={"If-None-Match": etag})
    assert r2.status_code == 200 and r2.headers["ETag"] != etag and "Bản sửa" in r2.json["body_html"]
    # Withdrawn: the old tag does not turn a 410 into a 304.
    pub.withdraw(doc)
    assert_problem(an.get(f"/documents/{doc}", headers={"If-None-Match": r2.headers["ETag"]}), 410,
                   "document_withdrawn")
    # Another member outside the audience with a valid tag still gets 404.
    assert_problem(As(client, "01000003").get(f"/documents/{doc}", headers={"If-None-Match": etag}), 404)


def test_304_repeats_the_etag(client, tree, an):
    doc = document(tree["city"], [tree["b1"]]).id
    for path in ("/documents", f"/documents/{doc}"):
        etag = an.get(path).headers["ETag"]
        r = an.get(path, headers={"If-None-Match": etag})
        assert r.status_code == 304
        assert r.headers.get("ETag") == etag


# --- delta sync ------------------------------------------------------------------------------------

def test_delta_sync_changes_tombstones_order_and_resume(client, tree, pub, an):
    t0 = utcnow() - timedelta(hours=5)
    ids = []
    for i in range(4):
        doc = pub.create(title=f"Văn bản đồng bộ {i}", audience={"org_units": [tree["b1"].id]})
        pub.publish(doc)
        at = t0 + timedelta(hours=i + 1)
        set_doc(doc, published_at=at, sync_at=at)
        ids.append(doc)
    foreign = document(tree["city"], [tree["cbcs"]], title="Không phải của tôi").id

    # Everything changed since t0, oldest change first.
    first = an.feed(updated_since=t0.isoformat())
    assert [i["id"] for i in first["items"]] == ids
    assert first["next_cursor"] is None and "reset" not in first
    for it in first["items"]:
        assert ITEM_KEYS <= set(it)
    watermark = max(first["items"], key=lambda i: ts(i["updated_at"]))["updated_at"]

    # Later: one correction, one withdrawal (also of a document outside my audience).
    assert pub.patch(f"/admin/documents/{ids[0]}", {"title": "Văn bản đồng bộ 0 (đính chính)"}).status_code == 200
    pub.withdraw(ids[1])
    set_doc(foreign, status="withdrawn", withdrawn_at=utcnow(), sync_at=utcnow())

    second = an.feed(updated_since=watermark)
    items = second["items"]
    assert all(ts(i["updated_at"]) >= ts(watermark) for i in items)
    assert [ts(i["updated_at"]) for i in items] == sorted(ts(i["updated_at"]) for i in items)
    fresh = [i for i in items if ts(i["updated_at"]) > ts(watermark)]
    assert [i["id"] for i in fresh] == [ids[0], ids[1]]
    assert fresh[0]["title"] == "Văn bản đồng bộ 0 (đính chính)" and fresh[0]["version"] == 2
    tombstone = fresh[1]
    assert tombstone["withdrawn"] is True and tombstone["id"] == ids[1]
    assert set(tombstone) <= {"id", "withdrawn", "updated_at"}
    assert foreign not in [i["id"] for i in items]
    # Unchanged documents older than the watermark do not come back.
    assert ids[2] not in [i["id"] for i in items]

    # Nothing has changed since the newest change: at most the boundary items again.
    last = max(items, key=lambda i: ts(i["updated_at"]))["updated_at"]
    third = an.feed(updated_since=last)["items"]
    assert all(ts(i["updated_at"]) == ts(last) for i in third)
    # The same instant written with another offset is the same instant.
    local = ts(watermark).astimezone(ts("2026-01-01T00:00:00+07:00").tzinfo).isoformat()
    assert an.feed(updated_since=local)["items"] == items


def test_delta_sync_pages_through_every_change_once(client, tree, an):
    base = utcnow() - timedelta(hours=3)
    ids = []
    for i in range(11):
        d = document(tree["city"], [tree["city"]], title=f"Thay đổi {i}")
        at = base + timedelta(minutes=i // 2)  # pairs share one instant
        set_doc(d.id, published_at=at - timedelta(days=1), sync_at=at)
        ids.append(d.id)
    items, pages = an.walk(updated_since=(base - timedelta(seconds=1)).isoformat(), limit=3)
    assert pages == 4
    assert [i["id"] for i in items] == ids
    # A cursor from the keyset feed is not a search cursor.
    first = an.feed(updated_since=base.isoformat(), limit=3)
    assert_problem(an.get("/documents", q="thay doi", cursor=first["next_cursor"]), 422, "validation_error")


def test_delta_sync_rejects_naive_and_malformed_times(client, tree, an):
    for bad in ("2026-05-01T10:00:00", "2026-05-01 10:00:00", "2026-13-01T00:00:00Z", "now", "1714550400"):
        body = assert_problem(an.get("/documents", updated_since=bad), 422, "validation_error")
        assert "updated_since" in body["errors"]
    # `+` in the offset must be percent-encoded; a literal '+' would be a space.
    assert an.get("/documents", updated_since="2026-05-01T10:00:00+07:00").status_code == 200
    assert an.get("/documents", updated_since="2026-05-01T10:00:00Z").status_code == 200


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-05:00"])
def test_updated_since_at_the_edge_of_time_is_not_a_server_error(client, tree, an, since):
    document(tree["city"], [tree["city"]])
    r = an.get("/documents", updated_since=since)
    assert r.status_code in (200, 422), r.get_data(as_text=True)


def test_delta_sync_with_state_filter_omits_tombstones(client, tree, pub, an):
    start = utcnow() - timedelta(seconds=1)
    a = pub.create(title="Còn", audience={"org_units": [tree["b1"].id]})
    b = pub.create(title="Thu hồi", audience={"org_units": [tree["b1"].id]})
    pub.publish(a)
    pub.publish(b)
    pub.withdraw(b)
    assert [i["id"] for i in an.feed(updated_since=start.isoformat(), state="pending")["items"]] == [a]
    everything = an.feed(updated_since=start.isoformat())["items"]
    assert [(i["id"], i.get("withdrawn", False)) for i in everything] == [(a, False), (b, True)]


# --- transfers -------------------------------------------------------------------------------------

def transfer(member_id: int, to_unit, at: datetime | None = None) -> None:
    m = db.session.get(Member, member_id)
    db.session.add(MemberTransfer(member_id=member_id, from_unit_id=m.org_unit_id, to_unit_id=to_unit.id,
                                  transferred_at=at or utcnow(), source="test"))
    m.org_unit_id = to_unit.id
    db.session.commit()


def test_a_transferred_member_reads_the_new_units_documents(client, tree, people, an):
    t = tree
    long_ago = utcnow() - timedelta(days=10)
    old_branch = document(t["city"], [t["b1"]], title="Của chi bộ cũ").id
    old_district = document(t["city"], [t["ba_dinh"]], title="Của quận cũ").id
    city = document(t["city"], [t["city"]], title="Toàn thành phố").id
    new_unit = document(t["city"], [t["cbcs"]], title="Của chi bộ mới").id
    new_district = document(t["city"], [t["dong_da"]], title="Của quận mới").id
    withdrawn_new = document(t["city"], [t["cbcs"]], title="Đã thu hồi ở đơn vị mới", status="withdrawn").id
    for d in (old_branch, old_district, city, new_unit, new_district, withdrawn_new):
        set_doc(d, published_at=long_ago, sync_at=long_ago)
    set_doc(withdrawn_new, withdrawn_at=long_ago + timedelta(days=1), sync_at=long_ago + timedelta(days=1))

    before = an.feed()
    assert {i["id"] for i in before["items"]} == {old_branch, old_district, city}
    synced_at = utcnow() - timedelta(seconds=1)
    assert an.feed(updated_since=synced_at.isoformat())["items"] == []

    transfer(an.id, t["cbcs"])

    assert set(an.ids()) == {city, new_unit, new_district}
    assert set(an.ids(q="cua")) == {new_unit, new_district}
    assert an.get("/me/summary").json["pending"] == 3
    assert_problem(an.get(f"/documents/{old_branch}"), 404, "not_found")
    assert an.get(f"/documents/{new_unit}").status_code == 200
    assert an.get("/me").json["org_unit"]["id"] == t["cbcs"].id

    # A delta sync spanning the transfer: reset, and the full list of what the member now reads.
    body = an.feed(updated_since=synced_at.isoformat())
    assert body.get("reset") is True
    assert {i["id"] for i in body["items"]} == {city, new_unit, new_district}
    assert all("withdrawn" not in i for i in body["items"])
    # Paged, the reset list is still complete.
    items, _ = an.walk(updated_since=synced_at.isoformat(), limit=2)
    assert sorted(i["id"] for i in items) == sorted([city, new_unit, new_district])
    # A sync that starts after the transfer is an ordinary delta.
    after = an.feed(updated_since=(utcnow() + timedelta(seconds=1)).isoformat())
    assert after["items"] == [] and not after.get("reset")


def test_after_a_transfer_reset_the_client_can_resume_normally(client, tree, people, an):
    old = utcnow() - timedelta(days=5)
    doc = document(tree["city"], [tree["cbcs"]], title="Của chi bộ mới").id
    set_doc(doc, published_at=old, sync_at=old)
    synced_at = utcnow() - timedelta(seconds=1)
    transfer(an.id, tree["cbcs"])
    body = an.feed(updated_since=synced_at.isoformat())
    assert body.get("reset") is True and [i["id"] for i in body["items"]] == [doc]
    watermark = max(ts(i["updated_at"]) for i in body["items"])
    # The client followed the protocol: resume from the largest updated_at it received.
    again = an.feed(updated_since=watermark.isoformat())
    assert not again.get("reset") and again["items"] == []  # nothing changed since: an empty delta
    later = document(tree["city"], [tree["cbcs"]], title="Văn bản sau khi chuyển").id
    delta = an.feed(updated_since=watermark.isoformat())
    assert not delta.get("reset") and [i["id"] for i in delta["items"]] == [later]  # only what is new


# --- the badge -------------------------------------------------------------------------------------

def test_me_summary_counts_pending_and_overdue(client, tree, people, an):
    t = tree
    past = utcnow() - timedelta(hours=2)
    document(t["city"], [t["b1"]], title="Chờ xác nhận")
    overdue = document(t["city"], [t["city"]], title="Quá hạn").id
    set_doc(overdue, deadline=past)
    overdue_opened = document(t["city"], [t["phuong"]], title="Quá hạn đã mở").id
    set_doc(overdue_opened, deadline=past)
    add_receipt(overdue_opened, an.id, opened=utcnow())
    acked = document(t["city"], [t["b1"]], title="Đã xác nhận").id
    ack(acked, an.id)
    acked_overdue = document(t["city"], [t["b1"]], title="Xác nhận rồi mới quá hạn").id
    ack(acked_overdue, an.id)
    set_doc(acked_overdue, deadline=past)
    document(t["city"], [t["b1"]], title="Chỉ để biết", requires_ack=False)
    document(t["city"], [t["b1"]], title="Dự thảo", status="draft")
    wd = document(t["city"], [t["b1"]], title="Đã thu hồi", status="withdrawn").id
    set_doc(wd, withdrawn_at=utcnow(), deadline=past)
    document(t["city"], [t["b2"]], title="Chi bộ khác")
    document(t["city"], [t["b1"]], title="Chỉ bí thư", roles=["secretary"])
    future = document(t["city"], [t["b1"]], title="Hẹn giờ", status="scheduled").id
    set_doc(future, published_at=utcnow() + timedelta(days=1), deadline=past)

    assert an.get("/me/summary").json == {"pending": 3, "overdue": 2, "unread_notifications": 0}
    assert len(an.ids(state="pending")) == 3 and len(an.ids(state="overdue")) == 2
    # The secretary of the same branch also sees the role-restricted one, and has no receipts.
    assert As(client, "01000004").get("/me/summary").json["pending"] == 6


# --- study series ----------------------------------------------------------------------------------

def test_study_series_lessons_in_order_with_progress(client, tree, pub, an):
    t = tree
    r = pub.post("/admin/series", {"title": "Chuyên đề học tập và làm theo tư tưởng Hồ Chí Minh",
                                   "summary": "Năm bài học"})
    assert r.status_code == 201, r.get_data(as_text=True)
    series = r.json["id"]

    def lesson(no, audience, requires_ack=True, publish=True):
        doc = pub.create(kind="study", title=f"Bài {no}", series_id=series, lesson_no=no,
                         requires_ack=requires_ack, audience={"org_units": [audience.id]})
        if publish:
            pub.publish(doc)
        return doc

    # Created out of order; one only for Đống Đa; one still a draft; one not asking for acknowledgement.
    l3 = lesson(3, t["city"])
    l1 = lesson(1, t["city"])
    l2 = lesson(2, t["b1"], requires_ack=False)
    l4 = lesson(4, t["dong_da"])
    lesson(5, t["city"], publish=False)

    listed = an.get("/series")
    assert listed.status_code == 200
    assert listed.json["items"] == [{"id": series, "title": "Chuyên đề học tập và làm theo tư tưởng Hồ Chí Minh",
                                     "summary": "Năm bài học", "progress": {"lessons": 3, "completed": 0}}]
    detail = an.get(f"/series/{series}")
    assert detail.status_code == 200
    assert [x["id"] for x in detail.json["lessons"]] == [l1, l2, l3]
    assert [x["series"]["lesson_no"] for x in detail.json["lessons"]] == [1, 2, 3]
    assert detail.json["progress"] == {"lessons": 3, "completed": 0}
    chi = As(client, "01000003")
    assert [x["id"] for x in chi.get(f"/series/{series}").json["lessons"]] == [l1, l3, l4]
    lesson_detail = an.get(f"/documents/{l1}").json
    assert lesson_detail["series"]["id"] == series and lesson_detail["series"]["lesson_no"] == 1

    # Opening a lesson that needs acknowledgement is not completing it; acknowledging is.
    add_receipt(l1, an.id, opened=utcnow())
    assert an.get(f"/series/{series}").json["progress"]["completed"] == 0
    db.session.execute(update(Receipt).where(Receipt.document_id == l1, Receipt.member_id == an.id)
                       .values(acknowledged_at=utcnow(), acknowledged_version=1))
    db.session.commit()
    assert an.get(f"/series/{series}").json["progress"] == {"lessons": 3, "completed": 1}
    # Opening a lesson that asks for nothing more completes it.
    add_receipt(l2, an.id, opened=utcnow())
    assert an.get(f"/series/{series}").json["progress"] == {"lessons": 3, "completed": 2}
    assert an.get("/series").json["items"][0]["progress"] == {"lessons": 3, "completed": 2}
    assert chi.get("/series").json["items"][0]["progress"] == {"lessons": 3, "completed": 0}
    # A withdrawn lesson leaves the series.
    pub.withdraw(l3)
    assert an.get(f"/series/{series}").json["progress"] == {"lessons": 2, "completed": 2}


def test_series_outside_the_audience_is_404(client, tree, pub, an):
    r = pub.post("/admin/series", {"title": "Chuyên đề riêng Đống Đa"})
    series = r.json["id"]
    doc = pub.create(kind="study", title="Bài 1", series_id=series, lesson_no=1,
                     audience={"org_units": [tree["dong_da"].id]})
    pub.publish(doc)
    empty = pub.post("/admin/series", {"title": "Chuyên đề chưa có bài"}).json["id"]
    assert an.get("/series").json["items"] == []
    assert_problem(an.get(f"/series/{series}"), 404, "not_found")
    assert_problem(an.get(f"/series/{empty}"), 404, "not_found")
    assert_problem(an.get("/series/424242"), 404, "not_found")
    assert As(client, "01000003").get(f"/series/{series}").status_code == 200


# --- query plans at volume (PostgreSQL) ------------------------------------------------------------

def _bulk_world(seed_doc_count: int = 3000):
    """50 units, 300 members, 3,000 documents with realistic bodies and audiences, a few receipts."""
    import random

    rnd = random.Random(7)
    city = unit("V", "city", name="Thành ủy")
    districts = [unit(f"V.{i}", "upper", city) for i in range(4)]
    grassroots = [unit(f"V.{i}.{j}", "grassroots", d) for i, d in enumerate(districts) for j in range(4)]
    branches = [unit(f"{g.code}.{k}", "branch", g) for g in grassroots for k in range(2)]
    units = [city, *districts, *grassroots, *branches][:50]
    while len(units) < 50:
        units.append(unit(f"V.X{len(units)}", "grassroots", districts[len(units) % 4]))
    leaves = [u for u in units if u.kind in ("branch", "grassroots")]

    reader = member("77000000", branches[0], name="Người đọc")
    db.session.execute(insert(Member), [
        {"card_number": f"7700{i:04d}", "full_name": f"Đảng viên {i}", "org_unit_id": rnd.choice(leaves).id,
         "active": True, "created_at": utcnow(), "updated_at": utcnow()} for i in range(1, 300)])
    now = utcnow()
    body = "<p>" + " ".join(["Nội dung văn bản hướng dẫn thực hiện nghị quyết"] * 40) + "</p>"
    rows = []
    for i in range(seed_doc_count):
        at = now - timedelta(minutes=seed_doc_count - i)
        rows.append({"kind": "directive", "number": f"{i}-CT/TU", "title": f"Văn bản số {i}", "summary": "",
                     "body_html": body, "tags": [], "requires_ack": True, "ack_days": 14,
                     "status": "published" if i % 10 else rnd.choice(["draft", "withdrawn", "scheduled"]),
                     "owner_unit_id": city.id, "roles_mask": 0, "version": 1, "ack_version": 1,
                     "published_at": at, "deadline": at + timedelta(days=14), "sync_at": at,
                     "created_at": at, "updated_at": at})
    db.session.execute(insert(Document), rows)
    doc_ids = list(db.session.scalars(select(Document.id).order_by(Document.id)))
    audience = []
    for doc_id in doc_ids:
        roll = rnd.random()
        target = city if roll < 0.03 else rnd.choice(districts) if roll < 0.2 else rnd.choice(units[5:])
        audience.append({"org_unit_id": target.id, "document_id": doc_id})
    db.session.execute(insert(DocumentAudience), audience)
    member_ids = list(db.session.scalars(select(Member.id)))
    receipts = {(rnd.choice(doc_ids), rnd.choice(member_ids)) for _ in range(5000)}
    db.session.execute(insert(Receipt), [{"document_id": d, "member_id": m, "opened_at": now} for d, m in receipts])
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return reader


def _capture(client, token_headers, path, params) -> list[tuple[str, dict]]:
    responses = []
    executed = executed_with_parameters(
        lambda: responses.append(client.get(API + path, query_string=params, headers=token_headers)))
    assert responses[0].status_code == 200, responses[0].get_data(as_text=True)
    captured = [(s, p) for s, p in executed if "FROM documents" in s and "document_audience" in s]
    assert captured, "the feed query was not captured"
    return captured


def _plan(statement: str, parameters) -> str:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
    return "\n".join(r[0] for r in rows)


def _assert_index_driven(client, headers, path, params) -> None:
    for statement, parameters in _capture(client, headers, path, params):
        plan = _plan(statement, parameters)
        assert "Seq Scan on documents" not in plan, f"{path} {params}\n{plan}"
        assert "Seq Scan on document_audience" not in plan, f"{path} {params}\n{plan}"
        assert "document_audience" in plan and "Index" in plan, plan


@pytest.fixture()
def volume(client, backend):
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL")
    _bulk_world()
    headers = bearer(login(client, "77000000").json["access_token"])
    first = client.get(API + "/documents", headers=headers).json
    assert len(first["items"]) == 20 and first["next_cursor"]
    return headers, first


def test_feed_query_plans_use_indexes_at_volume(client, volume):
    headers, first = volume
    for params in ({}, {"cursor": first["next_cursor"]}, {"state": "pending"}, {"kind": "directive"}):
        _assert_index_driven(client, headers, "/documents", params)


def test_delta_sync_query_plan_uses_indexes_at_volume(client, volume):
    headers, _ = volume
    since = (utcnow() - timedelta(minutes=30)).isoformat()
    _assert_index_driven(client, headers, "/documents", {"updated_since": since})
    body = client.get(API + "/documents", query_string={"updated_since": since, "limit": 100}, headers=headers).json
    assert 0 < len(body["items"]) < 100


def test_went_out_for_every_status(app):
    """Readers could see a document at some point: published/scheduled and its time has come, or withdrawn
    after that time; never a draft, nor a document without a publication time."""
    from content.access import went_out

    now = utcnow()
    hour, second = timedelta(hours=1), timedelta(seconds=1)
    cases = [
        (dict(status="published", published_at=None), False),
        (dict(status="published", published_at=now), True),
        (dict(status="scheduled", published_at=now), True),
        (dict(status="scheduled", published_at=now + second), False),
        (dict(status="draft", published_at=now - hour), False),
        (dict(status="draft", published_at=now - hour, withdrawn_at=now), False),
        (dict(status="withdrawn", published_at=now - hour, withdrawn_at=None), False),
        (dict(status="withdrawn", published_at=now - hour, withdrawn_at=now), True),
        (dict(status="withdrawn", published_at=now, withdrawn_at=now), True),
        (dict(status="withdrawn", published_at=now, withdrawn_at=now - second), False),
    ]
    assert [went_out(Document(**fields), now) for fields, _ in cases] == [expected for _, expected in cases]
