"""Attachments: upload (sniffed types, limits, names), download (ETag, Range), removal, storage, access.

Real HTTP through the test client on SQLite and PostgreSQL, real files built byte by byte, and a real
storage directory under pytest's tmp_path (never the repository's instance/).
"""
from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
import unicodedata
import zipfile
import zlib

import pytest
from sqlalchemy import select

from content.models import Attachment, Document
from content.storage import LocalStorage, get_storage
from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.timeutil import as_utc
from tests.factories import bearer, document, in_parallel, login, member, small_tree

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# Real files ----------------------------------------------------------------------------------------------

def make_pdf(text: str = "Xin chao") -> bytes:
    """A minimal, well-formed one-page PDF (correct xref offsets)."""
    content = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_docx(text: str = "Nghị quyết về công tác xây dựng Đảng", main_type: str | None = None) -> bytes:
    main_type = main_type or "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    return _zip({
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/word/document.xml" ContentType="{main_type}"/></Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>'),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f'<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>'),
    })


def make_png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xda\x25\x1d" * width for _ in range(height))  # filter 0, red pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_exe() -> bytes:
    """The start of a Windows PE executable: MZ header, DOS stub, PE signature."""
    header = bytearray(b"MZ" + b"\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44)
    header += struct.pack("<I", 0x80)  # e_lfanew
    header += b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$"
    header += b"\x00" * (0x80 - len(header)) + b"PE\x00\x00" + b"\x00" * 200
    return bytes(header)


PDF = make_pdf()


# Fixtures and helpers ------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def storage_dir(app, tmp_path, monkeypatch):
    root = tmp_path / "attachments"
    monkeypatch.setitem(app.config, "ATTACHMENT_STORAGE_DIR", str(root))
    return root


@pytest.fixture()
def world(app, client):
    """Ba Đình publishes to its district; a reader in a Ba Đình branch; outsiders in Đống Đa."""
    tree = small_tree()
    people = {
        "publisher": member("11000001", tree["phuong"], roles=[("publisher", tree["ba_dinh"])]),
        "reader": member("11000002", tree["b1"]),
        "outsider": member("11000003", tree["cbcs"]),
        "other_publisher": member("11000004", tree["cbcs"], roles=[("publisher", tree["dong_da"])]),
    }
    tokens = {name: login(client, m.card_number).json["access_token"] for name, m in people.items()}
    return {"tree": tree, "people": people, "tokens": tokens}


def make_doc(world, status: str = "published", audience: str = "ba_dinh") -> Document:
    tree = world["tree"]
    return document(tree["ba_dinh"], [tree[audience]], status=status, created_by=world["people"]["publisher"])


def upload(client, token, doc_id, data: bytes, filename: str, content_type: str = "application/octet-stream",
           **headers):
    return client.post(f"/api/v1/admin/documents/{doc_id}/attachments",
                       data={"file": (io.BytesIO(data), filename, content_type)},
                       headers={**(bearer(token) if token else {}), **headers})


def download(client, token, doc_id, attachment_id, **headers):
    return client.get(f"/api/v1/documents/{doc_id}/attachments/{attachment_id}", buffered=True,  # (closes the file)
                      headers={**(bearer(token) if token else {}), **headers})


def remove(client, token, doc_id, attachment_id):
    return client.delete(f"/api/v1/admin/documents/{doc_id}/attachments/{attachment_id}",
                         headers=bearer(token) if token else {})


def blobs(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file() and re.fullmatch(r"[0-9a-f]{64}", p.name))


def leftovers(root) -> list:
    tmp = root / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def problem(response, status: int, code: str):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    return response.json


# Upload and download -------------------------------------------------------------------------------------

def test_upload_pdf_then_reader_downloads_it(client, world, storage_dir):
    doc = make_doc(world)
    r = upload(client, world["tokens"]["publisher"], doc.id, PDF, "Chỉ thị 24.pdf", "image/png")
    assert r.status_code == 201, r.json
    body = r.json
    sha = hashlib.sha256(PDF).hexdigest()
    assert set(body) == {"id", "filename", "content_type", "size", "sha256"}
    assert body["sha256"] == sha
    assert body["size"] == len(PDF)
    assert body["content_type"] == "application/pdf"  # sniffed, not the client's image/png
    assert body["filename"] == "Chỉ thị 24.pdf"
    assert r.headers["Location"].endswith(f"/api/v1/documents/{doc.id}/attachments/{body['id']}")

    # Stored once, content-addressed and sharded; nothing half-written left behind.
    assert [p.relative_to(storage_dir).as_posix() for p in blobs(storage_dir)] == [f"{sha[:2]}/{sha[2:4]}/{sha}"]
    assert leftovers(storage_dir) == []

    r = download(client, world["tokens"]["reader"], doc.id, body["id"])
    assert r.status_code == 200
    assert r.data == PDF
    assert r.mimetype == "application/pdf"
    assert r.headers["ETag"] == f'"{sha}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    cache = r.headers["Cache-Control"]
    assert "private" in cache and "max-age=3600" in cache and "public" not in cache and "no-cache" not in cache
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("inline")
    assert "filename*=UTF-8''Ch%E1%BB%89%20th%E1%BB%8B%2024.pdf" in disposition
    assert int(r.headers["Content-Length"]) == len(PDF)

    # HEAD: the same headers, no body.
    r = client.head(f"/api/v1/documents/{doc.id}/attachments/{body['id']}", headers=bearer(world["tokens"]["reader"]),
                    buffered=True)
    assert r.status_code == 200 and r.data == b"" and int(r.headers["Content-Length"]) == len(PDF)
    # The document lists it.
    r = client.get(f"/api/v1/documents/{doc.id}", headers=bearer(world["tokens"]["reader"]))
    assert r.json["attachments"] == [body]

    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "document.attachment_add"))
    assert entry.actor_id == world["people"]["publisher"].id
    assert entry.target_type == "document" and entry.target_id == str(doc.id)
    assert entry.details["sha256"] == sha and entry.details["attachment_id"] == body["id"]


