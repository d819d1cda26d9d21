"""The monthly meeting roll-up's counters (meeting_month_counters, content/meetings.py): kept by the close,
they must always equal a recount from the closed meetings, and the roll-up read from them must equal a
recount from the meetings and the org tree: after random closes across branches and months, concurrent
closes of one unit, a unit moving in the tree, a chi bộ cơ sở that gets branches under it, and the
migration's backfill. Real HTTP on the real app, SQLite and PostgreSQL.
"""
from __future__ import annotations

import queue
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text, update

from content import meetings
from content.models import Meeting, MeetingMonthCounter
from handbook.extensions import db
from handbook.members import Member
from handbook.orgunits import OrgUnit
from tests.factories import in_parallel, unit
from tests.test_acknowledgements import API, ZONE
from tests.test_meetings import _hold, close, schedule

RUNNERS = {"b1": ("S1", ["M1", "M2", "S1", "CB"]), "b2": ("S2", ["M3", "M4", "S2", "BT"]),
           "cbcs": ("SD", ["M5", "M6", "SD", "CD"])}


def months_ago(n: int) -> datetime:
    """The first day (local) of the month `n` months before this one."""
    first = datetime.now(UTC).astimezone(ZONE).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(n):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


# --- recounts, written out from the raw rows ---------------------------------------------------------

def recount_rows() -> dict[tuple[int, int], tuple]:
    """(unit, month) → (meetings, regular, invited, present, l1, l2, l3) from the closed meetings."""
    out: dict[tuple[int, int], list] = {}
    for m, path in db.session.execute(select(Meeting, OrgUnit.path).join(OrgUnit, OrgUnit.id == Meeting.org_unit_id)
                                      .where(Meeting.status == "closed")):
        local = m.starts_at.astimezone(ZONE)
        ids = [int(p) for p in path.strip("/").split("/")] + [None, None, None]
        row = out.setdefault((m.org_unit_id, local.year * 100 + local.month), [0, 0, 0, 0, *ids[1:4]])
        row[0] += 1
        row[1] += m.kind == "regular"
        row[2] += m.invited
        row[3] += m.present
    return {k: tuple(v) for k, v in out.items()}


def counter_rows() -> dict[tuple[int, int], tuple]:
    return {(r.org_unit_id, r.month): (r.meetings, r.regular, r.invited, r.present, r.l1_id, r.l2_id, r.l3_id)
            for r in db.session.scalars(select(MeetingMonthCounter))}


def recount_stats(root: OrgUnit, month: str) -> dict:
    """The roll-up of `root` for `month` the slow way: every unit and every closed meeting in Python."""
    db.session.expire_all()
    units = list(db.session.scalars(select(OrgUnit)))
    parents = {u.parent_id for u in units}
    holders = {u.id for u in units if u.kind == "branch" or (u.kind == "grassroots" and u.id not in parents)}
    year, number = (int(p) for p in month.split("-"))
    held = [m for m in db.session.scalars(select(Meeting).where(Meeting.status == "closed"))
            if (m.starts_at.astimezone(ZONE).year, m.starts_at.astimezone(ZONE).month) == (year, number)]

    def figures(top: OrgUnit) -> tuple:
        inside = {u.id for u in units if u.path.startswith(top.path)}
        mine = [m for m in held if m.org_unit_id in inside]
        regular = {m.org_unit_id for m in mine if m.kind == "regular"} & holders
        invited, present = sum(m.invited for m in mine), sum(m.present for m in mine)
        return (len(inside & holders), len(regular), len(mine),
                round(present / invited, 4) if invited else None)

    children = {u.code: figures(u) for u in units if u.parent_id == root.id}
    return {"total": figures(root), "children": {c: f for c, f in children.items() if f[0] or f[2]}}


def assert_roll_up_equals_recount(api, card: str, root: OrgUnit, month: str) -> None:
    got = api.client.get(f"{API}/org-units/{root.id}/meetings/stats", query_string={"month": month},
                         headers=api.auth(card))
    assert got.status_code == 200, got.get_data(as_text=True)
    got = got.json
    want = recount_stats(root, month)
    shape = lambda f: (f["branches"], f["branches_with_regular_meeting"], f["meetings"], f["attendance_rate"])  # noqa: E731
    assert shape(got) == want["total"], (root.code, month)
    assert {c["org_unit"]["code"]: shape(c) for c in got["children"]} == want["children"], (root.code, month)


