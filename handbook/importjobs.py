"""Imports of large files as background jobs: the same domain imports (`handbook.imports`), run on a
Celery worker (or, without a broker, on a thread of the process that took the upload, as the embedded
push worker does), with their progress and their result kept for later viewing.

- `start` keeps the uploaded bytes in an `import_jobs` row (so a worker on another machine can read
  them), audits `import.queued` and hands the job id to Celery (`handbook.import_job`) or to a thread.
- `run` claims the job (queued → running, atomically: a task delivered twice runs once; a job left
  running by a worker that died is taken again after STALE), imports, and keeps the result (the
  counts, or every bad row as line, column, code and parameters; the reasons are worded when shown, in
  the reader's language) and drops the bytes. The import itself is all or nothing, as from the CLI.
- Progress: rows read so far, out of the file's rows (counted up front). The import holds its
  transaction open to the end, so progress is written beside it: on PostgreSQL by a connection of its
  own into the job's row; on SQLite (one writer at a time, one machine) into a small file in the
  instance folder, which every process of that machine reads.
- Who: an admin over a root unit (`permissions.can_import`), like the imports in the console.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path

from celery import shared_task
from flask import current_app
from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from handbook import audit, imports
from handbook.extensions import db
from handbook.members import Member
from handbook.permissions import can_import, forbidden, not_found
from handbook.timeutil import UTCDateTime, as_utc, utcnow

log = logging.getLogger("handbook.imports")

IMPORTERS = {"org_units": imports.import_org_units, "members": imports.import_members}
STALE = timedelta(hours=1)      # a job still "running" this long after it started lost its worker
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class ImportJob(db.Model):
    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)          # the file, until the job has run
    result: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _count_rows(data: bytes, xlsx: bool) -> int | None:
    """Data rows in the file (the header aside), for the progress bar; None when it cannot tell."""
    if not xlsx:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return max(0, lines - 1)
    try:
        import io

        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(data), read_only=True)
        rows = book.worksheets[0].max_row
        book.close()
        return max(0, rows - 1) if rows else None
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the import itself
        return None


def start(actor: Member, kind: str, filename: str, data: bytes) -> ImportJob:
    """Queue an import of `data` (a CSV or XLSX file) and hand it to a worker."""
    if not can_import(actor):
        raise forbidden()
    if kind not in IMPORTERS:
        raise ValueError(kind)
    job = ImportJob(actor_id=actor.id, kind=kind, filename=os.path.basename(filename)[:255] or "import",
                    size=len(data), data=data, rows_total=_count_rows(data, data[:4] == b"PK\x03\x04"))
    db.session.add(job)
    db.session.flush()
    audit.record("import.queued", actor_id=actor.id, target_type="import_job", target_id=job.id, kind=kind,
                 filename=job.filename, size=job.size)
    db.session.commit()
    _dispatch(job.id)
    return job


def _broker() -> str | None:
    return current_app.config.get("CELERY_BROKER_URL") or current_app.config.get("REDIS_URL")


def _dispatch(job_id: int) -> None:
    celery = current_app.extensions.get("celery")
    if _broker() and celery is not None:
        celery.send_task("handbook.import_job", args=[job_id])
        return
    app = current_app._get_current_object()

    def work() -> None:
        with app.app_context():
            try:
                run(job_id)
            finally:
                db.session.remove()

    threading.Thread(target=work, name=f"import-job-{job_id}", daemon=True).start()


@shared_task(name="handbook.import_job")
def import_job_task(job_id: int) -> None:
    run(job_id)


# --- running ---------------------------------------------------------------------------------------------

def _progress_file(job_id: int) -> Path:
    return Path(current_app.instance_path) / "import-jobs" / f"{job_id}.json"


def _sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def _reporter(job_id: int):
    """progress(rows) → kept where other processes see it while the import's transaction is open."""
    if _sqlite():
        path = _progress_file(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)

        def to_file(rows: int) -> None:
            spare = path.with_suffix(".tmp")
            spare.write_text(json.dumps({"rows_done": rows}))
            spare.replace(path)
        return to_file

    def to_row(rows: int) -> None:
        with db.engine.begin() as connection:   # a connection of its own, committed at once
            connection.execute(update(ImportJob).where(ImportJob.id == job_id).values(rows_done=rows))
    return to_row


