"""Publishing: drafts, versions, scheduling, publication and withdrawal (publishers within scope)."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.schemas import (AdminDocumentArgs, AdminDocumentDetailSchema, AdminDocumentListSchema,
                         DocumentCreateSchema, DocumentPatchSchema, PublishResultSchema, PublishSchema,
                         VersionDetailSchema, VersionListSchema, WithdrawSchema)
from content import documents

PREFIX = "/admin/documents"
blp = Blueprint("admin_documents", __name__, description="Phát hành văn bản")


def _detail(doc):
    return documents.admin_view(doc, detail=True)


@blp.route("", methods=["POST"])
@auth_required()
@blp.arguments(DocumentCreateSchema)
@blp.response(201, AdminDocumentDetailSchema)
@blp.alt_response(403, description="forbidden / audience_out_of_scope: a target unit is outside the caller's scope")
def create_document(args):
    """Create a draft. The body is sanitised; the audience must lie inside the caller's publishing scope."""
    return _detail(documents.create_document(current_user, args))


@blp.route("", methods=["GET"])
@auth_required()
@blp.arguments(AdminDocumentArgs, location="query")
@blp.response(200, AdminDocumentListSchema)
@blp.alt_response(403, description="forbidden: not a publisher")
def list_documents(args):
    """Documents issued within the caller's publishing scopes, newest first."""
    items, next_cursor = documents.admin_list(current_user, **args)
    return {"items": [documents.admin_view(d) for d in items], "next_cursor": next_cursor}


@blp.route("/<int:document_id>", methods=["GET"])
@auth_required()
@blp.response(200, AdminDocumentDetailSchema)
@blp.alt_response(404, description="not_found: no such document in the caller's scope")
def get_document(document_id):
    """A document as its publisher sees it, whatever its status."""
    return _detail(documents.admin_document(current_user, document_id))


@blp.route("/<int:document_id>", methods=["PATCH"])
@auth_required()
@blp.arguments(DocumentPatchSchema)
@blp.response(200, AdminDocumentDetailSchema)
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="document_withdrawn")
def update_document(args, document_id):
    """Edit a draft in place; on a published document, make a new version.

    `reack: true` marks a material change: members must acknowledge the new version (fresh deadline,
    a notification). `false` (default) is a correction that keeps acknowledgements. Audience, kind,
    requires_ack and ack_days cannot change after publication.
    """
    return _detail(documents.update_document(current_user, document_id, args))


@blp.route("/<int:document_id>/publish", methods=["POST"])
@auth_required()
@blp.arguments(PublishSchema)
@blp.response(200, PublishResultSchema)
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="document_withdrawn")
def publish_document(args, document_id):
    """Publish now, or schedule for a future `publish_at`. Notifies the whole audience. Idempotent."""
    return documents.publish_document(current_user, document_id, args.get("publish_at"), urgent=args["urgent"])


@blp.route("/<int:document_id>/withdraw", methods=["POST"])
@auth_required()
@blp.arguments(WithdrawSchema)
@blp.response(200, AdminDocumentDetailSchema)
@blp.alt_response(404, description="not_found")
def withdraw_document(args, document_id):
    """Withdraw a document. Readers' receipts are kept; pushes not yet sent are cancelled. Idempotent."""
    return _detail(documents.withdraw_document(current_user, document_id, args["reason"]))


@blp.route("/<int:document_id>/versions", methods=["GET"])
@auth_required()
@blp.response(200, VersionListSchema)
@blp.alt_response(404, description="not_found")
def list_versions(document_id):
    """Every published version, oldest first."""
    return {"items": documents.versions(current_user, document_id)}


@blp.route("/<int:document_id>/versions/<int:version>", methods=["GET"])
@auth_required()
@blp.response(200, VersionDetailSchema)
@blp.alt_response(404, description="not_found")
def get_version(document_id, version):
    """One version's content as it was published."""
    return documents.version(current_user, document_id, version)