# --- the property: random closes ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [3, 11])
def test_counters_equal_a_recount_after_random_closes(api, tree, seed):
    rng = random.Random(seed)
    months = [months_ago(n) for n in (1, 2, 3)]
    for _ in range(10):
        where = rng.choice(["b1", "b2", "cbcs", "phuong"])
        if where == "phuong":     # a thematic meeting of a grassroots unit's whole subtree (no members itself)
            by, cards, kind = "CB", RUNNERS["b1"][1] + RUNNERS["b2"][1], "thematic"
        else:
            (by, cards), kind = RUNNERS[where], rng.choice(["regular", "regular", "thematic", "extraordinary"])
        when = rng.choice(months) + timedelta(days=rng.randrange(27), hours=8)
        _hold(api, where, by, kind, rng.sample(cards, rng.randrange(len(cards) + 1)), when)
        assert counter_rows() == recount_rows()
        # Read after every close: a roll-up kept from before the close is not answered again.
        assert_roll_up_equals_recount(api, "BT", tree["city"], when.strftime("%Y-%m"))
    for first in months:
        month = first.strftime("%Y-%m")
        for root, card in (("city", "BT"), ("ba_dinh", "CB"), ("dong_da", "CD"), ("phuong", "CB"), ("b1", "S1"),
                           ("cbcs", "SD")):
            assert_roll_up_equals_recount(api, card, tree[root], month)
    # Rebuilding from the meetings (the demo's path) finds what the closes kept.
    kept = counter_rows()
    meetings.recount_month_counters()
    db.session.commit()
    assert counter_rows() == kept


