"""Member administration (admins within scope): removing a member from the organisation; granting and
taking back one role."""
from __future__ import annotations

import marshmallow as ma
from flask_jwt_extended import current_user
from marshmallow import validate

from api.common import Blueprint, auth_required
from api.schemas import StrictSchema, UnitBriefSchema, id_field
from handbook import removal, roles

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


class RoleIn(StrictSchema):
    role = ma.fields.String(required=True, validate=validate.OneOf(roles.ROLES))
    org_unit = id_field(required=True, metadata={"description": "the unit the role is granted over (its subtree)"})


class RoleOut(StrictSchema):
    role = ma.fields.String()
    org_unit = ma.fields.Nested(UnitBriefSchema)


class RoleListSchema(StrictSchema):
    items = ma.fields.List(ma.fields.Nested(RoleOut))


@blp.route("/<int:member_id>/roles", methods=["GET"])
@auth_required()
@blp.response(200, RoleListSchema)
@blp.alt_response(403, description="forbidden: admins only")
@blp.alt_response(404, description="not_found: no such member in the caller's admin scope")
def member_roles(member_id):
    """The member's roles, each over its unit."""
    return {"items": roles.grants(current_user, member_id)}


@blp.route("/<int:member_id>/roles", methods=["POST"])
@auth_required()
@blp.arguments(RoleIn)
@blp.response(201, RoleOut, description="granted")
@blp.alt_response(200, schema=RoleOut, description="already held: nothing changed", success=True)
@blp.alt_response(403, description="forbidden: not an admin, or the unit is outside the caller's admin scope")
@blp.alt_response(404, description="not_found: no such member in the caller's admin scope")
@blp.alt_response(409, description="conflict: the member was removed")
@blp.alt_response(422, description="validation_error: unknown role or unit")
def grant_role(args, member_id):
    """Grant one role over a unit of the caller's admin scope. Audited (`role.grant`)."""
    body, created = roles.grant(current_user, member_id, args["role"], args["org_unit"])
    return body, (201 if created else 200)


@blp.route("/<int:member_id>/roles", methods=["DELETE"])
@auth_required()
@blp.arguments(RoleIn, location="query")
@blp.response(204)
@blp.alt_response(403, description="forbidden: not an admin, or the unit is outside the caller's admin scope")
@blp.alt_response(404, description="not_found: no such member in the caller's admin scope")
@blp.alt_response(409, description="last_admin: the only active admin over the unit / cannot_revoke_self: "
                                   "the caller's own admin role")
@blp.alt_response(422, description="validation_error: unknown role or unit")
def revoke_role(args, member_id):
    """Take back one role (`?role=&org_unit=`; idempotent: a role not held changes nothing). Audited
    (`role.revoke`)."""
    roles.revoke(current_user, member_id, args["role"], args["org_unit"])
