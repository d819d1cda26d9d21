"""GET /me, PUT /me/password, GET /me/summary."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required, session_id
from api.schemas import MeSchema, PasswordChangeSchema, SummarySchema
from content import member_summary
from handbook import auth
from handbook.members import profile
from push.inbox import unread_count

PREFIX = "/me"
blp = Blueprint("me", __name__, description="Thông tin của đảng viên đang đăng nhập")


@blp.route("", methods=["GET"])
@auth_required()
@blp.response(200, MeSchema)
def me():
    """The signed-in member, their unit, its ancestors (root first) and their roles."""
    return profile(current_user)


@blp.route("/password", methods=["PUT"])
@auth_required()
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
@blp.alt_response(403, description="invalid_credentials: the current password is wrong")
@blp.alt_response(429, description="rate_limited: too many wrong current passwords")
def change_password(args):
    """Change the password; every other session of the member is revoked."""
    auth.change_password(current_user, session_id(), args["current_password"], args["new_password"])


@blp.route("/summary", methods=["GET"])
@auth_required()
@blp.response(200, SummarySchema)
def summary():
    """Counts for the app's badge."""
    return {**member_summary(current_user), "unread_notifications": unread_count(current_user)}
