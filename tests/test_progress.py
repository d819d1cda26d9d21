"""Progress (API.md "Following up"): per-unit counters summed up the tree, the member list, scope,
transfers and new members through the member import, counters versus a recount from the raw rows
(a Hypothesis state machine over the HTTP API), `handbook recount`, concurrency (PostgreSQL) and a
unit's overview.

The world is the one of tests/test_acknowledgements.py: 4 members in each of b1, b2 (phường Điện Biên,
Ba Đình) and cbcs (a chi bộ cơ sở of Đống Đa).
"""
from __future__ import annotations

import csv
import io
import itertools
import queue
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text, update

from content.models import Document, ProgressCounter, Receipt
from handbook.extensions import db, limiter
from handbook.imports import import_members, import_org_units
from handbook.members import Member
from handbook.orgunits import OrgUnit
from tests.factories import PASSWORD, in_parallel, member, raw_pg_url, small_tree
from tests.test_acknowledgements import (
    API,
    WORLD_MEMBERS,
    ZONE,
    Api,
    assert_counters_exact,
    counter,
    expected_counters,
    expected_state,
    local_today,
    make_world,
    receipt,
    stored_counters,
)
from tests.test_errors import assert_problem

FIGURES = ("total", "acknowledged", "opened", "pending", "overdue", "exempt")


def figures(body: dict) -> tuple:
    return tuple(body[k] for k in FIGURES)


def children(body: dict) -> dict[str, tuple]:
    return {c["org_unit"]["code"]: figures(c) for c in body["children"]}


def set_deadline(doc_id: int, when: datetime) -> None:
    db.session.get(Document, doc_id).deadline = when
    db.session.commit()


def write_members(tmp_path, name: str, rows: list[list[str]], header=("card_number", "full_name", "org_unit_code")):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue().encode())
    return str(path)


def imported(path: str):
    report = import_members(path)
    assert report.ok, [(e.line, e.column, e.code) for e in report.errors]
    return report


# --- totals and breakdown at every level ---------------------------------------------------------

def test_progress_at_every_level(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)          # b1
    api.open("M2", doc)            # b1
    api.brief("S2", doc, [api.id("M3")])   # b2
    api.exempt("S2", doc, [api.id("M4")])  # b2
    api.open("M5", doc)            # cbcs
    api.ack("M6", doc, 1)          # cbcs
    api.open("M6", doc)

    city = api.figures("BT", doc)  # default: BT's scope root, the city (the unit as the caller's token has it)
    assert city["org_unit"] == {"id": tree["city"].id, "code": tree["city"].code, "name": tree["city"].name,
                                "kind": tree["city"].kind}
    #                     total ack opened pending overdue exempt
    assert figures(city) == (12, 3, 2, 8, 0, 1)
    assert datetime.fromisoformat(city["deadline"]).utcoffset() == timedelta(hours=7)
    assert children(city) == {"HN.BD": (8, 2, 1, 5, 0, 1), "HN.DD": (4, 1, 1, 3, 0, 0)}

    district = api.figures("BT", doc, "ba_dinh")
    assert figures(district) == (8, 2, 1, 5, 0, 1)
    assert children(district) == {"HN.BD.DB": (8, 2, 1, 5, 0, 1)}

    grassroots = api.figures("BT", doc, "phuong")
    assert figures(grassroots) == (8, 2, 1, 5, 0, 1)
    assert children(grassroots) == {"HN.BD.DB.1": (4, 1, 1, 3, 0, 0), "HN.BD.DB.2": (4, 1, 0, 2, 0, 1)}
    assert [c["org_unit"]["kind"] for c in grassroots["children"]] == ["branch", "branch"]

    branch = api.figures("S1", doc)  # S1's default: their branch
    assert branch["org_unit"]["code"] == "HN.BD.DB.1"
    assert figures(branch) == (4, 1, 1, 3, 0, 0) and branch["children"] == []

    cbcs = api.figures("SD", doc)
    assert cbcs["org_unit"]["code"] == "HN.DD.CB"
    assert figures(cbcs) == (4, 1, 1, 3, 0, 0) and cbcs["children"] == []
    dong_da = api.figures("CD", doc)
    assert figures(dong_da) == (4, 1, 1, 3, 0, 0) and children(dong_da) == {"HN.DD.CB": (4, 1, 1, 3, 0, 0)}
    # A committee member over Ba Đình sees Ba Đình and below.
    assert figures(api.figures("CB", doc, "b2")) == (4, 1, 0, 2, 0, 1)
    assert_counters_exact()


def test_progress_through_a_sub_unit(api, tree):
    """grassroots → đảng bộ bộ phận (depth 3) → branch (depth 4): below the three level columns."""
    from tests.factories import unit

    sub = unit("HN.BD.DB.K", "sub", tree["phuong"], "Đảng bộ bộ phận khu dân cư số 3")
    deep = unit("HN.BD.DB.K.1", "branch", sub, "Chi bộ khu dân cư số 3A")
    member("K1", deep, name="Phan Văn Lộc")
    member("K2", deep, name="Tạ Thị Mai")
    member("KS", deep, name="Hồ Văn Nam", roles=[("secretary", sub)])
    doc = api.publish()
    api.ack("K1", doc, 1)
    api.open("K2", doc)
    assert children(api.figures("BT", doc, "phuong")) == {
        "HN.BD.DB.1": (4, 0, 0, 4, 0, 0), "HN.BD.DB.2": (4, 0, 0, 4, 0, 0), "HN.BD.DB.K": (3, 1, 1, 2, 0, 0)}
    at_sub = api.figures("KS", doc)
    assert at_sub["org_unit"]["code"] == "HN.BD.DB.K"
    assert figures(at_sub) == (3, 1, 1, 2, 0, 0) and children(at_sub) == {"HN.BD.DB.K.1": (3, 1, 1, 2, 0, 0)}
    at_branch = api.figures("KS", doc, deep.id)
    assert figures(at_branch) == (3, 1, 1, 2, 0, 0) and at_branch["children"] == []
    assert figures(api.figures("BT", doc)) == (15, 1, 1, 14, 0, 0)
    assert children(api.figures("BT", doc, "ba_dinh")) == {"HN.BD.DB": (11, 1, 1, 10, 0, 0)}
    assert_problem(api.progress("KS", doc, "b1"), 403, "forbidden")
    brief = api.brief("KS", doc, [api.id("K2"), api.id("M1")])
    assert [r["status"] for r in brief.json["results"]] == ["ok", "not_found"]
    assert sorted(r["member"]["card_number"] for r in api.all_members("KS", doc, limit=1)) == ["K1", "K2", "KS"]
    assert_counters_exact()


def test_a_missing_counter_row_is_rebuilt_by_the_next_change(api, tree):
    doc = api.publish()
    api.open("M5", doc)
    db.session.execute(ProgressCounter.__table__.delete().where(ProgressCounter.org_unit_id == tree["cbcs"].id))
    db.session.commit()
    assert api.ack("M6", doc, 1).status_code == 200
    assert counter(doc, tree["cbcs"]) == (4, 1, 1, 0)
    assert_counters_exact()


def test_progress_of_a_document_for_part_of_the_tree(api, tree):
    doc = api.publish("b1", "cbcs")
    city = api.figures("BT", doc)
    assert figures(city) == (8, 0, 0, 8, 0, 0)
    assert children(city) == {"HN.BD": (4, 0, 0, 4, 0, 0), "HN.DD": (4, 0, 0, 4, 0, 0)}
    assert children(api.figures("BT", doc, "phuong")) == {"HN.BD.DB.1": (4, 0, 0, 4, 0, 0)}
    # b2 gets nothing of it: 404 for its secretary (the document does not reach their unit).
    assert_problem(api.progress("S2", doc), 404, "not_found")
    assert_problem(api.members("S2", doc), 404, "not_found")
    # (Its publisher manages it, and may look anywhere in their scope: nobody there.)
    assert figures(api.figures("BT", doc, "b2")) == (0, 0, 0, 0, 0, 0)


def test_role_restricted_audience(api, tree):
    doc = api.publish("city", roles=["secretary"], title="Hướng dẫn dành cho bí thư chi bộ")
    assert figures(api.figures("BT", doc)) == (3, 0, 0, 3, 0, 0)  # S1, S2, SD
    api.ack("SD", doc, 1)
    assert children(api.figures("BT", doc)) == {"HN.BD": (2, 0, 0, 2, 0, 0), "HN.DD": (1, 1, 0, 0, 0, 0)}
    rows = api.all_members("BT", doc)
    assert sorted(r["member"]["card_number"] for r in rows) == ["S1", "S2", "SD"]
    assert_counters_exact()


