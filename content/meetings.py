"""Branch meetings (sinh hoạt chi bộ): scheduling, invitations, answers, check-in, attendance, the close
that records present members as briefed on the agenda's documents, and the monthly follow-up.

Who: a secretary (or admin) over a member-holding unit schedules any kind of meeting of that unit; a
secretary, committee member or admin over a grassroots or sub unit schedules a thematic meeting of its
whole subtree. They (and only they) run it: change, cancel, show the check-in code, mark attendance,
close. Follow-up roles over the unit see it; so does every invited member. Anyone else gets 404.

Invited: the unit's active members (the subtree's for a thematic meeting) as they are when it is held:
until the close the list follows transfers; the close fixes it, with each member's attendance.

Status: `scheduled`, then `open` from CHECK_IN_OPENS before the start until it is closed (derived, not
stored), `closed` or `cancelled`.

Check-in: a 6-digit code derived from a per-meeting secret and the current CODE_PERIOD (HMAC), valid in
its period and the next one, shown to the meeting's runners while the meeting is open and before it ends.
Wrong codes are counted per member and per meeting (CHECK_IN_LIMIT_PER_*): a 6-digit code cannot be
guessed in the few hundred tries a meeting allows.

Lock order: the meeting row (FOR SHARE by check-ins and attendance, FOR NO KEY UPDATE by the close,
changes and cancellation) comes before everything of the documents (see content/progress.py), so the
close, which then briefs on the agenda's documents in document id order, keeps the global order. The
close's last writes are its unit's row of `meeting_month_counters`, then its month's row of
`meeting_month_versions` (upserts: row locks, taken after the documents, receipts and progress
counters): those rows come last in the global order, in that order, and every other writer of them
(`on_units_moved`, `recount_month_counters`) takes them after the documents too.

Monthly roll-up: `meeting_month_counters` holds, per (unit, local month of the start), the meetings
closed, how many were regular, and the invited and present fixed at the close; the close adds to it in
its transaction. Closed meetings are never reopened, moved nor removed (change and cancel refuse a
closed one), so nothing ever subtracts. Reading a month sums the rows of the subtree grouped by child
(their l1-l3 columns, like progress counters): O(units). The member-holding units under each unit come
from the org tree, indexed once per process and per version of the tree (`_tree_index`). A roll-up is
kept per process and answered again while the month's version (`meeting_month_versions`, one more per
close in the month) and the tree's version are the same: a page read again costs two index probes.
"""
from __future__ import annotations

import bisect
import copy
import hashlib
import hmac
import io
import re
import secrets
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import String, and_, cast, delete, exists, func, insert, or_, select, text, update

from content.access import went_out
from content.acknowledgements import brief_at_meeting
from content.models import (Document, Meeting, MeetingAgendaItem, MeetingMinutes, MeetingMonthCounter,
                            MeetingMonthVersion, MeetingParticipant, Status)
from content.progress import _lock_active, audience_members, child_column, levels, scope_condition
from handbook import audit, throttle
from handbook.errors import ProblemError
from handbook.extensions import db, one_of, upsert
from handbook.members import Member, Role, membership_changed
from handbook.orgunits import OrgUnit, UnitKind, has_children, holds_members, in_subtree, path_upper_bound
from handbook.pagination import decode_cursor, page
from handbook.tables import table_bytes
from handbook.permissions import FOLLOW_UP_ROLES, forbidden, has_role_over, not_found
from handbook.text import nfc
from handbook.timeutil import as_utc, local_zone, utcnow

KINDS = ("regular", "thematic", "extraordinary")
CHECK_IN_OPENS = timedelta(minutes=30)      # before the start: the meeting is "open" from then
CODE_PERIOD = 300                           # seconds a check-in code lasts (and the next period)
MAX_DURATION = timedelta(hours=12)
MAX_AGENDA = 30
REGULAR_BY_DAY = 25                         # a branch without its regular meeting by this day is overdue

RUN_ROLES = frozenset({Role.SECRETARY.value, Role.ADMIN.value})
THEMATIC_RUN_ROLES = frozenset({Role.SECRETARY.value, Role.COMMITTEE.value, Role.ADMIN.value})


# --- who --------------------------------------------------------------------------------------------

def _unit(meeting: Meeting) -> OrgUnit:
    return db.session.get(OrgUnit, meeting.org_unit_id)


def may_run(actor: Member, meeting: Meeting) -> bool:
    roles = THEMATIC_RUN_ROLES if meeting.kind == "thematic" else RUN_ROLES
    return has_role_over(actor, _unit(meeting), roles)


def _members_condition(unit: OrgUnit, thematic: bool):
    """SQL condition on Member/OrgUnit (joined): the unit's active members (its subtree's if thematic)."""
    where = in_subtree(OrgUnit.path, unit.path) if thematic else Member.org_unit_id == unit.id
    return and_(Member.active.is_(True), where)


def invited_condition(meeting: Meeting):
    """SQL condition on Member/OrgUnit (joined): who is invited now (before the close)."""
    return _members_condition(_unit(meeting), meeting.kind == "thematic")


def notified_condition(meeting_id: int, kind: str):
    """Who a meeting notification reaches: the invited; a reminder skips those who said they will be absent."""
    meeting = db.session.get(Meeting, meeting_id)
    condition = invited_condition(meeting)
    if kind == "meeting_reminder":
        condition = and_(condition, ~exists().where(MeetingParticipant.meeting_id == meeting.id,
                                                    MeetingParticipant.member_id == Member.id,
                                                    MeetingParticipant.rsvp == "absent"))
    return condition


def is_invited(member: Member, meeting: Meeting) -> bool:
    if meeting.status == "closed":
        return db.session.get(MeetingParticipant, (meeting.id, member.id)) is not None
    return db.session.scalar(select(exists().where(
        Member.id == member.id, OrgUnit.id == Member.org_unit_id, invited_condition(meeting)))) is True


def _visible(actor: Member, meeting_id: int, *, lock: str | None = None) -> Meeting:
    """The meeting if the actor may see it (invited, or a follow-up role over its unit), else 404."""
    stmt = select(Meeting).where(Meeting.id == meeting_id)
    if lock and db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=lock == "share", key_share=lock != "share")
    meeting = db.session.scalar(stmt.execution_options(populate_existing=True))
    if meeting is None or not (has_role_over(actor, _unit(meeting), FOLLOW_UP_ROLES) or is_invited(actor, meeting)):
        raise not_found()
    return meeting


