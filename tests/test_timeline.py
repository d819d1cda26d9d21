"""Acknowledgements over time (content/timeline.py): `run_due` takes each day's progress per unit subtree
once, from the live counters; the API's series and the console's chart read it, today's point live."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update

from content import acknowledgements, timeline
from content.models import Document, ProgressDaily, ProgressDailyRun
from content.progress import unit_progress
from handbook.extensions import db
from handbook.orgunits import OrgUnit
from handbook.timeutil import local_zone, utcnow
from push.due import run_due
from tests.console_helpers import assert_page, browser
from tests.factories import bearer, login
from tests.test_console import people, publish  # noqa: F401  (fixtures)
from tests.test_errors import assert_problem


def local_midnight(days_ago: int) -> datetime:
    today = datetime.now(local_zone()).date()
    return datetime.combine(today - timedelta(days=days_ago), time(0, 0), tzinfo=local_zone())


@pytest.fixture()
def doc(people, tree):  # noqa: F811
    """A city directive to Ba Đình, published (as far as the clock goes) three days ago at 09:00."""
    doc_id = publish(people["A1"], [tree["ba_dinh"]])
    db.session.execute(update(Document).where(Document.id == doc_id).values(
        published_at=local_midnight(3) + timedelta(hours=9)))
    db.session.commit()
    return doc_id


def stored(doc_id: int) -> dict:
    return {(r.org_unit_id, r.day): (r.total, r.opened, r.acknowledged, r.exempt)
            for r in db.session.scalars(select(ProgressDaily).where(ProgressDaily.document_id == doc_id))}


def test_each_day_is_taken_once_per_unit_subtree_from_the_live_counters(app, people, doc, tree):
    first = timeline.take_due(local_midnight(2) + timedelta(minutes=5))
    day1 = (local_midnight(3)).date()
    assert [(d.id, day, n) for d, day, n in first] == [(doc, day1, 5)]   # city, Ba Đình, ward, b1, b2
    acknowledgements.acknowledge(people["M1"], doc, 1)
    acknowledgements.exempt(people["S1"], doc, [people["M2"].id], "Ốm")
    second = timeline.take_due(local_midnight(1) + timedelta(hours=2))
    day2 = day1 + timedelta(days=1)
    assert [(d.id, day) for d, day, _ in second] == [(doc, day2)]
    rows = stored(doc)
    document = db.session.get(Document, doc)
    for unit in db.session.scalars(select(OrgUnit)):
        live = unit_progress(document, unit, utcnow(), children=False)
        expected = (live["total"], live["opened"], live["acknowledged"], live["exempt"])
        if live["total"]:
            assert rows[(unit.id, day2)] == expected, unit.code
        else:
            assert (unit.id, day2) not in rows, unit.code     # no audience there: no row
    assert rows[(tree["ba_dinh"].id, day1)] == (8, 0, 0, 0)
    assert rows[(tree["ba_dinh"].id, day2)] == (8, 0, 1, 1)  # M1 acknowledged, M2 excused
    # Again, the same night (another tick, another worker): nothing new.
    assert timeline.take_due(local_midnight(1) + timedelta(hours=3)) == []
    assert stored(doc) == rows
    # Later in the morning than the grace: the day stays a gap rather than show a later count.
    assert timeline.take_due(local_midnight(0) + timedelta(hours=7)) == []
    assert db.session.scalar(select(func.count()).select_from(ProgressDailyRun)) == 2


def test_a_document_published_today_has_no_past_day(app, people, tree):
    publish(people["A1"], [tree["ba_dinh"]])
    assert timeline.take_due(local_midnight(0) + timedelta(minutes=1)) == []


def test_run_due_takes_yesterday(app, people, doc):
    app.config["PROGRESS_DAILY_GRACE_HOURS"] = 24     # whatever the hour the test runs at
    run_due(inline=True)
    run_due(inline=True)
    days = db.session.scalars(select(ProgressDailyRun.day).where(ProgressDailyRun.document_id == doc)).all()
    assert days == [local_midnight(1).date()]


def test_the_api_series_has_the_stored_days_and_today_live(app, client, people, doc, tree):
    timeline.take_due(local_midnight(2) + timedelta(minutes=5))
    acknowledgements.acknowledge(people["M1"], doc, 1)
    timeline.take_due(local_midnight(1) + timedelta(minutes=5))
    acknowledgements.acknowledge(people["M4"], doc, 1)
    headers = bearer(login(client, "C1").json["access_token"])
    body = client.get(f"/api/v1/documents/{doc}/progress/daily", headers=headers).json
    assert body["org_unit"]["id"] == tree["ba_dinh"].id
    assert [(d["day"], d["acknowledged"], d["pending"], d["live"]) for d in body["days"]] == [
        (local_midnight(3).date().isoformat(), 0, 8, False), (local_midnight(2).date().isoformat(), 1, 7, False),
        (local_midnight(0).date().isoformat(), 2, 6, True)]
    assert body["published_on"] == local_midnight(3).date().isoformat() and body["deadline"]
    branch = client.get(f"/api/v1/documents/{doc}/progress/daily?org_unit={tree['b1'].id}", headers=headers).json
    assert [d["acknowledged"] for d in branch["days"]] == [0, 1, 1]
    # Same access as the progress: a unit outside the scope is 403, a document outside it 404.
    s1 = bearer(login(client, "S1").json["access_token"])
    assert_problem(client.get(f"/api/v1/documents/{doc}/progress/daily?org_unit={tree['ba_dinh'].id}",
                              headers=s1), 403, "forbidden")
    c2 = bearer(login(client, "C2").json["access_token"])
    assert_problem(client.get(f"/api/v1/documents/{doc}/progress/daily", headers=c2), 404, "not_found")
    assert_problem(client.get(f"/api/v1/documents/{doc}/progress/daily?org_unit=x", headers=headers), 422,
                   "validation_error")


def test_the_console_draws_the_chart_against_the_deadline(app, people, doc, tree):
    timeline.take_due(local_midnight(2) + timedelta(minutes=5))
    acknowledgements.acknowledge(people["M1"], doc, 1)
    client = browser(app, "C1")
    page = assert_page(client.get(f"/documents/{doc}/follow"))
    assert 'class="chart timeline"' in page and 'class="deadline"' in page
    full = assert_page(client.get(f"/documents/{doc}/timeline"))
    svg = full[full.index('<svg class="chart timeline"'):full.index("</svg>")]
    assert svg.count('<rect ') == 2 and 'class="day live"' in svg     # the stored day and today
    assert "12,5" in full                                              # 1 of 8 today, Vietnamese comma
    assert_page(browser(app, "C2").get(f"/documents/{doc}/timeline"), 404)
    assert_page(browser(app, "S1").get(f"/documents/{doc}/timeline?unit={tree['ba_dinh'].id}"), 403)
    assert_page(browser(app, "M1").get(f"/documents/{doc}/timeline"), 403)