def test_overdue(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    api.exempt("S2", doc, [api.id("M3")])
    assert api.figures("BT", doc)["overdue"] == 0
    assert api.members("BT", doc, state="overdue").json["items"] == []

    set_deadline(doc, datetime.now(UTC) - timedelta(hours=1))
    city = api.figures("BT", doc)
    assert figures(city) == (12, 1, 1, 10, 10, 1)
    assert children(city) == {"HN.BD": (8, 1, 1, 6, 6, 1), "HN.DD": (4, 0, 0, 4, 4, 0)}
    assert figures(api.figures("S1", doc)) == (4, 1, 1, 3, 3, 0)
    overdue = api.all_members("BT", doc, state="overdue", limit=3)
    assert len(overdue) == 10 and {r["state"] for r in overdue} == {"overdue"}
    assert "M1" not in {r["member"]["card_number"] for r in overdue}
    states = {r["member"]["card_number"]: r["state"] for r in api.all_members("BT", doc)}
    assert (states["M1"], states["M2"], states["M3"], states["M4"]) == ("acknowledged", "overdue", "exempt", "overdue")
    assert api.my("M2", doc)["state"] == "overdue"
    summary = api.client.get(f"{API}/me/summary", headers=api.auth("M2")).json
    assert (summary["pending"], summary["overdue"]) == (1, 1)

    # A material change gives a fresh deadline: nothing is overdue any more, everybody is pending.
    api.patch(doc, reack=True)
    assert figures(api.figures("BT", doc)) == (12, 0, 2, 11, 0, 1)
    assert_counters_exact()


def test_overdue_leaves_out_exactly_the_pending_members_whose_extension_runs_today(api, tree):
    """unit_progress past the deadline: every pending audience member of the unit's subtree is overdue but
    those whose extension of *this* document runs on the local day of `now` (an extension ending on the
    previous local day does not count; nor acknowledged or exempt members' extensions, nor extensions of
    another document or of members outside the unit). `now` is 20:00 UTC: already the next day in
    Hà Nội (UTC+7), so the UTC date and the local date differ."""
    from content.progress import unit_progress

    doc = api.publish()
    other = api.publish(title="Kế hoạch B")
    now = datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0)
    local_day = now.astimezone(ZONE).date()
    assert local_day != now.date()
    set_deadline(doc, now - timedelta(hours=1))
    assert api.ack("M1", doc, 1).status_code == 200
    assert api.exempt("S2", doc, [api.id("M3")]).status_code == 200
    for card in ("M2", "S1", "M4", "M6"):
        assert api.open(card, doc).status_code in (200, 204)
    assert api.open("M5", other).status_code in (200, 204)
    extensions = {  # (document, card): last local day of the extension
        (doc, "M1"): local_day + timedelta(days=3),    # acknowledged: not pending anyway
        (doc, "M3"): local_day + timedelta(days=3),    # exempt: not pending anyway
        (doc, "M2"): local_day,                        # runs today: not overdue
        (doc, "S1"): local_day + timedelta(days=2),    # runs too, in the same branch as M2
        (doc, "M4"): local_day - timedelta(days=1),    # ended yesterday (local), the UTC date of `now`
        (other, "M5"): local_day + timedelta(days=3),  # another document's extension
        (doc, "M6"): local_day + timedelta(days=1),    # runs, in Đống Đa (outside Ba Đình)
    }
    for (document_id, card), until in extensions.items():
        db.session.execute(update(Receipt).where(Receipt.document_id == document_id,
                                                 Receipt.member_id == api.id(card)).values(extended_until=until))
    db.session.commit()
    db.session.expire_all()
    # Pending: all 12 but M1 (acknowledged) and M3 (exempt); of them M2, S1 and M6 are extended today.
    overdue = {"city": 7, "ba_dinh": 4, "phuong": 4, "b1": 1, "b2": 3, "dong_da": 3, "cbcs": 3}
    document = db.session.get(Document, doc)
    for key, expected in overdue.items():
        body = unit_progress(document, tree[key], now)
        assert (key, body["pending"], body["overdue"]) == (key, body["total"] - body["acknowledged"]
                                                           - body["exempt"], expected)
        for child in body["children"]:
            code = next(k for k, u in tree.items() if u.id == child["org_unit"]["id"])
            assert (key, code, child["overdue"]) == (key, code, overdue.get(code, child["pending"]))
    assert unit_progress(document, tree["city"], now - timedelta(hours=2))["overdue"] == 0   # before the deadline
    # At the deadline itself nobody is overdue yet: an acknowledgement at that instant is in time (as
    # close_due's frozen figures count it).
    assert unit_progress(document, tree["city"], document.deadline)["overdue"] == 0


def test_children_are_listed_in_path_order_not_id_order(api, tree):
    """_breakdown lists a unit's children by path: with sibling ids 4, 8, 9 and 10 the paths sort as
    /…/10/, /…/4/, /…/8/, /…/9/ (ids would put 10 last)."""
    from content.progress import unit_progress
    from tests.factories import unit

    extra = [unit(f"HN.BD.X{i}", "branch", tree["ba_dinh"]) for i in range(3)]
    for i, u in enumerate(extra):
        member(f"X{i}", u)
    assert [u.id for u in extra] == [8, 9, 10]
    doc = api.publish()
    body = unit_progress(db.session.get(Document, doc), tree["ba_dinh"], datetime.now(UTC))
    listed = [c["org_unit"]["id"] for c in body["children"]]
    by_path = [u.id for u in sorted([tree["phuong"], *extra], key=lambda u: u.path)]
    assert listed == by_path == [10, tree["phuong"].id, 8, 9]


def test_pending_is_total_minus_acknowledged_minus_exempt(api, tree):
    doc = api.publish()
    for card in ("M1", "M3", "M5"):
        api.ack(card, doc, 1)
    api.exempt("BT", doc, [api.id("M2"), api.id("M6"), api.id("M1")], "Miễn sinh hoạt")
    for unit in (None, "ba_dinh", "dong_da", "phuong", "b1", "b2", "cbcs"):
        body = api.figures("BT", doc, unit)
        for row in [body, *body["children"]]:
            assert row["pending"] == row["total"] - row["acknowledged"] - row["exempt"]
            assert 0 <= row["opened"] <= row["pending"]
    assert figures(api.figures("BT", doc)) == (12, 3, 0, 7, 0, 2)


# --- the member list -------------------------------------------------------------------------------

