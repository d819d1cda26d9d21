"""Timezone-aware time helpers. Every stored timestamp is UTC; "days" are counted in HANDBOOK_TIMEZONE."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["HANDBOOK_TIMEZONE"])


class UTCDateTime(TypeDecorator):
    """A timestamp column that always stores UTC and always gives back an aware UTC datetime.

    PostgreSQL's timestamptz does that already; SQLite stores text without an offset, so a naive value
    read back is UTC, and an aware value in another zone must be converted before it is written (or
    compared: bound parameters go through here too).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)
