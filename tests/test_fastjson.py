"""The hot paths' JSON (api/fastjson.py: orjson, a dumper derived from the marshmallow schema) is the
JSON the schema itself gives through Flask's jsonify, byte for byte: generated bodies of every shape the
feed, a document and an acknowledgement take, and the real bodies the API sends."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from flask import jsonify
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.fastjson import dumper, json_response
from api.schemas import AcknowledgementSchema, DocumentDetailSchema, FeedSchema
from content import acknowledgements, feed
from handbook.timeutil import utcnow
from tests.factories import document, login, member

API = "/api/v1"

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
naive_or_aware = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),   # SQLite: naive UTC
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3))])),
)
my_states = st.fixed_dictionaries({
    "state": st.sampled_from(["new", "opened", "acknowledged", "overdue", "exempt"]),
    "opened_at": naive_or_aware, "acknowledged_at": naive_or_aware,
    "acknowledged_version": st.one_of(st.none(), st.integers(1, 50)),
})
items = st.fixed_dictionaries(
    {"id": st.integers(1, 2**31 - 1), "kind": st.sampled_from(["directive", "study"]), "number": st.one_of(st.none(), texts),
     "title": texts, "summary": texts, "issuing_body": st.one_of(st.none(), texts),
     "issued_on": st.one_of(st.none(), st.dates(date(1990, 1, 1), date(2100, 1, 1))), "published_at": naive_or_aware,
     "requires_ack": st.booleans(), "deadline": naive_or_aware, "version": st.integers(1, 99),
     "ack_version": st.integers(1, 99), "updated_at": naive_or_aware, "tags": st.lists(texts, max_size=4),
     "series": st.one_of(st.none(), st.fixed_dictionaries({"id": st.integers(1, 99),
                                                           "lesson_no": st.one_of(st.none(), st.integers(1, 9))},
                                                          optional={"title": texts})),
     "my": my_states},
)
tombstones = st.fixed_dictionaries({"id": st.integers(1, 99), "withdrawn": st.just(True), "updated_at": naive_or_aware})
feeds = st.fixed_dictionaries(
    {"items": st.lists(st.one_of(items, tombstones), max_size=5), "next_cursor": st.one_of(st.none(), texts)},
    optional={"reset": st.just(True), "watermark": naive_or_aware.filter(lambda v: v is not None)},
)
details = items.flatmap(lambda item: st.fixed_dictionaries({
    "body_html": texts,
    "attachments": st.lists(st.fixed_dictionaries({"id": st.integers(1, 99), "filename": texts,
                                                   "content_type": texts, "size": st.integers(0, 10**9),
                                                   "sha256": texts}), max_size=3)}).map(lambda extra: {**item, **extra}))
receipts = st.fixed_dictionaries({"state": st.just("acknowledged"), "opened_at": naive_or_aware,
                                  "acknowledged_at": naive_or_aware,
                                  "acknowledged_version": st.one_of(st.none(), st.integers(1, 50))})


def schema_bytes(schema, body) -> bytes:
    return jsonify(schema().dump(body)).get_data()


def fast_bytes(schema, body) -> bytes:
    return json_response(dumper(schema)(body)).get_data()


@pytest.mark.parametrize("schema, bodies", [(FeedSchema, feeds), (DocumentDetailSchema, details),
                                            (AcknowledgementSchema, receipts)], ids=["feed", "document", "ack"])
def test_the_fast_dump_is_the_schema_dump_byte_for_byte(app, schema, bodies):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(bodies)
    def check(body):
        with app.test_request_context():
            assert fast_bytes(schema, body) == schema_bytes(schema, body)

    check()


def test_the_api_sends_what_the_schemas_give(client, tree):
    """The feed, a document (with an attachment-free body and one with a series is covered above) and an
    acknowledgement over HTTP: the bytes the marshmallow path would send for the same data."""
    reader = member("01999001", tree["b1"], name="Lê Thị Đọc")
    doc = document(tree["city"], [tree["city"]], title="Chỉ thị “kỷ cương” — số 1", summary="Tóm tắt\nhai dòng")
    document(tree["city"], [tree["b1"]], title="Thông báo", kind="notice", requires_ack=False)
    token = login(client, "01999001").json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    r = client.get(f"{API}/documents", headers=headers)
    assert r.status_code == 200 and r.content_type == "application/json"
    page = feed.feed(reader)
    expected = {"items": page.items, "next_cursor": page.next_cursor}
    assert r.get_data() == schema_bytes(FeedSchema, expected)

    r = client.get(f"{API}/documents/{doc.id}", headers=headers)
    assert r.status_code == 200
    assert r.get_data() == schema_bytes(DocumentDetailSchema, feed.detail(reader, doc.id))

    r = client.put(f"{API}/documents/{doc.id}/acknowledgement", json={"version": 1}, headers=headers)
    assert r.status_code == 200
    again = acknowledgements.acknowledge(reader, doc.id, 1)   # idempotent: the same answer
    assert r.get_data() == schema_bytes(AcknowledgementSchema, again)
    assert r.json["state"] == "acknowledged" and r.json["acknowledged_version"] == 1
    assert utcnow() - datetime.fromisoformat(r.json["acknowledged_at"]) < timedelta(minutes=1)
