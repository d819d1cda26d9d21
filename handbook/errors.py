"""One error envelope for every error path: application/problem+json (RFC 9457).

`{"type", "title", "status", "detail", "code", "instance", "request_id"}` plus `"errors": {field: [...]}`
for validation. Domain code raises `ProblemError(code, status, **params)`; werkzeug HTTP errors, webargs
validation, JWT errors, rate limits, database outages and unexpected exceptions are all turned into the
same shape here. No stack trace, SQL or token ever reaches a response.
"""
from __future__ import annotations

import logging
import math
import time

import marshmallow as ma
from flask import Flask, current_app, g, jsonify, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from handbook.i18n import field_message, problem_text

log = logging.getLogger("handbook.errors")

PROBLEM_MIMETYPE = "application/problem+json"

STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
    503: "service_unavailable",
}


class ProblemError(Exception):
    """An error with a stable machine `code`, an HTTP status and parameters for its message."""

    def __init__(self, code: str, status: int, *, errors: dict | None = None,
                 headers: dict | None = None, extra: dict | None = None, **params):
        super().__init__(code)
        self.code, self.status, self.errors = code, status, errors
        self.headers, self.extra, self.params = headers or {}, extra or {}, params


class ProblemSchema(ma.Schema):
    """The problem+json body (RFC 9457). Documented in OpenAPI for every error response; as RFC 9457
    allows, some problems add members of their own (stale_version: `current_version`, `ack_version`)."""

    class Meta:
        unknown = ma.INCLUDE   # documented as additionalProperties: extension members are allowed

    type = ma.fields.String(required=True, metadata={"description": "URI reference naming the problem type"})
    title = ma.fields.String(required=True, metadata={"description": "Short human summary (Vietnamese or English)"})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    detail = ma.fields.String(required=True, metadata={"description": "Human explanation of this occurrence"})
    code = ma.fields.String(required=True, metadata={"description": "Stable machine word, e.g. invalid_credentials"})
    instance = ma.fields.String(metadata={"description": "The request path"})
    request_id = ma.fields.String(metadata={"description": "The request's id, also in the logs"})
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(),
                            metadata={"description": "Validation messages by field"})


def _translate(errors):
    if isinstance(errors, dict):
        return {str(k): _translate(v) for k, v in errors.items()}
    if isinstance(errors, list):
        return [_translate(v) for v in errors]
    return field_message(errors) if isinstance(errors, str) else errors


def problem_response(code: str, status: int, *, errors=None, headers=None, extra=None, **params):
    params.setdefault("request_id", g.get("request_id", "-"))
    title, detail = problem_text(code, params)
    body = {
        "type": f"urn:handbook:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
        "request_id": params["request_id"],
    }
    if errors:
        body["errors"] = _translate(errors)
    if extra:
        body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_MIMETYPE
    response.vary.add("Accept-Language")
    for name, value in (headers or {}).items():
        response.headers[name] = str(value)
    return response


def _webargs_errors(data: dict) -> dict:
    """webargs reports {"json": {...}, "query": {...}}; clients want the fields themselves."""
    messages = data.get("messages") or data.get("errors") or {}
    merged: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            merged.update(fields)
        else:
            merged[location] = fields
    return merged


def handle_http_exception(e: HTTPException):
    if e.response is not None:  # a complete response (e.g. 304 with its ETag) raised with abort()
        return e.response
    status = e.code or 500
    code = STATUS_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    data = getattr(e, "data", None) or {}
    errors = _webargs_errors(data) if data else None
    headers = dict(data.get("headers") or {})
    params: dict = {}
    if status == 400 and data:
        json_messages = (data.get("messages") or {}).get("json")
        if json_messages == ["Invalid JSON body."] or json_messages == {"_schema": ["Invalid JSON body."]}:
            code, errors = "malformed_json", None
    elif status == 405:
        params["method"] = request.method
        headers["Allow"] = ", ".join(sorted(e.valid_methods or []))
    elif status == 413:
        params["limit"] = current_app.config.get("MAX_CONTENT_LENGTH")
    elif status == 429:
        retry = _retry_after()
        headers["Retry-After"] = retry
        params["retry_after"] = retry
    if status >= 500:
        return handle_unexpected(e)
    return problem_response(code, status, errors=errors or None, headers=headers, **params)


def _retry_after() -> int:
    """Seconds until the breached Flask-Limiter limit has room again."""
    from handbook.extensions import limiter  # extensions imports this module

    try:
        return max(1, math.ceil(limiter.current_limit.reset_at - time.time()))
    except Exception:  # noqa: BLE001 - a storage hiccup must not turn a 429 into a 500
        return 60


def handle_problem(e: ProblemError):
    return problem_response(e.code, e.status, errors=e.errors, headers=e.headers, extra=e.extra, **e.params)


def handle_database_unavailable(e: Exception):
    from handbook.extensions import db

    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is already gone
        pass
    log.warning("database unavailable: %s", type(e).__name__)
    retry = current_app.config["DB_UNAVAILABLE_RETRY_AFTER"]
    return problem_response("service_unavailable", 503, headers={"Retry-After": retry})


def handle_unexpected(e: Exception):
    original = getattr(e, "original_exception", None) or e
    import psycopg  # a statement sent on the raw connection (the acknowledgement's pipeline) raises its own

    if isinstance(original, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                             psycopg.OperationalError, psycopg.InterfaceError)):
        return handle_database_unavailable(original)
    log.error("unhandled exception", exc_info=original)
    return problem_response("internal_error", 500)


def register(app: Flask) -> None:
    app.register_error_handler(ProblemError, handle_problem)
    app.register_error_handler(HTTPException, handle_http_exception)
    for exc in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.register_error_handler(exc, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)

    from handbook.extensions import jwt

    invalid = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

    def reply(code: str, headers: dict):
        return lambda *args: problem_response(code, 401, headers=headers)

    jwt.unauthorized_loader(reply("unauthorized", {"WWW-Authenticate": "Bearer"}))
    jwt.invalid_token_loader(reply("invalid_token", invalid))
    jwt.expired_token_loader(reply("token_expired", invalid))
    jwt.revoked_token_loader(reply("token_revoked", invalid))
    jwt.user_lookup_error_loader(reply("token_revoked", invalid))
    jwt.needs_fresh_token_loader(reply("invalid_token", invalid))
    jwt.token_verification_failed_loader(reply("invalid_token", invalid))
