"""Attachments of a document: PDF, DOCX and images, stored by content (content/storage.py).

An upload is streamed to a temporary file while its SHA-256 and size are computed (bounded by
ATTACHMENT_MAX_BYTES), then its type is decided by its bytes, never by what the client claims: the
magic number (`%PDF-`, PNG, JPEG, WEBP, GIF) or, for DOCX, a ZIP whose entries are those of a Word
document. The filename's extension must agree with the sniffed type, so an `.exe` renamed `x.pdf` is
refused (415 `unsupported_file_type`). The stored content type is the sniffed one.

Blobs are shared between attachments with identical bytes. Adding and removing serialise per blob
(a PostgreSQL advisory lock; on SQLite the database write lock, taken by flushing the row change before
the blob is touched) so that a removal never deletes a blob that a concurrent upload has just reused.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app, request, send_file
from sqlalchemy import func, select, text
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from content.access import managed_document, readable_document
from content.models import Attachment, Document, MeetingMinutes, Status
from content.storage import CHUNK_SIZE, get_storage
from handbook import audit
from handbook.errors import ProblemError
from handbook.extensions import MAX_ID, db
from handbook.members import Member
from handbook.permissions import not_found
from handbook.timeutil import as_utc, utcnow


@dataclass(frozen=True)
class FileType:
    content_type: str
    extensions: frozenset[str]
    inline: bool  # shown in place (viewer) rather than offered as a download


FILE_TYPES: dict[str, FileType] = {
    "pdf": FileType("application/pdf", frozenset({"pdf"}), True),
    "docx": FileType("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                     frozenset({"docx"}), False),
    "png": FileType("image/png", frozenset({"png"}), True),
    "jpeg": FileType("image/jpeg", frozenset({"jpg", "jpeg"}), True),
    "webp": FileType("image/webp", frozenset({"webp"}), True),
    "gif": FileType("image/gif", frozenset({"gif"}), True),
}
CONTENT_TYPES = [t.content_type for t in FILE_TYPES.values()]
_INLINE = {t.content_type for t in FILE_TYPES.values() if t.inline}

# Attachments may be removed only before readers have seen the document.
REMOVABLE_STATUSES = (Status.DRAFT.value, Status.SCHEDULED.value)

MAX_FILENAME = 255
_DOCX_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_CONTENT_TYPES_LIMIT = 1024 * 1024  # bytes of [Content_Types].xml we are willing to inflate
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
               KeyError, NotImplementedError, RuntimeError)

def inline_disposition(content_type: str) -> bool:
    """Images and PDF open in place; DOCX is offered as a download."""
    return content_type in _INLINE


# Filenames -----------------------------------------------------------------------------------------------

def clean_filename(raw: str | None) -> str:
    """A safe display/download name: NFC, last path component only, no control or format characters
    (including bidi overrides such as U+202E), whitespace collapsed, no leading/trailing dots or spaces,
    at most 255 characters (the extension is kept when shortening). Vietnamese letters are kept."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[:MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:MAX_FILENAME].rstrip(" .")
    return name


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


# Sniffing ------------------------------------------------------------------------------------------------

def sniff(stream: BinaryIO) -> str | None:
    """The type of the bytes in a seekable binary stream (a FILE_TYPES key), or None."""
    stream.seek(0)
    head = stream.read(16)
    stream.seek(0)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"PK\x03\x04") and _is_docx(stream):
        return "docx"
    return None


def _is_docx(stream: BinaryIO) -> bool:
    """A ZIP holding a Word document: `[Content_Types].xml` declaring the WordprocessingML main part,
    and `word/document.xml`. Only the small content-types entry is inflated (and at most 1 MiB of it),
    so a zip bomb costs nothing. Macro-enabled documents (.docm) and templates declare another main type
    and are refused."""
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            if "[Content_Types].xml" not in names or "word/document.xml" not in names:
                return False
            with archive.open("[Content_Types].xml") as entry:
                declared = entry.read(_CONTENT_TYPES_LIMIT)
            return _DOCX_MAIN in declared
    except _ZIP_ERRORS:
        return False
    finally:
        stream.seek(0)


# Upload --------------------------------------------------------------------------------------------------

def _spool(stream: BinaryIO, spool: BinaryIO, limit: int) -> tuple[str, int]:
    """Copy the upload into `spool` in chunks; its sha256 and size. 413 past `limit` bytes."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK_SIZE):
        size += len(chunk)
        if size > limit:
            raise ProblemError("payload_too_large", 413, limit=limit)
        digest.update(chunk)
        spool.write(chunk)
    spool.flush()
    spool.seek(0)
    return digest.hexdigest(), size


def _lock_blob(sha256: str) -> None:
    """Serialise add/remove of one blob until the transaction ends (PostgreSQL). On SQLite the
    database write lock, taken by the row change flushed before the blob is touched, does it."""
    if db.session.get_bind().dialect.name == "postgresql":
        objid = int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
                           {"cls": 0x41545443, "obj": objid})  # class "ATTC": attachment blobs


def _touch_for_readers(doc: Document) -> None:
    """Readers' delta sync (`updated_since`) must see a change to a document they may already hold."""
    now = utcnow()
    if doc.status == Status.PUBLISHED.value or (
            doc.status == Status.SCHEDULED.value and doc.published_at is not None
            and as_utc(doc.published_at) <= now):
        doc.sync_at = now


@dataclass(frozen=True)
class StoredFile:
    filename: str
    content_type: str
    size: int
    sha256: str