def run(job_id: int) -> ImportJob | None:
    """Claim the job and import its file; None when another worker has it (or it has run)."""
    now = utcnow()
    claimed = db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.data.is_not(None),
                                (ImportJob.state == QUEUED)
                                | ((ImportJob.state == RUNNING) & (ImportJob.started_at < now - STALE)))
        .values(state=RUNNING, started_at=now, rows_done=0).execution_options(synchronize_session=False))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    job = db.session.get(ImportJob, job_id, populate_existing=True)
    kind, actor_id = job.kind, job.actor_id
    suffix = ".xlsx" if job.data[:4] == b"PK\x03\x04" else ".csv"
    with tempfile.NamedTemporaryFile(prefix="handbook-import-", suffix=suffix) as spool:
        spool.write(job.data)
        spool.flush()
        db.session.expunge(job)   # the import owns the session (it commits or rolls back)
        try:
            report = IMPORTERS[kind](spool.name, actor_id=actor_id, progress=_reporter(job_id))
        except Exception:
            db.session.rollback()
            log.exception("import job %s failed", job_id)
            _finish(job_id, FAILED, {"ok": False, "failed": True, "errors": []}, None)
            raise
    result = {"ok": report.ok, "rows": report.rows, "created": report.created, "updated": report.updated,
              "unchanged": report.unchanged, "transfers": report.transfers,
              "roles_granted": report.roles_granted, "roles_revoked": report.roles_revoked,
              "seconds": round(report.seconds, 1),
              "errors": [{"line": e.line, "column": e.column, "code": e.code, "params": e.params}
                         for e in report.errors]}
    return _finish(job_id, DONE, result, report.rows)


def _finish(job_id: int, state: str, result: dict, rows: int | None) -> ImportJob:
    values = {"state": state, "result": result, "data": None, "finished_at": utcnow()}
    if rows is not None:
        values["rows_done"] = rows
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    if _sqlite():
        _progress_file(job_id).unlink(missing_ok=True)
    return db.session.get(ImportJob, job_id, populate_existing=True)


# --- reading ---------------------------------------------------------------------------------------------

def view(job: ImportJob, language: str = "vi") -> dict:
    """The job as pages show it: state, progress (rows read, out of the file's rows), the result with
    each bad row's reason in `language`."""
    rows_done = job.rows_done
    if job.state == RUNNING and _sqlite():
        try:
            rows_done = json.loads(_progress_file(job.id).read_text())["rows_done"]
        except (OSError, ValueError, KeyError):
            pass
    total = job.rows_total
    percent = 100.0 if job.state in (DONE, FAILED) else (
        round(min(99.0, 100 * rows_done / total), 1) if total else 0.0)
    result = dict(job.result or {})
    if result.get("errors"):
        result["errors"] = [{"line": e["line"], "column": e["column"],
                             "reason": imports.RowError(e["line"], e["column"], e["code"], e["params"]).reason(language)}
                            for e in result["errors"]]
    return {"id": job.id, "kind": job.kind, "filename": job.filename, "size": job.size, "state": job.state,
            "rows_total": total, "rows_done": rows_done, "percent": percent, "result": result or None,
            "created_at": as_utc(job.created_at), "started_at": job.started_at, "finished_at": job.finished_at,
            "finished": job.state in (DONE, FAILED)}


def job_for(viewer: Member, job_id: int) -> ImportJob:
    if not can_import(viewer):
        raise forbidden()
    job = db.session.get(ImportJob, job_id, populate_existing=True)
    if job is None:
        raise not_found()
    return job


def recent(viewer: Member, limit: int = 10) -> list[ImportJob]:
    if not can_import(viewer):
        raise forbidden()
    return list(db.session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))
