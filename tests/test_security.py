"""HTTP hardening (handbook/security.py): security headers, caching of private and credential-bearing
responses, HSTS on HTTPS, CORS for configured origins only, and JSON bodies refused before parsing when
too large, too deep or too many values, with nothing written."""
from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from content.models import Receipt
from tests.conftest import make_app
from handbook.imports import import_members
from handbook.observability import JsonFormatter
from push.due import run_due
from tests.factories import PASSWORD, bearer, login, member, small_tree
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


def test_the_interactive_docs_run_scripts_from_this_origin_only(client):
    response = client.get("/docs")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "<script>" not in response.get_data(as_text=True)        # no inline script to allow
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_console_pages_allow_no_script_and_the_api_keeps_default_src_none(client):
    page = client.get("/login")
    assert page.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert_hardened(client.get("/api/v1/me"))
    assert_hardened(client.get("/healthz"))


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


# --- nothing sensitive in the logs ----------------------------------------------------------------

class _Capture(logging.Handler):
    """Every record of every logger, formatted as production formats it (JSON), exceptions included."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_no_password_token_phone_or_device_id_reaches_the_logs(app, world, fcm, tmp_path):
    """A day of traffic with every kind of secret in it, captured at DEBUG from every logger (the app's,
    firebase-admin's, urllib3's, SQLAlchemy's), including failures: wrong passwords, a bad token, a
    malformed body carrying a password, an FCM error, an import with passwords and phones."""
    capture, root = _Capture(), logging.getLogger()
    saved = root.level, logging.getLogger("handbook").level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    logging.getLogger("handbook").setLevel(logging.DEBUG)
    client = world.client
    try:
        wrong = "Sai-Mat-Khau-2024!"
        assert login(client, "M1", wrong).status_code == 401
        tokens = login(client, "M1").json
        assert client.get("/api/v1/me", headers=bearer(tokens["access_token"] + "x")).status_code == 401
        refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"])).json
        new_password = "Mat-Khau-Moi-2024!"
        changed = client.put("/api/v1/me/password", headers=bearer(refreshed["access_token"]),
                             json={"current_password": PASSWORD, "new_password": new_password})
        assert changed.status_code == 204
        assert client.post("/api/v1/auth/login", data='{"username": "M1", "password": "' + wrong + '"',
                           content_type="application/json").status_code == 400
        secret_fid, secret_token = "fid-Bi-Mat-0123456789", "token-Bi-Mat-9876543210"
        assert client.post("/api/v1/me/devices", json={"fid": secret_fid, "token": secret_token,
                                                       "platform": "android"},
                           headers=bearer(refreshed["access_token"])).status_code == 201
        fcm.set_rule(target="fid-M2", error="UNREGISTERED")
        doc = world.publish("b1")
        run_due()
        assert world.ack("M2", doc).status_code == 200
        export = client.get(f"/api/v1/documents/{doc}/members", query_string={"format": "csv"},
                            headers=world.auth("BT"))
        assert export.status_code == 200 and export.get_data()
        phone, import_password = "0912345678", "Mat-Khau-Nhap-2024!"
        csv_path = tmp_path / "members.csv"
        csv_path.write_text("card_number,full_name,phone,org_unit_code,roles,password\n"
                            f"09000001,Trần Văn Mới,{phone},HN.BD.DB.1,,{import_password}\n"
                            f"09000002,Lê Thị Sai,{phone},NO.SUCH.UNIT,,{import_password}\n", encoding="utf-8")
        assert import_members(str(csv_path)).errors  # the bad row is reported, not logged with its values
    finally:
        root.removeHandler(capture)
        root.setLevel(saved[0])
        logging.getLogger("handbook").setLevel(saved[1])

    text = "\n".join(capture.lines)
    assert "POST /api/v1/auth/login 401" in text and "PUT /api/v1/me/password 204" in text  # it did capture
    secrets = {"password": PASSWORD, "wrong password": wrong, "new password": new_password,
               "import password": import_password, "phone": phone, "phone +84": "+84912345678",
               "fid": secret_fid, "device token": secret_token, "world fid": "fid-M2",
               "access token": tokens["access_token"], "refresh token": tokens["refresh_token"],
               "refreshed token": refreshed["access_token"],
               "JWT signature": tokens["access_token"].rsplit(".", 1)[1]}
    leaked = {name for name, value in secrets.items() if value in text}
    assert leaked == set(), [line for line in capture.lines if any(v in line for v in secrets.values())][:5]


def _chunked(app, path: str, body: bytes, content_type: str, headers: dict | None = None):
    """A request as gunicorn hands on a chunked one: no Content-Length, `wsgi.input_terminated` set."""
    environ = EnvironBuilder(method="POST", path=path, input_stream=io.BytesIO(body), content_type=content_type,
                             headers=headers).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    chunks, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), response_headers, b"".join(chunks)


def test_a_chunked_body_without_length_is_held_to_the_same_limits(app, token, monkeypatch):
    """Werkzeug would cut such a body at MAX_CONTENT_LENGTH without a word (an oversized JSON body looked
    malformed, an oversized upload was truncated): it is measured, and 413 past the limit."""
    login_body = json.dumps({"username": "01000009", "password": "x" * 200}).encode()
    status, headers, body = _chunked(app, "/api/v1/auth/login", login_body, "application/json")
    assert status == 401 and json.loads(body)["code"] == "invalid_credentials"  # read whole, parsed
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 150)
    status, headers, body = _chunked(app, "/api/v1/auth/login", login_body, "application/json")
    assert status == 413 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["code"] == "payload_too_large"
