"""Documents, their audience, versions, attachments, study series, and each member's receipt.

A document is written by a publisher for an *owner unit* (the issuing level: the city, a district...)
and targets an *audience*: org units whose whole subtrees receive it, optionally narrowed to members
holding some roles. Readers never get a row per member: "is member M in the audience of D" is "is one of
M's unit's ancestors (or the unit itself) an audience unit of D", a handful of primary-key probes.

Search indexes (SQLite FTS5 / PostgreSQL tsvector) live outside this metadata: see content/search.py.
"""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from handbook.extensions import db
from handbook.members import Role
from handbook.orgunits import OrgUnit
from handbook.timeutil import UTCDateTime, utcnow

DateTime = UTCDateTime


class Kind(str, enum.Enum):
    DIRECTIVE = "directive"      # chỉ thị
    RESOLUTION = "resolution"    # nghị quyết
    CONCLUSION = "conclusion"    # kết luận
    PLAN = "plan"                # kế hoạch
    GUIDANCE = "guidance"        # hướng dẫn
    NOTICE = "notice"            # thông báo
    STUDY = "study"              # tài liệu học tập


KINDS = [k.value for k in Kind]


class Status(str, enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


STATUSES = [s.value for s in Status]

# Audience roles are stored as a bit mask so that "no roles, or one of mine" is one integer test.
ROLE_BITS = {role.value: 1 << i for i, role in enumerate(Role)}


def roles_to_mask(roles) -> int:
    mask = 0
    for role in roles or ():
        mask |= ROLE_BITS[role]
    return mask


def mask_to_roles(mask: int) -> list[str]:
    return [role for role, bit in ROLE_BITS.items() if mask & bit]


class Series(db.Model):
    """A study series (chuyên đề): ordered lessons, each a `study` document."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    owner_unit: Mapped[OrgUnit] = relationship(lazy="joined")


class _Content:
    """What a version of a document says: the columns snapshotted into document_versions."""

    number: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    issuing_body: Mapped[str | None] = mapped_column(String(255))
    issued_on: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list] = mapped_column(JSON, default=list)


CONTENT_FIELDS = ("number", "title", "summary", "body_html", "issuing_body", "issued_on", "tags")


class Document(_Content, db.Model):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    requires_ack: Mapped[bool] = mapped_column(Boolean, default=True)
    ack_days: Mapped[int] = mapped_column(Integer, default=14)

    status: Mapped[str] = mapped_column(String(16), default=Status.DRAFT.value)
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    roles_mask: Mapped[int] = mapped_column(Integer, default=0)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"))
    lesson_no: Mapped[int | None] = mapped_column(Integer)

    # Current version, and the version members must have acknowledged (bumped by a material change).
    version: Mapped[int] = mapped_column(Integer, default=1)
    ack_version: Mapped[int] = mapped_column(Integer, default=1)
    # Readers see the document from `published_at` on (set when publishing or scheduling).
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    deadline: Mapped[datetime | None] = mapped_column(DateTime)
    # When the document last changed for readers; delta sync (`updated_since`) is driven by it.
    # A scheduled document gets its publication time here, so it surfaces in the sync when it goes out.
    sync_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime)
    withdraw_reason: Mapped[str | None] = mapped_column(Text)
    # When the deadline passed and progress was frozen into progress_snapshots.
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Acknowledgement rules (content/ackgate.py): a minimum reading time after the first open, and the
    # quiz that must be passed on the version to acknowledge (quizzes.id; no FK: quizzes reference documents).
    min_read_seconds: Mapped[int | None] = mapped_column(Integer)
    ack_quiz_id: Mapped[int | None] = mapped_column(Integer)

    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    owner_unit: Mapped[OrgUnit] = relationship(lazy="joined")
    audience: Mapped[list[DocumentAudience]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DocumentAudience.org_unit_id")
    attachments: Mapped[list[Attachment]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="Attachment.id")

    __table_args__ = (
        Index("ix_documents_owner_unit_id_id", "owner_unit_id", "id"),
        Index("ix_documents_status_published_at", "status", "published_at"),
        # The feed's order (newest first): lets PostgreSQL walk documents backwards and stop at the limit.
        Index("ix_documents_published_at_id", "published_at", "id"),
        Index("ix_documents_sync_at", "sync_at"),
        Index("ix_documents_series_id_lesson_no", "series_id", "lesson_no"),
        # The latest deadline passed (content.feed.stamp_columns): one step down the index.
        Index("ix_documents_deadline", "deadline"),
    )

    @property
    def audience_roles(self) -> list[str]:
        return mask_to_roles(self.roles_mask)

    @property
    def audience_unit_ids(self) -> list[int]:
        return [a.org_unit_id for a in self.audience]


class ContentRevision(db.Model):
    """One row (id 1) whose `revision` moves with every committed change of documents, their audience,
    their attachments and study series: triggers move it (migration 0010), once per transaction at
    commit on PostgreSQL. The feed's and a document's ETag are built from it (content.feed)."""

    __tablename__ = "content_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class DocumentAudience(db.Model):
    """One audience unit of a document: its whole subtree receives the document."""

    __tablename__ = "document_audience"

    # Primary key led by the unit: the feed probes (unit ∈ my ancestors) → documents.
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)

    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")

    __table_args__ = (Index("ix_document_audience_document_id", "document_id"),)


class DocumentVersion(_Content, db.Model):
    """A snapshot of a document's content as published (version 1) and after each later edit."""

    __tablename__ = "document_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    reack: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("document_id", "version"),)


class _StoredFile:
    """A file kept in the attachment storage (content/storage.py) under its SHA-256."""

    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Attachment(_StoredFile, db.Model):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(255), index=True)

    def brief(self) -> dict:
        return {"id": self.id, "filename": self.filename, "content_type": self.content_type,
                "size": self.size, "sha256": self.sha256}


