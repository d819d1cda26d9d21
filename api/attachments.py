"""POST/DELETE /admin/documents/{id}/attachments[/{attachment_id}], GET /documents/{id}/attachments/{attachment_id}."""
from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask_jwt_extended import current_user
from werkzeug.datastructures import FileStorage

from api.common import Blueprint, auth_required
from content import attachments, meetings
from handbook.errors import PROBLEM_MIMETYPE, ProblemSchema

PREFIX = ""
blp = Blueprint("attachments", __name__, description="Tệp đính kèm của văn bản (PDF, DOCX, ảnh)")

BINARY = {"type": "string", "format": "binary"}


class FilePart(ma.fields.Raw):
    """A multipart part that is a file (a plain text part of the same name is not)."""

    default_error_messages = {"invalid": "not_a_file"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        return value


class AttachmentUploadSchema(ma.Schema):
    """The multipart body: one `file` part and nothing else (any other part is an unknown field, 422)."""

    file = FilePart(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "PDF, DOCX, PNG, JPEG, WEBP or GIF; the name's extension must match the content"})


class AttachmentInfoSchema(ma.Schema):
    id = ma.fields.Integer()
    filename = ma.fields.String(metadata={"description": "Sanitised file name (NFC, no path)"})
    content_type = ma.fields.String(metadata={"description": "Decided from the file's bytes",
                                              "enum": attachments.CONTENT_TYPES})
    size = ma.fields.Integer(metadata={"description": "Bytes"})
    sha256 = ma.fields.String(metadata={"description": "Hex SHA-256 of the content; also the download's ETag"})


def _problem(status: int, description: str):
    return blp.alt_response(status, schema=ProblemSchema, content_type=PROBLEM_MIMETYPE, description=description)


def _download_url(document_id: int, attachment_id: int) -> str:
    return url_for("attachments.download", document_id=document_id, attachment_id=attachment_id)


@blp.route("/admin/documents/<int:document_id>/attachments", methods=["POST"])
@auth_required()
@blp.arguments(AttachmentUploadSchema, location="files")
@blp.response(201, AttachmentInfoSchema, description="Attached",
              headers={"Location": {"description": "The download URL", "schema": {"type": "string"}}})
@_problem(401, "unauthorized, invalid_token, token_expired or token_revoked")
@_problem(404, "not_found: no such document, or the caller does not manage it")
@_problem(409, "document_withdrawn: the document has been withdrawn")
@_problem(413, "payload_too_large: the file exceeds ATTACHMENT_MAX_BYTES (or the request MAX_CONTENT_LENGTH)")
@_problem(415, "unsupported_file_type: not a PDF, DOCX or PNG/JPEG/WEBP/GIF image, or the file name's "
               "extension does not match the content")
@_problem(422, "validation_error: no `file` part (or one that is not a file), another part, an empty file or "
               "an empty file name")
def upload(args, document_id):
    """Attach a file to a document the caller manages (multipart field `file`).

    The type is decided from the file's bytes, not from the client's Content-Type; the file name is
    sanitised (last path component, NFC, no control characters, at most 255 characters). Allowed on
    drafts, scheduled and published documents (a published document then shows up in readers' delta
    sync); refused on withdrawn ones."""
    doc = attachments.managed_for_change(current_user, document_id)
    attachment = attachments.add_attachment(current_user, doc, args["file"])
    return attachment, 201, {"Location": _download_url(document_id, attachment.id)}


@blp.route("/admin/documents/<int:document_id>/attachments/<int:attachment_id>", methods=["DELETE"])
@auth_required()
@blp.response(204, description="Removed")
@_problem(401, "unauthorized, invalid_token, token_expired or token_revoked")
@_problem(404, "not_found: no such document or attachment, or the caller does not manage the document")
@_problem(409, "attachment_locked: the document is published or withdrawn")
def remove(document_id, attachment_id):
    """Remove an attachment from a draft or scheduled document the caller manages."""
    doc = attachments.managed_for_change(current_user, document_id)
    attachments.remove_attachment(current_user, doc, attachment_id)


_FILE_HEADERS = {
    "ETag": {"description": "The content's SHA-256 (quoted)", "schema": {"type": "string"}},
    "Content-Disposition": {"description": "`inline` for PDF and images, `attachment` for DOCX; the file name",
                            "schema": {"type": "string"}},
    "Accept-Ranges": {"schema": {"type": "string", "enum": ["bytes"]}},
    "Cache-Control": {"description": "private, max-age=ATTACHMENT_CACHE_MAX_AGE", "schema": {"type": "string"}},
    "X-Content-Type-Options": {"schema": {"type": "string", "enum": ["nosniff"]}},
}