def test_member_list_pending_first_filters_and_pagination(api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    api.brief("S2", doc, [api.id("M3")])
    api.exempt("SD", doc, [api.id("M5")], "Ốm")
    api.ack("CD", doc, 1)

    full = api.all_members("BT", doc)
    assert len(full) == 12 and len({r["member"]["id"] for r in full}) == 12
    states = [r["state"] for r in full]
    first_done = next(i for i, s in enumerate(states) if s not in ("new", "opened"))
    assert all(s in ("new", "opened") for s in states[:first_done])
    assert all(s not in ("new", "opened") for s in states[first_done:])  # pending first
    assert states.count("new") == 7 and states.count("opened") == 1
    for limit in (1, 2, 5, 7):
        walked = api.all_members("BT", doc, limit=limit)
        assert [r["member"]["id"] for r in walked] == [r["member"]["id"] for r in full]
    row = next(r for r in full if r["member"]["card_number"] == "M3")
    assert row["member"] == {"id": api.id("M3"), "card_number": "M3", "full_name": "Hoàng Văn Em",
                             "org_unit": tree["b2"].brief()}
    assert (row["state"], row["method"]) == ("acknowledged", "briefing") and row["acknowledged_at"]
    m1 = next(r for r in full if r["member"]["card_number"] == "M1")
    assert (m1["state"], m1["method"], m1["acknowledged_version"]) == ("acknowledged", "app", 1)
    assert next(r for r in full if r["member"]["card_number"] == "M4")["method"] is None

    expected = {"new": {"M4", "S1", "CB", "S2", "BT", "M6", "SD"}, "opened": {"M2"},
                "acknowledged": {"M1", "M3", "CD"}, "exempt": {"M5"}, "pending": {"M2", "M4", "S1", "CB", "S2",
                                                                                "BT", "M6", "SD"},
                "overdue": set()}
    for state, cards in expected.items():
        rows = api.all_members("BT", doc, state=state, limit=2)
        assert {r["member"]["card_number"] for r in rows} == cards, state
        assert len(rows) == len(cards)
    b1 = api.all_members("S1", doc, limit=1)
    assert {r["member"]["card_number"] for r in b1} == {"M1", "M2", "S1", "CB"}
    pending_b2 = api.all_members("BT", doc, org_unit="b2", state="pending")
    assert {r["member"]["card_number"] for r in pending_b2} == {"M4", "S2", "BT"}


def test_member_list_validation(api, tree):
    doc = api.publish()
    for query in ({"cursor": "%%%"}, {"cursor": "bm90LWEtY3Vyc29y"}, {"cursor": "WzEsMl0"},
                  {"cursor": "WyJ4IiwiLzEvIiwxXQ"}, {"limit": 0}, {"limit": 101}, {"state": "done"},
                  {"format": "pdf"}, {"org_unit": "b1x"}, {"colour": "red"}):
        response = api.client.get(f"{API}/documents/{doc}/members", query_string=query, headers=api.auth("BT"))
        assert_problem(response, 422, "validation_error")
    assert_problem(api.client.get(f"{API}/documents/{doc}/progress", query_string={"org_unit": "x"},
                                  headers=api.auth("BT")), 422, "validation_error")


def test_member_list_cursor_is_stable_when_states_change_between_pages(api, tree):
    doc = api.publish()
    first = api.members("BT", doc, limit=4).json
    seen = [r["member"]["id"] for r in first["items"]]
    # Between two pages, a member not yet listed acknowledges: they move to the end, and nobody is listed
    # twice.
    later = [card for card in WORLD_MEMBERS if api.id(card) not in seen]
    api.ack(later[0], doc, 1)
    rest = api.all_members("BT", doc, limit=4, cursor=first["next_cursor"]) if first["next_cursor"] else []
    ids = seen + [r["member"]["id"] for r in rest]
    assert len(ids) == len(set(ids)) == 12


# --- scope -----------------------------------------------------------------------------------------

def test_progress_scope(api, tree):
    doc = api.publish()
    # A unit outside the caller's scope: 403.
    for card, unit in (("S1", "b2"), ("S1", "phuong"), ("S1", "city"), ("S2", "cbcs"), ("CD", "ba_dinh"),
                       ("CD", "b1"), ("CB", "dong_da"), ("CB", "city"), ("SD", "dong_da")):
        assert_problem(api.progress(card, doc, unit), 403, "forbidden")
        assert_problem(api.members(card, doc, org_unit=unit), 403, "forbidden")
        assert_problem(api.client.get(f"{API}/org-units/{tree[unit].id}/overview", headers=api.auth(card)),
                       403, "forbidden")
    # Plain members follow nothing.
    for card in ("M1", "M5"):
        assert_problem(api.progress(card, doc), 403, "forbidden")
        assert_problem(api.progress(card, doc, "b1"), 403, "forbidden")
        assert_problem(api.members(card, doc), 403, "forbidden")
    assert_problem(api.client.get(f"{API}/documents/{doc}/progress"), 401, "unauthorized")
    # Unknown documents and units.
    assert_problem(api.progress("BT", 987654), 404, "not_found")
    assert_problem(api.progress("BT", doc, 987654), 404, "not_found")
    draft = api.client.post(f"{API}/admin/documents", headers=api.auth("BT"), json={
        "kind": "directive", "title": "Bản nháp", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    assert_problem(api.progress("BT", draft), 404, "not_found")
    assert_problem(api.members("BT", draft), 404, "not_found")
    # Inside the scope: fine.
    assert api.progress("S1", doc, "b1").status_code == 200
    assert api.progress("CB", doc, "b2").status_code == 200
    assert api.progress("CD", doc, "cbcs").status_code == 200


def test_district_document_is_404_for_another_district(api, tree):
    member("PD", tree["cbcs"], roles=[("publisher", tree["dong_da"])])
    doc = api.publish("dong_da", by="PD", title="Kế hoạch của Quận ủy Đống Đa")
    assert figures(api.figures("PD", doc)) == (5, 0, 0, 5, 0, 0)
    assert_problem(api.progress("CB", doc), 404, "not_found")
    assert_problem(api.progress("S1", doc), 404, "not_found")
    assert_problem(api.members("CB", doc), 404, "not_found")
    assert figures(api.figures("BT", doc)) == (5, 0, 0, 5, 0, 0)
    assert children(api.figures("BT", doc)) == {"HN.DD": (5, 0, 0, 5, 0, 0)}


# --- membership changes ----------------------------------------------------------------------------

def test_transfer_moves_the_member_and_keeps_their_acknowledgement(api, tree, tmp_path):
    doc = api.publish()
    only_b1 = api.publish("b1", title="Kế hoạch của Chi bộ số 1")
    api.ack("M1", doc, 1)
    api.ack("M1", only_b1, 1)
    api.open("M2", only_b1)
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    report = imported(write_members(tmp_path, "move.csv", [["M1", "Nguyễn Văn An", "HN.DD.CB"]]))
    assert report.transfers == 1
    assert counter(doc, tree["b1"]) == (3, 0, 0, 0)
    assert counter(doc, tree["cbcs"]) == (5, 0, 1, 0)
    assert counter(only_b1, tree["b1"]) == (3, 1, 0, 0)   # M1 is no longer in its audience
    assert counter(only_b1, tree["cbcs"]) is None
    assert children(api.figures("BT", doc)) == {"HN.BD": (7, 0, 0, 7, 0, 0), "HN.DD": (5, 1, 0, 4, 0, 0)}
    assert figures(api.figures("BT", only_b1)) == (3, 0, 1, 3, 0, 0)
    assert api.my("M1", doc)["state"] == "acknowledged"
    assert_problem(api.open("M1", only_b1), 404, "not_found")
    assert receipt(only_b1, api.id("M1")).acknowledged_version == 1  # kept
    assert "M1" in {r["member"]["card_number"] for r in api.all_members("SD", doc)}
    assert "M1" not in {r["member"]["card_number"] for r in api.all_members("S1", doc)}
    assert_counters_exact()

    # And back again: the acknowledgement of only_b1 counts once more.
    imported(write_members(tmp_path, "back.csv", [["M1", "Nguyễn Văn An", "HN.BD.DB.1"]]))
    assert counter(only_b1, tree["b1"]) == (4, 1, 1, 0)
    assert counter(doc, tree["cbcs"]) == (4, 0, 0, 0)
    assert_counters_exact()


def test_transfer_and_new_members_through_the_cli(app, api, tree, tmp_path):
    doc = api.publish()
    api.ack("M3", doc, 1)
    api.exempt("S2", doc, [api.id("M4")], "Ốm")
    path = write_members(tmp_path, "members.csv", [
        ["M3", "Hoàng Văn Em", "", "HN.BD.DB.1", "", ""],             # transfer b2 → b1, acknowledged
        ["M4", "Vũ Thị Giang", "", "HN.DD.CB", "", ""],               # transfer b2 → cbcs, exempt
        ["N1", "Trịnh Văn Quang", "0912345601", "HN.BD.DB.2", "", PASSWORD],   # new members
        ["N2", "Mai Thị Yến", "", "HN.DD.CB", "", PASSWORD],
    ], header=("card_number", "full_name", "phone", "org_unit_code", "roles", "password"))
    result = app.test_cli_runner().invoke(args=["handbook", "import-members", path])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output and "2 transfers" in result.output
    assert counter(doc, tree["b1"]) == (5, 0, 1, 0)
    assert counter(doc, tree["b2"]) == (3, 0, 0, 0)
    assert counter(doc, tree["cbcs"]) == (6, 0, 0, 1)
    assert figures(api.figures("BT", doc)) == (14, 1, 0, 12, 0, 1)
    # The new members log in and acknowledge like anyone else.
    assert api.my("N1", doc)["state"] == "new"
    assert api.ack("N1", doc, 1).status_code == 200
    assert counter(doc, tree["b2"]) == (3, 0, 1, 0)
    assert_counters_exact()


def test_new_member_in_a_unit_without_a_counter_row(api, tree, tmp_path):
    doc = api.publish("city", roles=["committee"], title="Thông tri gửi cấp ủy viên")
    assert counter(doc, tree["b2"]) is None  # no committee member in b2
    imported(write_members(tmp_path, "roles.csv", [["M3", "Hoàng Văn Em", "HN.BD.DB.2", "committee@HN.BD"]],
                           header=("card_number", "full_name", "org_unit_code", "roles")))
    assert counter(doc, tree["b2"]) == (1, 0, 0, 0)
    assert api.ack("M3", doc, 1).status_code == 200
    assert counter(doc, tree["b2"]) == (1, 0, 1, 0)
    # Roles revoked: out of the audience, out of the counts, receipt kept.
    imported(write_members(tmp_path, "revoke.csv", [["M3", "Hoàng Văn Em", "HN.BD.DB.2", ""]],
                           header=("card_number", "full_name", "org_unit_code", "roles")))
    assert counter(doc, tree["b2"]) is None
    assert receipt(doc, api.id("M3")).acknowledged_version == 1
    assert_problem(api.ack("M3", doc, 1), 404, "not_found")
    assert_counters_exact()


@pytest.mark.parametrize("chunk", [None, 1, 2], ids=["default-chunk", "chunk-1", "chunk-2"])
def test_new_members_are_added_to_the_counters_without_a_recount(api, tree, tmp_path, chunk, monkeypatch):
    """New members grow their units' totals (content.progress.count_joined) instead of a recount; the
    edge cases stay exact: a unit that had no member (no counter rows yet), a document for a role, a new
    member who holds a role, a unit that also loses a member, a withdrawn document, and a document
    whose audience does not reach the unit. Also with the units taken 1 or 2 per statement (UNIT_CHUNK)."""
    from tests.factories import unit

    if chunk is not None:
        monkeypatch.setattr("content.progress.UNIT_CHUNK", chunk)

    city = api.publish()
    ba_dinh = api.publish("ba_dinh", title="Kế hoạch của Quận ủy Ba Đình")
    committee = api.publish("city", roles=["committee"], title="Thông tri gửi cấp ủy viên")
    gone = api.publish(title="Văn bản sẽ thu hồi")
    api.ack("M1", city, 1)
    api.open("M2", ba_dinh)
    api.exempt("S2", city, [api.id("M4")], "Ốm")
    withdrawn_rows = {k: v for k, v in stored_counters().items() if k[0] == gone}
    api.withdraw(gone)
    empty = unit("HN.DD.CB2", "grassroots", tree["dong_da"], "Chi bộ cơ sở chưa có đảng viên")

    def rows_of(doc_id):
        db.session.expire_all()
        return {(c.document_id, c.org_unit_id): (c.total, c.opened, c.acknowledged, c.exempt)
                for c in db.session.scalars(select(ProgressCounter).where(ProgressCounter.document_id == doc_id))}

    rows = [[f"N{i}", f"Đảng viên mới {i}", code, ""] for i, code in enumerate(
        ["HN.BD.DB.1"] * 3 + ["HN.BD.DB.2"] * 2 + ["HN.DD.CB"] + ["HN.DD.CB2"] * 2)]
    rows.append(["N9", "Cấp ủy viên mới", "HN.BD.DB.2", "committee@HN.BD"])  # b2 recounted (a role)
    rows.append(["M5", "Đỗ Văn Khánh", "HN.BD.DB.2", ""])                     # cbcs → b2: both recounted
    report = imported(write_members(tmp_path, "many.csv", rows,
                                    header=("card_number", "full_name", "org_unit_code", "roles")))
    assert (report.created, report.transfers) == (9, 1)
    assert counter(city, tree["b1"]) == (7, 0, 1, 0)    # 4 + 3 new: grown, not recounted
    assert counter(city, tree["b2"]) == (8, 0, 0, 1)    # 4 + 2 + N9 + M5
    assert counter(city, tree["cbcs"]) == (4, 0, 0, 0)  # 4 + 1 - M5
    assert counter(city, empty) == (2, 0, 0, 0)         # a new counter row
    assert counter(ba_dinh, tree["b1"]) == (7, 1, 0, 0) and counter(ba_dinh, empty) is None
    assert counter(committee, tree["b2"]) == (1, 0, 0, 0)    # N9 only
    assert counter(committee, tree["b1"]) == (1, 0, 0, 0)    # CB only: the new members hold no role
    assert rows_of(gone) == withdrawn_rows and withdrawn_rows   # a withdrawn document's counts stay as they were
    assert_counters_exact()

def test_members_imported_into_a_new_unit_alone_get_its_counter_rows(api, tree, tmp_path):
    from tests.factories import unit

    doc = api.publish()
    empty = unit("HN.DD.CB2", "grassroots", tree["dong_da"], "Chi bộ cơ sở chưa có đảng viên")
    imported(write_members(tmp_path, "new-unit.csv", [["N1", "Đảng viên mới 1", "HN.DD.CB2"],
                                                       ["N2", "Đảng viên mới 2", "HN.DD.CB2"]]))
    assert counter(doc, empty) == (2, 0, 0, 0)
    # A unit whose only member is inactive has no counter rows either: its first active member adds them.
    dormant = unit("HN.DD.CB3", "grassroots", tree["dong_da"], "Chi bộ cơ sở chỉ có đảng viên đã nghỉ")
    member("X1", dormant, name="Đảng viên đã nghỉ", active=False)
    assert counter(doc, dormant) is None
    imported(write_members(tmp_path, "dormant-unit.csv", [["N3", "Đảng viên mới 3", "HN.DD.CB3"]]))
    assert counter(doc, dormant) == (1, 0, 0, 0)
    # Two units growing by the same number are updated in one statement, each once.
    before = (counter(doc, tree["b1"]), counter(doc, tree["cbcs"]))
    imported(write_members(tmp_path, "two-units.csv", [["N4", "Đảng viên mới 4", "HN.BD.DB.1"],
                                                        ["N5", "Đảng viên mới 5", "HN.DD.CB"]]))
    assert counter(doc, tree["b1"])[0] == before[0][0] + 1 and counter(doc, tree["cbcs"])[0] == before[1][0] + 1
    assert_counters_exact()


def test_a_failed_import_changes_no_counts(api, tree, tmp_path):
    doc = api.publish()
    before = stored_counters()
    report = import_members(write_members(tmp_path, "bad.csv", [["M1", "Nguyễn Văn An", "HN.DD.CB"],
                                                                ["N9", "Người mới", "NO-SUCH-UNIT"]]))
    assert not report.ok
    assert stored_counters() == before
    assert counter(doc, tree["b1"]) == (4, 0, 0, 0)
    assert_counters_exact()


def test_moving_a_branch_to_another_district_moves_its_counts(api, tree, tmp_path):
    doc = api.publish()
    api.ack("M3", doc, 1)
    path = tmp_path / "units.csv"
    path.write_text("code,name,kind,parent_code\n"
                    "HN.DD.P2,Đảng bộ phường Láng Hạ,grassroots,HN.DD\n"
                    "HN.BD.DB.2,Chi bộ Tổ dân phố số 2,branch,HN.DD.P2\n", encoding="utf-8")
    report = import_org_units(str(path))
    assert report.ok, report.errors
    db.session.expire_all()
    assert db.session.get(OrgUnit, tree["b2"].id).path.startswith(tree["dong_da"].path)
    city = api.figures("BT", doc)
    assert children(city) == {"HN.BD": (4, 0, 0, 4, 0, 0), "HN.DD": (8, 1, 0, 7, 0, 0)}
    assert figures(api.figures("CD", doc)) == (8, 1, 0, 7, 0, 0)
    assert_counters_exact()


# --- counters versus a recount from the raw rows: a property test -----------------------------------

def _wipe() -> None:
    """What the `app` fixture does after each test, for each Hypothesis example."""
    db.session.rollback()
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:  # (DELETE: much faster than TRUNCATE on a few rows)
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))
        if db.engine.dialect.name == "sqlite":
            conn.execute(text("DELETE FROM document_fts"))
    limiter.reset()


class Model:
    """What every member's state should be, kept independently of the application."""

    UNITS = ("b1", "b2", "cbcs")

    def __init__(self, api: Api, tree, tmp_path):
        self.api, self.tree, self.tmp_path = api, tree, tmp_path
        self.members = {card: {"unit": unit, "roles": {r for r, _ in roles}}
                        for card, (unit, _, roles) in WORLD_MEMBERS.items()}
        self.docs: list[dict] = []
        self.receipts: dict[tuple[str, int], dict] = {}
        self.files = itertools.count()
        self.new_cards = itertools.count(1)

    def publish(self, units, *, requires_ack=True, roles=(), kind="directive"):
        doc_id = self.api.publish(*units, requires_ack=requires_ack, roles=list(roles), kind=kind,
                                  title=f"Văn bản {len(self.docs) + 1}")
        self.docs.append({"id": doc_id, "units": units, "roles": set(roles), "requires_ack": requires_ack,
                          "version": 1, "ack_version": 1})

    def card(self, index: int) -> str:
        cards = list(self.members)
        return cards[index % len(cards)]

    def in_audience(self, card: str, doc: dict) -> bool:
        m = self.members[card]
        unit = self.tree[m["unit"]]
        return (any(self.tree[u].contains(unit) for u in doc["units"])
                and (not doc["roles"] or bool(doc["roles"] & m["roles"])))

    def rec(self, card: str, doc: dict) -> dict:
        return self.receipts.setdefault((card, doc["id"]), {"opened": False, "ack": None, "method": None,
                                                            "exempt": False})

    def acked(self, card: str, doc: dict) -> bool:
        r = self.receipts.get((card, doc["id"]))
        return r is not None and r["ack"] is not None and r["ack"] >= doc["ack_version"]

    def state(self, card: str, doc: dict) -> str:
        r = self.receipts.get((card, doc["id"]))
        if r is None:
            return "new"
        if self.acked(card, doc):
            return "acknowledged"
        if r["exempt"]:
            return "exempt"
        return "opened" if r["opened"] else "new"

    # --- operations: each sends the request and checks the answer against the model ---
    def op_open(self, i, d):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        response = self.api.open(card, doc["id"])
        if self.in_audience(card, doc):
            assert response.status_code == 204, response.json
            self.rec(card, doc)["opened"] = True
        else:
            assert_problem(response, 404, "not_found")

    def op_ack(self, i, d, which):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        version = {"current": doc["version"], "ack": doc["ack_version"], "stale": doc["ack_version"] - 1,
                   "above": doc["version"] + 1}[which]
        if version < 1:
            version = doc["version"]
        response = self.api.ack(card, doc["id"], version)
        if not self.in_audience(card, doc):
            assert_problem(response, 404, "not_found")
        elif not doc["requires_ack"]:
            assert_problem(response, 409, "ack_not_required")
        elif version > doc["version"]:
            assert_problem(response, 422, "validation_error")
        elif version < doc["ack_version"]:
            assert assert_problem(response, 409, "stale_version")["current_version"] == doc["version"]
        else:
            assert response.status_code == 200, response.json
            r = self.rec(card, doc)
            r["opened"] = True
            if not self.acked(card, doc):
                r.update(ack=version, method="app")
            assert response.json["acknowledged_version"] == r["ack"]

    def op_sync(self, i, d, acknowledge):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        now = datetime.now(UTC).isoformat()
        item = {"document_id": doc["id"], "version": doc["version"], "acknowledged_at": now} if acknowledge \
            else {"document_id": doc["id"], "opened_at": now}
        response = self.api.sync(card, [item])
        assert response.status_code == 200, response.json
        status = response.json["results"][0]["status"]
        if not self.in_audience(card, doc):
            assert status == "not_found"
        elif acknowledge and not doc["requires_ack"]:
            assert status == "not_required"
        else:
            assert status == "ok"
            r = self.rec(card, doc)
            r["opened"] = True
            if acknowledge and not self.acked(card, doc):
                r.update(ack=doc["version"], method="app")

    def op_brief(self, i, d):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        member_id = self.api.id(card)
        response = self.api.brief("BT", doc["id"], [member_id])
        if not doc["requires_ack"]:
            assert_problem(response, 409, "ack_not_required")
            return
        assert response.status_code == 200, response.json
        status = response.json["results"][0]["status"]
        if not self.in_audience(card, doc):
            assert status == "not_found"
        elif self.acked(card, doc):
            assert status == "already_acknowledged"
        else:
            assert status == "ok"
            self.rec(card, doc).update(ack=doc["version"], method="briefing")

    def op_unbrief(self, i, d):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        response = self.api.unbrief("BT", doc["id"], self.api.id(card))
        r = self.receipts.get((card, doc["id"]))
        if self.in_audience(card, doc) and r is not None and r["method"] == "briefing":
            assert response.status_code == 204, response.json
            r.update(ack=None, method=None)
        else:
            assert_problem(response, 404, "not_found")

    def op_exempt(self, i, d):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        response = self.api.exempt("BT", doc["id"], [self.api.id(card)], "Ốm dài ngày")
        assert response.status_code == 200, response.json
        status = response.json["results"][0]["status"]
        if not self.in_audience(card, doc):
            assert status == "not_found"
        else:
            assert status == ("already_acknowledged" if self.acked(card, doc) else "ok")
            self.rec(card, doc)["exempt"] = True

    def op_unexempt(self, i, d):
        card, doc = self.card(i), self.docs[d % len(self.docs)]
        response = self.api.unexempt("BT", doc["id"], self.api.id(card))
        r = self.receipts.get((card, doc["id"]))
        if self.in_audience(card, doc) and r is not None and r["exempt"]:
            assert response.status_code == 204, response.json
            r["exempt"] = False
        else:
            assert_problem(response, 404, "not_found")

    def op_edit(self, d, material):
        doc = self.docs[d % len(self.docs)]
        body = self.api.patch(doc["id"], reack=material)
        doc["version"] += 1
        if material and doc["requires_ack"]:
            doc["ack_version"] = doc["version"]
        assert (body["version"], body["ack_version"]) == (doc["version"], doc["ack_version"])

    def op_transfer(self, i, u):
        card, unit = self.card(i), self.UNITS[u % len(self.UNITS)]
        path = write_members(self.tmp_path, f"t{next(self.files)}.csv",
                             [[card, WORLD_MEMBERS.get(card, ("", "Đảng viên mới"))[1], self.tree[unit].code]])
        report = imported(path)
        assert report.transfers == (0 if self.members[card]["unit"] == unit else 1)
        self.members[card]["unit"] = unit

    def op_new_member(self, u):
        unit = self.UNITS[u % len(self.UNITS)]
        card = f"N{next(self.new_cards)}"
        path = write_members(self.tmp_path, f"n{next(self.files)}.csv",
                             [[card, "Đảng viên mới", self.tree[unit].code, PASSWORD]],
                             header=("card_number", "full_name", "org_unit_code", "password"))
        assert imported(path).created == 1
        self.members[card] = {"unit": unit, "roles": set()}

    def op_role(self, i, grant):
        card = self.card(i)
        if card == "BT":
            return  # keep the actor's own roles
        path = write_members(self.tmp_path, f"r{next(self.files)}.csv",
                             [[card, WORLD_MEMBERS.get(card, ("", "Đảng viên mới"))[1],
                               self.tree[self.members[card]["unit"]].code, "secretary" if grant else ""]],
                             header=("card_number", "full_name", "org_unit_code", "roles"))
        imported(path)
        self.members[card]["roles"] = {"secretary"} if grant else set()

    # --- the checks ---
    def check(self) -> None:
        assert_counters_exact()
        # The receipts say what the model says, member by member.
        db.session.expire_all()
        receipts = {(r.document_id, r.member_id): r for r in db.session.scalars(select(Receipt))}
        ids = dict(db.session.execute(select(Member.card_number, Member.id)).all())
        for doc in self.docs:
            for card in self.members:
                assert expected_state(receipts.get((doc["id"], ids[card])), doc["ack_version"]) == \
                    self.state(card, doc), (card, doc)

    def final_check(self) -> None:
        self.check()
        expected = expected_counters()
        # What content.progress.recount() rebuilds is the same, row for row.
        from content.progress import recount

        stored = stored_counters()
        recount()
        db.session.flush()
        assert stored_counters() == stored == expected
        db.session.rollback()
        # And what GET progress answers is the sum of those rows: the city with its districts, the
        # grassroots unit with its branches.
        units = {u.id: u for u in db.session.scalars(select(OrgUnit))}

        def sums(doc_id, scope):
            rows = [v for (d, u), v in expected.items() if d == doc_id and units[u].path.startswith(scope.path)]
            total, opened, acknowledged, exempt = (sum(r[i] for r in rows) for i in range(4))
            return total, acknowledged, opened, total - acknowledged - exempt, 0, exempt

        for doc in self.docs:
            for key, parts in (("city", ("ba_dinh", "dong_da")), ("phuong", ("b1", "b2"))):
                response = self.api.progress("BT", doc["id"], key)
                assert response.status_code == 200, response.json
                assert figures(response.json) == sums(doc["id"], self.tree[key])
                assert children(response.json) == {
                    self.tree[p].code: sums(doc["id"], self.tree[p]) for p in parts if sums(doc["id"], self.tree[p])[0]}
            # The member list agrees with the model, member by member.
            listed = {r["member"]["card_number"]: r["state"] for r in self.api.all_members("BT", doc["id"])}
            assert listed == {card: self.state(card, doc) for card in self.members if self.in_audience(card, doc)}


MEMBER = st.integers(0, 40)
DOC = st.integers(0, 3)
OPERATIONS = st.one_of(
    st.tuples(st.just("open"), MEMBER, DOC),
    st.tuples(st.just("ack"), MEMBER, DOC, st.sampled_from(["current", "ack", "stale", "above"])),
    st.tuples(st.just("sync"), MEMBER, DOC, st.booleans()),
    st.tuples(st.just("brief"), MEMBER, DOC),
    st.tuples(st.just("unbrief"), MEMBER, DOC),
    st.tuples(st.just("exempt"), MEMBER, DOC),
    st.tuples(st.just("unexempt"), MEMBER, DOC),
    st.tuples(st.just("edit"), DOC, st.booleans()),
    st.tuples(st.just("transfer"), MEMBER, st.integers(0, 2)),
    st.tuples(st.just("new_member"), st.integers(0, 2)),
    st.tuples(st.just("role"), MEMBER, st.booleans()),
)


@settings(max_examples=25, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=12))
def test_counters_always_equal_a_recount(app, client, tmp_path, operations):
    _wipe()
    tree = small_tree()
    make_world(tree)
    model = Model(Api(client, tree), tree, tmp_path)
    model.publish(("city",))
    model.publish(("b1", "cbcs"))
    model.publish(("city",), roles=("secretary",))
    model.publish(("ba_dinh",), requires_ack=False, kind="notice")
    model.check()
    for name, *args in operations:
        getattr(model, f"op_{name}")(*args)
        model.check()
    model.final_check()


