"""Weak mobile networks: JSON bodies of at least 1 KB go out compressed with brotli or gzip when the phone
accepts it (Flask-Compress), smaller ones and other types as they are; the tag of a compressed body names
its encoding, and sending that tag back answers 304 from the stamps alone, as the plain tag does."""
from __future__ import annotations

import gzip

import brotli

from tests.factories import executed_statements
from tests.test_acknowledgements import API

FEED = f"{API}/documents"


def statements(app, run) -> list[str]:
    return executed_statements(run)


def test_json_of_a_kilobyte_or_more_is_compressed_as_the_phone_accepts(api):
    for n in range(6):
        api.publish("b1", title=f"Chỉ thị số {n} về tăng cường kỷ luật, kỷ cương trong cơ quan nhà nước")
    headers = api.auth("M1")
    plain = api.client.get(FEED, headers=headers)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert len(plain.get_data()) >= 1024
    assert "Accept-Encoding" in plain.headers["Vary"]
    for encoding, decompress in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        r = api.client.get(FEED, headers={**headers, "Accept-Encoding": f"{encoding}, identity;q=0.5"})
        assert r.status_code == 200 and r.headers["Content-Encoding"] == encoding
        body = r.get_data()
        assert len(body) < len(plain.get_data()) / 2
        assert decompress(body) == plain.get_data()
        assert r.headers["ETag"] == plain.headers["ETag"][:-1] + f':{encoding}"'
    # Both accepted: brotli, the smaller.
    r = api.client.get(FEED, headers={**headers, "Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["Content-Encoding"] == "br"


def test_small_bodies_and_errors_under_a_kilobyte_stay_as_they_are(api):
    doc = api.publish("b1")
    headers = {**api.auth("M1"), "Accept-Encoding": "br, gzip"}
    r = api.client.put(f"{FEED}/{doc}/acknowledgement", json={"version": 1}, headers=headers)
    assert r.status_code == 200 and len(r.get_data()) < 1024 and "Content-Encoding" not in r.headers
    r = api.client.get(f"{FEED}/999999", headers=headers)
    assert r.status_code == 404 and "Content-Encoding" not in r.headers


def test_the_compressed_tag_gets_its_304_without_the_feed_query(api, app):
    for n in range(6):
        api.publish("b1", title=f"Nghị quyết số {n} về phát triển kinh tế - xã hội của thành phố năm 2025")
    doc = api.publish("b1")
    headers = {**api.auth("M1"), "Accept-Encoding": "br"}
    for path in (FEED, f"{FEED}/{doc}"):
        first = api.client.get(path, headers=headers)
        tag = first.headers["ETag"]
        if path == FEED:
            assert tag.endswith(':br"')
        responses = []
        sent = statements(app, lambda: responses.append(api.client.get(path, headers={**headers, "If-None-Match": tag})))
        assert responses[0].status_code == 304 and responses[0].headers["ETag"] == tag
        assert len(sent) == 1 and "FROM auth_sessions" in sent[0], sent   # the session check and its stamps only