def _run(actor: Member, meeting_id: int, *, lock: str | None = "update") -> Meeting:
    """The meeting if the actor may run it: 404 when they may not even see it, 403 when they only see it."""
    meeting = _visible(actor, meeting_id, lock=lock)
    if not may_run(actor, meeting):
        raise forbidden()
    return meeting


def status_of(meeting: Meeting, now: datetime | None = None) -> str:
    if meeting.status in ("closed", "cancelled"):
        return meeting.status
    return "open" if (now or utcnow()) >= as_utc(meeting.starts_at) - CHECK_IN_OPENS else "scheduled"


# --- scheduling -------------------------------------------------------------------------------------

def _check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    errors = {}
    if starts_at <= now:
        errors["starts_at"] = ["must_be_future"]
    if ends_at <= starts_at:
        errors["ends_at"] = ["ends_before_start"]
    elif ends_at - starts_at > MAX_DURATION:
        errors["ends_at"] = ["too_long_meeting"]
    if errors:
        raise ProblemError("validation_error", 422, errors=errors)


HTTPS_URL = re.compile(r"^https://[^\s/?#]+\.[^\s]*$")   # the online link (the API documents the same)


def _online_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if len(value) > 512 or not HTTPS_URL.match(value):
        raise ProblemError("validation_error", 422, errors={"online_url": ["https_url"]})
    return value


def _agenda(unit: OrgUnit, thematic: bool, items: list[dict]) -> list[MeetingAgendaItem]:
    """Agenda items; a document must be one the meeting's members can read (out, reaching the unit)."""
    out, errors = [], {}
    for position, item in enumerate(items):
        doc_id = item.get("document_id")
        if doc_id is not None:
            doc = db.session.get(Document, doc_id)
            readable = doc is not None and doc.status in (Status.PUBLISHED.value, Status.SCHEDULED.value) \
                and went_out(doc) and _reaches_members(doc, unit, thematic)
            if not readable:
                errors[str(position)] = {"document_id": ["unknown_document"]}
                continue
        out.append(MeetingAgendaItem(position=position, title=nfc(item["title"]), document_id=doc_id))
    if errors:
        raise ProblemError("validation_error", 422, errors={"agenda": errors})
    return out


def _reaches_members(doc: Document, unit: OrgUnit, thematic: bool) -> bool:
    """Some member the meeting invites is in the document's audience."""
    return db.session.scalar(select(exists().where(
        OrgUnit.id == Member.org_unit_id, _members_condition(unit, thematic), audience_members(doc)))) is True


def schedule(actor: Member, org_unit_id: int, data: dict) -> Meeting:
    """POST /org-units/{id}/meetings: the meeting, its invitation (now) and its reminder, in one commit."""
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise not_found()
    kind = data["kind"]
    if not (holds_members(unit.kind, has_children(unit.id)) and has_role_over(actor, unit, RUN_ROLES)):
        # Not its secretary: a thematic meeting of a grassroots or sub unit's subtree, or nothing.
        subtree_unit = unit.kind in (UnitKind.GRASSROOTS.value, UnitKind.SUB.value)
        if not (subtree_unit and has_role_over(actor, unit, THEMATIC_RUN_ROLES)):
            raise forbidden()
        if kind != "thematic":
            raise ProblemError("validation_error", 422, errors={"kind": ["thematic_only"]})
    now = utcnow()
    starts_at, ends_at = data["starts_at"], data["ends_at"]
    _check_times(starts_at, ends_at, now)
    meeting = Meeting(org_unit_id=unit.id, kind=kind, title=nfc(data["title"]), starts_at=starts_at,
                      ends_at=ends_at, place=nfc(data["place"]), online_url=_online_url(data.get("online_url")),
                      note=nfc(data.get("note")), created_by=actor.id, created_at=now, updated_at=now,
                      code_secret=secrets.token_hex(32), status="scheduled")
    meeting.agenda = _agenda(unit, kind == "thematic", data.get("agenda") or [])
    db.session.add(meeting)
    db.session.flush()
    _notify(meeting, "meeting", actor, now)
    _schedule_reminder(meeting, actor, now)
    audit.record("meeting.schedule", actor_id=actor.id, target_type="meeting", target_id=meeting.id,
                 org_unit=unit.code, kind=kind, starts_at=as_utc(starts_at).isoformat())
    db.session.commit()
    return meeting


def _notify(meeting: Meeting, kind: str, actor: Member, now: datetime, due_at: datetime | None = None) -> None:
    from push.models import Notification

    db.session.add(Notification(kind=kind, meeting_id=meeting.id, org_unit_id=meeting.org_unit_id,
                                created_by=actor.id, created_at=now, due_at=due_at or now))


def _schedule_reminder(meeting: Meeting, actor: Member, now: datetime) -> None:
    """The reminder MEETING_REMINDER_HOURS before the start (none if that moment has passed). Quiet hours
    hold it like any routine push; it is cancelled if the meeting starts first (push.schedule)."""
    due = as_utc(meeting.starts_at) - timedelta(hours=current_app.config["MEETING_REMINDER_HOURS"])
    if due > now:
        _notify(meeting, "meeting_reminder", actor, now, due_at=due)


def _cancel_pending(meeting: Meeting, kinds: tuple[str, ...], now: datetime) -> None:
    from push.models import Notification, NotificationState

    db.session.execute(update(Notification).where(
        Notification.meeting_id == meeting.id, Notification.kind.in_(kinds),
        Notification.state == NotificationState.PENDING.value)
        .values(state=NotificationState.CANCELLED.value, finished_at=now).execution_options(synchronize_session=False))


