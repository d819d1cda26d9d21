"""Marshmallow schemas of the public contract (../shared/API.md). Unknown fields are rejected (422)."""
from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import validate


# Lone surrogates cannot be stored or hashed; NUL and other C0 controls (but tab/newline) have no
# place in any field and PostgreSQL rejects NUL outright.
_BAD_CHARACTERS = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _has_bad_characters(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD_CHARACTERS.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def reject_bad_characters(self, data, **kwargs):
        if isinstance(data, dict):
            errors = {str(k): ["invalid_characters"] for k, v in data.items() if _has_bad_characters([k, v])}
            if errors:
                raise ma.ValidationError(errors)
        return data


class UnitBriefSchema(StrictSchema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String(metadata={"enum": ["city", "upper", "grassroots", "sub", "branch"]})


class RoleGrantSchema(StrictSchema):
    role = ma.fields.String(metadata={"enum": ["secretary", "committee", "publisher", "admin"]})
    org_unit = ma.fields.Nested(UnitBriefSchema)


class MeSchema(StrictSchema):
    id = ma.fields.Integer()
    card_number = ma.fields.String()
    full_name = ma.fields.String()
    phone = ma.fields.String(allow_none=True)
    org_unit = ma.fields.Nested(UnitBriefSchema)
    ancestors = ma.fields.List(ma.fields.Nested(UnitBriefSchema), metadata={"description": "Root first"})
    roles = ma.fields.List(ma.fields.Nested(RoleGrantSchema))


class LoginSchema(StrictSchema):
    username = ma.fields.String(required=True, validate=validate.Length(min=1, max=64),
                                metadata={"description": "Party card number or phone number"})
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class TokenPairSchema(StrictSchema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String(dump_default="Bearer")
    expires_in = ma.fields.Integer(metadata={"description": "Access token lifetime in seconds"})


class LoginResponseSchema(TokenPairSchema):
    member = ma.fields.Nested(MeSchema)


class PasswordChangeSchema(StrictSchema):
    current_password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    new_password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class SummarySchema(StrictSchema):
    pending = ma.fields.Integer()
    overdue = ma.fields.Integer()
    unread_notifications = ma.fields.Integer()


class StatusSchema(StrictSchema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
