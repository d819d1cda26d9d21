"""The console's pages. Views stay thin: read the form, call the domain function the API calls, render.

Errors raised by the domain (`ProblemError`) become HTML pages with the same status as the API's answer
(a document outside the caller's reach is 404, a unit outside their scope 403); field errors of a form
are shown next to their field.
"""
from __future__ import annotations

from datetime import datetime

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from console import charts
from console.forms import AcknowledgeForm, FollowUpForm, LoginForm, PasswordForm
from console.i18n import LANGUAGES, align_domain_language, current_language
from console.session import current_member, login_required, safe_next, sign_in, sign_out
from content import acknowledgements, attachments, feed, followup, member_summary, roster, timeline
from content.acknowledgements import BRIEFING_ROLES
from handbook import auth
from handbook.errors import ProblemError
from handbook.extensions import MAX_ID, login_ip_limit
from handbook.i18n import field_message, problem_text
from handbook.members import Role
from handbook.orgunits import ancestors_of, holds_members
from handbook.permissions import (ADMIN_ROLES, FOLLOW_UP_ROLES, PUBLISH_ROLES, can_import, has_role_over,
                                  scope_roots)
from handbook.tables import download
from handbook.timeutil import as_utc, local_zone, utcnow
from push import inbox, schedule
from push.reminders import manual_reminder_window

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/console")

# No script at all; styles from our own stylesheet only; forms post back here only; never framed.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# A downloaded file (a PDF shown inline, say) runs no script and is never framed.
SANDBOX = "default-src 'none'; frame-ancestors 'none'; sandbox"
MEMBER_PAGE = 50
FOLLOWING_ROLES = frozenset({Role.SECRETARY.value, Role.COMMITTEE.value})   # whose work is following up
OVERVIEW_PAGE = 30     # directives shown at first (overdue first): a page stays small at a city


# --- request plumbing --------------------------------------------------------------------------------

@bp.before_request
def _prepare():
    # Flask-WTF (the token) and Flask-Babel (the locale) cache on `g`, which outlives a request when an
    # app context was already pushed (tests, CLI): each request starts from its own session.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    g.pop("_flask_babel", None)
    align_domain_language()
    if request.endpoint == "console.imports_page":   # large files go to a background job
        request.max_content_length = current_app.config["CONSOLE_IMPORT_JOB_MAX_BYTES"]
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as e:
            raise CSRFError(e.args[0]) from None


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    if request.endpoint != "console.static":
        response.headers.setdefault("Cache-Control", "no-store")   # personal pages: never from a cache
        response.vary.add("Cookie")
    return response


@bp.app_template_global()
def csrf_token() -> str:
    return generate_csrf()