def change(actor: Member, meeting_id: int, data: dict) -> Meeting:
    """PATCH /meetings/{id}: title, time, place, link, agenda, note. The invited are told when the time
    or the place changes; the reminder follows the new time."""
    meeting = _run(actor, meeting_id)
    if meeting.status in ("closed", "cancelled"):
        raise ProblemError(f"meeting_{meeting.status}", 409)
    now = utcnow()
    starts_at, ends_at = data.get("starts_at", meeting.starts_at), data.get("ends_at", meeting.ends_at)
    moved = as_utc(starts_at) != as_utc(meeting.starts_at) or as_utc(ends_at) != as_utc(meeting.ends_at)
    if moved:
        _check_times(as_utc(starts_at), as_utc(ends_at), now)
    told = moved or ("place" in data and nfc(data["place"]) != meeting.place)
    for field in ("title", "place", "note"):
        if field in data:
            setattr(meeting, field, nfc(data[field]))
    if "online_url" in data:
        meeting.online_url = _online_url(data["online_url"])
    meeting.starts_at, meeting.ends_at = starts_at, ends_at
    if "agenda" in data:
        meeting.agenda = _agenda(_unit(meeting), meeting.kind == "thematic", data["agenda"] or [])
    meeting.updated_at = now
    if told:
        _notify(meeting, "meeting_changed", actor, now)
    if moved:
        _cancel_pending(meeting, ("meeting_reminder",), now)
        _schedule_reminder(meeting, actor, now)
    audit.record("meeting.change", actor_id=actor.id, target_type="meeting", target_id=meeting.id,
                 fields=sorted(data), told=told)
    db.session.commit()
    return meeting


def cancel(actor: Member, meeting_id: int, reason: str) -> Meeting:
    meeting = _run(actor, meeting_id)
    if meeting.status == "closed":
        raise ProblemError("meeting_closed", 409)
    if meeting.status == "cancelled":
        return meeting
    now = utcnow()
    meeting.status, meeting.cancelled_at, meeting.cancel_reason, meeting.updated_at = "cancelled", now, nfc(reason), now
    _cancel_pending(meeting, ("meeting", "meeting_reminder", "meeting_changed"), now)
    _notify(meeting, "meeting_cancelled", actor, now)
    audit.record("meeting.cancel", actor_id=actor.id, target_type="meeting", target_id=meeting.id, reason=nfc(reason))
    db.session.commit()
    return meeting


# --- members' answers and check-in -----------------------------------------------------------------

def _participant(meeting: Meeting, member_id: int, **values) -> None:
    """Create or update one participant row (an upsert: two requests of one member never collide)."""
    values["updated_at"] = utcnow()
    stmt = upsert(MeetingParticipant).values(meeting_id=meeting.id, member_id=member_id, **values)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["meeting_id", "member_id"], set_=values))


def rsvp(member: Member, meeting_id: int, response: str, reason: str | None) -> dict:
    """PUT /meetings/{id}/rsvp: an invited member says they will attend or not (with a reason), until it
    starts."""
    meeting = _visible(member, meeting_id, lock="share")
    if not is_invited(member, meeting):
        raise forbidden()
    if meeting.status in ("closed", "cancelled"):
        raise ProblemError(f"meeting_{meeting.status}", 409)
    now = utcnow()
    if now >= as_utc(meeting.starts_at):
        raise ProblemError("meeting_started", 409)
    reason = nfc(reason) or None
    if response == "absent" and not reason:
        raise ProblemError("validation_error", 422, errors={"reason": ["required"]})
    _participant(meeting, member.id, rsvp=response, rsvp_reason=reason if response == "absent" else None,
                 rsvp_at=now)
    db.session.commit()
    return {"rsvp": response, "reason": reason if response == "absent" else None}


def _code(meeting: Meeting, period: int) -> str:
    digest = hmac.new(bytes.fromhex(meeting.code_secret), f"{meeting.id}:{period}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def _window_open(meeting: Meeting, now: datetime) -> bool:
    return status_of(meeting, now) == "open" and now <= as_utc(meeting.ends_at)


def check_in_code(actor: Member, meeting_id: int) -> dict:
    """GET /meetings/{id}/check-in-code: the code to show, while the meeting is open and not over."""
    meeting = _run(actor, meeting_id, lock=None)
    now = utcnow()
    if not _window_open(meeting, now):
        raise ProblemError("meeting_not_open", 409)
    period = int(now.timestamp()) // CODE_PERIOD
    code = _code(meeting, period)
    valid_until = datetime.fromtimestamp((period + 2) * CODE_PERIOD, tz=now.tzinfo)
    return {"code": code, "valid_until": min(valid_until, as_utc(meeting.ends_at)), "qr_svg": qr_svg(code)}


def qr_svg(text: str) -> str:
    """A QR code of `text` as an SVG document, drawn on the server (no script, no network)."""
    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=8, border=2, xmldecl=False, svgns=True,
                                     title="Mã điểm danh")
    return out.getvalue().decode()


def check_in(member: Member, meeting_id: int, code: str) -> dict:
    """POST /meetings/{id}/check-in: an invited member types (or scans) the code shown at the meeting."""
    meeting = _visible(member, meeting_id, lock="share")
    if not is_invited(member, meeting):
        raise forbidden()
    now = utcnow()
    if meeting.status in ("closed", "cancelled"):
        raise ProblemError(f"meeting_{meeting.status}", 409)
    if not _window_open(meeting, now):
        raise ProblemError("meeting_not_open", 409)
    throttle.ensure("check-in-member", str(member.id), "CHECK_IN_LIMIT_PER_MEMBER")
    throttle.ensure("check-in-meeting", str(meeting.id), "CHECK_IN_LIMIT_PER_MEETING")
    period = int(now.timestamp()) // CODE_PERIOD
    if not any(hmac.compare_digest(code, _code(meeting, p)) for p in (period, period - 1)):
        throttle.charge("check-in-member", str(member.id), "CHECK_IN_LIMIT_PER_MEMBER")
        throttle.charge("check-in-meeting", str(meeting.id), "CHECK_IN_LIMIT_PER_MEETING")
        db.session.rollback()
        raise ProblemError("invalid_code", 422, errors={"code": ["invalid_code"]})
    _participant(meeting, member.id, checked_in_at=now, attendance="present")
    db.session.commit()
    return {"attendance": "present", "checked_in_at": now}