def test_concurrent_closes_of_one_units_meetings_count_each_once(backend, app, api, tree):
    """Six meetings of b1 (a directive on each agenda, so each close also briefs) closed at once: every
    close adds to the same counter row, after its briefings' locks; no deadlock, no lost update."""
    doc = api.publish("ba_dinh")
    ids = []
    for _ in range(6):
        meeting = schedule(api, "b1", "S1", agenda=[{"title": "Quán triệt", "document_id": doc}])
        ids.append(meeting["id"])
    now = datetime.now(UTC)
    db.session.execute(update(Meeting).where(Meeting.id.in_(ids)).values(
        starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)))
    db.session.commit()
    deadlocks = lambda: db.session.execute(text(  # noqa: E731
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")).scalar()
    before = deadlocks() if backend == "postgresql" else 0
    auth = api.auth("S1")
    pending = queue.Queue()
    for meeting_id in ids:
        pending.put(meeting_id)
    statuses = in_parallel(app, 6, lambda c: c.post(f"{API}/meetings/{pending.get()}/close", headers=auth))
    assert statuses == [200] * 6
    db.session.expire_all()
    month = meetings.month_of(now)
    assert counter_rows()[(tree["b1"].id, month)][:4] == (6, 6, 24, 0)
    assert counter_rows() == recount_rows()
    if backend == "postgresql":
        assert deadlocks() == before
    # Closing again changes nothing.
    assert close(api, ids[0]).status_code == 200
    assert counter_rows()[(tree["b1"].id, month)][:4] == (6, 6, 24, 0)


# --- the tree changes under the counters ---------------------------------------------------------------

def test_a_branch_moving_to_another_district_takes_its_meetings_along(api, tree, tmp_path):
    from handbook.imports import import_org_units
    from tests.test_imports import UNIT_HEADER, write_csv

    first = months_ago(1)
    month = first.strftime("%Y-%m")
    _hold(api, "b2", "S2", "regular", ["M3"], first + timedelta(days=3, hours=8))
    _hold(api, "b1", "S1", "regular", ["M1", "M2"], first + timedelta(days=4, hours=8))
    assert_roll_up_equals_recount(api, "BT", tree["city"], month)       # (indexes the tree as it is)
    unit("HN.DD.P2", "grassroots", tree["dong_da"], "Đảng bộ phường Láng Hạ")
    db.session.commit()
    report = import_org_units(write_csv(tmp_path, "move.csv", UNIT_HEADER,
                                        [["HN.BD.DB.2", "Chi bộ Tổ dân phố số 2", "branch", "HN.DD.P2"]]))
    assert not report.errors, report.errors
    db.session.expire_all()
    b2 = db.session.get(OrgUnit, tree["b2"].id)
    assert b2.path.startswith(tree["dong_da"].path)
    assert counter_rows() == recount_rows()            # l1-l3 follow the new path
    stats = api.client.get(f"{API}/org-units/{tree['city'].id}/meetings/stats", query_string={"month": month},
                           headers=api.auth("BT")).json
    children = {c["org_unit"]["code"]: (c["branches"], c["branches_with_regular_meeting"], c["meetings"])
                for c in stats["children"]}
    assert children == {"HN.BD": (1, 1, 1), "HN.DD": (2, 1, 1)}
    for root, card in (("city", "BT"), ("ba_dinh", "CB"), ("dong_da", "CD")):
        assert_roll_up_equals_recount(api, card, tree[root], month)


def test_a_chi_bo_co_so_that_gets_branches_no_longer_counts_as_a_branch(api, tree, tmp_path):
    """cbcs held its regular meeting, then lost its members and got a branch under it: it holds no
    members now, so the month counts the new branch (without a meeting) and not cbcs's meeting as a
    branch's regular one; the meeting itself still counts."""
    from handbook.imports import import_org_units
    from tests.test_imports import UNIT_HEADER, write_csv

    first = months_ago(1)
    month = first.strftime("%Y-%m")
    _hold(api, "cbcs", "SD", "regular", ["M5"], first + timedelta(days=3, hours=8))
    before = api.client.get(f"{API}/org-units/{tree['dong_da'].id}/meetings/stats", query_string={"month": month},
                            headers=api.auth("CD")).json
    assert (before["branches"], before["branches_with_regular_meeting"], before["meetings"]) == (1, 1, 1)
    db.session.execute(update(Member).where(Member.org_unit_id == tree["cbcs"].id).values(active=False))
    db.session.commit()
    report = import_org_units(write_csv(tmp_path, "split.csv", UNIT_HEADER,
                                        [["HN.DD.CB.1", "Chi bộ Tổ 1", "branch", "HN.DD.CB"]]))
    assert not report.errors, report.errors
    after = api.client.get(f"{API}/org-units/{tree['dong_da'].id}/meetings/stats", query_string={"month": month},
                           headers=api.auth("BT")).json
    assert (after["branches"], after["branches_with_regular_meeting"], after["meetings"]) == (1, 0, 1)
    assert [b["code"] for b in after["overdue_branches"]] == ["HN.DD.CB.1"]
    for root in ("city", "dong_da", "cbcs"):
        assert_roll_up_equals_recount(api, "BT", tree[root], month)


# --- the migration's backfill ---------------------------------------------------------------------------

def test_the_migration_backfills_the_counters_from_closed_meetings(scratch_url):
    """Meetings closed before 0015 are counted in the local month of their start (00:30 local on 1 October
    is still September in UTC); scheduled and cancelled ones are not counted."""
    from flask_migrate import downgrade, upgrade

    from tests.conftest import make_app

    app = make_app(scratch_url)
    with app.app_context():
        try:
            upgrade(revision="0014_refresh_grace")
            conn = db.session
            conn.execute(text("INSERT INTO org_units (id, code, name, kind, parent_id, path, depth, created_at, "
                              "updated_at) VALUES (1, 'HN', 'HN', 'city', NULL, '/1/', 0, :t, :t), "
                              "(2, 'HN.BD', 'BD', 'upper', 1, '/1/2/', 1, :t, :t), "
                              "(3, 'HN.BD.P', 'P', 'grassroots', 2, '/1/2/3/', 2, :t, :t), "
                              "(4, 'HN.BD.P.1', 'B1', 'branch', 3, '/1/2/3/4/', 3, :t, :t)"),
                         {"t": datetime(2026, 1, 1, tzinfo=UTC)})
            local = [(datetime(2026, 10, 1, 0, 30, tzinfo=ZONE), "regular", "closed", 10, 8),
                     (datetime(2026, 10, 20, 19, 30, tzinfo=ZONE), "thematic", "closed", 10, 6),
                     (datetime(2026, 9, 30, 23, 30, tzinfo=ZONE), "regular", "closed", 9, 9),
                     (datetime(2026, 10, 25, 19, 30, tzinfo=ZONE), "regular", "cancelled", 0, 0),
                     (datetime(2026, 10, 26, 19, 30, tzinfo=ZONE), "regular", "scheduled", 0, 0)]
            for i, (starts, kind, status, invited, present) in enumerate(local, start=1):
                conn.execute(text(
                    "INSERT INTO meetings (id, org_unit_id, kind, title, status, starts_at, ends_at, place, "
                    "created_at, updated_at, code_secret, invited, present, excused, unexcused) VALUES "
                    "(:id, 4, :kind, 't', :status, :s, :s, 'p', :s, :s, 'x', :inv, :pre, 0, 0)"),
                    {"id": i, "kind": kind, "status": status, "s": starts.astimezone(UTC), "inv": invited,
                     "pre": present})
            conn.commit()
            upgrade(revision="0015_meeting_month_stats")
            rows = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(text(
                "SELECT org_unit_id, month, l1_id, l2_id, l3_id, meetings, regular, invited, present "
                "FROM meeting_month_counters"))}
            assert rows == {(4, 202610): (2, 3, 4, 2, 1, 20, 14), (4, 202609): (2, 3, 4, 1, 1, 9, 9)}
            assert dict(conn.execute(text("SELECT month, version FROM meeting_month_versions")).all()) == {
                202609: 1, 202610: 1}
            conn.commit()
            downgrade(revision="0014_refresh_grace")
            assert not {"meeting_month_counters", "meeting_month_versions"} & set(inspect(db.engine).get_table_names())
        finally:
            db.session.remove()
            db.engine.dispose()


from tests.test_migrations import scratch_url  # noqa: E402,F401 (fixture)


def test_the_recount_command_repairs_damaged_counters(app, api, tree):
    """`flask handbook recount-meetings` rebuilds the counters from the closed meetings (a repair)."""
    _hold(api, "b1", "S1", "regular", ["M1", "S1"], months_ago(1) + timedelta(days=3, hours=8))
    _hold(api, "b2", "S2", "thematic", ["M3"], months_ago(2) + timedelta(days=9, hours=8))
    kept = counter_rows()
    assert len(kept) == 2 and kept == recount_rows()
    db.session.execute(update(MeetingMonthCounter).values(meetings=99, present=0))
    db.session.commit()
    assert counter_rows() != kept
    result = app.test_cli_runner().invoke(args=["handbook", "recount-meetings"])
    assert result.exit_code == 0, result.output
    assert "Recounted: 2 meeting month rows written." in result.output
    db.session.expire_all()
    assert counter_rows() == kept
