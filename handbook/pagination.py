"""Opaque cursors for keyset pagination: `?limit=&cursor=` → `{"items", "next_cursor"}`.

A cursor is the sort key of the last item of a page (base64url of a small JSON list). Keyset pagination
stays fast on deep pages and never skips or repeats rows when new ones arrive in between.
"""
from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from handbook.errors import ProblemError
from handbook.text import has_bad_characters

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
INT_LIMIT = 2**31  # ids, offsets and ranks in cursors fit a PostgreSQL integer


def encode_cursor(*values) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types) -> tuple:
    """The values of a cursor, checked against `types` (datetime, int, str); 422 when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        out = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                if not isinstance(value, str) or has_bad_characters(value):
                    raise ValueError
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError
                out.append(moment.astimezone(UTC))
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int) or not -INT_LIMIT < value < INT_LIMIT:
                    raise ValueError
                out.append(value)
            elif kind is str:
                if not isinstance(value, str) or len(value) > 1024 or has_bad_characters(value):
                    raise ValueError
                out.append(value)
            else:
                raise NotImplementedError(kind)
        return tuple(out)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ProblemError("validation_error", 422, errors={"cursor": ["invalid_cursor"]}) from None


def page(rows: list, limit: int, key) -> tuple[list, str | None]:
    """Given `limit + 1` rows, the page and the cursor of its last row (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