class Receipt(db.Model):
    """What one member did with one document: opened, acknowledged (which version, how, by whom).

    Never deleted, not even when the document is withdrawn. Written by content/acknowledgements.py.
    """

    __tablename__ = "receipts"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_version: Mapped[int | None] = mapped_column(Integer)
    # "app" (the member), "briefing" (recorded by a secretary) or "meeting" (present at a closed meeting).
    method: Mapped[str | None] = mapped_column(String(16))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    # What the client said (offline phones), next to the server's own time.
    client_acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime)
    platform: Mapped[str | None] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(128))
    held_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    # An exemption (illness, exempt from party activities) takes the member out of the denominator.
    exempt_reason: Mapped[str | None] = mapped_column(Text)
    exempted_at: Mapped[datetime | None] = mapped_column(DateTime)
    exempted_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    # A per-member deadline extension (illness, leave): not overdue, nor reminded, until this local day ends.
    extended_until: Mapped[date | None] = mapped_column(Date)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extended_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))

    __table_args__ = (
        Index("ix_receipts_member_id_document_id", "member_id", "document_id"),
        # The few receipts with an extension, found without reading the document's other receipts
        # (progress past the deadline: content.progress._extended_pending).
        Index("ix_receipts_document_id_extended_until", "document_id", "extended_until",
              postgresql_where=text("extended_until IS NOT NULL"), sqlite_where=text("extended_until IS NOT NULL")),
    )


class _UnitCounts:
    """Counts of one document's audience members in one member-holding unit. `l1_id`..`l3_id` are the
    unit's ancestors-or-self at depths 1-3, so the breakdown of a unit at depth k into its children is
    one GROUP BY on the column of depth k+1. `new` = total - opened - acknowledged - exempt."""

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    l1_id: Mapped[int | None] = mapped_column(Integer)
    l2_id: Mapped[int | None] = mapped_column(Integer)
    l3_id: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)        # opened, not (yet) acknowledged
    acknowledged: Mapped[int] = mapped_column(Integer, default=0)  # acknowledged the version to acknowledge
    exempt: Mapped[int] = mapped_column(Integer, default=0)


def _level_indexes(table: str) -> tuple[Index, ...]:
    return tuple(Index(f"ix_{table}_document_id_{col}", "document_id", col) for col in ("l1_id", "l2_id", "l3_id"))


class ProgressCounter(_UnitCounts, db.Model):
    """Live progress per (document, member-holding unit).

    Updated in the same transaction as every acknowledgement, briefing, exemption, undo, transfer and
    re-acknowledgement reset, and summed up the tree on read, so progress costs O(units in scope), not
    O(members). A branch row is touched by its 5-60 members only: no city-wide hot row. On PostgreSQL
    its pages are filled to 60 % only (migration 0007), so that those updates are HOT (in place).
    """

    __tablename__ = "progress_counters"
    __table_args__ = _level_indexes("progress_counters")


class ProgressSnapshot(_UnitCounts, db.Model):
    """Progress frozen at a document's deadline (`acknowledged` = acknowledged by the deadline): the
    compliance view reads which units reached every member in time."""

    __tablename__ = "progress_snapshots"
    __table_args__ = _level_indexes("progress_snapshots")


# --- branch meetings (sinh hoạt chi bộ), questions on documents, adoption -------------------------------

class MeetingKind(str, enum.Enum):
    REGULAR = "regular"              # the branch's monthly meeting
    THEMATIC = "thematic"            # chuyên đề; may span a committee's subtree
    EXTRAORDINARY = "extraordinary"  # bất thường


