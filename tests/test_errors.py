"""The error envelope: every error path is problem+json, localised, with no internals."""
from __future__ import annotations

import logging

import pytest
from flask import Flask

from tests.conftest import make_app
from tests.factories import PASSWORD, bearer, login, member, small_tree

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.json
    assert PROBLEM_KEYS <= set(body)
    assert body["status"] == status and body["code"] == code
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "SELECT", "sqlalchemy", "psycopg", "File \""):
        assert leak not in text
    return body


def test_malformed_json_is_400(client):
    r = client.post("/api/v1/auth/login", data='{"username": "x", ', content_type="application/json")
    assert_problem(r, 400, "malformed_json")


def test_validation_errors_are_422_in_vietnamese_by_default(client):
    r = client.post("/api/v1/auth/login", json={"username": 12, "password": None, "extra": True})
    body = assert_problem(r, 422, "validation_error")
    assert body["title"] == "Dữ liệu không hợp lệ"
    assert body["errors"]["username"] == ["Giá trị phải là chuỗi ký tự."]
    assert body["errors"]["password"] == ["Trường này không được để trống."]
    assert body["errors"]["extra"] == ["Trường không được chấp nhận."]


def test_english_when_accept_language_prefers_it(client):
    r = client.post("/api/v1/auth/login", json={"username": "a"}, headers={"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})
    body = assert_problem(r, 422, "validation_error")
    assert body["title"] == "Invalid data"
    assert body["errors"]["password"] == ["Missing data for required field."]
    vi = client.post("/api/v1/auth/login", json={"username": "a"}, headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"})
    assert vi.json["title"] == "Dữ liệu không hợp lệ"


def test_a_json_array_or_string_body_is_rejected(client):
    assert client.post("/api/v1/auth/login", json=["username"]).status_code == 422
    assert client.post("/api/v1/auth/login", json="hello").status_code == 422


def test_unknown_path_and_wrong_method(client):
    assert_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")
    r = client.get("/api/v1/auth/login")
    body = assert_problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]
    assert "GET" in body["detail"]


def test_body_over_the_limit_is_413(client, app):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    try:
        r = client.post("/api/v1/auth/login", data="{" + " " * 4096 + "}", content_type="application/json")
        body = assert_problem(r, 413, "payload_too_large")
        assert "1024" in body["detail"]
    finally:
        app.config["MAX_CONTENT_LENGTH"] = 20 * 1024 * 1024


def test_huge_strings_inside_the_limit_are_validation_errors(client):
    r = client.post("/api/v1/auth/login", json={"username": "9" * 5000, "password": "x"})
    assert_problem(r, 422, "validation_error")


def test_database_unavailable_is_503_with_retry_after(backend):
    # A real app pointed at a port where no database listens.
    url = ("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2" if backend == "postgresql"
           else "sqlite:////nonexistent-dir/for/sure/handbook.db")
    dead = make_app(url)
    client = dead.test_client()
    body = assert_problem(client.get("/readyz"), 503, "service_unavailable")
    assert body["detail"]
    r = client.post("/api/v1/auth/login", json={"username": "01000001", "password": "x"})
    assert_problem(r, 503, "service_unavailable")
    assert r.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_unexpected_exception_is_a_bare_500(app, caplog):
    from handbook.errors import register

    boom = Flask("boom")
    boom.config.update(app.config)
    register(boom)
    from handbook import observability

    observability.init_app(boom)

    @boom.get("/boom")
    def explode():
        raise RuntimeError("secret internals: SELECT password FROM members")

    with caplog.at_level(logging.ERROR, logger="handbook"):
        r = boom.test_client().get("/boom")
    body = assert_problem(r, 500, "internal_error")
    assert "secret internals" not in r.get_data(as_text=True)
    assert body["request_id"] in body["detail"]
    assert any(rec.exc_info for rec in caplog.records)  # the operator still sees the exception


def test_no_password_or_token_in_any_log_line(client, app, caplog):
    tree = small_tree()
    member("01000001", tree["b1"])
    with caplog.at_level(logging.DEBUG):
        tokens = login(client, "01000001").json
        client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
        client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))
        client.put("/api/v1/me/password", headers=bearer(tokens["access_token"]),
                   json={"current_password": PASSWORD, "new_password": "another-secret-99"})
        login(client, "01000001", "wrong-guess-77")
    handler = logging.getLogger("handbook").handlers[0]
    lines = [handler.format(rec) for rec in caplog.records] + [rec.getMessage() for rec in caplog.records]
    assert any("/api/v1/auth/login" in line for line in lines)
    for line in lines:
        for secret in (PASSWORD, "another-secret-99", "wrong-guess-77", tokens["access_token"],
                       tokens["refresh_token"]):
            assert secret not in line
    assert all(getattr(rec, "request_id", None) for rec in caplog.records if rec.name == "handbook.access")