# --- the recount command ---------------------------------------------------------------------------

def test_recount_command_repairs_corrupted_counters(app, api, tree):
    doc = api.publish()
    other = api.publish("b1", "cbcs", title="Kế hoạch B")
    api.ack("M1", doc, 1)
    api.open("M2", doc)
    api.exempt("SD", doc, [api.id("M5")])
    api.ack("M5", other, 1)
    good = stored_counters()
    assert good == expected_counters()
    # Corrupt: wrong figures, a missing row, a row for a unit without audience members, wrong levels.
    db.session.execute(update(ProgressCounter).where(ProgressCounter.document_id == doc,
                                                     ProgressCounter.org_unit_id == tree["b1"].id)
                       .values(total=99, acknowledged=7, opened=-3, l1_id=None))
    db.session.execute(ProgressCounter.__table__.delete().where(ProgressCounter.document_id == doc,
                                                                ProgressCounter.org_unit_id == tree["cbcs"].id))
    db.session.execute(insert(ProgressCounter).values(document_id=other, org_unit_id=tree["b2"].id,
                                                      l1_id=tree["ba_dinh"].id, total=5, opened=5))
    db.session.execute(update(ProgressCounter).where(ProgressCounter.document_id == other)
                       .values(exempt=ProgressCounter.exempt + 1))
    db.session.commit()
    assert stored_counters() != good
    assert api.figures("BT", doc)["total"] != 12

    result = app.test_cli_runner().invoke(args=["handbook", "recount", "--document", str(doc)])
    assert result.exit_code == 0, result.output
    assert "Recounted" in result.output
    repaired = stored_counters()
    assert {k: v for k, v in repaired.items() if k[0] == doc} == {k: v for k, v in good.items() if k[0] == doc}
    assert {k: v for k, v in repaired.items() if k[0] == other} != {k: v for k, v in good.items() if k[0] == other}

    result = app.test_cli_runner().invoke(args=["handbook", "recount"])
    assert result.exit_code == 0, result.output
    assert stored_counters() == good
    assert_counters_exact()
    assert figures(api.figures("BT", doc)) == (12, 1, 1, 10, 0, 1)


