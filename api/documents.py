"""Reading: the member's feed (with delta sync and search) and one document."""
from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.fastjson import dumper, json_response
from api.schemas import DocumentDetailSchema, FeedArgs, FeedSchema
from content import feed
from handbook.i18n import language
from handbook.timeutil import local_zone

PREFIX = "/documents"
blp = Blueprint("documents", __name__, description="Đọc văn bản: bảng tin, đồng bộ, tìm kiếm")


_dump_feed = dumper(FeedSchema)
_dump_detail = dumper(DocumentDetailSchema)


def _tagged(body: dict):
    """The body as JSON (orjson), its ETag from its bytes; 304 when If-None-Match has it."""
    response = json_response(body)
    blp.set_etag(hashlib.blake2b(response.get_data(), digest_size=20).hexdigest())
    return response


def _validate(principal) -> None:
    """The conditional GET without the feed's (or the document's) query: the ETag is a keyed hash of what
    the answer depends on (the request, the language, the member's unit and roles, the stamps read with
    the session check, `content.feed.stamp_columns`, and the local date); 304 when If-None-Match has it.
    Keyed with the app's secret, so that a tag cannot be made up for a document one may not read."""
    *stamps, now = principal.stamps
    material = repr((request.path, request.query_string, language(), principal.id, principal.org_unit.path,
                     sorted((g.role, g.org_unit.id) for g in principal.roles), stamps,
                     now.astimezone(local_zone()).date())).encode()
    key = current_app.extensions.get("handbook.etag_key")
    if key is None:
        key = current_app.extensions["handbook.etag_key"] = hashlib.sha256(
            b"etag:" + current_app.config["SECRET_KEY"].encode()).digest()
    blp.set_etag(hashlib.blake2b(material, key=key, digest_size=20).hexdigest())


@blp.route("", methods=["GET"])
@auth_required(light=True, reader=True, stamps=True)
@blp.etag
@blp.arguments(FeedArgs, location="query")
@blp.response(200, FeedSchema)
def list_documents(args):
    """Documents whose audience includes the caller, newest first.

    `q` searches number, title, summary and body (accents, case and đ/d ignored; every word must match;
    best match first). `updated_since` returns what changed since then, oldest change first, with
    withdrawn documents as `{"id", "withdrawn": true}`; on its last page it gives a `watermark` to pass
    as the next `updated_since` (or resume from the largest `updated_at` received).
    Sends an ETag; `If-None-Match` answers 304 when nothing changed.
    """
    conditional = "updated_since" not in args   # delta sync: its watermark moves with the clock
    if conditional:
        _validate(current_user)
    result = feed.feed(current_user, **args)
    body = {"items": result.items, "next_cursor": result.next_cursor}
    if result.reset:
        body["reset"] = True
    if result.watermark is not None:
        body["watermark"] = result.watermark
    return json_response(_dump_feed(body)) if conditional else _tagged(_dump_feed(body))


@blp.route("/<int:document_id>", methods=["GET"])
@auth_required(light=True, reader=True, stamps=True)
@blp.etag
@blp.response(200, DocumentDetailSchema)
@blp.alt_response(404, description="not_found: no such document in the caller's audience")
@blp.alt_response(410, description="document_withdrawn: the document was withdrawn")
def get_document(document_id):
    """One document with its sanitised body and attachments. ETag / If-None-Match → 304."""
    _validate(current_user)
    return json_response(_dump_detail(feed.detail(current_user, document_id)))
