"""Following up (secretaries, committees, publishers, admins within their scope): progress, who has not
acknowledged, exports, and a unit's overview of its active directives.

Access: the caller needs a follow-up role over the unit they ask about (403 otherwise, API.md), and the
document must be out and reach their scope (404 otherwise). Progress reads the per-unit counters
(content/progress.py): O(units in scope). The member list reads members of the unit's subtree with their
receipts, pending first, keyset-paginated; exports stream the same rows.
"""
from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import and_, case, literal, or_, select
from sqlalchemy.orm import lazyload

from content.access import can_manage, is_out, reaches, went_out
from content.models import Document, DocumentAudience, Receipt, Status
from content.progress import (audience_members, extended_condition, state_expression, unit_compliance,
                              unit_progress)
from handbook import audit
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit, in_subtree
from handbook.pagination import decode_cursor, page
from handbook.permissions import FOLLOW_UP_ROLES, forbidden, has_role_over, not_found, scope_roots
from handbook.timeutil import as_utc, local_zone, utcnow

MEMBER_STATES = ("new", "opened", "acknowledged", "pending", "overdue", "exempt")


def resolve_unit(viewer: Member, org_unit_id: int | None) -> OrgUnit:
    """The unit asked about (default: the caller's topmost follow-up unit); 403 outside their scope."""
    roots = scope_roots(viewer, FOLLOW_UP_ROLES)
    if not roots:
        raise forbidden()
    if org_unit_id is None:
        return roots[0]
    unit = db.session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise not_found()
    if not has_role_over(viewer, unit, FOLLOW_UP_ROLES):
        raise forbidden()
    return unit


def followed_document(viewer: Member, document_id: int, unit: OrgUnit) -> Document:
    """A document that went out and whose audience reaches `unit` (or that the caller manages); else 404."""
    # Audience and attachments only when asked for (a manager's progress needs neither): one statement.
    doc = db.session.scalars(select(Document).where(Document.id == document_id)
                             .options(lazyload(Document.audience), lazyload(Document.attachments))).first()
    if doc is None or doc.status == Status.DRAFT.value:
        raise not_found()
    if can_manage(viewer, doc):
        return doc
    # Before its time a scheduled document does not exist for anyone but its managers.
    if not went_out(doc) or not reaches(doc, unit):
        raise not_found()
    return doc


def progress(viewer: Member, document_id: int, org_unit_id: int | None) -> dict:
    """GET /documents/{id}/progress."""
    return followed_progress(viewer, document_id, org_unit_id)[2]


def followed_progress(viewer: Member, document_id: int, org_unit_id: int | None) -> tuple[OrgUnit, Document, dict]:
    """The unit, the document and the progress of GET /documents/{id}/progress, for a page that shows
    more of them (the session's identity map only holds them while someone does)."""
    unit = resolve_unit(viewer, org_unit_id)
    doc = followed_document(viewer, document_id, unit)
    return unit, doc, unit_progress(doc, unit, utcnow())


# --- the member list -------------------------------------------------------------------------------

def _member_query(doc: Document, unit: OrgUnit, state: str | None, now: datetime):
    raw = state_expression(doc.ack_version)
    overdue = bool(doc.requires_ack and doc.deadline is not None and as_utc(doc.deadline) < now)
    late = and_(raw.in_(("new", "opened")), ~extended_condition(now.astimezone(local_zone()).date()))
    shown = case((late, literal("overdue")), else_=raw) if overdue else raw
    rank = case((raw.in_(("new", "opened")), 0), (raw == "exempt", 1), else_=2)
    stmt = (
        select(Member.id, Member.card_number, Member.full_name, OrgUnit.id.label("unit_id"),
               OrgUnit.code, OrgUnit.name, OrgUnit.kind, OrgUnit.path, shown.label("state"), rank.label("rank"),
               Receipt.opened_at, Receipt.acknowledged_at, Receipt.acknowledged_version, Receipt.method,
               Receipt.exempt_reason, Receipt.held_on, Receipt.extended_until, Receipt.extension_reason)
        .join(OrgUnit, OrgUnit.id == Member.org_unit_id)
        .outerjoin(Receipt, and_(Receipt.document_id == doc.id, Receipt.member_id == Member.id))
        .where(audience_members(doc, in_subtree(OrgUnit.path, unit.path)))
    )
    if state == "pending":
        stmt = stmt.where(raw.in_(("new", "opened")))
    elif state == "overdue":
        stmt = stmt.where(late if overdue else literal(False))
    elif state is not None:
        stmt = stmt.where(raw == state)
    return stmt, rank


