"""Decorators and helpers shared by the blueprints."""
from __future__ import annotations

import functools
import json

from flask import Response, abort, request
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request
from flask_smorest import Blueprint as _SmorestBlueprint
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser

from handbook.errors import ProblemError
from handbook.security import check_json_body

BEARER = [{"bearerAuth": []}]


class Parser(FlaskParser):
    """webargs only turns JSONDecodeError into a 400; absurdly deep nesting (RecursionError) and
    integers past Python's digit limit (ValueError) are malformed JSON too, not a 500; bodies past the
    size, depth and item limits are refused before parsing (handbook.security). Unknown query
    parameters are refused like unknown body fields (a typo such as `?stat=` must not pass unnoticed)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE}

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

    def _check_not_modified(self, etag):
        """flask-smorest raises a bare 304; RFC 9110 wants the ETag on it too."""
        if request.method in self.METHODS_CHECKING_NOT_MODIFIED and etag in request.if_none_match:
            response = Response(status=304)
            response.set_etag(etag)
            abort(response)


def auth_required(*, refresh: bool = False, any_type: bool = False):
    """Require a valid, unrevoked token of the right type; documents the bearer scheme in OpenAPI."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request(refresh=refresh, verify_type=not any_type)
            if current_user is None:  # session revoked or member deactivated in between
                raise ProblemError("token_revoked", 401)
            return view(*args, **kwargs)

        doc = getattr(wrapper, "_apidoc", {})
        doc.setdefault("manual_doc", {})["security"] = BEARER
        wrapper._apidoc = doc
        return wrapper

    return decorator


def session_id() -> str:
    return get_jwt()["sid"]