def test_etag_if_none_match_gives_304(client, world):
    doc = make_doc(world)
    att = upload(client, world["tokens"]["publisher"], doc.id, PDF, "a.pdf").json
    token = world["tokens"]["reader"]
    etag = download(client, token, doc.id, att["id"]).headers["ETag"]
    r = download(client, token, doc.id, att["id"], **{"If-None-Match": etag})
    assert r.status_code == 304
    assert r.data == b""
    assert r.headers["ETag"] == etag
    assert "private" in r.headers["Cache-Control"]
    r = download(client, token, doc.id, att["id"], **{"If-None-Match": '"something-else"'})
    assert r.status_code == 200 and r.data == PDF


def test_range_requests(client, world):
    doc = make_doc(world)
    att = upload(client, world["tokens"]["publisher"], doc.id, PDF, "a.pdf").json
    token = world["tokens"]["reader"]

    r = download(client, token, doc.id, att["id"], Range="bytes=0-9")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 0-9/{len(PDF)}"
    assert r.data == PDF[:10] and len(r.data) == 10

    r = download(client, token, doc.id, att["id"], Range="bytes=-5")
    assert r.status_code == 206 and r.data == PDF[-5:]

    r = download(client, token, doc.id, att["id"], Range=f"bytes={len(PDF) + 10}-")
    problem(r, 416, "range_not_satisfiable")
    assert r.headers["Content-Range"] == f"bytes */{len(PDF)}"

    # If-Range with a stale validator: the whole file.
    r = download(client, token, doc.id, att["id"], Range="bytes=0-9", **{"If-Range": '"old"'})
    assert r.status_code == 200 and r.data == PDF


def test_docx_is_offered_as_a_download_and_png_inline(client, world):
    doc = make_doc(world)
    docx, png = make_docx(), make_png()
    token = world["tokens"]["publisher"]

    r = upload(client, token, doc.id, docx, "Nghị quyết 05.DOCX", "application/zip")
    assert r.status_code == 201, r.json
    assert r.json["content_type"] == DOCX_TYPE and r.json["sha256"] == hashlib.sha256(docx).hexdigest()
    got = download(client, world["tokens"]["reader"], doc.id, r.json["id"])
    assert got.status_code == 200 and got.data == docx
    assert got.mimetype == DOCX_TYPE
    assert got.headers["Content-Disposition"].startswith("attachment")

    r = upload(client, token, doc.id, png, "ảnh.png")
    assert r.status_code == 201 and r.json["content_type"] == "image/png"
    got = download(client, world["tokens"]["reader"], doc.id, r.json["id"])
    assert got.data == png and got.headers["Content-Disposition"].startswith("inline")