def store_upload(file_storage, make_row: Callable[[StoredFile], object]):
    """Check an upload (size, name, type from its bytes) and store its blob; the row `make_row` builds
    from it is added and flushed before the blob is written, under the blob's lock, in the caller's
    transaction (which commits). Returns the row."""
    filename = clean_filename(getattr(file_storage, "filename", None))
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    with tempfile.TemporaryFile() as spool:  # anonymous: nothing is left behind, whatever happens
        sha256, size = _spool(file_storage.stream, spool, limit)
        if size == 0:
            raise ProblemError("validation_error", 422, errors={"file": ["empty_file"]})
        if not filename:
            raise ProblemError("validation_error", 422, errors={"file": ["missing_filename"]})
        kind = sniff(spool)
        if kind is None or extension(filename) not in FILE_TYPES[kind].extensions:
            raise ProblemError("unsupported_file_type", 415)

        _lock_blob(sha256)
        row = make_row(StoredFile(filename, FILE_TYPES[kind].content_type, size, sha256))
        db.session.add(row)
        db.session.flush()  # (SQLite: takes the write lock before the blob is touched)
        key = get_storage().put(spool)
        if key != sha256:  # the store hashes for itself; a mismatch means the spool changed under us
            raise RuntimeError("attachment storage key does not match the upload's sha256")
    return row


def add_attachment(actor: Member, doc: Document, file_storage) -> Attachment:
    """Attach an uploaded file (a werkzeug FileStorage) to `doc`, which `actor` manages. Commits."""
    if doc.status == Status.WITHDRAWN.value:
        raise ProblemError("document_withdrawn", 409)
    attachment = store_upload(file_storage, lambda f: Attachment(
        document_id=doc.id, filename=f.filename, content_type=f.content_type, size=f.size, sha256=f.sha256,
        storage_key=f.sha256, created_by=actor.id))
    audit.record("document.attachment_add", actor_id=actor.id, target_type="document", target_id=doc.id,
                 attachment_id=attachment.id, filename=attachment.filename, content_type=attachment.content_type,
                 size=attachment.size, sha256=attachment.sha256)
    _touch_for_readers(doc)
    db.session.commit()
    return attachment


# Lookups and removal -------------------------------------------------------------------------------------

def _id(value: int) -> int:
    if not 0 < value <= MAX_ID:
        raise not_found()
    return value


def managed_for_change(member: Member, document_id: int) -> Document:
    """The document, locked for this transaction, when the member manages it; else 404."""
    return managed_document(member, _id(document_id), for_update=True)


def _attachment_of(doc: Document, attachment_id: int) -> Attachment:
    _id(attachment_id)
    attachment = db.session.scalar(
        select(Attachment).where(Attachment.id == attachment_id, Attachment.document_id == doc.id))
    if attachment is None:
        raise not_found()
    return attachment


def remove_attachment(actor: Member, doc: Document, attachment_id: int) -> None:
    """Remove an attachment while `doc` (which `actor` manages) is a draft or scheduled. Commits.
    The blob is deleted too when no other attachment shares it."""
    attachment = _attachment_of(doc, attachment_id)
    if doc.status not in REMOVABLE_STATUSES:
        raise ProblemError("attachment_locked", 409)
    key = attachment.storage_key
    _lock_blob(key)
    audit.record("document.attachment_remove", actor_id=actor.id, target_type="document", target_id=doc.id,
                 attachment_id=attachment.id, filename=attachment.filename, sha256=attachment.sha256)
    db.session.delete(attachment)
    _touch_for_readers(doc)
    db.session.flush()  # (SQLite: takes the write lock before the blob is touched)
    shared = db.session.scalar(select(func.count()).select_from(Attachment).where(Attachment.storage_key == key)) \
        + db.session.scalar(select(func.count()).select_from(MeetingMinutes).where(MeetingMinutes.storage_key == key))
    if shared:
        db.session.commit()
        return
    with get_storage().removal(key):  # put back if the commit fails
        db.session.commit()


# Download ------------------------------------------------------------------------------------------------

def attachment_for(member: Member, document_id: int, attachment_id: int) -> Attachment:
    """The attachment if the member may fetch it: a reader in the audience of the (out, not withdrawn)
    document, or someone who manages the document (drafts too). Anything else is 404."""
    _id(document_id)
    try:
        doc = readable_document(member, document_id)
    except ProblemError:
        doc = managed_document(member, document_id)
    return _attachment_of(doc, attachment_id)


# --- downloads ---------------------------------------------------------------------------------------

def _ignore_foreign_range() -> None:
    """A Range in another unit than bytes must be ignored (RFC 9110 §14.2): the whole file, not 416."""
    value = request.headers.get("Range")
    if value is not None and value.split("=", 1)[0].strip().lower() != "bytes":
        request.environ.pop("HTTP_RANGE", None)


def send(attachment):
    """The download of a stored file (a document's attachment or a meeting's minutes), for both faces:
    conditional (ETag = its SHA-256), single byte ranges (416 problem with Content-Range when unsatisfiable),
    cached privately, never sniffed."""
    _ignore_foreign_range()
    storage = get_storage()
    path = storage.local_path(attachment.storage_key)
    try:
        response = send_file(
            path if path is not None else storage.open(attachment.storage_key),
            mimetype=attachment.content_type,
            as_attachment=not inline_disposition(attachment.content_type),
            download_name=attachment.filename,
            conditional=True,
            etag=attachment.sha256,
            last_modified=as_utc(attachment.created_at),
        )
    except RequestedRangeNotSatisfiable:
        raise ProblemError("range_not_satisfiable", 416, size=attachment.size,
                           headers={"Content-Range": f"bytes */{attachment.size}"}) from None
    response.cache_control.no_cache = None
    response.cache_control.private = True
    response.cache_control.max_age = current_app.config["ATTACHMENT_CACHE_MAX_AGE"]
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
