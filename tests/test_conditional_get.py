"""Conditional GETs of the feed and of a document (api/documents.py, content/feed.py: `stamp_columns`).

A phone polling an unchanged feed or document gets its 304 from a keyed hash of stamps read with the
session check, without the feed's query. These tests hold it to the one promise that matters: the 304
turns into a 200 (with a new tag) as soon as anything the member would see changes, and only the member's
own things (or the content) move it: a new document in the audience, a new version, a withdrawal, the
member's own open, acknowledgement, exemption, extension or briefing, a transfer to another unit, new
roles, the language, a scheduled publication coming due, a deadline or an extension running out. Another
member's acknowledgement changes nothing the member sees, and keeps the 304.
"""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import update

from content.models import Document
from handbook.extensions import db
from handbook.members import Member, MemberTransfer, RoleGrant
from handbook.timeutil import utcnow
from tests.test_acknowledgements import API, local_today

FEED = f"{API}/documents"


class Poller:
    """One member's phone: remembers the last tag of a path and asks with If-None-Match."""

    def __init__(self, api, card: str, path: str, **headers):
        self.api, self.card, self.path, self.headers = api, card, path, headers
        first = self.get()
        assert first.status_code == 200, first.get_data(as_text=True)
        self.etag = first.headers["ETag"]

    def get(self, etag: str | None = None):
        headers = {**self.api.auth(self.card), **self.headers}
        if etag:
            headers["If-None-Match"] = etag
        return self.api.client.get(self.path, headers=headers)

    def unchanged(self) -> None:
        r = self.get(self.etag)
        assert r.status_code == 304, r.get_data(as_text=True)
        assert r.headers["ETag"] == self.etag and r.get_data() == b""

    def changed(self):
        """A 200 with a new tag, the body of a plain GET; then the new tag gives 304 again."""
        r = self.get(self.etag)
        assert r.status_code == 200, f"still {r.status_code}: the member would not see the change"
        assert r.headers["ETag"] != self.etag
        assert r.json == self.get().json
        self.etag = r.headers["ETag"]
        self.unchanged()
        return r.json


@pytest.fixture()
def clock(monkeypatch):
    """Moves the server's clock forward (the stamps and the feed read `utcnow`)."""
    import content.feed
    import handbook.auth

    def advance(delta: timedelta) -> None:
        moved = utcnow() + delta
        for module in (handbook.auth, content.feed):
            monkeypatch.setattr(module, "utcnow", lambda: moved)
    return advance


def test_feed_304_until_a_new_document_reaches_the_member(api):
    doc = api.publish("b1")
    feed = Poller(api, "M1", FEED)
    feed.unchanged()
    api.ack("M2", doc)                      # someone else's acknowledgement: nothing M1 sees
    api.publish("cbcs")                     # outside M1's audience: the tag may move, the items do not
    feed.get(feed.etag)
    feed.etag = feed.get().headers["ETag"]
    feed.unchanged()
    new = api.publish("ba_dinh")            # in M1's audience (an ancestor of b1)
    assert feed.changed()["items"][0]["id"] == new


def test_feed_and_document_change_with_a_new_version_and_a_withdrawal(api):
    doc = api.publish("b1")
    feed, detail = Poller(api, "M1", FEED), Poller(api, "M1", f"{FEED}/{doc}")
    api.patch(doc, reack=False, title="Bản đính chính")
    assert feed.changed()["items"][0]["title"] == "Bản đính chính"
    assert detail.changed()["title"] == "Bản đính chính"
    api.patch(doc, reack=True, title="Bản sửa đổi")
    assert feed.changed()["items"][0]["ack_version"] == 3
    assert detail.changed()["version"] == 3
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    r = api.client.post(f"{API}/admin/documents/{doc}/attachments", headers=api.auth("BT"),
                        data={"file": (io.BytesIO(pdf), "phu-luc.pdf", "application/pdf")})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert [a["filename"] for a in detail.changed()["attachments"]] == ["phu-luc.pdf"]
    api.withdraw(doc)
    assert feed.changed()["items"] == []
    assert detail.get(detail.etag).status_code == 410