@pytest.mark.parametrize("data, filename", [
    (make_exe(), "x.pdf"),                              # a Windows executable renamed .pdf
    (make_exe(), "x.exe"),
    (_zip({"hello.txt": "xin chào"}), "x.docx"),         # a zip that is not a Word document
    (make_docx(main_type="application/vnd.ms-word.document.macroEnabled.main+xml"), "x.docx"),  # docm
    (make_docx(), "x.zip"),
    (PDF, "x.png"),                                     # real PDF, wrong extension
    (make_png(), "x.pdf"),
    (PDF, "x"),                                         # no extension
    (b"<html><script>alert(1)</script></html>", "x.pdf"),
    (b"PK\x03\x04 truncated zip", "x.docx"),
])
def test_refuses_unsupported_or_mismatched_files(client, world, storage_dir, data, filename):
    doc = make_doc(world, status="draft")
    r = upload(client, world["tokens"]["publisher"], doc.id, data, filename, "application/pdf")
    body = problem(r, 415, "unsupported_file_type")
    assert body["title"] == "Loại tệp không được hỗ trợ"
    assert blobs(storage_dir) == [] and leftovers(storage_dir) == []
    assert db.session.scalar(select(Attachment.id)) is None


def test_unsupported_type_in_english(client, world):
    doc = make_doc(world, status="draft")
    r = upload(client, world["tokens"]["publisher"], doc.id, make_exe(), "x.pdf", **{"Accept-Language": "en"})
    assert problem(r, 415, "unsupported_file_type")["title"] == "Unsupported file type"


def test_empty_or_missing_file_is_a_validation_error(client, world):
    doc = make_doc(world, status="draft")
    token = world["tokens"]["publisher"]
    body = problem(upload(client, token, doc.id, b"", "rong.pdf"), 422, "validation_error")
    assert body["errors"]["file"] == ["Tệp rỗng (0 byte)."]
    r = client.post(f"/api/v1/admin/documents/{doc.id}/attachments", data={"other": "x"}, headers=bearer(token))
    assert "file" in problem(r, 422, "validation_error")["errors"]
    r = client.post(f"/api/v1/admin/documents/{doc.id}/attachments", json={"file": "x"}, headers=bearer(token))
    problem(r, 422, "validation_error")


def test_oversize_file_is_refused(client, app, world, storage_dir, monkeypatch):
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", 1000)
    doc = make_doc(world, status="draft")
    big = make_pdf("x" * 2000)
    assert len(big) > 1000
    body = problem(upload(client, world["tokens"]["publisher"], doc.id, big, "big.pdf"), 413, "payload_too_large")
    assert "1000" in body["detail"]
    assert blobs(storage_dir) == [] and leftovers(storage_dir) == []
    # Exactly at the limit is fine.
    exact = PDF + b"%" * (1000 - len(PDF))
    r = upload(client, world["tokens"]["publisher"], doc.id, exact, "exact.pdf")
    assert r.status_code == 201 and r.json["size"] == 1000


