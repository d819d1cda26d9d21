"""The admin's pages: the audit trail with filters (GET /admin/audit's domain call)."""
from __future__ import annotations

import json
from datetime import datetime, time

from flask import render_template, request

from console.forms import AuditFilterForm
from console.session import login_required
from console.views import bp
from handbook import audit
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
