"""JSON bodies of the hot paths, written with orjson by a dumper derived from the marshmallow schema.

The schemas stay the contract: the OpenAPI document is generated from them and every other endpoint dumps
through them. For the few responses that every phone asks for all the time (the feed, a document, an
acknowledgement), `dumper(Schema)` walks the schema's fields once and builds a plain function that
produces what `Schema().dump(obj)` produces for a dict `obj` (the same keys in the schema's order, keys
absent from `obj` left out, the same values), and `json_response` writes it with orjson, as compact
UTF-8 JSON ending in a newline like Flask's `jsonify`. tests/test_fastjson.py checks the two agree on
every field kind these schemas use; a field kind the dumper does not know is dumped by the field itself.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import marshmallow as ma
import orjson
from flask import Response

from api.schemas import LocalDateTime, UtcDateTime
from handbook.timeutil import local_zone

_IDENTITY = (ma.fields.Integer, ma.fields.String, ma.fields.Boolean)


def _utc(value):
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _local(value):
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(local_zone()).isoformat()


def _date(value):
    return None if value is None else value.isoformat()


def _field_dumper(field: ma.fields.Field) -> Callable:
    kind = type(field)
    if kind is ma.fields.Integer and not field.as_string:
        return _checked(field, (int,))
    if kind is ma.fields.Boolean:
        return _checked(field, (bool,))
    if kind is ma.fields.String:
        return _checked(field, (str,))
    if kind is LocalDateTime and field.format in (None, "iso"):
        return _local
    if kind is UtcDateTime and field.format in (None, "iso"):
        return _utc
    if kind is ma.fields.Date and field.format in (None, "iso"):
        return _date
    if kind is ma.fields.Nested and not field.many:
        inner = dumper(type(field.schema), only=field.only, exclude=field.exclude)
        return lambda value: None if value is None else inner(value)
    if kind is ma.fields.List and type(field.inner) is ma.fields.Nested and not field.inner.many:
        inner = dumper(type(field.inner.schema), only=field.inner.only, exclude=field.inner.exclude)
        return lambda value: None if value is None else [inner(v) for v in value]
    if kind is ma.fields.List and type(field.inner) in (ma.fields.String, ma.fields.Integer):
        item = _checked(field.inner, (str,) if type(field.inner) is ma.fields.String else (int,))
        return lambda value: None if value is None else [item(v) for v in value]
    return lambda value: field._serialize(value, None, None)


def _checked(field: ma.fields.Field, types: tuple) -> Callable:
    """Values of the expected Python type pass as they are (what the field would return); others go
    through the field (e.g. a number for a String)."""
    def dump(value):
        if value is None or type(value) in types:
            return value
        return field._serialize(value, None, None)
    return dump


def dumper(schema: type[ma.Schema], *, only=None, exclude=()) -> Callable[[dict], dict]:
    """A function doing `schema().dump(obj)` for a dict `obj`, without marshmallow's per-call work."""
    instance = schema(only=only, exclude=exclude or ())
    fields = [(name, field.data_key or name, _field_dumper(field), field.dump_default)
              for name, field in instance.dump_fields.items()]

    def dump(obj: dict) -> dict:
        out = {}
        for name, key, convert, default in fields:
            if name in obj:
                out[key] = convert(obj[name])
            elif default is not ma.missing:
                out[key] = convert(default() if callable(default) else default)
        return out

    return dump


def json_response(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body) + b"\n", status=status, mimetype="application/json")