def mark_attendance(actor: Member, meeting_id: int, present: list[int], absent: list[dict]) -> dict:
    """PUT /meetings/{id}/attendance: the runner marks members by hand (merged with check-ins)."""
    meeting = _run(actor, meeting_id, lock="share")
    if meeting.status in ("closed", "cancelled"):
        raise ProblemError(f"meeting_{meeting.status}", 409)
    if status_of(meeting) != "open":
        raise ProblemError("meeting_not_open", 409)
    ids = set(present) | {a["member_id"] for a in absent}
    invited = set(db.session.scalars(select(Member.id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                                     .where(Member.id.in_(ids), invited_condition(meeting))))
    unknown = sorted(ids - invited)
    both = sorted(set(present) & {a["member_id"] for a in absent})
    if unknown or both:
        errors = {}
        if unknown:
            errors["member_ids"] = ["not_invited"]
        if both:
            errors["absent"] = ["present_and_absent"]
        raise ProblemError("validation_error", 422, errors=errors, extra={"member_ids": unknown or both})
    for member_id in sorted(present):
        _participant(meeting, member_id, attendance="present", absence_reason=None, marked_by=actor.id)
    for item in sorted(absent, key=lambda a: a["member_id"]):
        _participant(meeting, item["member_id"], attendance="excused" if item.get("excused") else "unexcused",
                     absence_reason=nfc(item.get("reason")) or None, marked_by=actor.id)
    audit.record("meeting.attendance", actor_id=actor.id, target_type="meeting", target_id=meeting.id,
                 present=sorted(present), absent=sorted(a["member_id"] for a in absent))
    db.session.commit()
    return view(actor, meeting)


def roll_call(actor: Member, meeting_id: int) -> list[dict]:
    """The invited members with their answers and attendance, for the meeting's runners (the marking
    form): the unit's members while it is open, the fixed list once closed."""
    meeting = _run(actor, meeting_id, lock=None)
    rows = {p.member_id: p for p in db.session.scalars(
        select(MeetingParticipant).where(MeetingParticipant.meeting_id == meeting.id))}
    if meeting.status == "closed":
        members = db.session.scalars(select(Member).where(Member.id.in_(list(rows))).order_by(Member.full_name))
    else:
        members = db.session.scalars(select(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                                     .where(invited_condition(meeting)).order_by(Member.full_name, Member.id))
    out = []
    for m in members:
        row = rows.get(m.id)
        out.append({"id": m.id, "full_name": m.full_name, "card_number": m.card_number,
                    "rsvp": row.rsvp if row else None, "rsvp_reason": row.rsvp_reason if row else None,
                    "attendance": row.attendance if row else None,
                    "absence_reason": row.absence_reason if row else None,
                    "checked_in": bool(row and row.checked_in_at)})
    return out


def schedulable_units(actor: Member) -> list[OrgUnit]:
    """The units whose meetings the actor may schedule: member-holding units they are secretary (or
    admin) of, and grassroots or sub units they follow as secretary or committee (thematic meetings);
    only the topmost of their grants, as the console lists them."""
    from handbook.permissions import scope_roots

    return [u for u in scope_roots(actor, THEMATIC_RUN_ROLES)
            if holds_members(u.kind, has_children(u.id)) or u.kind in (UnitKind.GRASSROOTS.value, UnitKind.SUB.value)]


# --- minutes --------------------------------------------------------------------------------------------

def add_minutes(actor: Member, meeting_id: int, file_storage) -> MeetingMinutes:
    """POST /meetings/{id}/attachments: the minutes (biên bản), a PDF, DOCX or image, once the meeting
    has opened (not for a cancelled one). Kept like document attachments; audited."""
    from content.attachments import store_upload

    meeting = _run(actor, meeting_id, lock="share")
    if meeting.status == "cancelled":
        raise ProblemError("meeting_cancelled", 409)
    if status_of(meeting) == "scheduled":
        raise ProblemError("meeting_not_open", 409)
    minutes = store_upload(file_storage, lambda f: MeetingMinutes(
        meeting_id=meeting.id, filename=f.filename, content_type=f.content_type, size=f.size, sha256=f.sha256,
        storage_key=f.sha256, created_by=actor.id))
    audit.record("meeting.minutes_add", actor_id=actor.id, target_type="meeting", target_id=meeting.id,
                 minutes_id=minutes.id, filename=minutes.filename, sha256=minutes.sha256)
    db.session.commit()
    return minutes


def minutes_for(viewer: Member, meeting_id: int, minutes_id: int) -> MeetingMinutes:
    """A file of the minutes, for whoever sees the meeting; 404 otherwise."""
    meeting = _visible(viewer, meeting_id)
    minutes = db.session.get(MeetingMinutes, minutes_id)
    if minutes is None or minutes.meeting_id != meeting.id:
        raise not_found()
    return minutes


# --- the close ----------------------------------------------------------------------------------------

def close(actor: Member, meeting_id: int) -> dict:
    """POST /meetings/{id}/close: fix the invited and their attendance (present: checked in or marked;
    excused: marked so, or answered absent with a reason; unexcused: the rest), then record the present
    members who had not acknowledged an agenda document as briefed on it, all in one transaction.
    Closing again changes nothing and answers the same."""
    meeting = _run(actor, meeting_id)
    if meeting.status == "closed":
        return _close_result(meeting)
    if meeting.status == "cancelled":
        raise ProblemError("meeting_cancelled", 409)
    now = utcnow()
    if status_of(meeting, now) != "open":
        raise ProblemError("meeting_not_open", 409)
    invited = list(db.session.scalars(select(Member.id).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                                      .where(invited_condition(meeting)).order_by(Member.id)))
    rows = {p.member_id: p for p in db.session.scalars(
        select(MeetingParticipant).where(MeetingParticipant.meeting_id == meeting.id))}
    counts = {"present": 0, "excused": 0, "unexcused": 0}
    present = []
    for member_id in invited:
        row = rows.get(member_id)
        if row is not None and row.attendance in counts:
            attendance = row.attendance
        elif row is not None and row.rsvp == "absent" and row.rsvp_reason:
            attendance = "excused"
        else:
            attendance = "unexcused"
        counts[attendance] += 1
        if attendance == "present":
            present.append(member_id)
        _participant(meeting, member_id, attendance=attendance)
    gone = sorted(set(rows) - set(invited))   # transferred out (or removed) before the meeting was held
    if gone:
        db.session.execute(MeetingParticipant.__table__.delete().where(
            MeetingParticipant.meeting_id == meeting.id, MeetingParticipant.member_id.in_(gone)))
    held_on = as_utc(meeting.starts_at).astimezone(local_zone()).date()
    briefed = []
    for doc_id in sorted({a.document_id for a in meeting.agenda if a.document_id is not None}):
        members = brief_at_meeting(actor, doc_id, present, held_on, meeting.id) if present else []
        briefed.append({"document_id": doc_id, "members": members})
    meeting.status, meeting.closed_at, meeting.closed_by, meeting.updated_at = "closed", now, actor.id, now
    meeting.invited, meeting.present, meeting.excused, meeting.unexcused = (
        len(invited), counts["present"], counts["excused"], counts["unexcused"])
    meeting.briefed = briefed
    _cancel_pending(meeting, ("meeting_reminder",), now)
    _count_closed(meeting, counts["present"], len(invited))   # last: the month counters' row lock
    audit.record("meeting.close", actor_id=actor.id, target_type="meeting", target_id=meeting.id,
                 invited=len(invited), **counts, briefed=briefed)
    db.session.commit()
    return _close_result(meeting)


def _close_result(meeting: Meeting) -> dict:
    return {"attendance": {"invited": meeting.invited, "present": meeting.present, "excused": meeting.excused,
                           "unexcused": meeting.unexcused},
            "briefed": meeting.briefed or []}


# --- reading ------------------------------------------------------------------------------------------

def view(viewer: Member, meeting: Meeting) -> dict:
    return views(viewer, [meeting])[0]


def _invited_counts(open_meetings: list[Meeting], units: dict[int, OrgUnit]) -> dict[int, int]:
    """How many are invited now to each meeting not yet closed: two statements whatever their number
    (active members per unit for the regular ones; per unit of the thematic ones' subtrees, summed)."""
    out: dict[int, int] = {}
    plain = {m.org_unit_id for m in open_meetings if m.kind != "thematic"}
    thematic = {units[m.org_unit_id].path for m in open_meetings if m.kind == "thematic"}
    per_unit = dict(db.session.execute(select(Member.org_unit_id, func.count()).where(
        Member.active.is_(True), Member.org_unit_id.in_(plain)).group_by(Member.org_unit_id)).all()) if plain else {}
    per_path = db.session.execute(select(OrgUnit.path, func.count()).join(Member, Member.org_unit_id == OrgUnit.id)
                                  .where(Member.active.is_(True), or_(*[in_subtree(OrgUnit.path, p) for p in thematic]))
                                  .group_by(OrgUnit.path)).all() if thematic else []
    for m in open_meetings:
        if m.kind == "thematic":
            root = units[m.org_unit_id].path
            out[m.id] = sum(n for path, n in per_path if path.startswith(root))
        else:
            out[m.id] = per_unit.get(m.org_unit_id, 0)
    return out


def views(viewer: Member, meetings: list[Meeting]) -> list[dict]:
    """What GET /meetings/{id} answers, for a list of meetings in a constant number of statements (units,
    agenda documents, the viewer's rows, answer counts, invited counts, minutes), whatever its length."""
    if not meetings:
        return []
    ids = [m.id for m in meetings]
    units = {u.id: u for u in db.session.scalars(select(OrgUnit).where(
        OrgUnit.id.in_({m.org_unit_id for m in meetings})))}
    doc_ids = {a.document_id for m in meetings for a in m.agenda if a.document_id}
    docs = {d.id: d for d in db.session.scalars(select(Document).where(Document.id.in_(doc_ids)))} if doc_ids else {}
    mine = {p.meeting_id: p for p in db.session.scalars(select(MeetingParticipant).where(
        MeetingParticipant.meeting_id.in_(ids), MeetingParticipant.member_id == viewer.id))}
    p = MeetingParticipant
    answers = {r[0]: r[1:] for r in db.session.execute(select(
        p.meeting_id, func.count().filter(p.rsvp == "attending"), func.count().filter(p.rsvp == "absent"),
        func.count().filter(p.attendance == "present"), func.count().filter(p.attendance == "excused"),
        func.count().filter(p.attendance == "unexcused")).where(p.meeting_id.in_(ids)).group_by(p.meeting_id))}
    invited_now = _invited_counts([m for m in meetings if m.status != "closed"], units)
    minutes: dict[int, list[dict]] = {i: [] for i in ids}
    for row in db.session.scalars(select(MeetingMinutes).where(MeetingMinutes.meeting_id.in_(ids))
                                  .order_by(MeetingMinutes.id)):
        minutes[row.meeting_id].append({"id": row.id, "filename": row.filename, "content_type": row.content_type,
                                        "size": row.size})
    viewer_unit = viewer.org_unit
    out = []
    for meeting in meetings:
        unit = units[meeting.org_unit_id]
        row = mine.get(meeting.id)
        counts = answers.get(meeting.id, (0, 0, 0, 0, 0))
        if meeting.status == "closed":
            invited = row is not None
        else:     # is_invited's condition, on the viewer already loaded
            invited = row is not None or (viewer.active and (
                viewer_unit.path.startswith(unit.path) if meeting.kind == "thematic"
                else viewer.org_unit_id == unit.id))
        roles = THEMATIC_RUN_ROLES if meeting.kind == "thematic" else RUN_ROLES
        out.append({
            "id": meeting.id, "org_unit": unit.brief(), "title": meeting.title, "kind": meeting.kind,
            "status": status_of(meeting), "starts_at": meeting.starts_at, "ends_at": meeting.ends_at,
            "place": meeting.place, "online_url": meeting.online_url, "note": meeting.note,
            "cancel_reason": meeting.cancel_reason,
            "agenda": [{"title": a.title, "document": _doc_brief(docs.get(a.document_id))} for a in meeting.agenda],
            "counts": {"invited": meeting.invited if meeting.status == "closed" else invited_now[meeting.id],
                       "attending": counts[0], "absent": counts[1], "present": counts[2], "excused": counts[3],
                       "unexcused": counts[4]},
            "minutes": minutes[meeting.id],
            "my": {"rsvp": row.rsvp if row else None, "attendance": row.attendance if row else None},
            "invited": bool(invited), "can_run": has_role_over(viewer, unit, roles)})
    return out


def _doc_brief(doc: Document | None) -> dict | None:
    return doc and {"id": doc.id, "number": doc.number, "title": doc.title}


def get(viewer: Member, meeting_id: int) -> dict:
    return view(viewer, _visible(viewer, meeting_id))


def for_unit(viewer: Member, org_unit_id: int, *, since: date | None = None, until: date | None = None,
             limit: int = 20, cursor: str | None = None) -> dict:
    """GET /org-units/{id}/meetings: meetings of the unit's subtree, latest first (follow-up roles)."""
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise not_found()
    if not has_role_over(viewer, unit, FOLLOW_UP_ROLES):
        raise forbidden()
    stmt = select(Meeting).join(OrgUnit, OrgUnit.id == Meeting.org_unit_id).where(in_subtree(OrgUnit.path, unit.path))
    return _page(viewer, _between(stmt, since, until), limit, cursor)


def _between(stmt, since: date | None, until: date | None):
    zone = local_zone()
    if since is not None:
        stmt = stmt.where(Meeting.starts_at >= datetime.combine(since, datetime.min.time(), tzinfo=zone))
    if until is not None:
        stmt = stmt.where(Meeting.starts_at < datetime.combine(until + timedelta(days=1), datetime.min.time(),
                                                               tzinfo=zone))
    return stmt


def _page(viewer: Member, stmt, limit: int, cursor: str | None, *, ascending: bool = False) -> dict:
    if cursor:
        at, last_id = decode_cursor(cursor, datetime, int)
        if ascending:
            stmt = stmt.where(or_(Meeting.starts_at > at, and_(Meeting.starts_at == at, Meeting.id > last_id)))
        else:
            stmt = stmt.where(or_(Meeting.starts_at < at, and_(Meeting.starts_at == at, Meeting.id < last_id)))
    order = (Meeting.starts_at, Meeting.id) if ascending else (Meeting.starts_at.desc(), Meeting.id.desc())
    rows, next_cursor = page(list(db.session.scalars(stmt.order_by(*order).limit(limit + 1))), limit,
                             key=lambda m: (as_utc(m.starts_at), m.id))
    return {"items": views(viewer, rows), "next_cursor": next_cursor}


def mine(member: Member, *, upcoming: bool = True, limit: int = 20, cursor: str | None = None) -> dict:
    """GET /me/meetings: upcoming (not over, soonest first, cancelled ones included so the member sees
    it) or past (latest first) meetings the member is invited to."""
    unit = db.session.get(OrgUnit, member.org_unit_id)
    ancestors = [int(p) for p in unit.path.strip("/").split("/")]
    now = utcnow()
    current = and_(Meeting.status != "closed", or_(
        Meeting.org_unit_id == unit.id, and_(Meeting.kind == "thematic", Meeting.org_unit_id.in_(ancestors))))
    attended = and_(Meeting.status == "closed", exists().where(
        MeetingParticipant.meeting_id == Meeting.id, MeetingParticipant.member_id == member.id))
    stmt = select(Meeting).where(or_(current, attended))
    if upcoming:
        stmt = stmt.where(Meeting.ends_at >= now, Meeting.status != "closed")
    else:
        stmt = stmt.where(or_(Meeting.ends_at < now, Meeting.status == "closed"))
    return _page(member, stmt, limit, cursor, ascending=upcoming)


# --- follow-up: the month's meetings, rolled up the tree ---------------------------------------------

def _month_start(month: str) -> date:
    """The first day of 'YYYY-MM' (422 for a month that is none)."""
    year, number = (int(p) for p in month.split("-"))
    if not (1900 <= year <= 2999 and 1 <= number <= 12):   # (the fuzzing sent 0000-01: a 500 then)
        raise ProblemError("validation_error", 422, errors={"month": ["invalid_month"]})
    return date(year, number, 1)


def month_of(starts_at: datetime) -> int:
    """The counters' month of a meeting: its start's local month, as year * 100 + month."""
    local = as_utc(starts_at).astimezone(local_zone())
    return local.year * 100 + local.month


COUNTED = ("meetings", "regular", "invited", "present")


def _count_closed(meeting: Meeting, present: int, invited: int) -> None:
    """Add a meeting being closed to its unit's row for its month (in the close's transaction). The
    upsert locks that one row, after everything else the close locked (the meeting, then the documents,
    receipts and progress counters of its briefings): the last rows of the global lock order. Two closes
    of one unit's meetings meet on the row and the second waits for the first to commit."""
    unit = _unit(meeting)
    counts = {"meetings": 1, "regular": int(meeting.kind == "regular"), "invited": invited, "present": present}
    stmt = upsert(MeetingMonthCounter).values(org_unit_id=unit.id, month=month_of(meeting.starts_at),
                                             **levels(unit.path), **counts)
    table = MeetingMonthCounter.__table__
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["org_unit_id", "month"],
        set_={**{name: table.c[name] + stmt.excluded[name] for name in COUNTED},
              **{col: stmt.excluded[col] for col in ("l1_id", "l2_id", "l3_id")}}))
    _bump_versions([month_of(meeting.starts_at)])