class Meeting(db.Model):
    """A meeting of one unit's members (its whole subtree for a thematic one). `status` is stored as
    scheduled / closed / cancelled; "open" is derived (from CHECK_IN_OPENS before `starts_at` until it is
    closed). The invited are the unit's members while it is not closed, then those fixed at the close."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    starts_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    place: Mapped[str] = mapped_column(String(255))
    online_url: Mapped[str | None] = mapped_column(String(512))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # A random secret per meeting from which the rotating 6-digit check-in code is derived (HMAC).
    code_secret: Mapped[str] = mapped_column(String(64))
    # Fixed at the close: attendance counts (so that roll-ups need not rescan attendance rows).
    invited: Mapped[int] = mapped_column(Integer, default=0)
    present: Mapped[int] = mapped_column(Integer, default=0)
    excused: Mapped[int] = mapped_column(Integer, default=0)
    unexcused: Mapped[int] = mapped_column(Integer, default=0)
    # What the close recorded as briefed: [{"document_id", "members": [ids]}] (closing again answers it).
    briefed: Mapped[list | None] = mapped_column(JSON)

    agenda: Mapped[list[MeetingAgendaItem]] = relationship(
        order_by="MeetingAgendaItem.position", cascade="all, delete-orphan", lazy="selectin")


class MeetingAgendaItem(db.Model):
    __tablename__ = "meeting_agenda_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))


class MeetingParticipant(db.Model):
    """One invited member's answer and attendance. A row exists once the member answered, checked in or
    was marked by the secretary, and for every invited member once the meeting is closed."""

    __tablename__ = "meeting_participants"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    rsvp: Mapped[str | None] = mapped_column(String(16))            # attending / absent
    rsvp_reason: Mapped[str | None] = mapped_column(Text)
    rsvp_at: Mapped[datetime | None] = mapped_column(DateTime)
    attendance: Mapped[str | None] = mapped_column(String(16))      # present / excused / unexcused
    absence_reason: Mapped[str | None] = mapped_column(Text)
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_meeting_participants_member_id", "member_id"),)


class MeetingMinutes(_StoredFile, db.Model):
    """The minutes (biên bản) of a meeting: files in the attachment storage."""

    __tablename__ = "meeting_minutes"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(255))


class MeetingMonthCounter(db.Model):
    """The meetings closed per (unit, local month of their start): kept in the close's transaction
    (content/meetings.py), summed up the tree on read like progress counters, so the monthly roll-up
    costs O(units in scope) whatever the number of meetings. `regular` counts the regular ones (the
    unit held its regular meeting when > 0); `invited`/`present` are the sums fixed at the closes.
    `month` is year * 100 + month (202610). A unit has a row for a month only once it closed a meeting
    in it; closed meetings are never reopened nor removed, so rows only grow."""

    __tablename__ = "meeting_month_counters"

    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    l1_id: Mapped[int | None] = mapped_column(Integer)
    l2_id: Mapped[int | None] = mapped_column(Integer)
    l3_id: Mapped[int | None] = mapped_column(Integer)
    meetings: Mapped[int] = mapped_column(Integer, default=0)
    regular: Mapped[int] = mapped_column(Integer, default=0)
    invited: Mapped[int] = mapped_column(Integer, default=0)
    present: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = tuple(Index(f"ix_meeting_month_counters_month_{col}", "month", col)
                           for col in ("l1_id", "l2_id", "l3_id"))


class MeetingMonthVersion(db.Model):
    """A month's version of `meeting_month_counters`: every close counted in the month adds one, and so
    does a rebuild of the counters, so that a roll-up computed for (month, version, version of the tree)
    can be kept and answered again until either changes (content/meetings.py)."""

    __tablename__ = "meeting_month_versions"

    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class Question(db.Model):
    """A member's question or feedback on a document (góp ý), answered by its publishers."""

    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)
    public: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_questions_member_id_created_at", "member_id", "created_at"),)


class AdoptionCounter(db.Model):
    """Adoption per member-holding unit, rolled up periodically from members, sessions and devices
    (`content.adoption.refresh`): read per subtree like progress counters, O(units)."""

    __tablename__ = "adoption_counters"

    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    l1_id: Mapped[int | None] = mapped_column(Integer, index=True)
    l2_id: Mapped[int | None] = mapped_column(Integer, index=True)
    l3_id: Mapped[int | None] = mapped_column(Integer, index=True)
    members: Mapped[int] = mapped_column(Integer, default=0)
    signed_in: Mapped[int] = mapped_column(Integer, default=0)
    with_device: Mapped[int] = mapped_column(Integer, default=0)
    active_30d: Mapped[int] = mapped_column(Integer, default=0)
    as_of: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProgressDaily(db.Model):
    """A document's progress in one unit's whole subtree at the end of one local day: the counters summed
    up the tree once a day by `run_due` (`content.timeline`), so the acknowledgements-over-time chart of
    any unit reads one row per day, never the members. Units without audience members have no row."""

    __tablename__ = "progress_daily"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged: Mapped[int] = mapped_column(Integer, default=0)
    exempt: Mapped[int] = mapped_column(Integer, default=0)


class ProgressDailyRun(db.Model):
    """One row per (document, local day) whose daily progress was taken: makes the snapshot idempotent
    (a second run, or a second worker, finds the row and does nothing)."""

    __tablename__ = "progress_daily_runs"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    units: Mapped[int] = mapped_column(Integer, default=0)