def test_filenames_are_sanitised(client, world):
    doc = make_doc(world, status="draft")
    token = world["tokens"]["publisher"]

    def name_of(raw: str) -> str:
        r = upload(client, token, doc.id, PDF, raw)
        assert r.status_code == 201, (raw, r.json)
        return r.json["filename"]

    assert name_of("../../etc/passwd.pdf") == "passwd.pdf"
    # A client sending a Windows path (backslashes escaped inside the quoted-string, so they survive parsing).
    boundary = "b0undary"
    wire = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="C:\\\\Users\\\\bithu\\\\Kế hoạch.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n").encode() + PDF + f"\r\n--{boundary}--\r\n".encode()
    r = client.post(f"/api/v1/admin/documents/{doc.id}/attachments", data=wire, headers=bearer(token),
                    content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 201 and r.json["filename"] == "Kế hoạch.pdf"
    nfd = unicodedata.normalize("NFD", "Quyết định của Đảng ủy phường.pdf")
    assert name_of(nfd) == "Quyết định của Đảng ủy phường.pdf"
    assert name_of("bao\x00cao\r\n\tquy\u202eIV.pdf") == "baocao quyIV.pdf"
    long_name = "Nghị quyết " + "rất dài " * 60 + ".pdf"
    shortened = name_of(long_name)
    assert len(shortened) <= 255 and shortened.endswith(".pdf") and shortened.startswith("Nghị quyết rất dài")
    problem(upload(client, token, doc.id, PDF, "../.."), 422, "validation_error")

    # The sanitised name is the download name; the bytes stay the same.
    att = db.session.scalar(select(Attachment).where(Attachment.filename == "passwd.pdf"))
    r = download(client, token, doc.id, att.id)
    assert r.data == PDF and r.headers["Content-Disposition"] == "inline; filename=passwd.pdf"


# Access -------------------------------------------------------------------------------------------------

def test_who_may_download(client, world):
    published = make_doc(world)
    draft = make_doc(world, status="draft")
    tokens = world["tokens"]
    on_published = upload(client, tokens["publisher"], published.id, PDF, "a.pdf").json
    on_draft = upload(client, tokens["publisher"], draft.id, PDF, "b.pdf").json

    assert download(client, tokens["reader"], published.id, on_published["id"]).status_code == 200
    # Outside the audience, or not yet published: 404, never 403.
    problem(download(client, tokens["outsider"], published.id, on_published["id"]), 404, "not_found")
    problem(download(client, tokens["reader"], draft.id, on_draft["id"]), 404, "not_found")
    problem(download(client, tokens["other_publisher"], draft.id, on_draft["id"]), 404, "not_found")
    # The publisher who manages the draft sees its attachments.
    assert download(client, tokens["publisher"], draft.id, on_draft["id"]).data == PDF
    # An attachment id under the wrong document, or an unknown one.
    problem(download(client, tokens["reader"], published.id, on_draft["id"]), 404, "not_found")
    problem(download(client, tokens["reader"], published.id, 999999), 404, "not_found")
    # Anonymous.
    problem(download(client, None, published.id, on_published["id"]), 401, "unauthorized")


def test_audience_roles_narrow_downloads(client, world):
    tree = world["tree"]
    doc = document(tree["ba_dinh"], [tree["ba_dinh"]], roles=["secretary"])
    att = upload(client, world["tokens"]["publisher"], doc.id, PDF, "a.pdf").json
    problem(download(client, world["tokens"]["reader"], doc.id, att["id"]), 404, "not_found")
    secretary = member("11000009", tree["b1"], roles=[("secretary", tree["b1"])])
    token = login(client, secretary.card_number).json["access_token"]
    assert download(client, token, doc.id, att["id"]).status_code == 200


def test_who_may_upload(client, world):
    doc = make_doc(world, status="draft")
    tokens = world["tokens"]
    problem(upload(client, tokens["other_publisher"], doc.id, PDF, "a.pdf"), 404, "not_found")
    problem(upload(client, tokens["reader"], doc.id, PDF, "a.pdf"), 404, "not_found")
    problem(upload(client, None, doc.id, PDF, "a.pdf"), 401, "unauthorized")
    problem(upload(client, tokens["publisher"], 999999, PDF, "a.pdf"), 404, "not_found")
    assert db.session.scalar(select(Attachment.id)) is None
    # A publisher over the whole city manages a district's document too.
    boss = member("11000010", world["tree"]["b2"], roles=[("publisher", world["tree"]["city"])])
    token = login(client, boss.card_number).json["access_token"]
    assert upload(client, token, doc.id, PDF, "a.pdf").status_code == 201


def test_withdrawn_documents_take_no_uploads_and_serve_no_files(client, world, storage_dir):
    doc = make_doc(world)
    att = upload(client, world["tokens"]["publisher"], doc.id, PDF, "a.pdf").json
    db.session.get(Document, doc.id).status = "withdrawn"
    db.session.commit()
    problem(upload(client, world["tokens"]["publisher"], doc.id, make_png(), "b.png"), 409, "document_withdrawn")
    problem(download(client, world["tokens"]["reader"], doc.id, att["id"]), 404, "not_found")
    # The publisher who manages it can still retrieve what was attached.
    assert download(client, world["tokens"]["publisher"], doc.id, att["id"]).data == PDF
    problem(remove(client, world["tokens"]["publisher"], doc.id, att["id"]), 409, "attachment_locked")
    assert len(blobs(storage_dir)) == 1


def test_upload_to_a_published_document_bumps_its_sync_time(client, world):
    published, draft = make_doc(world), make_doc(world, status="draft")
    before = {d.id: as_utc(d.sync_at) for d in (published, draft)}
    for d in (published, draft):
        assert upload(client, world["tokens"]["publisher"], d.id, PDF, "a.pdf").status_code == 201
    db.session.expire_all()
    assert as_utc(db.session.get(Document, published.id).sync_at) > before[published.id]
    assert as_utc(db.session.get(Document, draft.id).sync_at) == before[draft.id]


# Removal and storage -------------------------------------------------------------------------------------

def test_remove_rules(client, world, storage_dir):
    tokens = world["tokens"]
    draft, published = make_doc(world, status="draft"), make_doc(world)
    on_draft = upload(client, tokens["publisher"], draft.id, make_png(), "a.png").json
    on_published = upload(client, tokens["publisher"], published.id, PDF, "b.pdf").json

    problem(remove(client, tokens["publisher"], published.id, on_published["id"]), 409, "attachment_locked")
    problem(remove(client, tokens["other_publisher"], draft.id, on_draft["id"]), 404, "not_found")
    problem(remove(client, tokens["reader"], draft.id, on_draft["id"]), 404, "not_found")
    problem(remove(client, None, draft.id, on_draft["id"]), 401, "unauthorized")
    problem(remove(client, tokens["publisher"], draft.id, on_published["id"]), 404, "not_found")  # other doc's
    assert len(blobs(storage_dir)) == 2

    r = remove(client, tokens["publisher"], draft.id, on_draft["id"])
    assert r.status_code == 204 and r.data == b""
    problem(download(client, tokens["publisher"], draft.id, on_draft["id"]), 404, "not_found")
    problem(remove(client, tokens["publisher"], draft.id, on_draft["id"]), 404, "not_found")
    # The PNG's blob is gone; the PDF's is still there.
    assert [p.name for p in blobs(storage_dir)] == [on_published["sha256"]]
    assert leftovers(storage_dir) == []
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "document.attachment_remove"))
    assert entry.target_id == str(draft.id) and entry.details["attachment_id"] == on_draft["id"]


