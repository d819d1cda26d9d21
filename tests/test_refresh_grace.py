"""A refresh whose answer was lost (the phone's network dropped mid-request) and that is sent again with
the same refresh token within REFRESH_GRACE_SECONDS gets the very pair it was issued, and the session
lives on; a reuse after the window, or once the session has moved on to the next refresh token, or after
the session ended, is a replay: 401 token_reused, and the whole session is revoked (API.md)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from config import Config
from handbook.auth import AuthSession, RefreshToken
from handbook.extensions import db
from tests.factories import bearer, login
from tests.test_auth import _claims, an  # noqa: F401  (the fixture)

API = "/api/v1"


@pytest.fixture()
def grace(app):
    saved = app.config["REFRESH_GRACE_SECONDS"]
    app.config["REFRESH_GRACE_SECONDS"] = Config.REFRESH_GRACE_SECONDS   # the production default, 30 s
    yield app.config["REFRESH_GRACE_SECONDS"]
    app.config["REFRESH_GRACE_SECONDS"] = saved


def refresh(client, token: str):
    return client.post(f"{API}/auth/refresh", headers=bearer(token))


def me(client, pair: dict) -> int:
    return client.get(f"{API}/me", headers=bearer(pair["access_token"])).status_code


def revoked(pair: dict) -> str | None:
    db.session.expire_all()
    return db.session.get(AuthSession, _claims(pair["refresh_token"])["sid"]).revoked_reason


def test_a_retry_within_the_window_gets_the_same_pair(client, an, grace):
    assert grace == 30
    first = login(client, "01000001").json
    answer = refresh(client, first["refresh_token"])
    assert answer.status_code == 200
    lost = answer.json                                     # the phone never received this
    retry = refresh(client, first["refresh_token"])
    assert retry.status_code == 200, retry.get_data(as_text=True)
    assert retry.json == lost                              # the same tokens, byte for byte
    assert revoked(first) is None and me(client, lost) == 200
    # The pair works as any other: its refresh token rotates once, then the session goes on.
    nxt = refresh(client, lost["refresh_token"])
    assert nxt.status_code == 200 and me(client, nxt.json) == 200


def test_a_reuse_after_the_window_revokes_the_session(client, an, grace):
    first = login(client, "01000001").json
    second = refresh(client, first["refresh_token"]).json
    used = db.session.get(RefreshToken, _claims(first["refresh_token"])["jti"])
    used.used_at = used.used_at - timedelta(seconds=grace + 1)      # the retry comes too late
    db.session.commit()
    reuse = refresh(client, first["refresh_token"])
    assert reuse.status_code == 401 and reuse.json["code"] == "token_reused"
    assert revoked(first) == "refresh_reuse"
    assert me(client, second) == 401 and refresh(client, second["refresh_token"]).status_code == 401


def test_a_reuse_once_the_session_moved_on_revokes_it_even_within_the_window(client, an, grace):
    """The pair was received and its refresh token used: the old token coming back is someone else's."""
    first = login(client, "01000001").json
    second = refresh(client, first["refresh_token"]).json
    third = refresh(client, second["refresh_token"]).json
    reuse = refresh(client, first["refresh_token"])
    assert reuse.status_code == 401 and reuse.json["code"] == "token_reused"
    assert revoked(first) == "refresh_reuse" and me(client, third) == 401


def test_a_retry_never_reopens_an_ended_session(client, an, grace):
    """Another session of the member, or the same one after logout: the grace is for the lost answer of a
    live session only."""
    first = login(client, "01000001").json
    other = login(client, "01000001").json
    second = refresh(client, first["refresh_token"]).json
    assert client.post(f"{API}/auth/logout", headers=bearer(second["access_token"])).status_code == 204
    retry = refresh(client, first["refresh_token"])
    assert retry.status_code == 401 and retry.json["code"] == "token_revoked"
    assert me(client, second) == 401
    # The member's other session is untouched by all of it, and its own first refresh is not a retry.
    assert me(client, other) == 200
    assert refresh(client, other["refresh_token"]).json != second


def test_parallel_retries_within_the_window_all_get_the_one_pair(client, app, an, grace, backend):
    """A phone that sent its refresh several times at once (a flaky network): one rotation, every answer
    the same pair, the session alive (without the window, exactly one succeeds: tests/test_auth.py)."""
    import pytest

    from tests.factories import in_parallel

    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the race is exercised on PostgreSQL")
    first = login(client, "01000001").json
    answers = []
    statuses = in_parallel(app, 4, lambda c: answers.append(refresh(c, first["refresh_token"])) or answers[-1])
    assert statuses == [200] * 4, [a.get_data(as_text=True) for a in answers]
    assert len({a.get_data() for a in answers}) == 1
    assert revoked(first) is None and me(client, answers[0].json) == 200


def test_the_window_ends_at_exactly_its_seconds_and_zero_closes_it(app, client, an, grace, monkeypatch):
    """The window is REFRESH_GRACE_SECONDS from the first use, its end included; 1 still lets a retry in
    within that second; 0 turns retries off, even one at the very instant of the refresh (as a concurrent
    request can be, whose time was taken before the first one's claim). Judged by `_retried` itself at
    those instants, which no request can hit exactly."""
    from handbook.auth import _retried
    from handbook.timeutil import as_utc

    first = login(client, "01000001").json
    lost = refresh(client, first["refresh_token"]).json
    row = db.session.get(RefreshToken, _claims(first["refresh_token"])["jti"])
    jti, used_at = row.jti, as_utc(row.used_at)

    def retried(at):
        again = _retried(jti, an.id, at)
        return again and (again.access_token, again.refresh_token)

    pair = (lost["access_token"], lost["refresh_token"])
    assert retried(used_at + timedelta(seconds=grace)) == pair
    assert retried(used_at + timedelta(seconds=grace, microseconds=1)) is None
    monkeypatch.setitem(app.config, "REFRESH_GRACE_SECONDS", 1)
    assert retried(used_at + timedelta(seconds=1)) == pair
    monkeypatch.setitem(app.config, "REFRESH_GRACE_SECONDS", 0)
    assert retried(used_at) is None
