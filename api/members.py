"""Member administration (admins within scope): removing a member from the organisation."""
from __future__ import annotations

import marshmallow as ma
from flask_jwt_extended import current_user
from marshmallow import validate

from api.common import Blueprint, auth_required
from api.schemas import StrictSchema
from handbook import removal

PREFIX = "/admin/members"
blp = Blueprint("admin_members", __name__, description="Quản lý đảng viên")


class RemovalSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000),
                              metadata={"description": "why the member leaves (death, expulsion, moving away)"})


@blp.route("/<int:member_id>/removal", methods=["POST"])
@auth_required()
@blp.arguments(RemovalSchema)
@blp.response(204)
@blp.alt_response(403, description="forbidden: admins only")
@blp.alt_response(404, description="not_found: no such member in the caller's admin scope")
@blp.alt_response(409, description="cannot_remove_self: the caller themselves / last_admin: the only active "
                                   "admin over a unit (with `org_unit_id`)")
def remove_member(args, member_id):
    """Remove a member from the organisation: they become inactive, every session of theirs is revoked at
    once, every role of theirs is taken back and their unit's progress is recounted without them. Their
    history (receipts, transfers) is kept. Audited (`member.remove`, `role.revoke`). Idempotent."""
    removal.remove_by_admin(current_user, member_id, args["reason"])