def test_recount_of_some_units_rebuilds_those_only(app, api, tree):
    """recount(unit_ids=...) rebuilds the rows of those units (and says how many it wrote), nothing else."""
    from content.progress import recount

    doc = api.publish()
    api.ack("M1", doc, 1)
    good = stored_counters()
    db.session.execute(update(ProgressCounter).where(ProgressCounter.document_id == doc,
                                                     ProgressCounter.org_unit_id.in_([tree["b1"].id, tree["b2"].id]))
                       .values(acknowledged=7))
    db.session.commit()
    assert recount([doc], [tree["b1"].id]) == 1
    db.session.commit()
    repaired = stored_counters()
    assert repaired[(doc, tree["b1"].id)] == good[(doc, tree["b1"].id)]
    assert repaired[(doc, tree["b2"].id)] != good[(doc, tree["b2"].id)]  # not asked: left as it was
    assert recount([doc]) == len([k for k in good if k[0] == doc])
    db.session.commit()
    assert stored_counters() == good


def test_recount_leaves_withdrawn_documents_alone(app, api, tree):
    doc = api.publish()
    api.ack("M1", doc, 1)
    api.withdraw(doc)
    before = db.session.scalar(select(func.count()).select_from(ProgressCounter))
    assert app.test_cli_runner().invoke(args=["handbook", "recount"]).exit_code == 0
    assert db.session.scalar(select(func.count()).select_from(ProgressCounter)) == before
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------

