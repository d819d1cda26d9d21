"""Large imports run as background jobs (handbook/importjobs.py): the console hands a file over
CONSOLE_IMPORT_MAX_BYTES to a worker (here, as in the embedded default, a thread of the app), its page
shows the rows read while it runs and keeps the result: the counts, or every bad row with nothing written."""
from __future__ import annotations

import re
import time

import pytest
import redis
from sqlalchemy import func, select

from handbook.audit import AuditEntry
from handbook.extensions import db
from handbook.importjobs import ImportJob
from handbook.members import Member
from tests.conftest import REDIS_URL, make_app
from tests.console_helpers import assert_page, browser
from tests.test_push_worker import broker, fake, workers  # noqa: F401  (fixtures)
from tests.test_console import _upload, people, table_counts  # noqa: F401  (fixtures)

HEADER = "card_number,full_name,phone,org_unit_code,roles,password\n"


@pytest.fixture()
def admin(app, people, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "CONSOLE_IMPORT_MAX_BYTES", 1000)   # anything larger: a job
    return browser(app, "A1")


def members_file(rows: int, bad_lines: dict[int, str] | None = None) -> bytes:
    lines = [f"HN-J{n:06d},Nguyễn Văn Nhập {n},,HN.BD.DB.{1 + n % 2},,\n" for n in range(rows)]
    for line, text in (bad_lines or {}).items():
        lines[line - 2] = text
    return (HEADER + "".join(lines)).encode()


def follow_job(admin, response, timeout: float = 60.0) -> tuple[str, list[tuple[int, int]]]:
    """The job's page until it has finished; the (rows read, rows) it showed on the way."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    assert re.fullmatch(r"/imports/\d+", location)
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = assert_page(admin.get(location))
        if 'http-equiv="refresh"' not in text:
            return text, seen
        match = re.search(r"Đã đọc (\d+) / (\d+) dòng", text)
        if match:
            seen.append((int(match.group(1)), int(match.group(2))))
        time.sleep(0.01)
    pytest.fail("the import job did not finish")


def test_a_large_file_with_bad_rows_ends_with_every_bad_row_listed_and_nothing_written(app, admin):
    content = members_file(3000, {5: "HN-JBAD1,Trần Sai,09xx,HN.BD.DB.1,,\n",
                                  2900: "HN-JBAD2,Lê Sai,,KHONG-CO,,\n"})
    before = {name: n for name, n in table_counts().items() if name not in ("audit_log", "import_jobs")}
    text, _seen = follow_job(admin, _upload(admin, "members", content, name="ha-noi.csv"))
    assert "2 dòng sai: chưa nhập gì." in text
    assert "<td>5</td><td>phone</td>" in text and "<td>2900</td><td>org_unit_code</td>" in text
    assert "Không có đơn vị mã &#34;KHONG-CO&#34;." in text
    after = {name: n for name, n in table_counts().items() if name not in ("audit_log", "import_jobs")}
    assert after == before
    job = db.session.scalars(select(ImportJob)).one()
    assert (job.state, job.data, job.rows_total) == ("done", None, 3000)   # the file is not kept
    # Kept for later: the imports page lists it, in English too.
    assert "ha-noi.csv" in assert_page(admin.get("/imports"))
    admin.post("/language", data={"lang": "en", "csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', admin.get("/imports").get_data(as_text=True)).group(1)})
    assert "No unit with code &#34;KHONG-CO&#34;." in assert_page(admin.get(f"/imports/{job.id}"))


def test_a_large_good_file_imports_with_its_progress_shown(app, admin):
    content = members_file(12000)
    text, seen = follow_job(admin, _upload(admin, "members", content))
    assert "Đã nhập 12000 dòng: 12000 mới" in text
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.card_number.like("HN-J%"))) \
        == 12000
    assert any(0 < done < total == 12000 for done, total in seen), seen   # seen part-way
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"import.queued", "import.members"} <= actions


def test_only_a_root_admin_sees_or_starts_import_jobs(app, admin, tree):
    from tests.factories import member

    content = members_file(30)
    text, _ = follow_job(admin, _upload(admin, "members", content))
    job_id = db.session.scalar(select(ImportJob.id))
    member("A9", tree["dong_da"], name="Quản trị Đống Đa", roles=[("admin", tree["dong_da"])])
    for card in ("A9", "S1"):
        other = browser(app, card)
        assert_page(other.get(f"/imports/{job_id}"), 403)
        assert_page(_upload(other, "members", content), 403)
    assert_page(admin.get("/imports/99999"), 404)
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_with_a_broker_the_import_job_runs_on_a_celery_worker(app, people, database_url, broker, workers):  # noqa: F811
    """Production's way: the console queues the job through Redis and a separate `celery worker` process
    (not a thread of the app) imports it; the page follows it to its result. Until a worker is there,
    nothing imports it."""
    producer = make_app(database_url, REDIS_URL=REDIS_URL, CELERY_QUEUE=broker, CONSOLE_IMPORT_MAX_BYTES=1000)
    workers.env["INSTANCE_PATH"] = producer.instance_path     # where SQLite's progress file is read
    with producer.app_context():
        admin = browser(producer, "A1")
        response = _upload(admin, "members", members_file(3000))
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        time.sleep(1.5)
        db.session.expire_all()
        job = db.session.scalars(select(ImportJob)).one()
        assert (job.state, job.started_at) == ("queued", None)    # no thread of the app took it
        assert redis.Redis.from_url(REDIS_URL).llen(broker) == 1  # it waits in the queue
        workers.start(concurrency=1)
        text, _seen = follow_job(admin, response)
        assert "Đã nhập 3000 dòng: 3000 mới" in text
        db.session.expire_all()
        assert db.session.scalar(select(func.count()).select_from(Member)
                                 .where(Member.card_number.like("HN-J%"))) == 3000
        job = db.session.scalars(select(ImportJob)).one()
        assert (job.state, job.data, job.rows_done) == ("done", None, 3000)
        assert "Traceback" not in workers.logs()
        db.session.remove()
