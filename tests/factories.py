"""Builders of real rows for tests (no mocks): units, members, roles, logins."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

from handbook.auth import hash_password
from handbook.extensions import db
from handbook.members import Member, RoleGrant
from handbook.orgunits import OrgUnit

PASSWORD = "mat-khau-123"


def unit(code: str, kind: str, parent: OrgUnit | None = None, name: str | None = None) -> OrgUnit:
    u = OrgUnit(code=code, name=name or f"Đơn vị {code}", kind=kind, parent_id=parent.id if parent else None,
                path=f"~{code}", depth=(parent.depth + 1) if parent else 0)
    db.session.add(u)
    db.session.flush()
    u.path = f"{parent.path if parent else '/'}{u.id}/"
    db.session.commit()
    return u


def member(card: str, org_unit: OrgUnit, *, name: str = "Nguyễn Văn An", phone: str | None = None,
           password: str | None = PASSWORD, roles: list[tuple[str, OrgUnit]] = (), active: bool = True) -> Member:
    m = Member(card_number=card, full_name=name, phone=phone, org_unit_id=org_unit.id, active=active,
               password_hash=hash_password(password) if password else None)
    db.session.add(m)
    db.session.flush()
    for role, over in roles:
        db.session.add(RoleGrant(member_id=m.id, role=role, org_unit_id=over.id))
    db.session.commit()
    return m


def small_tree() -> dict[str, OrgUnit]:
    """City → 2 districts → grassroots (one with branches, one chi bộ cơ sở) → branches."""
    city = unit("HN", "city", name="Thành ủy Hà Nội")
    ba_dinh = unit("HN.BD", "upper", city, "Quận ủy Ba Đình")
    dong_da = unit("HN.DD", "upper", city, "Quận ủy Đống Đa")
    phuong = unit("HN.BD.DB", "grassroots", ba_dinh, "Đảng bộ phường Điện Biên")
    b1 = unit("HN.BD.DB.1", "branch", phuong, "Chi bộ Tổ dân phố số 1")
    b2 = unit("HN.BD.DB.2", "branch", phuong, "Chi bộ Tổ dân phố số 2")
    cbcs = unit("HN.DD.CB", "grassroots", dong_da, "Chi bộ cơ sở Trường THCS Láng Thượng")
    return {"city": city, "ba_dinh": ba_dinh, "dong_da": dong_da, "phuong": phuong, "b1": b1, "b2": b2,
            "cbcs": cbcs}


def login(client, username: str, password: str = PASSWORD, **headers):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password}, headers=headers)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def in_parallel(app, count: int, request) -> list[int]:
    """Release `count` threads at once, each sending `request(test_client)`; their status codes."""
    results: list[int] = []
    barrier = threading.Barrier(count)

    def run():
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            results.append(request(client).status_code)
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def document(owner: OrgUnit, audience: list[OrgUnit], *, title: str = "Chỉ thị về kỷ cương", number: str = "24-CT/TU",
             kind: str = "directive", status: str = "published", body_html: str = "<p>Nội dung</p>",
             summary: str = "", requires_ack: bool = True, roles: list[str] = (), created_by: Member | None = None):
    """A document row built directly (published now unless `status` says otherwise), indexed for search."""
    from datetime import timedelta

    from content import search
    from content.models import Document, DocumentAudience, roles_to_mask
    from handbook.timeutil import utcnow

    now = utcnow()
    doc = Document(kind=kind, number=number, title=title, summary=summary, body_html=body_html,
                   requires_ack=requires_ack, status=status, owner_unit_id=owner.id, roles_mask=roles_to_mask(roles),
                   created_by=created_by.id if created_by else None,
                   published_at=now if status in ("published", "withdrawn") else None,
                   deadline=now + timedelta(days=14) if requires_ack and status == "published" else None,
                   sync_at=now)
    doc.audience = [DocumentAudience(org_unit_id=u.id) for u in audience]
    db.session.add(doc)
    db.session.flush()
    search.index_document(doc)
    db.session.commit()
    return doc


def executed_statements(run) -> list[str]:
    """The SQL statements the database engine executed while `run()` ran."""
    return [statement for statement, _ in executed_with_parameters(run)]


def cursor_events(run) -> list[tuple[str, str, object, bool, bool]]:
    """(kind, statement, parameters, executemany, from_the_engine) of each cursor event the database engine
    dispatched while `run()` ran, as a listener with the events' whole signature (SQLAlchemy's
    ConnectionEvents) gets them: kind is "before" or "after"; from_the_engine says the event came with an
    SQLAlchemy connection and a DB-API cursor (what a listener reads timings, logs and counts from)."""
    from sqlalchemy import Connection, event

    from handbook.extensions import db

    seen: list[tuple[str, str, object, bool, bool]] = []

    def keep(kind, conn, cursor, statement, parameters, executemany):
        seen.append((kind, statement, parameters, executemany,
                     isinstance(conn, Connection) and callable(getattr(cursor, "execute", None))))

    def before(conn, cursor, statement, parameters, context, executemany):
        keep("before", conn, cursor, statement, parameters, executemany)

    def after(conn, cursor, statement, parameters, context, executemany):
        keep("after", conn, cursor, statement, parameters, executemany)

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    return seen


def executed_with_parameters(run) -> list[tuple[str, object]]:
    """(statement, parameters) of each statement the database engine executed while `run()` ran: the
    parameters as the driver got them, so that a test can EXPLAIN the very statement."""
    return [(statement, parameters) for kind, statement, parameters, *_ in cursor_events(run) if kind == "before"]


@contextmanager
def in_server_zone(zone: str):
    """The process's own time zone is `zone` in the block (TZ, time.tzset), as on a server elsewhere than
    Hà Nội; the previous one is put back after."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def raw_pg_url() -> str:
    """The test database's URL for psycopg itself (another connection than the app's, e.g. to hold a lock)."""
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def answered_while_row_held(app, request, table: str, row_id: int, lock: str, *, wait: float) -> tuple[bool, object]:
    """PostgreSQL row locks, seen from a request: another transaction holds row `row_id` of `table` with
    `lock` (FOR UPDATE, FOR NO KEY UPDATE, FOR KEY SHARE ...) while `request(test_client)` runs in a thread.
    Did it answer within `wait` seconds (so it did not wait for the row), and what did it answer once the
    row was released?"""
    import psycopg

    url = raw_pg_url()
    db.session.commit()
    answers = []

    def run():
        with app.app_context():
            answers.append(request(app.test_client()))
            db.session.remove()

    with psycopg.connect(url) as holder:
        holder.execute(f"SELECT id FROM {table} WHERE id = %s {lock}", (row_id,))
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=wait)
        answered = not thread.is_alive()
        holder.rollback()
    thread.join(timeout=30)
    assert not thread.is_alive() and answers, "the request never finished"
    return answered, answers[0]