def _file_responses(view):
    """Document the file body once per content type (OpenAPI 3 merges them under one status), whole (200)
    and as a single byte range (206: the same content type as the whole file)."""
    description = "The file (its content type is one of these)"
    partial = "Partial content for a single `Range: bytes=…` request, with `Content-Range`"
    partial_headers = {**_FILE_HEADERS, "Content-Range": {"description": "bytes first-last/size",
                                                          "schema": {"type": "string"}}}
    first, *others = attachments.CONTENT_TYPES
    for content_type in reversed(attachments.CONTENT_TYPES):
        view = blp.alt_response(206, schema=BINARY, content_type=content_type, success=True,
                                description=partial, headers=partial_headers)(view)
    for content_type in reversed(others):
        view = blp.alt_response(200, schema=BINARY, content_type=content_type, success=True,
                                description=description)(view)
    return blp.response(200, BINARY, content_type=first, headers=_FILE_HEADERS, description=description)(view)


_CONDITIONAL_HEADERS = [
    {"in": "header", "name": "Range", "required": False, "schema": {"type": "string"},
     "description": "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (206); a Range "
                    "in another unit is ignored"},
    {"in": "header", "name": "If-Range", "required": False, "schema": {"type": "string"},
     "description": "The ETag (or date) the client holds: the Range is honoured only if it still matches"},
    {"in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"},
     "description": "ETags the client holds: 304 when one matches"},
]


@blp.route("/documents/<int:document_id>/attachments/<int:attachment_id>", methods=["GET"])
@auth_required()
@blp.doc(parameters=_CONDITIONAL_HEADERS)
@_file_responses
@blp.alt_response(304, description="Not modified (`If-None-Match` matches the ETag)", success=True)
@_problem(401, "unauthorized, invalid_token, token_expired or token_revoked")
@_problem(404, "not_found: no such attachment, or the document is not readable by the caller (outside the "
               "audience, not yet published, withdrawn) and not managed by the caller")
@_problem(416, "range_not_satisfiable: the byte range is outside the file, malformed, or several ranges; "
               "`Content-Range: bytes */size`")
def download(document_id, attachment_id):
    """Download an attachment.

    For members in the document's audience once it is out, and for publishers who manage the document
    (drafts too). Supports `If-None-Match` (304) and single `Range` requests (206/416). The ETag is the
    content's SHA-256; the file may be kept in the device's private cache."""
    return attachments.send(attachments.attachment_for(current_user, document_id, attachment_id))


# --- a meeting's minutes (biên bản) ----------------------------------------------------------------------

@blp.route("/meetings/<int:meeting_id>/attachments", methods=["POST"])
@auth_required()
@blp.arguments(AttachmentUploadSchema, location="files")
@blp.response(201, AttachmentInfoSchema, description="Attached",
              headers={"Location": {"description": "The download URL", "schema": {"type": "string"}}})
@_problem(401, "unauthorized, invalid_token, token_expired or token_revoked")
@_problem(403, "forbidden: the caller sees the meeting but does not run it")
@_problem(404, "not_found: no such meeting, or the caller is neither invited nor following its unit")
@_problem(409, "meeting_not_open (before the meeting) / meeting_cancelled")
@_problem(413, "payload_too_large: the file exceeds ATTACHMENT_MAX_BYTES (or the request MAX_CONTENT_LENGTH)")
@_problem(415, "unsupported_file_type: not a PDF, DOCX or PNG/JPEG/WEBP/GIF image, or the file name's "
               "extension does not match the content")
@_problem(422, "validation_error: no `file` part (or one that is not a file), another part, an empty file or "
               "an empty file name")
def upload_minutes(args, meeting_id):
    """Attach the minutes (biên bản) of a meeting the caller runs (multipart field `file`), once it has
    opened; checked and stored like a document's attachments."""
    minutes = meetings.add_minutes(current_user, meeting_id, args["file"])
    return minutes, 201, {"Location": url_for("attachments.download_minutes", meeting_id=meeting_id,
                                              minutes_id=minutes.id)}


@blp.route("/meetings/<int:meeting_id>/attachments/<int:minutes_id>", methods=["GET"])
@auth_required()
@blp.doc(parameters=_CONDITIONAL_HEADERS)
@_file_responses
@blp.alt_response(304, description="Not modified (`If-None-Match` matches the ETag)", success=True)
@_problem(401, "unauthorized, invalid_token, token_expired or token_revoked")
@_problem(404, "not_found: no such file of this meeting, or the caller does not see the meeting")
@_problem(416, "range_not_satisfiable: the byte range is outside the file, malformed, or several ranges; "
               "`Content-Range: bytes */size`")
def download_minutes(meeting_id, minutes_id):
    """Download a file of a meeting's minutes (whoever sees the meeting)."""
    return attachments.send(meetings.minutes_for(current_user, meeting_id, minutes_id))
