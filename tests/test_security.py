"""HTTP hardening (handbook/security.py): security headers, caching of private and credential-bearing
responses, HSTS on HTTPS, CORS for configured origins only, and JSON bodies refused before parsing when
too large, too deep or too many values, with nothing written."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from content.models import Receipt
from tests.conftest import make_app
from tests.factories import bearer, login, member, small_tree
from tests.test_errors import assert_problem

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin"}


@pytest.fixture()
def token(client):
    tree = small_tree()
    member("01000009", tree["b1"])
    response = login(client, "01000009")
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def assert_hardened(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_every_kind_of_response_carries_the_security_headers(client, token):
    responses = [client.get("/api/v1/me", headers=bearer(token)),               # 200 JSON
                 client.get("/api/v1/me"),                                      # 401 problem
                 client.get("/api/v1/no-such-path"),                            # 404 problem
                 client.post("/api/v1/auth/login", data="{", content_type="application/json"),  # 400
                 client.get("/healthz"), client.get("/api/v1/openapi.json")]
    assert [r.status_code for r in responses] == [200, 401, 404, 400, 200, 200]
    for response in responses:
        assert_hardened(response)


def test_private_answers_are_revalidated_and_token_answers_never_stored(client, token):
    assert client.get("/api/v1/me", headers=bearer(token)).headers["Cache-Control"] == "private, no-cache"
    assert login(client, "01000009").headers["Cache-Control"] == "no-store"
    assert client.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).headers["Cache-Control"] \
        == "no-store"


def test_the_feed_keeps_its_etag_revalidation(client, token):
    first = client.get("/api/v1/documents", headers=bearer(token))
    assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
    again = client.get("/api/v1/documents", headers={**bearer(token), "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == first.headers["ETag"]


def test_hsts_on_https_only(app, client, monkeypatch):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == f"max-age={app.config['HSTS_SECONDS']}; includeSubDomains"
    monkeypatch.setitem(app.config, "HSTS_SECONDS", 0)
    assert "Strict-Transport-Security" not in client.get("/healthz", base_url="https://localhost").headers


def test_the_interactive_docs_are_not_locked_down_like_the_api(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- CORS -----------------------------------------------------------------------------------------

ADMIN_ORIGIN = "https://quantri.sotaydangvien.hanoi.vn"


def test_no_cors_unless_origins_are_configured(client):
    response = client.options("/api/v1/me", headers={"Origin": ADMIN_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/me", headers={"Origin": ADMIN_ORIGIN}).headers


def test_cors_for_the_allowed_origins_only(database_url):
    client = make_app(database_url, CORS_ORIGINS=[ADMIN_ORIGIN]).test_client()
    preflight = client.options("/api/v1/documents", headers={
        "Origin": ADMIN_ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization, If-None-Match"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ADMIN_ORIGIN
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "if-none-match"} <= allowed
    assert "Access-Control-Allow-Credentials" not in preflight.headers   # bearer tokens, no cookies
    simple = client.get("/api/v1/me", headers={"Origin": ADMIN_ORIGIN})
    assert simple.status_code == 401 and simple.headers["Access-Control-Allow-Origin"] == ADMIN_ORIGIN
    assert "Retry-After" in simple.headers["Access-Control-Expose-Headers"]
    for origin in ("https://evil.example", "https://quantri.sotaydangvien.hanoi.vn.evil.example", "null"):
        other = client.options("/api/v1/documents", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert "Access-Control-Allow-Origin" not in other.headers, origin


# --- JSON limits ----------------------------------------------------------------------------------

def test_a_json_body_past_the_size_limit_is_413(app, client, token, monkeypatch):
    monkeypatch.setitem(app.config, "JSON_MAX_BYTES", 1000)
    body = json.dumps({"current_password": "x" * 2000, "new_password": "y" * 20})
    problem = assert_problem(client.put("/api/v1/me/password", data=body, content_type="application/json",
                                        headers=bearer(token)), 413, "payload_too_large")
    assert "1000" in problem["detail"]


@pytest.mark.parametrize("body", [
    {"items": [{"document_id": 1, "version": 1, "x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}]},   # 19 levels
    {"items": [{"document_id": i, "version": 1} for i in range(7000)]},                   # 21,000 values
])
def test_too_deep_or_too_many_values_is_400_and_nothing_is_written(client, token, body):
    response = client.post("/api/v1/me/acknowledgements/sync", json=body, headers=bearer(token))
    problem = assert_problem(response, 400, "json_too_complex")
    assert "16" in problem["detail"] and "20000" in problem["detail"]
    english = client.post("/api/v1/me/acknowledgements/sync", json=body,
                          headers={**bearer(token), "Accept-Language": "en"})
    assert assert_problem(english, 400, "json_too_complex")["title"] == "JSON too complex"
    from handbook.extensions import db
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_brackets_and_commas_inside_strings_do_not_count(client, token):
    tricky = "[[[[,,,,{{{{" * 400 + '\\"[[[['
    response = client.put("/api/v1/me/password", headers=bearer(token),
                          json={"current_password": tricky, "new_password": "mat-khau-moi-2024"})
    # Parsed and validated (too long a password), not refused as complex.
    assert "current_password" in assert_problem(response, 422, "validation_error")["errors"]