@pytest.fixture()
def pg_only(backend):
    if backend != "postgresql":
        pytest.skip("row locks: PostgreSQL only")


def _tokens(api, cards):
    tokens = queue.Queue()
    for card in cards:
        tokens.put((card, api.auth(card)))
    return tokens


def test_a_recount_locks_its_documents_against_member_writers_but_not_their_keys(pg_only, app, api, tree):
    """recount (and every membership change, through _lock_active) holds its documents FOR NO KEY UPDATE
    until its transaction ends: a member-level writer's FOR SHARE waits for it, a foreign-key check's
    KEY SHARE (a notification or counter row referencing the document) does not (module docstring)."""
    from content.progress import recount

    doc = api.publish()
    other_doc = api.publish(title="Kế hoạch B")
    db.session.commit()
    assert recount([doc]) > 0                    # the app's transaction stays open, holding its locks
    _assert_held_for_no_key_update(doc, free=other_doc)   # the other document was not asked for


def _assert_held_for_no_key_update(doc: int, free: int | None = None) -> None:
    """The app's open transaction holds document `doc` FOR NO KEY UPDATE (and `free` not at all): FOR SHARE
    waits, KEY SHARE does not. Ends the app's transaction."""
    _assert_document_lock(doc, goes="KEY SHARE", waits="SHARE", free=free)


def _assert_document_lock(doc: int, *, goes: str, waits: str, free: int | None = None) -> None:
    """How the app's open transaction holds document `doc`, seen from another connection: a `goes` lock
    (FOR SHARE, FOR KEY SHARE, ...) is granted at once, a `waits` one waits; `free`, another document, is
    not held at all (its `waits` lock is granted). Ends the app's transaction."""
    import psycopg

    try:
        with psycopg.connect(raw_pg_url(), autocommit=True) as other:
            other.execute("SET lock_timeout = '500ms'")
            other.execute(f"SELECT id FROM documents WHERE id = %s FOR {goes}", (doc,))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(f"SELECT id FROM documents WHERE id = %s FOR {waits}", (doc,))
            if free is not None:
                other.execute(f"SELECT id FROM documents WHERE id = %s FOR {waits}", (free,))
    finally:
        db.session.rollback()


def test_closing_skips_a_document_another_closer_holds_and_ignores_key_share_locks(pg_only, app, api, tree):
    """close_due takes its documents FOR NO KEY UPDATE SKIP LOCKED: one held exclusively by another
    transaction (another run_due closing it) is skipped, not waited for; one that only a foreign-key
    check holds (KEY SHARE) is closed."""
    import psycopg

    from content.progress import close_due

    held, key_shared = api.publish(), api.publish(title="Kế hoạch B")
    now = datetime.now(UTC)
    for doc in (held, key_shared):
        set_deadline(doc, now - timedelta(hours=1))
    url = raw_pg_url()
    with psycopg.connect(url) as other:
        other.execute("SELECT id FROM documents WHERE id = %s FOR NO KEY UPDATE", (held,))
        other.execute("SELECT id FROM documents WHERE id = %s FOR KEY SHARE", (key_shared,))
        db.session.execute(text("SET lock_timeout = '2s'"))   # waiting instead of skipping fails, not hangs
        assert [d.id for d in close_due(now)] == [key_shared]
        other.rollback()
    db.session.expire_all()
    assert [d.id for d in close_due(now)] == [held]


def test_a_batch_moves_every_member_s_count(api, tree):
    """A batch (briefing, exemption) hands the counters one move per member, also for a member already in
    the target state (no move): the members after that one still move, and two members of one unit
    leaving the same state move two counts."""
    doc = api.publish()
    m5, m6 = sorted((api.id("M5"), api.id("M6")))   # both in cbcs; a batch takes members in id order
    first, second = ("M5", "M6") if m5 == api.id("M5") else ("M6", "M5")
    assert api.exempt("SD", doc, [m5]).status_code == 200
    assert api.exempt("SD", doc, [m5, m6]).status_code == 200   # m5 does not move, m6 does
    assert counter(doc, tree["cbcs"])[3] == 2
    for card in (first, second):
        assert api.unexempt("SD", doc, api.id(card)).status_code == 204
        assert api.open(card, doc).status_code == 204
    assert counter(doc, tree["cbcs"])[1:] == (2, 0, 0)
    assert api.brief("SD", doc, [m5, m6]).status_code == 200   # both leave "opened" in one batch
    assert counter(doc, tree["cbcs"])[1:] == (0, 2, 0)
    assert_counters_exact()


def test_a_writer_s_locked_read_of_a_document_sees_a_change_made_since_it_was_loaded(api, tree):
    """lock_document (share_locked) re-reads the row: a document this session loaded before another
    transaction asked everyone to acknowledge again is seen with the new ack_version, not the stale copy
    the session holds (a writer counting on the old round would put the member in the wrong column)."""
    from content.progress import lock_document

    doc = api.publish()
    loaded = db.session.get(Document, doc)
    assert loaded.ack_version == 1
    with db.engine.begin() as other:   # another writer: a material change
        other.execute(update(Document).where(Document.id == doc).values(ack_version=2, version=2))
    assert lock_document(doc).ack_version == 2
    db.session.rollback()


def test_a_writer_s_locked_read_shares_the_document_with_other_writers_only(pg_only, app, api, tree):
    """PostgreSQL: lock_document holds the row FOR SHARE until the transaction ends: other member-level
    writers (FOR SHARE) go on, a recount or material change (FOR NO KEY UPDATE) waits."""
    from content.progress import lock_document

    doc = api.publish()
    db.session.commit()
    assert lock_document(doc).id == doc   # the transaction stays open
    _assert_document_lock(doc, goes="SHARE", waits="NO KEY UPDATE")


def test_a_secretary_of_two_branches_follows_each_of_them(api, tree):
    """The progress read (a light principal, its roles read with their units in one statement): a member
    with two grants over two units, neither of them the member's own, reads either unit's figures, and not
    a third's (their own included)."""
    doc = api.publish()
    member("S12", tree["cbcs"], name="Trịnh Thị Sương", roles=[("secretary", tree["b1"]), ("secretary", tree["b2"])])
    db.session.commit()
    assert api.progress("S12", doc, "b1").status_code == 200
    b2 = api.progress("S12", doc, "b2")
    assert b2.status_code == 200 and b2.json["org_unit"]["code"] == tree["b2"].code, b2.get_data(as_text=True)
    assert_problem(api.progress("S12", doc, "cbcs"), 403, "forbidden")


