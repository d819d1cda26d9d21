"""GET /me, PUT /me/password, GET /me/summary."""
from __future__ import annotations

from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from api.common import auth_required, session_id
from api.schemas import MeSchema, PasswordChangeSchema, SummarySchema
from content import member_summary
from handbook import auth
from handbook.members import profile

PREFIX = "/me"
blp = Blueprint("me", __name__, description="Thông tin của đảng viên đang đăng nhập")


@blp.route("", methods=["GET"])
@blp.response(200, MeSchema)
@auth_required()
def me():
    """The signed-in member, their unit, its ancestors (root first) and their roles."""
    return profile(current_user)


@blp.route("/password", methods=["PUT"])
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
@blp.alt_response(401, description="invalid_credentials (wrong current password)")
@auth_required()
def change_password(args):
    """Change the password; every other session of the member is revoked."""
    auth.change_password(current_user, session_id(), args["current_password"], args["new_password"])


@blp.route("/summary", methods=["GET"])
@blp.response(200, SummarySchema)
@auth_required()
def summary():
    """Counts for the app's badge."""
    return member_summary(current_user)
