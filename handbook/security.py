"""HTTP hardening: security headers on every response, CORS for an allow-list of origins, and limits on
JSON bodies (size, nesting depth, number of values) checked before they are parsed.

The API serves phones (no browser origin at all) and, possibly, a web admin on its own origin: CORS is
off unless `CORS_ORIGINS` names the origins allowed to call it. Bearer tokens travel in a header, never
in cookies, so no credentials mode is needed.
"""
from __future__ import annotations

import json
import re
import tempfile

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from handbook.errors import ProblemError

# A JSON API answers no page a browser should render, frame or sniff. The pages (the console, /docs)
# set a policy of their own before this default applies.
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Responses that carry tokens or credentials are never stored anywhere.
_NO_STORE_PREFIXES = ("/api/v1/auth/",)


def init_app(app: Flask) -> None:
    origins = app.config["CORS_ORIGINS"]
    if origins:
        from flask_cors import CORS

        CORS(app, resources={r"/api/*": {"origins": origins}}, supports_credentials=False,
             allow_headers=["Authorization", "Content-Type", "Accept-Language", "If-None-Match", "X-Request-ID"],
             expose_headers=["ETag", "Retry-After", "X-Request-ID", "Location", "Content-Disposition"],
             max_age=app.config["CORS_MAX_AGE"])
    app.before_request(_measure_chunked_body)
    app.before_request(_refuse_malformed_json)
    app.after_request(_secure_headers)


_SPOOL_IN_MEMORY = 1024 * 1024  # a measured body past this size waits on disk, not in memory
_READ_CHUNK = 64 * 1024


def _measure_chunked_body() -> None:
    """A body with no Content-Length (chunked, which gunicorn passes on de-chunked with
    `wsgi.input_terminated`) would be cut silently at MAX_CONTENT_LENGTH by Werkzeug, so an oversized
    JSON body looked malformed (400) and an oversized upload truncated. Such a body is read here up to one
    byte past the limit: over it, 413; otherwise it is handed on with its real length, as if sent plainly."""
    environ = request.environ
    if request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    source = environ["wsgi.input"]
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    size = 0
    while chunk := source.read(_READ_CHUNK):
        size += len(chunk)
        if limit is not None and size > limit:
            spool.close()
            raise RequestEntityTooLarge()
        spool.write(chunk)
    spool.seek(0)
    environ.update({"wsgi.input": spool, "CONTENT_LENGTH": str(size), "wsgi.input_terminated": False})
    for cached in ("stream", "content_length"):  # Werkzeug builds them again, from the measured body
        request.__dict__.pop(cached, None)


def _refuse_malformed_json() -> None:
    """A JSON body that does not parse is 400 malformed_json on every endpoint, also on those that read no
    body (POST /documents/{id}/open answered 204 to `{bad json`): the client has a bug it must learn of."""
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.is_json:
        return
    raw = request.get_data(cache=True)
    if not raw:
        return
    check_json_body(raw)
    try:
        json.loads(raw)
    except (ValueError, RecursionError):   # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProblemError("malformed_json", 400) from None


def _secure_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in _HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", _API_CSP)
    hsts = current_app.config["HSTS_SECONDS"]
    if hsts and request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts}; includeSubDomains")
    if "Cache-Control" not in headers:
        if request.path.startswith(_NO_STORE_PREFIXES):
            headers["Cache-Control"] = "no-store"
        elif request.headers.get("Authorization"):
            # One member's data: never in a shared cache; revalidated (ETag) before reuse.
            headers["Cache-Control"] = "private, no-cache"
    return response


# Strings (escapes included) are skipped whole; what is left are the structural characters.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def check_json_body(raw: bytes) -> None:
    """Refuse, before parsing, a JSON body larger than JSON_MAX_BYTES (413), nested deeper than
    JSON_MAX_DEPTH or holding more than JSON_MAX_ITEMS values (400 json_too_complex): parsing such a body
    costs memory and CPU out of proportion to any request of this API."""
    cfg = current_app.config
    limit = cfg["JSON_MAX_BYTES"]
    if len(raw) > limit:
        raise ProblemError("payload_too_large", 413, limit=limit)
    max_depth, max_items = cfg["JSON_MAX_DEPTH"], cfg["JSON_MAX_ITEMS"]
    depth = items = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            items += 1
            if depth > max_depth:
                raise ProblemError("json_too_complex", 400, max_depth=max_depth, max_items=max_items)
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b",":
            items += 1
            if items > max_items:
                raise ProblemError("json_too_complex", 400, max_depth=max_depth, max_items=max_items)
