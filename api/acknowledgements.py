"""Reading, continued: opening, acknowledging and offline sync (every member)."""
from __future__ import annotations

from flask_jwt_extended import current_user

from api.common import Blueprint, auth_required
from api.fastjson import dumper, json_response
from api.schemas import AcknowledgementSchema, AcknowledgeSchema, SyncResultsSchema, SyncSchema
from content import acknowledgements

PREFIX = ""
blp = Blueprint("acknowledgements", __name__, description="Xác nhận đã đọc")
_dump_acknowledgement = dumper(AcknowledgementSchema)


@blp.route("/documents/<int:document_id>/open", methods=["POST"])
@auth_required()
@blp.response(204)
@blp.alt_response(404, description="not_found: no such document in the caller's audience")
def open_document(document_id):
    """Record that the member opened the document; the first open is kept."""
    acknowledgements.open_document(current_user, document_id)


@blp.route("/documents/<int:document_id>/acknowledgement", methods=["PUT"])
@auth_required(light=True)
@blp.arguments(AcknowledgeSchema)
@blp.response(200, AcknowledgementSchema)
@blp.alt_response(404, description="not_found")
@blp.alt_response(409, description="stale_version (with current_version) / ack_not_required / quiz_required "
                                    "(with quiz_id) / read_too_fast (with min_read_seconds)")
def acknowledge(args, document_id):
    """Acknowledge having read and understood `version`. Idempotent; implies opening."""
    return json_response(_dump_acknowledgement(acknowledgements.acknowledge(
        current_user, document_id, args["version"], client_at=args.get("acknowledged_at"),
        platform=args.get("platform"), device=args.get("device"))))


@blp.route("/me/acknowledgements/sync", methods=["POST"])
@auth_required()
@blp.arguments(SyncSchema)
@blp.response(200, SyncResultsSchema)
def sync(args):
    """What an offline phone did (≤ 500 items): opens and acknowledgements, with one result per item."""
    return {"results": acknowledgements.sync(current_user, args["items"], platform=args.get("platform"),
                                             device=args.get("device"))}
