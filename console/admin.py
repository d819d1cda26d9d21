"""The admin's pages: the audit trail with filters (GET /admin/audit's domain call); finding a member and
removing one (POST /admin/members/{id}/removal's domain call); importing units and members from a file
(the CLI's imports, for an admin over the whole tree; large files as a background job with its progress)."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, time

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from console.forms import AuditFilterForm, RemovalForm
from console.session import login_required
from console.views import _field_errors, _id_arg, bp
from console.i18n import current_language
from handbook import audit, importjobs, imports, membersearch, permissions, removal, roles
from handbook.errors import ProblemError
from handbook.unitpicker import pickable_units
from handbook.i18n import problem_text
from handbook.members import profile
from handbook.timeutil import local_zone


@bp.route("/audit")
@login_required
def audit_page(member):
    """Who did what, newest first; filtered by action and by a first day (local time)."""
    form = AuditFilterForm(request.args)
    status, items, next_cursor = 200, [], None
    if request.args and not form.validate():
        status = 422
        audit.entries(member, limit=1)            # still only for admins (403 for anyone else)
    else:
        since = datetime.combine(form.since.data, time(0, 0), tzinfo=local_zone()) if form.since.data else None
        items, next_cursor = audit.entries(member, action=(form.action.data or "").strip() or None, since=since,
                                           limit=50, cursor=request.args.get("cursor") or None)
    for item in items:
        item["details_text"] = json.dumps(item["details"], ensure_ascii=False, default=str)[:300]
    return render_template("console/audit.html", form=form, items=items, next_cursor=next_cursor), status


@bp.route("/members")
@login_required
def members_page(member):
    """Find a member by card number, phone or name (the admin's scope)."""
    q = (request.args.get("q") or "").strip()[:100]
    found = membersearch.search(member, q)     # (an empty query finds nobody; still 403 for non-admins)
    return render_template("console/members.html", q=q, found=found)


def _member_page(member, member_id, status=200, form=None, role_errors=None, unit_errors=None, chosen=None):
    other = membersearch.member_for_admin(member, member_id)
    q = (request.args.get("unit_q") or request.form.get("unit_q") or "").strip()[:100]
    return render_template("console/member.html", other=profile(other), active=other.active,
                           form=form or RemovalForm(), grants=roles.grants(member, member_id), roles=roles.ROLES,
                           units=pickable_units(member, permissions.ADMIN_ROLES, q), unit_q=q, chosen=chosen,
                           role_errors=role_errors, unit_errors=unit_errors), status


@bp.route("/members/<int:member_id>")
@login_required
def member_page(member, member_id):
    """A member of the admin's scope: details, roles (grant one over a unit found by name, take one back),
    removal."""
    return _member_page(member, member_id)


@bp.route("/members/<int:member_id>/roles", methods=["POST"])
@login_required
def grant_role(member, member_id):
    """POST /admin/members/{id}/roles's domain call: one role over one unit of the admin's scope."""
    role = request.form.get("role") or ""
    unit_id = _id_arg("org_unit")
    role_errors = None if role else [_("Choose a role.")]
    unit_errors = None if unit_id else [_("Choose a unit.")]
    if role_errors or unit_errors:
        return _member_page(member, member_id, 422, role_errors=role_errors, unit_errors=unit_errors,
                            chosen={"role": role, "unit": unit_id})
    try:
        created = roles.grant(member, member_id, role, unit_id)[1]
    except ProblemError as e:
        if e.status != 422:
            raise
        errors = _field_errors(e)
        return _member_page(member, member_id, 422, role_errors=errors.get("role"),
                            unit_errors=errors.get("org_unit"), chosen={"role": role, "unit": unit_id})
    flash(_("The role has been granted.") if created else _("The member already holds this role."),
          "success" if created else "info")
    return redirect(url_for("console.member_page", member_id=member_id), 303)


@bp.route("/members/<int:member_id>/roles/revoke", methods=["POST"])
@login_required
def revoke_role(member, member_id):
    """DELETE /admin/members/{id}/roles's domain call."""
    unit_id = _id_arg("org_unit")
    if unit_id is None:
        abort(400)
    try:
        roles.revoke(member, member_id, request.values.get("role") or "", unit_id)
    except ProblemError as e:
        if e.code not in ("last_admin", "cannot_revoke_self"):
            raise
        flash(problem_text(e.code, e.params)[1], "warning")
    else:
        flash(_("The role has been taken back."), "success")
    return redirect(url_for("console.member_page", member_id=member_id), 303)


@bp.route("/members/<int:member_id>/removal", methods=["POST"])
@login_required
def remove_member(member, member_id):
    """POST /admin/members/{id}/removal: inactive at once, sessions revoked, roles taken back, history kept."""
    form = RemovalForm(request.form)
    if not form.validate() or not form.reason.data.strip():
        form.reason.errors = [_("Enter the reason.")]
        return _member_page(member, member_id, 422, form=form)
    removal.remove_by_admin(member, member_id, form.reason.data)
    flash(_("The member has been removed; their sessions have ended."), "success")
    return redirect(url_for("console.member_page", member_id=member_id), 303)


IMPORTERS = {"org_units": imports.import_org_units, "members": imports.import_members}


def _imports_form(status=200, **context):
    limit = current_app.config["CONSOLE_IMPORT_MAX_BYTES"]
    job_limit = current_app.config["CONSOLE_IMPORT_JOB_MAX_BYTES"]
    member = context.pop("member")
    jobs = [importjobs.view(j, current_language()) for j in importjobs.recent(member)]
    context.setdefault("report", None)
    context.setdefault("kind", "members")
    return render_template("console/imports.html", limit=limit, job_limit=job_limit, jobs=jobs,
                           **context), status


@bp.route("/imports", methods=["GET", "POST"])
@login_required
def imports_page(member):
    """Import org units or members from a CSV/XLSX file (API.md "CSV imports"): all or nothing; every bad
    row is listed (line, column, reason). Files up to CONSOLE_IMPORT_MAX_BYTES run here; larger ones (up
    to CONSOLE_IMPORT_JOB_MAX_BYTES) as a background job whose page shows its progress and result."""
    if not permissions.can_import(member):
        raise permissions.forbidden()
    limit = current_app.config["CONSOLE_IMPORT_MAX_BYTES"]
    if request.method == "GET":
        return _imports_form(member=member)
    kind = request.form.get("kind")
    file = request.files.get("file")
    if kind not in IMPORTERS:
        abort(400)
    if file is None or not file.filename:
        return _imports_form(422, member=member, kind=kind, file_errors=[_("Choose a CSV or XLSX file.")])
    with tempfile.NamedTemporaryFile(prefix="handbook-import-") as spool:
        size = 0
        while chunk := file.stream.read(64 * 1024):
            size += len(chunk)
            spool.write(chunk)
        spool.flush()
        if size > limit:
            spool.seek(0)
            job = importjobs.start(member, kind, file.filename, spool.read())
            return redirect(url_for("console.import_job_page", job_id=job.id), 303)
        report = IMPORTERS[kind](spool.name, actor_id=member.id)
    lang = current_language()
    errors = [{"line": e.line, "column": e.column, "reason": e.reason(lang)} for e in report.errors]
    return _imports_form(200 if report.ok else 422, member=member, report=report, errors=errors, kind=kind,
                         filename=file.filename)


@bp.route("/imports/<int:job_id>")
@login_required
def import_job_page(member, job_id):
    """A background import: its progress (the page reloads itself every few seconds while it runs, no
    script needed) and, once it has run, its counts or every bad row."""
    job = importjobs.view(importjobs.job_for(member, job_id), current_language())
    return render_template("console/import_job.html", job=job)
