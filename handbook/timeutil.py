"""Timezone-aware time helpers. Every stored timestamp is UTC; "days" are counted in HANDBOOK_TIMEZONE."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["HANDBOOK_TIMEZONE"])
