"""The notification outbox: one row per thing to tell a set of members.

Publishing writes its notification in the same transaction as the document (transactional outbox), so
no publication is ever without its notification, nor the other way round. The fan-out (push issue)
picks up rows that are `pending` and due, and fills in the counters.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from handbook.extensions import db
from handbook.timeutil import UTCDateTime, utcnow

DateTime = UTCDateTime


class NotificationKind(str, enum.Enum):
    PUBLISHED = "published"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    MANUAL = "manual"
    REACK = "reack"


class NotificationState(str, enum.Enum):
    PENDING = "pending"        # due at `due_at`; not sent yet
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"    # e.g. the document was withdrawn before it went out


class Notification(db.Model):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING.value)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    due_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    invalid_tokens: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_notifications_state_due_at", "state", "due_at"),)


class Device(db.Model):
    """A phone (or browser) of a member that can receive pushes: a Firebase installation ID (`fid`,
    preferred by firebase-admin 7) and/or a legacy FCM registration `token`."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    fid: Mapped[str | None] = mapped_column(String(255), unique=True)
    token: Mapped[str | None] = mapped_column(String(1024), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    app_version: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_devices_last_seen_at", "last_seen_at"),)

    def view(self) -> dict:
        return {"id": self.id, "fid": self.fid, "token": self.token, "platform": self.platform,
                "app_version": self.app_version, "locale": self.locale, "created_at": self.created_at,
                "last_seen_at": self.last_seen_at}
