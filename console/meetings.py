"""Branch meetings, questions and adoption in the console: the same calls as /api/v1 (content.meetings,
content.questions, content.adoption). A secretary schedules, shows the check-in code, marks attendance
and closes; a member answers and checks in; committees read the month's figures and adoption."""
from __future__ import annotations

import base64
from datetime import datetime, time, timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from console import charts
from console.session import login_required
from console.views import SANDBOX, _field_errors, _id_arg, bp
from content import adoption, attachments, followup, meetings
from handbook.errors import ProblemError
from handbook.permissions import FOLLOW_UP_ROLES, scope_roots
from handbook.tables import download
from handbook.timeutil import local_zone, utcnow

KINDS = meetings.KINDS


def _unit_or_scope(member) -> int:
    roots = scope_roots(member, FOLLOW_UP_ROLES)
    unit_id = _id_arg("unit") or (roots[0].id if roots else None)
    if unit_id is None:
        raise ProblemError("forbidden", 403)
    return unit_id


@bp.route("/meetings")
@login_required
def meetings_page(member):
    """The member's upcoming and past meetings; for those who run meetings, their units' meetings."""
    upcoming = meetings.mine(member, upcoming=True, limit=20)["items"]
    past = meetings.mine(member, upcoming=False, limit=10)["items"]
    units = meetings.schedulable_units(member)
    unit_meetings = {u.id: meetings.for_unit(member, u.id, limit=20)["items"] for u in units}
    return render_template("console/meetings.html", upcoming=upcoming, past=past, units=units,
                           unit_meetings=unit_meetings)


def _at(day: str, clock: str) -> datetime | None:
    try:
        return datetime.combine(datetime.strptime(day, "%Y-%m-%d").date(),
                                time.fromisoformat(clock), tzinfo=local_zone())
    except ValueError:
        return None


@bp.route("/meetings/new", methods=["GET", "POST"])
@login_required
def new_meeting(member):
    """POST /org-units/{id}/meetings's domain call: one form, the agenda's documents picked from the
    directives the unit follows."""
    unit_id = _id_arg("unit")
    units = meetings.schedulable_units(member)
    if unit_id is None and units:
        unit_id = units[0].id
    if unit_id is None:
        raise ProblemError("forbidden", 403)
    overview = followup.overview(member, unit_id)
    values = request.form if request.method == "POST" else {
        "kind": "regular", "day": (utcnow().astimezone(local_zone()) + timedelta(days=7)).date().isoformat(),
        "start": "19:30", "end": "21:30"}
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        starts, ends = _at(values.get("day", ""), values.get("start", "")), _at(values.get("day", ""),
                                                                               values.get("end", ""))
        for name, value in (("title", values.get("title", "").strip()), ("place", values.get("place", "").strip())):
            if not value:
                errors[name] = [_("This field is required.")]
        if starts is None:
            errors["starts_at"] = [_("Not a valid date and time.")]
        if ends is None:
            errors["ends_at"] = [_("Not a valid date and time.")]
        if values.get("kind") not in KINDS:
            errors["kind"] = [_("This field is required.")]
        agenda = [{"title": line.strip()[:255]} for line in values.get("agenda", "").splitlines() if line.strip()][:20]
        agenda += [{"title": _("Brief: %(title)s", title=d["document"]["title"])[:255], "document_id": d["document"]["id"]}
                   for d in overview["items"] if str(d["document"]["id"]) in request.form.getlist("documents")]
        if not errors:
            data = {"title": values["title"].strip()[:255], "kind": values["kind"], "starts_at": starts,
                    "ends_at": ends, "place": values["place"].strip()[:255], "agenda": agenda,
                    "online_url": values.get("online_url", "").strip() or None, "note": values.get("note") or None}
            try:
                meeting = meetings.schedule(member, unit_id, data)
            except ProblemError as e:
                if e.status != 422:
                    raise
                errors = _field_errors(e)
            else:
                flash(_("The meeting is scheduled; its members are invited."), "success")
                return redirect(url_for("console.meeting_page", meeting_id=meeting.id), 303)
        status = 422
    return render_template("console/meeting_new.html", values=values, errors=errors, unit_id=unit_id,
                           units=units, kinds=KINDS, documents=overview["items"],
                           picked=set(request.form.getlist("documents"))), status


@bp.route("/meetings/<int:meeting_id>")
@login_required
def meeting_page(member, meeting_id):
    """One meeting: for its members the answer and the check-in; for its runners the code (with its QR
    code), the roll call, the close, the minutes."""
    view = meetings.get(member, meeting_id)
    code = roll = None
    if view["can_run"]:
        roll = meetings.roll_call(member, meeting_id)
        if view["status"] == "open":
            try:
                code = meetings.check_in_code(member, meeting_id)
            except ProblemError as e:
                if e.code != "meeting_not_open":
                    raise
            else:
                code["qr"] = "data:image/svg+xml;base64," + base64.b64encode(code["qr_svg"].encode()).decode()
    return render_template("console/meeting.html", m=view, code=code, roll=roll, errors={})


def _back(meeting_id: int, message: str | None = None):
    if message:
        flash(message, "success")
    return redirect(url_for("console.meeting_page", meeting_id=meeting_id), 303)


def _with_errors(member, meeting_id: int, e: ProblemError):
    """The meeting page again, with a form's field errors next to its fields (422)."""
    if e.status != 422:
        raise e
    view = meetings.get(member, meeting_id)
    roll = meetings.roll_call(member, meeting_id) if view["can_run"] else None
    return render_template("console/meeting.html", m=view, code=None, roll=roll, errors=_field_errors(e)), 422


