"""The inbox (`/me/notifications`), manual reminders (`/documents/{id}/reminders`) and notification
statistics (`/admin/notifications/{id}`)."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.schemas import (InboxArgs, InboxSchema, NotificationStatsSchema, ReadAllSchema, ReminderInSchema,
                         ReminderResultSchema)
from push import inbox, schedule

PREFIX = ""
blp = Blueprint("notifications", __name__, description="Thông báo và nhắc nhở")


@blp.route("/me/notifications", methods=["GET"])
@auth_required()
@blp.arguments(InboxArgs, location="query")
@blp.response(200, InboxSchema)
def list_inbox(args):
    """The caller's notifications, newest first (pushes get lost; the inbox keeps them)."""
    return inbox.items(current_user, limit=args["limit"], cursor=args.get("cursor"), unread=args.get("unread"))


@blp.route("/me/notifications/<int:item_id>/read", methods=["POST"])
@auth_required()
@blp.response(204)
@blp.alt_response(404, description="not_found: no such notification of the caller")
def read_item(item_id):
    """Mark one notification read. Idempotent."""
    inbox.mark_read(current_user, item_id)


@blp.route("/me/notifications/read-all", methods=["POST"])
@auth_required()
@blp.response(200, ReadAllSchema)
def read_all():
    """Mark every notification read."""
    return {"read": inbox.mark_all_read(current_user)}


@blp.route("/documents/<int:document_id>/reminders", methods=["POST"])
@auth_required()
@blp.arguments(ReminderInSchema)
@blp.response(202, ReminderResultSchema)
@blp.alt_response(403, description="forbidden: not a secretary (or admin) over that unit")
@blp.alt_response(404, description="not_found: no such document reaching the caller's scope, or no such unit")
@blp.alt_response(409, description="ack_not_required / document_withdrawn / document_not_out (scheduled)")
@blp.alt_response(429, description="reminder_too_soon: that unit was reminded in the last 24 hours (Retry-After)")
def remind(args, document_id):
    """Push the pending members of one unit (its subtree) now, or when quiet hours end."""
    return schedule.remind(current_user, document_id, args["org_unit"])


@blp.route("/admin/notifications/<int:notification_id>", methods=["GET"])
@auth_required()
@blp.response(200, NotificationStatsSchema)
@blp.alt_response(404, description="not_found: no such notification the caller may see")
def notification_stats(notification_id):
    """Delivery statistics: recipients, devices, sent, failed, invalid tokens."""
    return inbox.notification_stats(current_user, notification_id)
