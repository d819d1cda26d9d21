"""GET /admin/audit: the audit trail."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.schemas import AuditArgs, AuditListSchema
from handbook import audit

PREFIX = "/admin/audit"
blp = Blueprint("audit", __name__, description="Nhật ký thao tác")


@blp.route("", methods=["GET"])
@auth_required()
@blp.arguments(AuditArgs, location="query")
@blp.response(200, AuditListSchema)
@blp.alt_response(403, description="forbidden: admins only")
def list_audit(args):
    """Who did what, newest first (publish, edit, withdraw, briefing, exemption, export, role change, import).

    An admin sees the actions of members inside their scope; actions with no member behind them
    (imports from the command line, scheduled publications) only an admin over the whole tree.
    """
    items, next_cursor = audit.entries(current_user, **args)
    return {"items": items, "next_cursor": next_cursor}
