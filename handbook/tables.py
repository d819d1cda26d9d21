"""Small report tables (a header and rows) as CSV that Excel opens correctly (UTF-8 with BOM) or XLSX."""
from __future__ import annotations

import csv
import io

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def download(body, fmt: str, filename: str):
    """A CSV or XLSX file as an attachment that no cache keeps: `body` is the file's bytes, or an iterable
    of chunks streamed inside the request's context. The one place both faces build their exports."""
    from flask import Response, stream_with_context

    content = body if isinstance(body, bytes) else stream_with_context(body)
    response = Response(content, content_type=CONTENT_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def table_bytes(header: list[str], rows: list[list], fmt: str, title: str) -> bytes:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
        return "\ufeff".encode() + out.getvalue().encode()
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    sheet = wb.create_sheet(title[:31])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
