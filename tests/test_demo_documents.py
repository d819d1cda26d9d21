"""Demo documents: published through the workflow into the demo tree, readable, searchable, idempotent."""
from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from content.demo import load_demo_documents
from content.documents import deadline_for
from content.models import Document, DocumentVersion, Series
from handbook.demo import DEMO_PASSWORD, load_demo
from handbook.extensions import db
from handbook.timeutil import as_utc, local_zone
from push.models import Notification
from tests.factories import bearer, login


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _token(client, card: str) -> str:
    r = login(client, card, DEMO_PASSWORD)
    assert r.status_code == 200, r.json
    return r.json["access_token"]


def _get(client, token: str, path: str, **query):
    r = client.get(f"/api/v1{path}", headers=bearer(token), query_string=query)
    assert r.status_code == 200, r.json
    return r.json


def _loaded() -> list[str]:
    load_demo(300)
    return load_demo_documents()


def test_member_reads_city_directives_district_plan_series_and_search(app, client):
    lines = _loaded()
    assert lines[0].startswith("Demo documents: 9 created by 01000001")
    assert len(lines) == 10 and any("24-CT/TU" in line for line in lines)

    token = _token(client, "01000004")
    items = _get(client, token, "/documents")["items"]
    by_number = {i["number"]: i for i in items if i["number"]}
    assert set(by_number) == {"24-CT/TU", "05-CT/TW", "86-TB/TU", "145-KH/QU"}
    assert len(items) == 7                            # plus the three lessons; no scheduled one, no draft
    assert [_t(i["published_at"]) for i in items] == sorted((_t(i["published_at"]) for i in items), reverse=True)

    now = datetime.now(UTC)
    today = now.astimezone(local_zone()).date()
    ct24 = by_number["24-CT/TU"]
    assert ct24["kind"] == "directive" and ct24["issuing_body"] == "Ban Thường vụ Thành ủy Hà Nội"
    assert ct24["issued_on"] == "2023-08-07" and ct24["requires_ack"] is True
    published = _t(ct24["published_at"])
    assert (today - published.astimezone(local_zone()).date()).days == 12
    assert _t(ct24["deadline"]) == deadline_for(published, 14)
    assert timedelta(days=1) < _t(ct24["deadline"]) - now <= timedelta(days=3)     # nearly due
    assert ct24["my"]["state"] == "new"
    ct05 = by_number["05-CT/TW"]
    assert ct05["issuing_body"] == "Bộ Chính trị" and ct05["issued_on"] == "2016-05-15"
    assert _t(ct05["deadline"]) - now > timedelta(days=10)                            # fresh
    plan = by_number["145-KH/QU"]
    assert plan["kind"] == "plan" and plan["issuing_body"] == "Quận ủy Ba Đình"
    assert _t(plan["deadline"]) == deadline_for(_t(plan["published_at"]), 10)
    notice = by_number["86-TB/TU"]
    assert notice["kind"] == "notice" and notice["requires_ack"] is False and notice["deadline"] is None
    assert date.fromisoformat(notice["issued_on"]) < _t(notice["published_at"]).astimezone(local_zone()).date()

    detail = _get(client, token, f"/documents/{ct24['id']}")
    assert "<table>" in detail["body_html"] and "<h2>" in detail["body_html"] and "<ol>" in detail["body_html"]
    assert "kỷ cương" in detail["body_html"]

    found = _get(client, token, "/documents", q="chi thi 24 ky cuong")["items"]
    assert "24-CT/TU" in [i["number"] for i in found]
    assert "05-CT/TW" not in [i["number"] for i in found]
    assert "05-CT/TW" in [i["number"] for i in _get(client, token, "/documents", q="ho chi minh dao duc")["items"]]
    history = _get(client, token, "/documents", q="lich su dang bo")["items"]
    assert sorted(i["series"]["lesson_no"] for i in history if i["series"]) == [1, 2, 3]

    series = _get(client, token, "/series")["items"]
    assert len(series) == 1
    assert series[0]["title"] == "Chuyên đề: Lịch sử Đảng bộ Thành phố Hà Nội"
    assert series[0]["progress"] == {"lessons": 3, "completed": 0}
    lessons = _get(client, token, f"/series/{series[0]['id']}")["lessons"]
    assert [(lesson["kind"], lesson["series"]["lesson_no"]) for lesson in lessons] == [("study", n) for n in (1, 2, 3)]

    # The board's own branch is in the city agencies bloc, not in Ba Đình: no district plan in its feed.
    board_numbers = [i["number"] for i in _get(client, _token(client, "01000001"), "/documents")["items"]]
    assert "24-CT/TU" in board_numbers and "145-KH/QU" not in board_numbers

    for doc in db.session.scalars(select(Document)):
        for text in (doc.title, doc.summary, doc.body_html, doc.issuing_body or ""):
            assert unicodedata.is_normalized("NFC", text)


def test_board_sees_every_status_and_publications_look_consistent(app, client):
    _loaded()
    token = _token(client, "01000001")

    drafts = _get(client, token, "/admin/documents", status="draft")["items"]
    assert len(drafts) == 1 and drafts[0]["kind"] == "resolution" and drafts[0]["number"] is None
    scheduled = _get(client, token, "/admin/documents", status="scheduled")["items"]
    assert len(scheduled) == 1 and scheduled[0]["number"] == "15-HD/BTGTU"
    goes_out = _t(scheduled[0]["published_at"])
    assert timedelta(days=6) < goes_out - datetime.now(UTC) < timedelta(days=8)
    assert _t(scheduled[0]["deadline"]) == deadline_for(goes_out, 14)
    published = _get(client, token, "/admin/documents", status="published")["items"]
    assert len(published) == 7
    plan = next(d for d in published if d["number"] == "145-KH/QU")
    assert plan["owner_unit"]["name"] == "Quận ủy Ba Đình"
    assert [u["name"] for u in plan["audience"]["org_units"]] == ["Quận ủy Ba Đình"]
    city_docs = [d for d in published if d["number"] != "145-KH/QU"]
    assert {d["owner_unit"]["kind"] for d in city_docs} == {"city"}

    # Each publication's notification and first version went out when the document did.
    for doc in db.session.scalars(select(Document).where(Document.status == "published")):
        notes = list(db.session.scalars(select(Notification).where(Notification.document_id == doc.id)))
        assert len(notes) == 1 and notes[0].kind == "published"
        assert as_utc(notes[0].due_at) == as_utc(doc.published_at)
        version = db.session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == doc.id))
        assert version.version == 1 and as_utc(version.created_at) == as_utc(doc.published_at)
        assert doc.sync_at == doc.published_at
    assert db.session.scalar(select(func.count()).select_from(DocumentVersion).join(
        Document, Document.id == DocumentVersion.document_id).where(Document.status != "published")) == 0


def test_loading_twice_creates_nothing_the_second_time(app):
    assert load_demo_documents() == ["No demo board account (01000001) or city unit; demo documents not loaded."]
    assert db.session.scalar(select(func.count()).select_from(Series)) == 0
    _loaded()

    def counts():
        return [db.session.scalar(select(func.count()).select_from(m)) for m in (Document, Series, Notification)]

    before = counts()
    assert before == [9, 1, 8]
    assert load_demo_documents() == ["Database already has documents; demo documents not loaded."]
    assert counts() == before
