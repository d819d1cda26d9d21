"""Decorators and helpers shared by the blueprints."""
from __future__ import annotations

import functools

from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from handbook.errors import ProblemError

BEARER = [{"bearerAuth": []}]


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
