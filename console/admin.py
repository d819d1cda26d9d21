"""The admin's pages: the audit trail with filters (GET /admin/audit's domain call); finding a member and
removing one (POST /admin/members/{id}/removal's domain call)."""
from __future__ import annotations

import json
from datetime import datetime, time

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from console.forms import AuditFilterForm, RemovalForm
from console.session import login_required
from console.views import bp
from handbook import audit, membersearch, removal
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


@bp.route("/members/<int:member_id>")
@login_required
def member_page(member, member_id):
    other = membersearch.member_for_admin(member, member_id)
    return render_template("console/member.html", other=profile(other), active=other.active, form=RemovalForm())


@bp.route("/members/<int:member_id>/removal", methods=["POST"])
@login_required
def remove_member(member, member_id):
    """POST /admin/members/{id}/removal: inactive at once, sessions revoked, roles taken back, history kept."""
    form = RemovalForm(request.form)
    if not form.validate() or not form.reason.data.strip():
        other = membersearch.member_for_admin(member, member_id)
        form.reason.errors = [_("Enter the reason.")]
        return render_template("console/member.html", other=profile(other), active=other.active, form=form), 422
    removal.remove_by_admin(member, member_id, form.reason.data)
    flash(_("The member has been removed; their sessions have ended."), "success")
    return redirect(url_for("console.member_page", member_id=member_id), 303)