def test_scheduled_documents_may_lose_attachments(client, world):
    doc = make_doc(world, status="scheduled")
    att = upload(client, world["tokens"]["publisher"], doc.id, PDF, "a.pdf").json
    assert remove(client, world["tokens"]["publisher"], doc.id, att["id"]).status_code == 204


def test_identical_files_are_stored_once(client, world, storage_dir):
    token = world["tokens"]["publisher"]
    first, second = make_doc(world, status="draft"), make_doc(world, status="draft")
    a = upload(client, token, first.id, PDF, "a.pdf").json
    b = upload(client, token, second.id, PDF, "Bản sao.pdf").json
    c = upload(client, token, second.id, PDF, "lần nữa.pdf").json
    assert a["id"] != b["id"] != c["id"] and a["sha256"] == b["sha256"] == c["sha256"]
    assert len(blobs(storage_dir)) == 1

    # Removing one attachment keeps the shared blob for the others...
    assert remove(client, token, first.id, a["id"]).status_code == 204
    assert remove(client, token, second.id, b["id"]).status_code == 204
    assert len(blobs(storage_dir)) == 1
    r = download(client, token, second.id, c["id"])
    assert r.data == PDF and 'filename*=' in r.headers["Content-Disposition"]
    # ...and the last one takes it away.
    assert remove(client, token, second.id, c["id"]).status_code == 204
    assert blobs(storage_dir) == [] and leftovers(storage_dir) == []
    # Uploading it again brings it back.
    d = upload(client, token, first.id, PDF, "a.pdf").json
    assert download(client, token, first.id, d["id"]).data == PDF