def _bump_versions(months) -> None:
    """Add one to these months' versions (upserts, in month order): the very last rows a close locks. A
    month's row is shared by the city's closes of that month, held from here to the commit only (a
    close commits right after it), some tens of thousands a month: no queue forms on it."""
    versions = MeetingMonthVersion.__table__
    for month in sorted(set(months)):
        stmt = upsert(MeetingMonthVersion).values(month=month, version=1)
        db.session.execute(stmt.on_conflict_do_update(index_elements=["month"],
                                                      set_={"version": versions.c.version + 1}))


def recount_month_counters() -> int:
    """Rebuild `meeting_month_counters` from the closed meetings (for data written around the close: the
    demo's bulk meetings, a repair), and moves every month's version on. On PostgreSQL it first locks
    the counters' table against closes (EXCLUSIVE: reads go on); a close that holds a version row has
    written its counter row, so holds the table's ROW EXCLUSIVE lock, and this cannot have its lock at
    the same time: no cycle. Returns the rows written. The caller commits."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("LOCK TABLE meeting_month_counters IN EXCLUSIVE MODE"))
    rows: dict[tuple[int, int], dict] = {}
    for unit_id, path, kind, starts_at, invited, present in db.session.execute(
            select(Meeting.org_unit_id, OrgUnit.path, Meeting.kind, Meeting.starts_at, Meeting.invited,
                   Meeting.present).join(OrgUnit, OrgUnit.id == Meeting.org_unit_id)
            .where(Meeting.status == "closed")):
        key = (unit_id, month_of(starts_at))
        row = rows.get(key)
        if row is None:
            row = rows[key] = {"org_unit_id": unit_id, "month": key[1], **levels(path),
                               **dict.fromkeys(COUNTED, 0)}
        row["meetings"] += 1
        row["regular"] += kind == "regular"
        row["invited"] += invited or 0
        row["present"] += present or 0
    db.session.execute(delete(MeetingMonthCounter))
    values = list(rows.values())
    for start in range(0, len(values), 5000):
        db.session.execute(insert(MeetingMonthCounter), values[start:start + 5000])
    # Every month changes version, those that had counters and those that have them now.
    _bump_versions({row["month"] for row in values} | set(db.session.scalars(select(MeetingMonthVersion.month))))
    return len(values)


@membership_changed.connect
def on_units_moved(sender, unit_ids: set[int], **_) -> None:
    """Units moved in the tree (an import sends their ids; member changes send theirs, unmoved): their
    counter rows' l1-l3 follow their new paths. Reads first and writes only rows whose levels differ
    (a real move, rare); before writing it locks the active documents as content.progress does (the
    same import already holds them), so that the counter rows are still taken last."""
    if not unit_ids:
        return
    ids = sorted(unit_ids)
    stale = []
    for start in range(0, len(ids), 5000):
        for unit_id, path, l1, l2, l3 in db.session.execute(
                select(OrgUnit.id, OrgUnit.path, MeetingMonthCounter.l1_id, MeetingMonthCounter.l2_id,
                       MeetingMonthCounter.l3_id).join(MeetingMonthCounter, MeetingMonthCounter.org_unit_id == OrgUnit.id)
                .where(one_of(OrgUnit.id, ids[start:start + 5000])).distinct()):
            wanted = levels(path)
            if (wanted["l1_id"], wanted["l2_id"], wanted["l3_id"]) != (l1, l2, l3):
                stale.append((unit_id, wanted))
    if not stale:
        return
    _lock_active()
    for unit_id, wanted in sorted(stale, key=lambda s: s[0]):
        db.session.execute(update(MeetingMonthCounter).where(MeetingMonthCounter.org_unit_id == unit_id)
                           .values(**wanted).execution_options(synchronize_session=False))


class _Tree:
    """What the roll-up needs of the org tree, indexed once per version of it: every unit's brief, the
    member-holding units, how many of them are under each unit, the children, and the member-holding
    units in path order (for the overdue list)."""

    def __init__(self, rows) -> None:
        parents = {r.parent_id for r in rows if r.parent_id is not None}
        self.brief = {r.id: {"id": r.id, "code": r.code, "name": r.name, "kind": r.kind} for r in rows}
        self.children: dict[int, list[int]] = {}
        self.below: dict[int, int] = {}
        self.holders: set[int] = set()
        self.path = {r.id: r.path for r in rows}
        by_path = []
        for r in rows:
            if r.parent_id is not None:
                self.children.setdefault(r.parent_id, []).append(r.id)
            if holds_members(r.kind, r.id in parents):
                self.holders.add(r.id)
                by_path.append((r.path, r.id))
                for part in r.path.strip("/").split("/"):
                    self.below[int(part)] = self.below.get(int(part), 0) + 1
        by_path.sort()
        self.holder_paths = [p for p, _ in by_path]
        self.holder_ids = [i for _, i in by_path]

    def child_of(self, unit_id: int, top: OrgUnit) -> int:
        """The child of `top` whose subtree holds `unit_id` (`top`'s own id for `top` itself)."""
        ids = [int(p) for p in self.path[unit_id].strip("/").split("/")]
        return ids[top.depth + 1] if len(ids) > top.depth + 1 else top.id

    def holders_under(self, path: str) -> list[int]:
        """Member-holding units of the subtree at `path` (itself included), by path."""
        lo = bisect.bisect_left(self.holder_paths, path)
        hi = bisect.bisect_left(self.holder_paths, path_upper_bound(path))
        return self.holder_ids[lo:hi]


_TREES: dict[str, tuple[tuple, _Tree]] = {}


def _tree_index() -> tuple[_Tree, tuple]:
    """The org tree's index, rebuilt when the tree changed. Its version is (highest id, latest
    `updated_at`), two index probes: ids only grow, units are never removed, and every writer of units
    sets `updated_at` (the import does, the ORM's onupdate too; paths are recomputed in the same
    statements), so a change of any unit's kind, parent, name or path changes the version (the
    instances' clocks must agree to better than the time between two changes of the tree: NTP's
    milliseconds). Per process and database; one index each (Hanoi's 25,000 units: a few MB, built in
    ~100 ms after each import of units)."""
    version = tuple(db.session.execute(select(func.max(OrgUnit.id), func.max(OrgUnit.updated_at))).one())
    key = db.session.get_bind().url.render_as_string(hide_password=True)
    cached = _TREES.get(key)
    if cached is not None and cached[0] == version:
        return cached[1], version
    tree = _Tree(db.session.execute(select(OrgUnit.id, OrgUnit.parent_id, OrgUnit.kind, OrgUnit.path, OrgUnit.code,
                                           OrgUnit.name)).all())
    _TREES[key] = (version, tree)
    return tree, version


OVERDUE_LISTED = 200      # overdue branches listed by name (all are counted in `overdue_count`)


def stats(viewer: Member, org_unit_id: int, month: str, *, overdue_limit: int | None = OVERDUE_LISTED) -> dict:
    """GET /org-units/{id}/meetings/stats?month=: per unit and its children, the member-holding units
    (branches), those that held their regular meeting (closed) in the month, the meetings closed, and the
    attendance rate (present / invited at the close). Two statements over the month's counter rows of the
    subtree, O(units) whatever the number of meetings or members: the sums grouped by child, and the
    units with a regular meeting (as one text), which the tree's index filters to those that hold
    members now (a chi bộ cơ sở that got branches under it is no branch any more) and uses for the
    overdue list: branches without a regular meeting by day 25 of the month (from that day on), all
    counted, the first `overdue_limit` by path listed (None: all)."""
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise not_found()
    if not has_role_over(viewer, unit, FOLLOW_UP_ROLES):
        raise forbidden()
    start = _month_start(month)
    key = start.year * 100 + start.month
    tree, tree_version = _tree_index()
    today = utcnow().astimezone(local_zone()).date()
    due = today >= date(start.year, start.month, REGULAR_BY_DAY)
    # A roll-up computed for the same unit, month, versions of the month and the tree, and side of day 25
    # is the answer again (a deep copy: callers may change theirs).
    version = db.session.scalar(select(MeetingMonthVersion.version).where(MeetingMonthVersion.month == key)) or 0
    cache_key = (db.session.get_bind().url.render_as_string(hide_password=True), unit.id, key, overdue_limit)
    cached = _STATS.get(cache_key)
    if cached is not None and cached[0] == (version, tree_version, due):
        return copy.deepcopy(cached[1])
    out = _stats(unit, tree, key, due, overdue_limit)
    out["month"] = month
    if len(_STATS) >= STATS_KEPT:
        _STATS.clear()
    _STATS[cache_key] = ((version, tree_version, due), copy.deepcopy(out))
    return out


STATS_KEPT = 512          # roll-ups kept per process (all dropped when full)
_STATS: dict[tuple, tuple[tuple, dict]] = {}


def _stats(unit: OrgUnit, tree: _Tree, key: int, due: bool, overdue_limit: int | None) -> dict:
    """The roll-up itself (see `stats`)."""
    c = MeetingMonthCounter
    conn = db.session.connection()     # Core rows: no ORM work per row
    child = child_column(c, unit.depth)
    scope = scope_condition(c, unit)
    sums = select(child, func.sum(c.meetings), func.sum(c.invited), func.sum(c.present),
                  func.count().filter(c.regular > 0)).where(c.month == key)
    # The units with a regular meeting as one comma-separated text: one row, not 20,000 for SQLAlchemy
    # and the driver to build one by one (25 ms of Python at a city's scale).
    ids_text = func.string_agg(cast(c.org_unit_id, String), ",") if conn.dialect.name == "postgresql" \
        else func.group_concat(c.org_unit_id, ",")
    met_stmt = select(ids_text).where(c.month == key, c.regular > 0)
    if scope is not None:
        sums, met_stmt = sums.where(scope), met_stmt.where(scope)
    # Rows of the unit itself have no child column at its depth (None), or its own id below depth 3.
    figures = {(unit.id if r[0] is None else r[0]): [int(v or 0) for v in r[1:]]
               for r in conn.execute(sums.group_by(child))}
    met_text = conn.execute(met_stmt).scalar()
    met = set(map(int, met_text.split(","))) if met_text else set()
    # A regular meeting of a unit that holds no members now (a chi bộ cơ sở that got branches under it)
    # is no branch's regular meeting any more: set differences in C, a loop only over those (rare) units.
    for unit_id in met - tree.holders:
        figures[tree.child_of(unit_id, unit)][3] -= 1

    def shaped(brief: dict, n_branches: int, numbers: list[int]) -> dict:
        count, invited, present, regular = numbers
        return {"org_unit": brief, "branches": n_branches, "branches_with_regular_meeting": regular,
                "meetings": count, "attendance_rate": round(present / invited, 4) if invited else None}

    zero = [0, 0, 0, 0]
    ids = {k for k in tree.children.get(unit.id, ()) if tree.below.get(k)} | {k for k in figures if k != unit.id}
    children = [shaped(tree.brief[k], tree.below.get(k, 0), figures.get(k, zero)) for k in ids if k in tree.brief]
    children.sort(key=lambda ch: (ch["branches_with_regular_meeting"] / ch["branches"] if ch["branches"] else 1,
                                  ch["org_unit"]["code"]))
    total = shaped(unit.brief(), tree.below.get(unit.id, 0), [sum(f[i] for f in figures.values()) for i in range(4)])
    overdue, overdue_count = [], 0
    if due:
        overdue_count = total["branches"] - total["branches_with_regular_meeting"]
        limit = overdue_count if overdue_limit is None else min(overdue_limit, overdue_count)
        for unit_id in tree.holders_under(unit.path):
            if len(overdue) >= limit:
                break
            if unit_id not in met:
                brief = tree.brief[unit_id]
                overdue.append({"id": unit_id, "code": brief["code"], "name": brief["name"]})
    return {**total, "children": children, "overdue_branches": overdue, "overdue_count": overdue_count}


STATS_HEADER = ["Mã đơn vị", "Đơn vị", "Số chi bộ", "Chi bộ đã sinh hoạt thường kỳ", "Số buổi sinh hoạt",
                "Tỷ lệ dự họp (%)"]


OVERDUE_TITLE = "Chi bộ chưa sinh hoạt thường kỳ đến ngày 25"


def stats_rows(figures: dict) -> list[list]:
    """The unit and its children under STATS_HEADER's columns; then, when some branches are overdue, a
    blank row, a title row and one row per overdue branch (its code and name in the first two columns)."""
    rows = []
    for part in [figures, *figures["children"]]:
        rate = part["attendance_rate"]
        rows.append([part["org_unit"]["code"], part["org_unit"]["name"], part["branches"],
                     part["branches_with_regular_meeting"], part["meetings"],
                     "" if rate is None else round(rate * 100, 1)])
    if figures["overdue_branches"]:
        rows.append([""] * len(STATS_HEADER))
        rows.append([OVERDUE_TITLE, figures["overdue_count"], "", "", "", ""])
        rows.extend([b["code"], b["name"], "", "", "", ""] for b in figures["overdue_branches"])
    return rows


def stats_export(figures: dict, fmt: str) -> bytes:
    return table_bytes(STATS_HEADER, stats_rows(figures), fmt, "Sinh hoạt chi bộ")
