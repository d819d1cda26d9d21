"""Decorators and helpers shared by the blueprints."""
from __future__ import annotations

import copy
import functools
import json

from flask import Response, abort, current_app, request
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request
from flask_smorest import Blueprint as _SmorestBlueprint
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

from handbook.auth import LIGHT_KEY
from handbook.errors import PROBLEM_MIMETYPE, ProblemError, ProblemSchema
from handbook.extensions import open_reader
from handbook.security import check_json_body
from handbook.tables import CONTENT_TYPES

BEARER = [{"bearerAuth": []}]


class Parser(FlaskParser):
    """webargs only turns JSONDecodeError into a 400; absurdly deep nesting (RecursionError) and
    integers past Python's digit limit (ValueError) are malformed JSON too, not a 500; bodies past the
    size, depth and item limits are refused before parsing (handbook.security). Unknown query
    parameters and multipart parts are refused like unknown body fields (a typo such as `?stat=` must not
    pass unnoticed)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "files": RAISE}

    def load_files(self, req, schema):
        """A multipart body is one object: its text parts are fields too, so that an unknown part is
        refused (422) like an unknown JSON field instead of being silently ignored."""
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)

    def _raw_load_json(self, req):
        check_json_body(req.get_data(cache=True))   # size, depth and item limits, before parsing
        try:
            return super()._raw_load_json(req)
        except (RecursionError, ValueError) as e:
            if isinstance(e, json.JSONDecodeError):
                raise
            # (a non-empty doc: webargs reads an empty one as "no body")
            raise json.JSONDecodeError("unparseable JSON", "<body>", 0) from None


class Blueprint(_SmorestBlueprint):
    ARGUMENTS_PARSER = Parser()

    def arguments(self, schema, *, location="json", required=None, **kwargs):
        """A JSON body is documented as required exactly when the server refuses it missing: when its
        schema has a required field (webargs reads a missing body as `{}`, which such a schema refuses).
        POST /admin/documents/{id}/publish with no body publishes now, so its body is optional."""
        if required is None:
            fields = (schema if isinstance(schema, type) else type(schema))._declared_fields.values()
            required = location != "json" or any(field.required for field in fields)
        return super().arguments(schema, location=location, required=required, **kwargs)

    def alt_response(self, status_code, response=None, *, schema=None, content_type=None, **kwargs):
        """An error response (4xx/5xx) is documented as what handbook.errors sends: a Problem body in
        application/problem+json, unless a schema or a response component is named."""
        if int(status_code) >= 400 and response is None and schema is None:
            schema, content_type = ProblemSchema, content_type or PROBLEM_MIMETYPE
        return super().alt_response(status_code, response, schema=schema, content_type=content_type, **kwargs)

    def _check_not_modified(self, etag):
        """flask-smorest raises a bare 304; RFC 9110 wants the ETag on it too. A compressed body was sent
        with the encoding appended to its tag (Flask-Compress: `"<tag>:br"`); a phone sends that form
        back, and gets its 304 here too, before the body is built (not after, from the compressed one)."""
        if request.method not in self.METHODS_CHECKING_NOT_MODIFIED:
            return
        tags = request.if_none_match
        if not tags:
            return
        for candidate in (etag, *(f"{etag}:{encoding}" for encoding in current_app.config["COMPRESS_ALGORITHM"])):
            if candidate in tags:
                response = Response(status=304)
                response.set_etag(candidate)
                abort(response)


def auth_required(*, refresh: bool = False, any_type: bool = False, light: bool = False, reader: bool = False,
                  stamps: bool = False):
    """Require a valid, unrevoked token of the right type; documents the bearer scheme and the 401 in
    OpenAPI.

    The hot member paths: with `light`, `current_user` is a `handbook.auth.Principal` (the session check,
    the member's unit and roles in one statement built once, as rows, no ORM); with `reader` (a GET whose
    reads are Core statements), they run on a connection of the request's own in autocommit
    (`handbook.extensions.open_reader`: no BEGIN and no ROLLBACK round trip); with `stamps`, the
    conditional GET's stamps (`content.feed.stamp_columns`) come in the principal's statement."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if light:
                request.environ[LIGHT_KEY] = "stamps" if stamps else "light"
                if reader and request.method == "GET":
                    open_reader()
            verify_jwt_in_request(refresh=refresh, verify_type=not any_type)
            if current_user is None:  # session revoked or member deactivated in between
                raise ProblemError("token_revoked", 401)
            return view(*args, **kwargs)

        doc = copy.deepcopy(getattr(wrapper, "_apidoc", {}))
        doc.setdefault("manual_doc", {})["security"] = BEARER
        responses = doc.setdefault("response", {}).setdefault("responses", {})
        if 401 not in responses:
            responses[401] = [{"schema": ProblemSchema(), "content_type": PROBLEM_MIMETYPE,
                               "description": "unauthorized, invalid_token, token_expired or token_revoked"}]
        wrapper._apidoc = doc
        return wrapper

    return decorator


def session_id() -> str:
    return get_jwt()["sid"]


FILE = {"type": "string", "format": "binary"}


def file_formats(blp, description: str = "format=csv or xlsx: the file"):
    """The CSV and XLSX alternatives of an endpoint's JSON answer, in the OpenAPI document."""
    def decorate(fn):
        for media_type in ("text/csv", CONTENT_TYPES["xlsx"]):
            fn = blp.alt_response(200, description=description, success=True, schema=FILE,
                                  content_type=media_type)(fn)
        return fn
    return decorate