@bp.app_template_filter("local")
def _local(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    return "" if value is None else as_utc(value).astimezone(local_zone()).strftime(fmt)


@bp.app_template_filter("pct")
def _pct(value: float) -> str:
    """A share as people write it: `50`, `14,3` in Vietnamese, `14.3` in English."""
    text = f"{value:.1f}".removesuffix(".0")
    return text.replace(".", ",") if current_language() == "vi" else text


@bp.app_template_filter("day")
def _day(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _local(value, "%d/%m/%Y")
    return value.strftime("%d/%m/%Y")


@bp.context_processor
def _globals():
    member = current_member()
    follow_roots = scope_roots(member, FOLLOW_UP_ROLES) if member else []
    return {"me": member, "lang": current_language(), "languages": LANGUAGES,
            "follows": follow_roots[0].id if follow_roots else None,
            "publishes": bool(member and scope_roots(member, PUBLISH_ROLES)),
            "administers": bool(member and scope_roots(member, ADMIN_ROLES)),
            "imports": bool(member and can_import(member)),
            "unread": inbox.unread_count(member) if member else 0}


def _error_page(status: int, code: str, params: dict | None = None, headers: dict | None = None):
    title, detail = problem_text(code, {"request_id": g.get("request_id", "-"), **(params or {})})
    response = Response(render_template("console/error.html", title=title, detail=detail, status=status),
                        status=status, headers=headers or {})
    response.mimetype = "text/html"
    return response


@bp.errorhandler(ProblemError)
def _problem(e: ProblemError):
    return _error_page(e.status, e.code, e.params, e.headers)


@bp.errorhandler(CSRFError)
def _csrf(e: CSRFError):
    response = Response(render_template("console/error.html", status=400, title=_("This form has expired"),
                                        detail=_("Go back, reload the page and send the form again.")),
                        status=400)
    return response


@bp.errorhandler(HTTPException)
def _http(e: HTTPException):
    from handbook.errors import STATUS_CODES, _retry_after

    status = e.code or 500
    if status >= 500:
        return _unexpected(e)
    params, headers = {"method": request.method, "limit": current_app.config.get("MAX_CONTENT_LENGTH")}, {}
    if status == 429:
        params["retry_after"] = headers["Retry-After"] = _retry_after()
    return _error_page(status, STATUS_CODES.get(status, "bad_request"), params, headers)


def _unexpected(e: Exception):
    """An unexpected error or an unreachable database: logged exactly as for the API (handbook.errors),
    answered as a page with the same status and request id."""
    from handbook.errors import handle_unexpected

    problem = handle_unexpected(e)
    body = problem.get_json(silent=True) or {}
    return _error_page(problem.status_code, body.get("code", "internal_error"),
                       headers={k: v for k, v in problem.headers.items() if k == "Retry-After"})


for _exception in (Exception, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
    bp.register_error_handler(_exception, _unexpected)


def _field_errors(e: ProblemError) -> dict[str, list[str]]:
    return {field: [field_message(m) for m in messages] for field, messages in (e.errors or {}).items()}


def _id_arg(name: str) -> int | None:
    """An id from the query string; anything else than 1..MAX_ID is 404 (no such row), as in a path."""
    raw = request.values.get(name)
    if raw in (None, ""):
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ID:
        abort(404)
    return int(raw)


# --- signing in and out, language ----------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
@login_ip_limit   # the same per-IP budget as POST /api/v1/auth/login
def login():
    """The same login as POST /api/v1/auth/login: same accounts, throttles and session rows."""
    form = LoginForm(request.form if request.method == "POST" else None,
                     next=request.args.get("next"))
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                sign_in(form.username.data, form.password.data)
            except ProblemError as e:
                if e.code != "invalid_credentials":
                    raise
                form.password.errors = [_("The card number/phone or the password is wrong.")]
                status = 401
            else:
                return redirect(safe_next(form.next.data) or url_for("console.home"), 303)
        else:
            status = 422
    elif current_member() is not None:
        return redirect(url_for("console.home"), 303)
    return render_template("console/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    sign_out()
    flash(_("You have signed out."), "info")
    return redirect(url_for("console.login"), 303)


@bp.route("/language", methods=["POST"])
def language():
    lang = request.form.get("lang")
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(safe_next(request.form.get("next")) or url_for("console.home"), 303)


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password(member):
    """PUT /me/password's domain call: the member's other sessions (app and console) end; this one stays."""
    form = PasswordForm(request.form if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate():
            try:
                auth.change_password(member, session["sid"], form.current_password.data, form.new_password.data)
            except ProblemError as e:
                if e.code not in ("invalid_credentials", "weak_password"):
                    raise
                status = e.status
                for name, messages in _field_errors(e).items():
                    getattr(form, name).errors = messages
                if e.code == "weak_password":
                    form.new_password.errors = [problem_text(e.code, e.params)[1]]
            else:
                flash(_("Your password has been changed; your other sessions have been signed out."), "success")
                return redirect(url_for("console.home"), 303)
    return render_template("console/password.html", form=form), status


# --- home: each person's work -------------------------------------------------------------------------

@bp.route("/")
@login_required
def home(member):
    """Each person's work: secretaries and committees, the active directives of their unit (overdue
    first); the board (publishers, admins), its documents; everyone else, the feed."""
    roots = scope_roots(member, FOLLOW_UP_ROLES)
    if not roots:
        return redirect(url_for("console.feed_page"), 303)
    unit_id = _id_arg("unit")
    if unit_id is None:
        if not scope_roots(member, FOLLOWING_ROLES):      # only publishing or admin roles: the board
            return redirect(url_for("console.board"), 303)
        unit_id = roots[0].id
    overview = followup.overview(member, unit_id)
    shown = overview["items"] if request.args.get("all") == "1" else overview["items"][:OVERVIEW_PAGE]
    return render_template("console/overview.html", overview=overview, items=shown, roots=roots,
                           bar=charts.percent_bar)


@bp.route("/compliance")
@login_required
def compliance(member):
    """Closed directives (deadline passed), latest first: did the unit and each child unit reach every
    member in time? GET /org-units/{id}/compliance's domain call, on progress frozen at each deadline."""
    roots = scope_roots(member, FOLLOW_UP_ROLES)
    unit_id = _id_arg("unit") or (roots[0].id if roots else None)
    if unit_id is None:
        raise ProblemError("forbidden", 403)
    body, next_cursor = followup.compliance(member, unit_id, limit=20, cursor=request.args.get("cursor") or None)
    for item in body["items"]:
        item["children"] = sorted(item["children"], key=lambda c: (c["reached"], -c["pending"]))
        item["percent"] = charts.percent(item)
    return render_template("console/compliance.html", body=body, next_cursor=next_cursor, bar=charts.percent_bar)


# --- following one document -----------------------------------------------------------------------------

def _follow_context(member, document_id: int, unit_id: int | None) -> dict:
    state = request.args.get("state")
    state = state if state in followup.MEMBER_STATES else None
    q = (request.args.get("q") or "").strip()[:100]
    unit, doc, progress = followup.followed_progress(member, document_id, unit_id)
    trail = [u for u in ancestors_of(unit) if has_role_over(member, u, FOLLOW_UP_ROLES)]
    children = progress.get("children") or []
    show_members = not children or request.args.get("members") == "1"
    rows, next_cursor, q_errors = [], None, None
    if show_members:
        if q:
            try:
                rows = roster.find_members(member, document_id, q, org_unit=unit.id, state=state)
            except ProblemError as e:
                if e.status != 422:
                    raise
                q_errors = _field_errors(e).get("q")
        else:
            rows, next_cursor = followup.members(member, document_id, org_unit=unit.id, state=state,
                                                 limit=MEMBER_PAGE, cursor=request.args.get("cursor") or None)
    can_brief = has_role_over(member, unit, BRIEFING_ROLES) and doc.requires_ack and doc.status == "published"
    window = manual_reminder_window(doc.id, unit.id) if can_brief else None
    now = utcnow()
    days_left = None
    if doc.deadline is not None:
        zone = local_zone()
        days_left = (as_utc(doc.deadline).astimezone(zone).date() - now.astimezone(zone).date()).days
    series = timeline.unit_series(doc, unit, now, today=progress) if children and doc.requires_ack else None
    return {"doc": doc, "unit": unit, "progress": progress, "trail": trail, "children": children,
            "series": series, "timeline": charts.over_time_chart(series) if series else None,
            "chart": charts.children_chart(children, lambda c: url_for(
                "console.follow", document_id=doc.id, unit=c["org_unit"]["id"])) if children else None,
            "show_members": show_members, "rows": rows, "next_cursor": next_cursor, "state": state, "q": q,
            "q_errors": q_errors,
            "states": followup.MEMBER_STATES, "can_brief": can_brief, "window": window, "now": now,
            "days_left": days_left, "percent": charts.percent(progress), "bar": charts.percent_bar,
            "holds_members": holds_members(unit.kind, bool(children))}


@bp.route("/documents/<int:document_id>/follow")
@login_required
def follow(member, document_id):
    """Progress of one document in a unit: the child units (chart, furthest behind first) or, in a
    branch, its members with their states, and the secretary's forms."""
    context = _follow_context(member, document_id, _id_arg("unit"))
    form = FollowUpForm(data={"unit": context["unit"].id, "held_on": datetime.now(local_zone()).date()})
    return render_template("console/follow.html", form=form, ticked=set(), **context)


@bp.route("/documents/<int:document_id>/timeline")
@login_required
def timeline_page(member, document_id):
    """Acknowledgements over time in a unit's subtree against the deadline: GET
    /documents/{id}/progress/daily's domain call, drawn as SVG with the figures in a table."""
    series = timeline.progress_over_time(member, document_id, _id_arg("unit"))
    unit = followup.resolve_unit(member, series["org_unit"]["id"])
    doc = followup.followed_document(member, document_id, unit)
    return render_template("console/timeline.html", doc=doc, unit=unit, series=series,
                           timeline=charts.over_time_chart(series))


def _ticked() -> list[int]:
    ids = []
    for raw in request.form.getlist("member_ids")[:500]:
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID:
            ids.append(int(raw))
    return ids


def _back_to_follow(document_id: int, unit_id: int | None):
    return redirect(url_for("console.follow", document_id=document_id, unit=unit_id), 303)


@bp.route("/documents/<int:document_id>/follow", methods=["POST"])
@login_required
def follow_action(member, document_id):
    """Record a briefing (`action=briefing`: date, note) or excuse (`action=exempt`: reason) the ticked
    members, through the domain functions of POST /documents/{id}/acknowledgements and /exemptions."""
    form = FollowUpForm(request.form)
    action = request.form.get("action")
    ids = _ticked()
    unit_id = _id_arg("unit")
    if action not in ("briefing", "exempt"):
        abort(400)
    valid = form.validate()
    errors: dict[str, list[str]] = {}
    if not ids:
        errors["member_ids"] = [_("Tick at least one member.")]
    if action == "briefing" and not form.held_on.errors and form.held_on.data is None:
        errors["held_on"] = [_("Enter the date of the meeting.")]
    if action == "exempt" and not form.reason.errors and not (form.reason.data or "").strip():
        errors["reason"] = [_("Enter the reason.")]
    if valid and not errors:
        try:
            if action == "briefing":
                results = acknowledgements.record_briefing(member, document_id, ids, form.held_on.data,
                                                           form.note.data or None)
            else:
                results = acknowledgements.exempt(member, document_id, ids, form.reason.data)
        except ProblemError as e:
            if e.status != 422:
                raise
            errors = _field_errors(e)
        else:
            done = sum(1 for r in results if r["status"] == "ok")
            already = sum(1 for r in results if r["status"] == "already_acknowledged")
            missing = sum(1 for r in results if r["status"] == "not_found")
            flash(_("Briefing recorded for %(n)d member(s).", n=done) if action == "briefing"
                  else _("%(n)d member(s) excused.", n=done), "success")
            if already:
                flash(_("%(n)d member(s) had already acknowledged.", n=already), "info")
            if missing:
                flash(_("%(n)d member(s) are not in your scope and were left out.", n=missing), "warning")
            return _back_to_follow(document_id, unit_id)
    for name, messages in errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = list(messages)
    context = _follow_context(member, document_id, unit_id)
    return render_template("console/follow.html", form=form, ticked=set(ids), action=action,
                           list_errors=errors.get("member_ids"), **context), 422


@bp.route("/documents/<int:document_id>/briefings/<int:member_id>/undo", methods=["POST"])
@login_required
def undo_briefing(member, document_id, member_id):
    acknowledgements.undo_briefing(member, document_id, member_id)
    flash(_("The briefing was undone."), "success")
    return _back_to_follow(document_id, _id_arg("unit"))


@bp.route("/documents/<int:document_id>/exemptions/<int:member_id>/undo", methods=["POST"])
@login_required
def undo_exemption(member, document_id, member_id):
    acknowledgements.undo_exemption(member, document_id, member_id)
    flash(_("The exemption was undone."), "success")
    return _back_to_follow(document_id, _id_arg("unit"))


@bp.route("/documents/<int:document_id>/reminders", methods=["POST"])
@login_required
def remind(member, document_id):
    """POST /documents/{id}/reminders's domain call: push the pending members of the unit."""
    unit_id = _id_arg("unit")
    if unit_id is None:
        abort(404)
    try:
        result = schedule.remind(member, document_id, unit_id)
    except ProblemError as e:
        if e.code != "reminder_too_soon":
            raise
        flash(_("This unit was already reminded in the last 24 hours."), "warning")
    else:
        if as_utc(result["due_at"]) > utcnow():
            flash(_("Reminder to %(n)d member(s) will be sent at %(at)s (after quiet hours).",
                    n=result["recipients"], at=_local(result["due_at"])), "success")
        else:
            flash(_("Reminder sent to %(n)d member(s).", n=result["recipients"]), "success")
    return _back_to_follow(document_id, unit_id)


@bp.route("/documents/<int:document_id>/members.<any(csv, xlsx):fmt>")
@login_required
def export(member, document_id, fmt):
    """The member list as a file: the export of GET /documents/{id}/members?format=csv|xlsx (audited)."""
    state = request.args.get("state")
    chunks, filename = followup.export(member, document_id, org_unit=_id_arg("unit"),
                                       state=state if state in followup.MEMBER_STATES else None, fmt=fmt)
    return download(chunks, fmt, filename)


# --- members: feed, reading, acknowledging, inbox --------------------------------------------------------

@bp.route("/feed")
@login_required
def feed_page(member):
    state = request.args.get("state")
    state = state if state in feed.STATES else None
    q = (request.args.get("q") or "").strip()[:200] or None
    page = feed.feed(member, state=state, q=q, limit=20, cursor=request.args.get("cursor") or None)
    return render_template("console/feed.html", page=page, state=state, q=q or "", states=feed.STATES,
                           summary=member_summary(member))


@bp.route("/read/<int:document_id>")
@login_required
def read(member, document_id):
    """One document: its sanitised body and attachments. Reading it here counts as opening it."""
    return _read_page(member, document_id)


def _read_page(member, document_id: int, gate: ProblemError | None = None, status: int = 200):
    from content import quizzes

    doc = feed.detail(member, document_id)
    if doc["my"]["opened_at"] is None:
        acknowledgements.open_document(member, document_id)
        doc = feed.detail(member, document_id)
    items, _next, rules = quizzes.document_quizzes(member, document_id, limit=10)
    return render_template("console/read.html", doc=doc, quizzes=items, rules=rules,
                           gate=gate and {"code": gate.code, **gate.extra}), status


@bp.route("/read/<int:document_id>/acknowledge", methods=["POST"])
@login_required
def acknowledge(member, document_id):
    form = AcknowledgeForm(request.form)
    if not form.validate():
        abort(400)
    try:
        acknowledgements.acknowledge(member, document_id, form.version.data, platform="web")
    except ProblemError as e:
        if e.code in ("quiz_required", "read_too_fast"):     # issue 17: said next to the button
            return _read_page(member, document_id, gate=e, status=409)
        if e.code != "stale_version":
            raise
        flash(_("The document has changed since you opened it. Read the new version, then confirm."), "warning")
    else:
        flash(_("Thank you: your acknowledgement is recorded."), "success")
    return redirect(url_for("console.read", document_id=document_id), 303)


@bp.route("/read/<int:document_id>/attachments/<int:attachment_id>")
@login_required
def attachment(member, document_id, attachment_id):
    """The download of GET /documents/{id}/attachments/{attachment_id}, for a signed-in browser."""
    response = attachments.send(attachments.attachment_for(member, document_id, attachment_id))
    response.headers["Content-Security-Policy"] = SANDBOX
    return response


@bp.route("/inbox")
@login_required
def inbox_page(member):
    page = inbox.items(member, limit=30, cursor=request.args.get("cursor") or None)
    return render_template("console/inbox.html", page=page)


@bp.route("/inbox/<int:item_id>/read", methods=["POST"])
@login_required
def inbox_read(member, item_id):
    inbox.mark_read(member, item_id)
    return redirect(safe_next(request.form.get("next")) or url_for("console.inbox_page"), 303)


@bp.route("/inbox/read-all", methods=["POST"])
@login_required
def inbox_read_all(member):
    inbox.mark_all_read(member)
    return redirect(url_for("console.inbox_page"), 303)