def test_a_document_without_an_audience_reaches_nobody(api, tree):
    """audience_members for a document whose audience lists no unit (the API refuses one, but rows can
    be removed under it): no member at all, not every member."""
    import warnings

    from content.progress import audience_members
    from tests.factories import document

    doc = document(tree["city"], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # an empty or_() is deprecated and would mean "true"
        count = db.session.scalar(select(func.count()).select_from(Member).join(OrgUnit, OrgUnit.id == Member.org_unit_id)
                                  .where(audience_members(doc)))
    assert count == 0 and db.session.scalar(select(func.count()).select_from(Member)) > 0


def _locked_before_blocking(app, writer, held: int, probes: list[int]) -> list[int]:
    """Lock order, seen from outside (PostgreSQL): another transaction holds document `held`; `writer()`
    runs in a thread until it waits for that row; then: which of `probes` had it already locked? A writer
    that takes its documents in id order, with `held` the smallest, waits on `held` before it touches any.
    Two writers that each lock several documents in their own orders can deadlock (content/progress.py's
    one lock order); this is how a test sees the order without needing the deadlock itself."""
    import threading
    import time

    import psycopg

    url = raw_pg_url()
    db.session.commit()
    failures: list[BaseException] = []

    def run():
        with app.app_context():
            try:
                writer()
            except BaseException as e:   # reported below, not lost in the thread
                failures.append(e)
            finally:
                db.session.rollback()
                db.session.remove()

    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as probe_connection:
        holder.execute("SELECT id FROM documents WHERE id = %s FOR UPDATE", (held,))
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while not probe_connection.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'").fetchone()[0]:
            assert time.monotonic() < deadline and thread.is_alive(), f"the writer never waited: {failures}"
            time.sleep(0.02)
        probe_connection.execute("SET lock_timeout = '300ms'")
        locked = []
        for probe in probes:
            try:
                probe_connection.execute("SELECT id FROM documents WHERE id = %s FOR UPDATE", (probe,))
            except psycopg.errors.LockNotAvailable:
                locked.append(probe)
        holder.rollback()   # the writer goes on
        thread.join(timeout=30)
    assert not thread.is_alive() and not failures, failures
    return locked


def _rewrite_rows(*document_ids: int) -> None:
    """Rewrite these documents' rows, in this order (a no-op UPDATE writes a new tuple after the others):
    the table's physical order, which a plan without ORDER BY follows (forwards or, through a hash join,
    backwards), is no longer the ids' order."""
    for document_id in document_ids:
        db.session.execute(update(Document).where(Document.id == document_id).values(title=Document.title))
        db.session.commit()


def test_a_recount_locks_its_documents_in_id_order(pg_only, app, api, tree):
    """_lock_active (every membership change and recount) locks the active documents in id order, whatever
    order the table returns them in: with the first document held elsewhere, it waits there before
    taking the second."""
    from content.progress import _lock_active

    first, second, third = api.publish(), api.publish(title="Kế hoạch B"), api.publish(title="Kế hoạch C")
    _rewrite_rows(first, third)   # physically: second, first, third: the first is in the middle either way
    physical = [d for (d,) in db.session.execute(text("SELECT id FROM documents ORDER BY ctid"))]
    assert physical == [second, first, third]
    assert _locked_before_blocking(app, _lock_active, held=first, probes=[second, third]) == []


def test_an_offline_sync_locks_its_documents_in_id_order(pg_only, app, api, tree):
    """sync answers in the phone's order but locks the documents in id order (two syncs of one phone with
    crossed orders would otherwise deadlock): with the first document held elsewhere, a sync listing the
    second one first waits on the first before it touches the second."""
    first, second = api.publish(), api.publish(title="Kế hoạch B")
    auth = api.auth("M1")
    items = [{"document_id": second, "version": 1}, {"document_id": first, "version": 1}]
    answers = []

    def writer():
        response = app.test_client().post(f"{API}/me/acknowledgements/sync", json={"items": items}, headers=auth)
        answers.append((response.status_code, [i["status"] for i in response.json["results"]]))

    assert _locked_before_blocking(app, writer, held=first, probes=[second]) == []
    assert answers == [(200, ["ok", "ok"])]


@pytest.mark.parametrize(("card", "method", "path", "lock", "waits", "status"), [
    # open_document reads under the members' shared lock: an open cannot slip past a material change that
    # holds the row and count itself on the old round.
    ("M1", "POST", "/documents/{doc}/open", "FOR NO KEY UPDATE", True, 204),
    # readable_document and managed_document lock only when asked: a member's other reads (public answers,
    # quizzes, attachments) and a manager's reads answer at once while a writer holds the document.
    ("M1", "GET", "/documents/{doc}/questions", "FOR UPDATE", False, 200),
    ("BT", "GET", "/admin/documents/{doc}", "FOR UPDATE", False, 200),
    ("BT", "GET", "/admin/documents/{doc}/versions", "FOR UPDATE", False, 200),
], ids=["open waits", "public answers", "admin document", "admin versions"])
def test_which_requests_wait_for_a_transaction_holding_their_document(pg_only, app, api, tree, card, method,
                                                                      path, lock, waits, status):
    from tests.factories import answered_while_row_held

    doc = api.publish()
    auth = api.auth(card)
    answered, got = answered_while_row_held(
        app, lambda c: c.open(f"{API}{path.format(doc=doc)}", method=method, headers=auth).status_code,
        "documents", doc, lock, wait=1 if waits else 10)
    assert (answered, got) == (not waits, status)


def test_a_document_writer_locks_the_row_but_not_its_key(pg_only, app, api, tree):
    """managed_document(for_update=True), which every write to a document goes through, holds the row FOR
    NO KEY UPDATE until the transaction ends: a member-level writer's FOR SHARE waits for it, a foreign-key
    check's KEY SHARE (a receipt or notification referencing the document) does not."""
    from content.access import managed_document

    doc = api.publish()
    actor = db.session.get(Member, api.id("BT"))
    db.session.commit()
    assert managed_document(actor, doc, for_update=True).id == doc   # the transaction stays open
    _assert_held_for_no_key_update(doc)


@pytest.mark.parametrize("threads", [2, 8])
def test_parallel_acknowledgements_of_one_member_count_once(pg_only, app, api, tree, threads):
    doc = api.publish()
    auth = api.auth("M1")
    db.session.commit()
    statuses = in_parallel(app, threads, lambda c: c.put(f"{API}/documents/{doc}/acknowledgement",
                                                         json={"version": 1}, headers=auth))
    assert statuses == [200] * threads
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert db.session.scalar(select(func.count()).select_from(Receipt)) == 1
    assert_counters_exact()


def test_parallel_opens_and_acknowledgements_of_one_member(pg_only, app, api, tree):
    doc = api.publish()
    auth = api.auth("M2")
    db.session.commit()
    calls = queue.Queue()
    for i in range(8):
        calls.put(i % 2)

    def request(c):
        if calls.get() == 0:
            return c.post(f"{API}/documents/{doc}/open", headers=auth)
        return c.put(f"{API}/documents/{doc}/acknowledgement", json={"version": 1}, headers=auth)

    assert sorted(in_parallel(app, 8, request)) == [200] * 4 + [204] * 4
    assert counter(doc, tree["b1"]) == (4, 0, 1, 0)
    assert_counters_exact()


def test_parallel_acknowledgements_of_different_members_all_count(pg_only, app, api, tree):
    for i in range(4):
        member(f"X{i}", tree["b1"], name=f"Thành viên {i}")
    doc = api.publish()
    cards = ["M1", "M2", "S1", "CB", "X0", "X1", "X2", "X3"]
    tokens = _tokens(api, cards)
    db.session.commit()

    def request(c):
        _, auth = tokens.get()
        return c.put(f"{API}/documents/{doc}/acknowledgement", json={"version": 1}, headers=auth)

    assert in_parallel(app, 8, request) == [200] * 8
    assert counter(doc, tree["b1"]) == (8, 0, 8, 0)
    assert figures(api.figures("BT", doc, "phuong")) == (12, 8, 0, 4, 0, 0)
    assert_counters_exact()


def test_parallel_briefing_and_app_acknowledgement_count_once(pg_only, app, api, tree):
    doc = api.publish()
    for card in ("M3", "M4", "S2", "BT"):
        member_id = api.id(card)
        member_auth, secretary = api.auth(card), api.auth("S2")
        db.session.commit()
        calls = queue.Queue()
        calls.put("app")
        calls.put("briefing")

        def request(c, member_id=member_id, member_auth=member_auth, secretary=secretary, calls=calls):
            if calls.get() == "app":
                return c.put(f"{API}/documents/{doc}/acknowledgement", json={"version": 1}, headers=member_auth)
            return c.post(f"{API}/documents/{doc}/acknowledgements", headers=secretary, json={
                "member_ids": [member_id], "method": "briefing", "held_on": local_today().isoformat()})

        assert in_parallel(app, 2, request) == [200, 200]
    assert counter(doc, tree["b2"]) == (4, 0, 4, 0)
    assert_counters_exact()


def test_parallel_exemptions_briefings_and_undo(pg_only, app, api, tree):
    doc = api.publish()
    m1 = api.id("M1")
    secretary = api.auth("S1")
    db.session.commit()
    calls = queue.Queue()
    for kind in ("exempt", "brief", "exempt", "brief", "unexempt", "unbrief"):
        calls.put(kind)

    answered = []

    def send(c, kind):
        if kind == "exempt":
            return c.post(f"{API}/documents/{doc}/exemptions", json={"member_ids": [m1], "reason": "Ốm"},
                          headers=secretary)
        if kind == "brief":
            return c.post(f"{API}/documents/{doc}/acknowledgements", headers=secretary, json={
                "member_ids": [m1], "method": "briefing", "held_on": local_today().isoformat()})
        if kind == "unexempt":
            return c.delete(f"{API}/documents/{doc}/exemptions/{m1}", headers=secretary)
        return c.delete(f"{API}/documents/{doc}/acknowledgements/{m1}", headers=secretary)

    def request(c):
        kind = calls.get()
        response = send(c, kind)
        answered.append((kind, response.status_code))
        return response

    statuses = in_parallel(app, 6, request)
    assert len(statuses) == len(answered) == 6, answered
    # Exemptions and briefings are answered 200 with per-member results whatever the order; an undo is
    # 204, or 404 when what it undoes is not (or no longer) there.
    assert sorted(s for k, s in answered if k in ("exempt", "brief")) == [200, 200, 200, 200], answered
    assert all(s in (204, 404) for k, s in answered if k in ("unexempt", "unbrief")), answered
    assert_counters_exact()


@pytest.mark.parametrize("undo", ["acknowledgements", "exemptions"])
def test_two_undos_of_one_record_racing_move_the_counters_once(pg_only, app, api, tree, undo):
    """Two secretaries take back the same briefing (or exemption) at once. Each read the receipt before
    waiting for its lock; the one that gets it second must count from the receipt as the first left it
    (cleared), not as it read it: counting from its own earlier read moved the member out of
    "acknowledged" (or "exempt") twice."""
    import threading
    import time

    import psycopg

    doc = api.publish()
    m1 = api.id("M1")
    secretary = api.auth("S1")
    record = ({"member_ids": [m1], "method": "briefing", "held_on": local_today().isoformat()}
              if undo == "acknowledgements" else {"member_ids": [m1], "reason": "Ốm"})
    assert api.client.post(f"{API}/documents/{doc}/{undo}", json=record, headers=secretary).status_code == 200
    db.session.commit()
    answers = []

    def run():
        with app.app_context():
            answers.append(app.test_client().delete(f"{API}/documents/{doc}/{undo}/{m1}",
                                                    headers=secretary).status_code)
            db.session.remove()

    with psycopg.connect(raw_pg_url()) as holder, psycopg.connect(raw_pg_url(), autocommit=True) as watcher:
        holder.execute("SELECT 1 FROM receipts WHERE document_id = %s AND member_id = %s FOR UPDATE", (doc, m1))
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        waiting, deadline = 0, time.monotonic() + 20
        while waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                      " AND wait_event_type = 'Lock'").fetchone()[0]
        holder.rollback()
    for thread in threads:
        thread.join(timeout=30)
    assert waiting == 2, "both undos should have waited for the receipt"
    assert sorted(answers) == [204, 204], answers
    db.session.expire_all()
    assert receipt(doc, m1).acknowledged_at is None and receipt(doc, m1).exempted_at is None
    assert_counters_exact()