def test_parallel_identical_uploads(app, world, storage_dir):
    doc_id = make_doc(world, status="draft").id  # (plain ints across threads, not ORM objects)
    token = world["tokens"]["publisher"]
    statuses = in_parallel(app, 6, lambda c: upload(c, token, doc_id, PDF, "a.pdf"))
    assert statuses == [201] * 6
    assert len(blobs(storage_dir)) == 1 and leftovers(storage_dir) == []
    assert len(db.session.scalars(select(Attachment.id)).all()) == 6


def test_removal_racing_a_reupload_never_loses_the_blob(app, client, world, storage_dir):
    """Removing the last attachment of a blob while the same bytes are uploaded elsewhere: whichever
    wins, an attachment that exists afterwards can be downloaded."""
    token = world["tokens"]["publisher"]

    def race(first_id: int, old_id: int, second_id: int) -> list[int]:
        jobs = iter([lambda c: remove(c, token, first_id, old_id),
                     lambda c: upload(c, token, second_id, PDF, "b.pdf")])
        pick = threading.Lock()

        def run(c):
            with pick:
                job = next(jobs)
            return job(c)

        return in_parallel(app, 2, run)

    for _ in range(4):
        first_id, second_id = make_doc(world, status="draft").id, make_doc(world, status="draft").id
        old_id = upload(client, token, first_id, PDF, "a.pdf").json["id"]
        assert sorted(race(first_id, old_id, second_id)) == [201, 204]
        db.session.expire_all()
        (new,) = db.session.scalars(select(Attachment).where(Attachment.document_id == second_id)).all()
        assert download(client, token, second_id, new.id).data == PDF
        assert remove(client, token, second_id, new.id).status_code == 204
        assert blobs(storage_dir) == [] and leftovers(storage_dir) == []


def test_local_storage(tmp_path):
    store = LocalStorage(tmp_path / "blobs")
    key = store.put(io.BytesIO(PDF))
    assert key == hashlib.sha256(PDF).hexdigest()
    assert store.exists(key)
    assert store.put(io.BytesIO(PDF)) == key  # dedupe
    with store.open(key) as f:
        assert f.read() == PDF
    assert store.local_path(key) == str(tmp_path / "blobs" / key[:2] / key[2:4] / key)

    # Two-phase removal: gone inside the block, back if the block fails, gone for good otherwise.
    with pytest.raises(RuntimeError), store.removal(key) as removed:
        assert removed and not store.exists(key)
        raise RuntimeError("commit failed")
    assert store.exists(key)
    assert store.delete(key) is True
    assert not store.exists(key) and store.delete(key) is False
    with pytest.raises(FileNotFoundError):
        store.open(key)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []

    for bad in ("../../etc/passwd", "A" * 64, key[:-1], ""):
        with pytest.raises(ValueError):
            store.exists(bad)


def test_storage_location_comes_from_config(app, storage_dir, monkeypatch):
    assert isinstance(get_storage(app), LocalStorage)
    assert get_storage(app).root == storage_dir
    monkeypatch.setitem(app.config, "ATTACHMENT_STORAGE_DIR", None)
    assert str(get_storage(app).root) == f"{app.instance_path}/attachments"


@pytest.mark.parametrize("doc_id, att_id", [(2**31, 1), (2**63, 1), (10**25, 1), (1, 2**31), (1, 2**63), (1, 10**25)])
def test_huge_ids_are_404_not_500(client, world, doc_id, att_id):
    make_doc(world)
    token = world["tokens"]["publisher"]
    problem(download(client, token, doc_id, att_id), 404, "not_found")
    problem(remove(client, token, doc_id, att_id), 404, "not_found")
    if att_id == 1:
        problem(upload(client, token, doc_id, PDF, "a.pdf"), 404, "not_found")
