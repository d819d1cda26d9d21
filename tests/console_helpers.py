"""Helpers for console page tests: a browser-like test client signed in through the console's own form,
and the CSRF token a page hands out."""
from __future__ import annotations

import re

from tests.factories import PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(response) -> str:
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def page_token(client) -> str:
    """A valid CSRF token of this client's session (signed in or not)."""
    response = client.get("/feed")
    if response.status_code != 200:
        response = client.get("/login")
        if response.status_code != 200:   # a signed-in visitor is sent on from the sign-in page
            response = client.get("/feed")
    return csrf_from(response)


def sign_in(client, username: str, password: str = PASSWORD):
    token = csrf_from(client.get("/login"))
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})


def browser(app, username: str | None = None, password: str = PASSWORD):
    """A new test client (its own cookies), signed in as `username` unless None."""
    client = app.test_client()
    if username is not None:
        response = sign_in(client, username, password)
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return client


def post(client, path: str, data: dict | None = None, **kwargs):
    """A form POST with this client's CSRF token."""
    return client.post(path, data={"csrf_token": page_token(client), **(data or {})}, **kwargs)


def assert_page(response, status: int = 200) -> str:
    """An HTML page of the console with that status, hardened, with one h1 and a language."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:3000]
    assert response.mimetype == "text/html"
    assert "Content-Security-Policy" in response.headers and "unsafe-inline" not in \
        response.headers["Content-Security-Policy"]
    assert text.count("<h1") == 1, text[:3000]
    assert re.search(r'<html lang="(vi|en)">', text)
    for leak in ("Traceback", "SELECT", "sqlalchemy", "psycopg", 'File "'):
        assert leak not in text
    return text