def _row(r) -> dict:
    return {
        "member": {"id": r.id, "card_number": r.card_number, "full_name": r.full_name,
                   "org_unit": {"id": r.unit_id, "code": r.code, "name": r.name, "kind": r.kind}},
        "state": r.state, "opened_at": r.opened_at, "acknowledged_at": r.acknowledged_at,
        "acknowledged_version": r.acknowledged_version,
        "method": r.method if r.acknowledged_at is not None else None,
        "exempt_reason": r.exempt_reason, "held_on": r.held_on,
        "extended_until": r.extended_until, "extension_reason": r.extension_reason,
    }


def members(viewer: Member, document_id: int, *, org_unit: int | None = None, state: str | None = None,
            limit: int = 20, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """GET /documents/{id}/members: one row per audience member of the unit's subtree, pending first."""
    unit = resolve_unit(viewer, org_unit)
    doc = followed_document(viewer, document_id, unit)
    stmt, rank = _member_query(doc, unit, state, utcnow())
    if cursor:
        last_rank, last_path, last_id = decode_cursor(cursor, int, str, int)
        stmt = stmt.where(or_(rank > last_rank, and_(rank == last_rank, OrgUnit.path > last_path),
                              and_(rank == last_rank, OrgUnit.path == last_path, Member.id > last_id)))
    rows = db.session.execute(stmt.order_by(rank, OrgUnit.path, Member.id).limit(limit + 1)).all()
    rows, next_cursor = page(rows, limit, key=lambda r: (r.rank, r.path, r.id))
    return [_row(r) for r in rows], next_cursor


# --- exports ---------------------------------------------------------------------------------------

EXPORT_HEADERS = ("Số thẻ đảng viên", "Họ và tên", "Mã đơn vị", "Đơn vị", "Trạng thái", "Mở lúc",
                  "Xác nhận lúc", "Phiên bản đã xác nhận", "Hình thức", "Ngày sinh hoạt", "Lý do miễn")
STATE_LABELS = {"new": "Chưa mở", "opened": "Đã mở, chưa xác nhận", "acknowledged": "Đã xác nhận",
                "overdue": "Quá hạn, chưa xác nhận", "exempt": "Được miễn"}
METHOD_LABELS = {"app": "Ứng dụng", "briefing": "Phổ biến tại sinh hoạt chi bộ",
                 "meeting": "Có mặt tại buổi sinh hoạt"}


def _local(value: datetime | None) -> str:
    return "" if value is None else as_utc(value).astimezone(local_zone()).strftime("%d/%m/%Y %H:%M")


# A cell starting with one of these is a formula to Excel (CWE-1236): CSV cells get a leading quote,
# XLSX cells are written as typed strings.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value):
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _export_cells(r) -> list:
    return [r.card_number, r.full_name, r.code, r.name, STATE_LABELS.get(r.state, r.state), _local(r.opened_at),
            _local(r.acknowledged_at), r.acknowledged_version or "",
            METHOD_LABELS.get(r.method, "") if r.acknowledged_at is not None else "",
            r.held_on.strftime("%d/%m/%Y") if r.held_on else "", r.exempt_reason or ""]


def export(viewer: Member, document_id: int, *, org_unit: int | None = None, state: str | None = None,
           fmt: str = "csv") -> tuple[Iterator[bytes], str]:
    """The member list as CSV (UTF-8 with BOM, for Excel) or XLSX, streamed; (chunks, file name).

    Access is checked and the export audited before the first byte; rows are read in batches from a
    server-side cursor, so memory stays flat at any size.
    """
    unit = resolve_unit(viewer, org_unit)
    doc = followed_document(viewer, document_id, unit)
    stmt, rank = _member_query(doc, unit, state, utcnow())
    stmt = stmt.order_by(rank, OrgUnit.path, Member.id).execution_options(yield_per=2000)
    audit.record("export.members", actor_id=viewer.id, target_type="document", target_id=doc.id,
                 org_unit=unit.id, state=state, format=fmt)
    db.session.commit()
    name = f"tien-do-{doc.id}-{unit.code}.{fmt}"
    if fmt == "xlsx":
        return _xlsx(stmt), name
    return _csv(stmt), name


def _csv(stmt, headers=EXPORT_HEADERS, cells=_export_cells) -> Iterator[bytes]:
    """Rows of `stmt` as CSV (UTF-8 with BOM), `cells(row)` each; also used by content/quizzes.py."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(headers)
    for n, row in enumerate(db.session.execute(stmt), 1):
        writer.writerow([_csv_safe(v) for v in cells(row)])
        if n % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _xlsx(stmt, headers=EXPORT_HEADERS, cells=_export_cells, title: str = "Tiến độ") -> Iterator[bytes]:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)

    def cell(value):
        c = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            c.data_type = "s"  # text stays text, even when it starts with "="
        return c

    sheet.append(list(headers))
    for row in db.session.execute(stmt):
        sheet.append([cell(v) for v in cells(row)])
    with tempfile.TemporaryFile() as f:
        workbook.save(f)
        f.seek(0)
        while chunk := f.read(64 * 1024):
            yield chunk


# --- overview and compliance ----------------------------------------------------------------------

def _reaching(unit: OrgUnit):
    """Ids of documents whose audience covers the unit or lies inside it."""
    return (select(DocumentAudience.document_id).join(OrgUnit, OrgUnit.id == DocumentAudience.org_unit_id)
            .where(or_(OrgUnit.id.in_([*unit.ancestor_ids, unit.id]), in_subtree(OrgUnit.path, unit.path))))


def overview(viewer: Member, org_unit_id: int) -> dict:
    """GET /org-units/{id}/overview: active documents that need acknowledging in the unit, overdue first."""
    unit = resolve_unit(viewer, org_unit_id)
    now = utcnow()
    zone = local_zone()
    docs = db.session.scalars(select(Document).where(
        is_out(now), Document.requires_ack.is_(True), Document.id.in_(_reaching(unit)))).all()
    out = []
    for doc in docs:
        figures = unit_progress(doc, unit, now, children=False)
        deadline = as_utc(doc.deadline)
        days_left = (deadline.astimezone(zone).date() - now.astimezone(zone).date()).days
        total = figures["total"]
        done = figures["acknowledged"] + figures["exempt"]
        out.append({
            "document": {"id": doc.id, "kind": doc.kind, "number": doc.number, "title": doc.title,
                         "published_at": doc.published_at, "deadline": doc.deadline, "version": doc.version},
            **{k: figures[k] for k in ("total", "acknowledged", "opened", "pending", "overdue", "exempt")},
            "percent": round(100 * done / total, 1) if total else 100.0,
            "days_left": days_left,
        })
    out.sort(key=lambda d: (d["overdue"] == 0, d["days_left"], -d["pending"]))
    return {"org_unit": unit.brief(), "items": out}


def compliance(viewer: Member, org_unit_id: int, *, limit: int = 20, cursor: str | None = None
               ) -> tuple[dict, str | None]:
    """GET /org-units/{id}/compliance: closed directives (deadline passed), latest first, and for each
    whether the unit and each of its children reached every member by the deadline."""
    unit = resolve_unit(viewer, org_unit_id)
    stmt = select(Document).where(Document.closed_at.is_not(None), Document.status == Status.PUBLISHED.value,
                                  Document.id.in_(_reaching(unit)))
    if cursor:
        at, last_id = decode_cursor(cursor, datetime, int)
        stmt = stmt.where(or_(Document.deadline < at, and_(Document.deadline == at, Document.id < last_id)))
    docs = list(db.session.scalars(stmt.order_by(Document.deadline.desc(), Document.id.desc()).limit(limit + 1)))
    docs, next_cursor = page(docs, limit, key=lambda d: (d.deadline, d.id))
    items = []
    for doc in docs:
        figures = unit_compliance(doc, unit)
        children = figures.pop("children")
        figures.pop("org_unit")
        items.append({
            "document": {"id": doc.id, "kind": doc.kind, "number": doc.number, "title": doc.title,
                         "published_at": doc.published_at, "deadline": doc.deadline, "version": doc.version},
            **figures,
            "units_reached": sum(1 for c in children if c["reached"]), "units_total": len(children),
            "children": children,
        })
    return {"org_unit": unit.brief(), "items": items}, next_cursor
