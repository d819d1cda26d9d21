"""Push data: the notification outbox, devices, the inbox, fan-out chunks and per-device deliveries.

- `Notification`: one thing to tell a set of members. Publishing writes its notification in the same
  transaction as the document (transactional outbox), so no publication is ever without its
  notification, nor the other way round. `push.fanout` picks up rows that are `pending` and due.
- `InboxItem`: one per (notification, recipient member), written when the fan-out starts; the in-app
  inbox, because pushes get lost. The fan-out walks recipients through it in member-id order.
- `PushChunk`: a member-id range of one notification's recipients, the unit of work of the fan-out
  (a Celery task each). Its lease lets a sweeper hand the chunk of a dead worker to another.
- `PushBatch`: the write-ahead record of one batch (≤ 500 devices) handed to FCM: committed before the
  send, deleted in the same transaction that records the batch's outcomes. One left behind by a dead
  worker names the devices that are in doubt.
- `Delivery`: one per (notification, device): the idempotency record, written with the send's outcome.
  A device is sent to only when it has no delivery yet (and is in no open batch), or from `retry`, so
  retried or repeated chunks never send a device twice.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, false
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
    MEETING = "meeting"                      # a meeting was scheduled: the invitation
    MEETING_REMINDER = "meeting_reminder"    # MEETING_REMINDER_HOURS before it starts
    MEETING_CHANGED = "meeting_changed"      # moved, or its place or agenda changed
    MEETING_CANCELLED = "meeting_cancelled"
    ANSWER = "answer"                        # a member's question on a document was answered


MEETING_KINDS = frozenset({NotificationKind.MEETING.value, NotificationKind.MEETING_REMINDER.value,
                           NotificationKind.MEETING_CHANGED.value, NotificationKind.MEETING_CANCELLED.value})


class NotificationState(str, enum.Enum):
    PENDING = "pending"        # due at `due_at`; not sent yet
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"    # e.g. the document was withdrawn before it went out


class Notification(db.Model):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING.value)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    # Meeting notifications name their meeting (and no document); an answer names its one recipient.
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    due_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    invalid_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Pushes sent again because a worker died while their first send was in flight (see push.fanout).
    resent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    devices: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bypasses quiet hours (a publication the publisher marks urgent).
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Makes scheduled notifications unique per document: "reminder:v1:d7", "escalation:v1:d12".
    dedupe_key: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Fan-out planning: recipients are materialised into the inbox in member-id order; `plan_cursor` is the
    # last member id planned, `planned_at` set when every chunk exists; the lease guards a planner that died.
    plan_cursor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    planned_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_notifications_state_due_at", "state", "due_at"),
                      UniqueConstraint("document_id", "dedupe_key", name="uq_notifications_document_id_dedupe_key"),
                      Index("ix_notifications_manual", "document_id", "org_unit_id", "created_at"))


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


class InboxItem(db.Model):
    """A notification as a member sees it in the app's inbox (`/me/notifications`)."""

    __tablename__ = "inbox_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Escalations: the units of the secretary with their pending counts and names.
    data: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("notification_id", "member_id", name="uq_inbox_items_notification_id_member_id"),
        Index("ix_inbox_items_member_id_id", "member_id", "id"),
    )


class ChunkState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    RETRY = "retry"
    DONE = "done"


class PushChunk(db.Model):
    __tablename__ = "push_chunks"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    first_member_id: Mapped[int] = mapped_column(Integer)
    last_member_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=ChunkState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_push_chunks_state_not_before", "state", "not_before"),)


class PushBatch(db.Model):
    """A batch in flight: the devices (`[[device id, member id], ...]`) a chunk's worker is sending.
    `claim` is the chunk attempt that sends it; `tries` how many times it has been handed to FCM;
    `retry` says its devices have deliveries already (retries) rather than none (first sends)."""

    __tablename__ = "push_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    chunk_id: Mapped[int] = mapped_column(ForeignKey("push_chunks.id", ondelete="CASCADE"), index=True)
    claim: Mapped[int] = mapped_column(Integer)
    tries: Mapped[int] = mapped_column(Integer, default=1)
    retry: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer)
    devices: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeliveryState(str, enum.Enum):
    QUEUED = "queued"       # (before 0012_push_batches: created before the send; still honoured)
    SENDING = "sending"     # (before 0012_push_batches: the write-ahead state; a row left here is in doubt)
    SENT = "sent"
    RETRY = "retry"         # a transient error; sent again from `not_before`
    FAILED = "failed"       # gave up (attempts exhausted, or a configuration error)
    INVALID = "invalid"     # FCM said the fid/token is dead; the device was deleted
    SKIPPED = "skipped"     # no longer needed when its turn came (acknowledged meanwhile, withdrawn)


class Delivery(db.Model):
    __tablename__ = "deliveries"

    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"),
                                                 primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # no FK: dead devices are deleted
    chunk_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[int] = mapped_column(Integer, default=0)  # the chunk attempt that last sent it
    not_before: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_deliveries_chunk_id_state", "chunk_id", "state"),)