def test_acknowledgements_racing_a_material_change_keep_counters_exact(pg_only, app, api, tree):
    for i in range(7):
        member(f"X{i}", tree["b1"], name=f"Thành viên {i}")
    doc = api.publish()
    tokens = _tokens(api, [f"X{i}" for i in range(7)])
    board = api.auth("BT")
    db.session.commit()
    statuses = {}
    for attempt in range(3):
        calls = queue.Queue()
        calls.put(("BT", board))
        for _ in range(7):
            calls.put(tokens.get())
        version = attempt + 1

        def request(c, version=version, calls=calls):
            card, auth = calls.get()
            if card == "BT":
                return c.patch(f"/api/v1/admin/documents/{doc}", json={
                    "body_html": f"<p>Bản {version + 1}</p>", "reack": True}, headers=board)
            tokens.put((card, auth))
            return c.put(f"{API}/documents/{doc}/acknowledgement", json={"version": version}, headers=auth)

        answered = in_parallel(app, 8, request)
        for s in answered:
            statuses[s] = statuses.get(s, 0) + 1
        # The edit is 200; each acknowledgement is 200 (before it) or 409 (the version it names is stale).
        assert len(answered) == 8 and set(answered) <= {200, 409} and answered.count(200) >= 1, answered
        assert stored_counters() == expected_counters(), statuses


def test_acknowledgements_racing_a_transfer_keep_counters_exact(pg_only, app, api, tree, tmp_path):
    import types

    for i in range(7):
        member(f"X{i}", tree["b1"], name=f"Thành viên {i}")
    docs = [api.publish(title=f"Văn bản số {n}") for n in range(12)]
    path = write_members(tmp_path, "move.csv", [[f"X{i}", f"Thành viên {i}", "HN.DD.CB"] for i in range(7)])
    calls = queue.Queue()
    calls.put(("import", None))
    for i in range(7):
        calls.put((f"X{i}", api.auth(f"X{i}")))
    db.session.commit()

    def request(c):
        card, auth = calls.get()
        if card == "import":  # the import itself, in its own thread and transaction
            report = import_members(path)
            return types.SimpleNamespace(status_code=200 if report.ok else 500)
        statuses = {c.put(f"{API}/documents/{d}/acknowledgement", json={"version": 1}, headers=auth).status_code
                    for d in docs}
        return types.SimpleNamespace(status_code=statuses.pop() if len(statuses) == 1 else 500)

    assert in_parallel(app, 8, request) == [200] * 8
    assert {m.org_unit_id for m in db.session.scalars(select(Member).where(Member.card_number.like("X%")))} == {
        tree["cbcs"].id}
    assert stored_counters() == expected_counters()


# --- overview --------------------------------------------------------------------------------------

def test_overview(api, tree):
    late = api.publish(title="Chỉ thị đã quá hạn")
    soon = api.publish("b1", title="Kế hoạch của Chi bộ số 1", ack_days=3)
    later = api.publish(title="Nghị quyết chuyên đề", ack_days=30)
    notice = api.publish(kind="notice", requires_ack=False, title="Thông báo lịch sinh hoạt")
    gone = api.publish(title="Văn bản đã thu hồi")
    api.withdraw(gone)
    elsewhere = api.publish("dong_da", title="Kế hoạch của Quận ủy Đống Đa")
    set_deadline(late, datetime.now(UTC) - timedelta(days=2))
    api.ack("M1", late, 1)
    api.exempt("S1", late, [api.id("M2")])
    api.ack("M1", soon, 1)
    api.ack("M3", later, 1)

    response = api.client.get(f"{API}/org-units/{tree['phuong'].id}/overview", headers=api.auth("CB"))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["org_unit"] == tree["phuong"].brief()
    items = body["items"]
    ids = [i["document"]["id"] for i in items]
    assert ids == [late, soon, later]  # overdue first, then by days left
    assert notice not in ids and gone not in ids and elsewhere not in ids
    by_id = {i["document"]["id"]: i for i in items}
    for doc_id, item in by_id.items():
        progress = api.figures("CB", doc_id, "phuong")
        assert {k: item[k] for k in FIGURES} == {k: progress[k] for k in FIGURES}
        total = item["total"]
        assert item["percent"] == round(100 * (item["acknowledged"] + item["exempt"]) / total, 1)
        deadline = db.session.get(Document, doc_id).deadline
        assert item["days_left"] == (deadline.astimezone(ZONE).date() - local_today()).days
    assert (by_id[late]["total"], by_id[late]["acknowledged"], by_id[late]["exempt"], by_id[late]["overdue"]) == (
        8, 1, 1, 6)
    assert by_id[late]["percent"] == 25.0 and by_id[late]["days_left"] == -2
    assert (by_id[soon]["total"], by_id[soon]["percent"], by_id[soon]["days_left"]) == (4, 25.0, 3)
    assert (by_id[later]["total"], by_id[later]["percent"], by_id[later]["days_left"]) == (8, 12.5, 30)

    # A branch sees what reaches it; the other district's plan is Đống Đa's.
    b2 = api.client.get(f"{API}/org-units/{tree['b2'].id}/overview", headers=api.auth("S2")).json["items"]
    assert [i["document"]["id"] for i in b2] == [late, later]
    dd = api.client.get(f"{API}/org-units/{tree['dong_da'].id}/overview", headers=api.auth("CD")).json["items"]
    assert [i["document"]["id"] for i in dd] == [late, elsewhere, later]
    assert_problem(api.client.get(f"{API}/org-units/{tree['dong_da'].id}/overview", headers=api.auth("CB")),
                   403, "forbidden")
    assert_problem(api.client.get(f"{API}/org-units/{tree['b1'].id}/overview", headers=api.auth("M1")),
                   403, "forbidden")
    assert_problem(api.client.get(f"{API}/org-units/987654/overview", headers=api.auth("BT")), 404, "not_found")
    assert_problem(api.client.get(f"{API}/org-units/{tree['b1'].id}/overview"), 401, "unauthorized")


def test_overview_leaves_out_what_is_not_out_yet(api, tree):
    doc = api.publish()
    draft = api.client.post(f"{API}/admin/documents", headers=api.auth("BT"), json={
        "kind": "directive", "title": "Bản nháp", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    scheduled = api.client.post(f"{API}/admin/documents", headers=api.auth("BT"), json={
        "kind": "directive", "title": "Hẹn giờ", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert api.client.post(f"{API}/admin/documents/{scheduled}/publish", json={"publish_at": at},
                           headers=api.auth("BT")).json["status"] == "scheduled"
    items = api.client.get(f"{API}/org-units/{tree['city'].id}/overview", headers=api.auth("BT")).json["items"]
    assert [i["document"]["id"] for i in items] == [doc]
    # Both were left out for not being out yet, not for anything else: published, the draft is listed.
    assert api.client.post(f"{API}/admin/documents/{draft}/publish", json={},
                           headers=api.auth("BT")).status_code == 200
    items = api.client.get(f"{API}/org-units/{tree['city'].id}/overview", headers=api.auth("BT")).json["items"]
    assert sorted(i["document"]["id"] for i in items) == sorted([doc, draft])


def test_overview_includes_a_due_scheduled_document(api, tree):
    doc = api.client.post(f"{API}/admin/documents", headers=api.auth("BT"), json={
        "kind": "directive", "title": "Hẹn giờ", "audience": {"org_units": [tree["city"].id]}}).json["id"]
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.client.post(f"{API}/admin/documents/{doc}/publish", json={"publish_at": at},
                           headers=api.auth("BT")).json["status"] == "scheduled"
    stored = db.session.get(Document, doc)
    stored.published_at = stored.sync_at = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    assert api.ack("M1", doc, 1).status_code == 200   # readers see it and acknowledge it
    assert api.figures("BT", doc)["acknowledged"] == 1
    items = api.client.get(f"{API}/org-units/{tree['city'].id}/overview", headers=api.auth("BT")).json["items"]
    assert [i["document"]["id"] for i in items] == [doc]
