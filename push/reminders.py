"""When may a unit's pending members be reminded by hand again (the 24-hour rule of `schedule.remind`)?"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from handbook.extensions import db
from handbook.timeutil import as_utc, utcnow
from push.models import Notification, NotificationKind
from push.schedule import MANUAL_INTERVAL


def manual_reminder_window(document_id: int, org_unit_id: int, now: datetime | None = None) -> dict:
    """`{"last_at", "next_at"}`: the last manual reminder of this document to this unit within the
    interval, and when the next one may be sent (None: now). Access is the caller's to check first
    (`followup.progress` for the same document and unit)."""
    now = now or utcnow()
    last = db.session.scalar(select(func.max(Notification.created_at)).where(
        Notification.kind == NotificationKind.MANUAL.value, Notification.document_id == document_id,
        Notification.org_unit_id == org_unit_id, Notification.created_at > now - MANUAL_INTERVAL))
    if last is None:
        return {"last_at": None, "next_at": None}
    return {"last_at": as_utc(last), "next_at": as_utc(last) + MANUAL_INTERVAL}