def test_redaction_of_secrets_that_reach_a_log_message():
    from handbook.observability import redact

    line = redact('login failed {"password": "hunter22", "token": "abc"} Bearer eyJhbGc.eyJzdWIi.sig')
    assert "hunter22" not in line and "eyJhbGc.eyJzdWIi.sig" not in line and '"abc"' not in line


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer a.b"])
def test_broken_authorization_headers(client, header):
    r = client.get("/api/v1/me", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.content_type == "application/problem+json"


@pytest.mark.parametrize("body,code", [
    ("[" * 5000 + "]" * 5000, "json_too_complex"),                     # past JSON_MAX_DEPTH
    ('{"username": ' + "9" * 5000 + ', "password": "x"}', "malformed_json"),  # past Python's digit limit
])
def test_pathological_json_is_400_not_500(client, body, code):
    r = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    assert_problem(r, 400, code)


def test_nesting_past_the_parsers_recursion_is_400_even_without_a_depth_limit(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "JSON_MAX_DEPTH", 10**6)
    monkeypatch.setitem(app.config, "JSON_MAX_ITEMS", 10**6)
    r = client.post("/api/v1/auth/login", data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert_problem(r, 400, "malformed_json")


@pytest.mark.parametrize("username,password", [  # JSON escapes, decoded by the server
    (r"01000001\ud800", "x"), (r"0100\u00000001", "x"), ("01000001", r"pass\ud800word"), ("ok", r"a\u0007b"),
])
def test_control_characters_and_lone_surrogates_are_422(client, username, password):
    body = '{"username": "%s", "password": "%s"}' % (username, password)
    r = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    problem = assert_problem(r, 422, "validation_error")
    assert any(msg == "Chứa ký tự không hợp lệ." for msgs in problem["errors"].values() for msg in msgs)


def test_a_bad_body_does_not_reset_the_throttle(client):
    tree = small_tree()
    member("01000001", tree["b1"])
    for _ in range(5):
        login(client, "01000001", "wrong")
    client.post("/api/v1/auth/login", data="[" * 5000, content_type="application/json")
    assert login(client, "01000001").status_code == 429


def test_problems_vary_by_language(client):
    assert "Accept-Language" in client.get("/api/v1/nothing-here").headers["Vary"]


def test_every_problem_type_has_both_languages_in_the_gettext_catalogue():
    """PROBLEMS holds the English; handbook/translations/vi/LC_MESSAGES/messages.po the Vietnamese, one
    entry per (code, text) with the same `{placeholders}`; nothing in the catalogue that no code uses."""
    import re

    from babel.messages.pofile import read_po

    from handbook.i18n import PROBLEMS, TRANSLATIONS

    with (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        entries = {(m.context, m.id): m for m in read_po(f, locale="vi") if m.id}
    placeholders = re.compile(r"\{(\w+)\}")
    wanted = set()
    for code, texts in PROBLEMS.items():
        assert len(texts) == 2 and all(texts), code
        for english in texts:
            wanted.add((code, english))
            message = entries.get((code, english))
            assert message is not None and message.string and not message.fuzzy, f"no Vietnamese for {code}: {english}"
            assert message.string != english, (code, english)
            assert set(placeholders.findall(message.string)) == set(placeholders.findall(english)), code
    assert set(entries) - wanted == set(), "stale entries in the catalogue"


def test_the_console_s_gettext_has_the_problem_texts_too():
    from console.i18n import load_catalogue

    assert load_catalogue("vi").pgettext("not_found", "Not found") == "Không tìm thấy"
    assert load_catalogue("vi").gettext("Sign in") == "Đăng nhập"