def test_the_members_own_receipt_moves_the_tag(api):
    doc = api.publish("b1")
    feed, detail = Poller(api, "M1", FEED), Poller(api, "M1", f"{FEED}/{doc}")
    assert api.open("M1", doc).status_code == 204
    assert feed.changed()["items"][0]["my"]["state"] == "opened"
    assert detail.changed()["my"]["state"] == "opened"
    assert api.ack("M1", doc).status_code == 200
    assert feed.changed()["items"][0]["my"]["state"] == "acknowledged"
    assert detail.changed()["my"]["acknowledged_version"] == 1
    # A secretary's exemption of another document, and a briefing, are the member's receipts too.
    other = api.publish("b1")
    feed.changed()
    assert api.exempt("S1", other, [api.id("M1")]).status_code == 200
    assert feed.changed()["items"][0]["my"]["state"] == "exempt"
    assert api.unexempt("S1", other, api.id("M1")).status_code == 204
    assert feed.changed()["items"][0]["my"]["state"] == "new"
    assert api.brief("S1", other, [api.id("M1")]).status_code == 200
    assert feed.changed()["items"][0]["my"]["state"] == "acknowledged"


def test_an_extension_moves_the_tag_and_so_does_its_end(api, clock):
    doc = api.publish("b1")
    db.session.execute(update(Document).where(Document.id == doc).values(deadline=utcnow() - timedelta(hours=1)))
    db.session.commit()
    feed = Poller(api, "M1", FEED)
    assert feed.get().json["items"][0]["my"]["state"] == "overdue"
    r = api.client.post(f"{API}/documents/{doc}/extensions", headers=api.auth("S1"),
                        json={"member_ids": [api.id("M1")], "until": (local_today() + timedelta(days=1)).isoformat(),
                              "reason": "Ốm"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert feed.changed()["items"][0]["my"]["state"] == "new"
    clock(timedelta(days=2))                # the extension has run out: no write, a new local day
    assert feed.changed()["items"][0]["my"]["state"] == "overdue"


def test_time_alone_moves_the_tag_at_a_scheduled_publication_and_a_deadline(api, clock):
    due = api.publish("b1")
    later = api.client.post(f"{API}/admin/documents", headers=api.auth("BT"), json={
        "kind": "notice", "title": "Hẹn giờ", "requires_ack": False, "audience": {"org_units": [api.tree["b1"].id]}})
    assert later.status_code == 201
    at = utcnow() + timedelta(minutes=30)
    r = api.client.post(f"{API}/admin/documents/{later.json['id']}/publish", headers=api.auth("BT"),
                        json={"publish_at": at.isoformat()})
    assert r.status_code == 200 and r.json["status"] == "scheduled"
    db.session.execute(update(Document).where(Document.id == due).values(deadline=utcnow() + timedelta(minutes=10)))
    db.session.commit()
    feed = Poller(api, "M1", FEED)
    assert [i["id"] for i in feed.get().json["items"]] == [due]
    clock(timedelta(minutes=20))            # the deadline passed: overdue, with no write
    assert feed.changed()["items"][0]["my"]["state"] == "overdue"
    clock(timedelta(minutes=40))            # the scheduled notice is out, with no write
    assert later.json["id"] in [i["id"] for i in feed.changed()["items"]]


def test_a_transfer_new_roles_and_the_language_move_the_tag(api):
    doc = api.publish("b1")
    feed, detail = Poller(api, "M1", FEED), Poller(api, "M1", f"{FEED}/{doc}")
    english = Poller(api, "M1", FEED, **{"Accept-Language": "en"})
    assert english.etag != feed.etag
    m1 = db.session.get(Member, api.id("M1"))
    db.session.add(RoleGrant(member_id=m1.id, role="committee", org_unit_id=api.tree["b1"].id))
    db.session.commit()
    feed.changed()
    db.session.add(MemberTransfer(member_id=m1.id, from_unit_id=m1.org_unit_id, to_unit_id=api.tree["b2"].id,
                                  transferred_at=utcnow(), source="test"))
    m1.org_unit_id = api.tree["b2"].id
    db.session.commit()
    assert feed.changed()["items"] == []
    assert detail.get(detail.etag).status_code == 404


def test_a_tag_is_the_members_own(api):
    """Another member of the same audience, with the first one's tag, gets a 200; so does a made-up tag."""
    doc = api.publish("b1")
    for path in (FEED, f"{FEED}/{doc}"):
        mine = Poller(api, "M1", path)
        theirs = Poller(api, "M2", path)
        assert theirs.get(mine.etag).status_code == 200
        assert mine.get('"0000"').status_code == 200