@bp.route("/meetings/<int:meeting_id>/rsvp", methods=["POST"])
@login_required
def meeting_rsvp(member, meeting_id):
    response = request.form.get("response")
    try:
        meetings.rsvp(member, meeting_id, response if response in ("attending", "absent") else "attending",
                      (request.form.get("reason") or "")[:2000] or None)
    except ProblemError as e:
        return _with_errors(member, meeting_id, e)
    return _back(meeting_id, _("Your answer has been recorded."))


@bp.route("/meetings/<int:meeting_id>/check-in", methods=["POST"])
@login_required
def meeting_check_in(member, meeting_id):
    code = (request.form.get("code") or "").strip()
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return _with_errors(member, meeting_id, ProblemError("invalid_code", 422, errors={"code": ["invalid_code"]}))
    try:
        meetings.check_in(member, meeting_id, code)
    except ProblemError as e:
        return _with_errors(member, meeting_id, e)
    return _back(meeting_id, _("You are checked in."))


@bp.route("/meetings/<int:meeting_id>/attendance", methods=["POST"])
@login_required
def meeting_attendance(member, meeting_id):
    """The roll call: each invited member present, excused or absent (unticked members stay as they are)."""
    present, absent = [], []
    for key, value in request.form.items():
        if not key.startswith("m-") or not key[2:].isdigit() or len(key) > 14:
            continue
        member_id = int(key[2:])
        if value == "present":
            present.append(member_id)
        elif value in ("excused", "unexcused"):
            absent.append({"member_id": member_id, "excused": value == "excused",
                           "reason": (request.form.get(f"r-{member_id}") or "")[:2000] or None})
    try:
        meetings.mark_attendance(member, meeting_id, present[:1000], absent[:1000])
    except ProblemError as e:
        return _with_errors(member, meeting_id, e)
    return _back(meeting_id, _("Attendance saved."))


@bp.route("/meetings/<int:meeting_id>/close", methods=["POST"])
@login_required
def meeting_close(member, meeting_id):
    result = meetings.close(member, meeting_id)
    briefed = sum(len(b["members"]) for b in result["briefed"])
    return _back(meeting_id, _("The meeting is closed: %(present)d present; %(briefed)d briefings recorded.",
                               present=result["attendance"]["present"], briefed=briefed))


@bp.route("/meetings/<int:meeting_id>/cancel", methods=["POST"])
@login_required
def meeting_cancel(member, meeting_id):
    reason = (request.form.get("reason") or "").strip()[:2000]
    if not reason:
        return _with_errors(member, meeting_id, ProblemError("validation_error", 422, errors={"reason": ["required"]}))
    meetings.cancel(member, meeting_id, reason)
    return _back(meeting_id, _("The meeting is cancelled; its members are told."))


@bp.route("/meetings/<int:meeting_id>/minutes", methods=["POST"])
@login_required
def meeting_minutes(member, meeting_id):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _with_errors(member, meeting_id, ProblemError("validation_error", 422, errors={"file": ["required"]}))
    try:
        meetings.add_minutes(member, meeting_id, upload)
    except ProblemError as e:
        if e.status == 415:
            return _with_errors(member, meeting_id, ProblemError("validation_error", 422,
                                                                errors={"file": ["unsupported_file"]}))
        return _with_errors(member, meeting_id, e)
    return _back(meeting_id, _("The minutes are attached."))


@bp.route("/meetings/<int:meeting_id>/minutes/<int:minutes_id>")
@login_required
def meeting_minutes_file(member, meeting_id, minutes_id):
    response = attachments.send(meetings.minutes_for(member, meeting_id, minutes_id))
    response.headers["Content-Security-Policy"] = SANDBOX
    return response


# --- committees: the month's meetings and adoption, rolled up the tree ------------------------------------

def _month() -> str:
    raw = request.args.get("month") or ""
    if len(raw) == 7 and raw[4] == "-" and raw[:4].isdigit() and raw[5:].isdigit() and 1 <= int(raw[5:]) <= 12 \
            and 1900 <= int(raw[:4]) <= 2999:
        return raw
    return utcnow().astimezone(local_zone()).strftime("%Y-%m")


@bp.route("/units/meetings")
@login_required
def meeting_stats_page(member):
    unit_id, month = _unit_or_scope(member), _month()
    fmt = request.args.get("format")
    # A file lists every overdue branch (the page names the first OVERDUE_LISTED and sends there).
    figures = meetings.stats(member, unit_id, month, **({"overdue_limit": None} if fmt in ("csv", "xlsx") else {}))
    if fmt in ("csv", "xlsx"):
        return download(meetings.stats_export(figures, fmt), fmt,
                        f"sinh-hoat-{figures['org_unit']['code']}-{month}.{fmt}")
    chart = charts.share_bars(figures["children"], lambda c: 100 * c["branches_with_regular_meeting"] / c["branches"]
                        if c["branches"] else None,
                        lambda c: url_for("console.meeting_stats_page", unit=c["org_unit"]["id"], month=month),
                        _("Branches that held their regular meeting, by unit"))
    return render_template("console/meeting_stats.html", f=figures, month=month, chart=chart, unit_id=unit_id)


@bp.route("/units/adoption")
@login_required
def adoption_page(member):
    unit_id = _unit_or_scope(member)
    figures = adoption.adoption(member, unit_id)
    fmt = request.args.get("format")
    if fmt in ("csv", "xlsx"):
        return download(adoption.export(figures, fmt), fmt, f"su-dung-{figures['org_unit']['code']}.{fmt}")
    chart = charts.share_bars(figures["children"], lambda c: None if c["with_device_share"] is None
                        else 100 * c["with_device_share"],
                        lambda c: url_for("console.adoption_page", unit=c["org_unit"]["id"]),
                        _("Members with the app on a phone, by unit"))
    return render_template("console/adoption.html", f=figures, chart=chart, unit_id=unit_id)

