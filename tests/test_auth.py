"""Every auth path: login, refresh rotation and reuse, logout, password change, throttling, revocation."""
from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from argon2 import PasswordHasher
from flask_jwt_extended import create_access_token

from handbook.auth import AuthSession
from handbook.extensions import db
from tests.factories import PASSWORD, bearer, executed_statements, in_parallel, login, member


@pytest.fixture()
def an(tree):
    return member("01000001", tree["b1"], name="Nguyễn Văn An", phone="0912345678",
                  roles=[("secretary", tree["b1"])])


def test_login_by_card_number_returns_tokens_and_profile(client, an, tree):
    r = login(client, "01000001")
    assert r.status_code == 200
    body = r.json
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] and body["refresh_token"]
    assert body["member"]["card_number"] == "01000001"
    assert body["member"]["org_unit"]["code"] == "HN.BD.DB.1"
    assert "password" not in r.get_data(as_text=True)


@pytest.mark.parametrize("spelling", ["0912345678", "0912 345 678", "+84912345678", "84 912.345.678"])
def test_login_by_phone_in_any_spelling(client, an, spelling):
    assert login(client, spelling).status_code == 200


@pytest.mark.parametrize("username,password", [
    ("01000001", "wrong-password"),
    ("99999999", PASSWORD),
    ("", PASSWORD),
])
def test_bad_credentials_are_one_generic_401(client, an, username, password):
    r = login(client, username, password)
    if username == "":
        assert r.status_code == 422
        return
    assert r.status_code == 401
    assert r.json["code"] == "invalid_credentials"
    assert r.content_type == "application/problem+json"


def _without_request_identity(response) -> dict:
    body = dict(response.json)
    for key in ("request_id", "instance"):
        body.pop(key, None)
    return body


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(client, an, tree):
    """Nothing in the answer tells a wrong password from an account that does not exist (or is
    inactive, or has no password): same status, headers that matter and body but for the request id."""
    member("01000002", tree["b1"], active=False)
    member("01000003", tree["b1"], password=None)
    answers = [login(client, "01000001", "wrong-password"), login(client, "99999999", PASSWORD),
               login(client, "0999999999", PASSWORD), login(client, "01000002", PASSWORD),
               login(client, "01000003", "anything")]
    first = answers[0]
    assert first.status_code == 401 and first.json["code"] == "invalid_credentials"
    for other in answers[1:]:
        assert other.status_code == first.status_code
        assert other.content_type == first.content_type
        assert _without_request_identity(other) == _without_request_identity(first)
        assert ("WWW-Authenticate" in other.headers) == ("WWW-Authenticate" in first.headers)


def test_inactive_member_and_member_without_password_cannot_log_in(client, tree):
    member("01000002", tree["b1"], active=False)
    member("01000003", tree["b1"], password=None)
    assert login(client, "01000002").json["code"] == "invalid_credentials"
    assert login(client, "01000003", "").status_code == 422
    assert login(client, "01000003", "anything").json["code"] == "invalid_credentials"


def test_me_shows_unit_ancestors_root_first_and_roles(client, an, tree):
    token = login(client, "01000001").json["access_token"]
    me = client.get("/api/v1/me", headers=bearer(token)).json
    assert [u["code"] for u in me["ancestors"]] == ["HN", "HN.BD", "HN.BD.DB"]
    assert me["roles"] == [{"role": "secretary", "org_unit": tree["b1"].brief()}]
    assert me["full_name"] == "Nguyễn Văn An"


def test_summary_is_zero_without_content(client, an):
    token = login(client, "01000001").json["access_token"]
    assert client.get("/api/v1/me/summary", headers=bearer(token)).json == {
        "pending": 0, "overdue": 0, "unread_notifications": 0}


def test_missing_malformed_and_foreign_tokens(client, app, an):
    assert client.get("/api/v1/me").json["code"] == "unauthorized"
    assert client.get("/api/v1/me", headers=bearer("not-a-jwt")).json["code"] == "invalid_token"
    forged = pyjwt.encode({"sub": str(an.id), "sid": "x", "type": "access", "jti": "j", "fresh": False},
                          "some-other-secret-that-is-long-enough-000", algorithm="HS256")
    r = client.get("/api/v1/me", headers=bearer(forged))
    assert r.status_code == 401 and r.json["code"] == "invalid_token"
    assert forged not in r.get_data(as_text=True)


def test_expired_access_token(client, app, an):
    tokens = login(client, "01000001").json
    sid = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    expired = create_access_token(identity=str(an.id), additional_claims={"sid": sid},
                                  expires_delta=timedelta(seconds=-60))
    r = client.get("/api/v1/me", headers=bearer(expired))
    assert r.status_code == 401 and r.json["code"] == "token_expired"


def test_a_token_verified_before_is_refused_once_it_expires(client, app, an, monkeypatch):
    """Each process remembers the claims of the tokens whose signature it checked (handbook.auth); the
    expiry is checked again on every request, with the configured leeway, and answered as before."""
    monkeypatch.setitem(app.config, "JWT_DECODE_LEEWAY", 0)
    tokens = login(client, "01000001").json
    sid = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    with app.app_context():
        short = create_access_token(identity=str(an.id), additional_claims={"sid": sid},
                                    expires_delta=timedelta(seconds=1))
    assert client.get("/api/v1/me", headers=bearer(short)).status_code == 200
    assert client.get("/api/v1/documents", headers=bearer(short)).status_code == 200   # remembered
    expires = pyjwt.decode(short, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    for path in ("/api/v1/me", "/api/v1/documents"):
        r = client.get(path, headers=bearer(short))
        assert r.status_code == 401 and r.json["code"] == "token_expired"
    # A token signed with another key is never taken for one remembered.
    head, signature = short.rsplit(".", 1)
    tampered = f"{head}.{signature[:10]}{'B' if signature[10] != 'B' else 'C'}{signature[11:]}"
    assert client.get("/api/v1/me", headers=bearer(tampered)).json["code"] == "invalid_token"


def _signed(app, an, sid: str, **claims) -> str:
    """An access token as handbook.auth issues it (the app's key and algorithm), with `claims` changed."""
    now = int(time.time())
    body = {"sub": str(an.id), "sid": sid, "type": "access", "jti": secrets.token_hex(8), "fresh": False,
            "iat": now, "nbf": now, "exp": now + 600, **claims}
    return pyjwt.encode(body, app.config["JWT_SECRET_KEY"], algorithm="HS256")


def _session_of(client) -> str:
    return _claims(login(client, "01000001").json["access_token"])["sid"]


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_remembered_token_not_yet_valid_under_the_current_leeway_is_refused(client, app, an, monkeypatch, claim):
    """The remembered claims are checked again at every request: not before (nbf) and issued at (iat)
    too, with the leeway as configured now (seconds, or a timedelta)."""
    token = _signed(app, an, _session_of(client), **{claim: int(time.time()) + 30})
    monkeypatch.setitem(app.config, "JWT_DECODE_LEEWAY", timedelta(minutes=1))
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200   # verified
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200   # remembered, within the leeway
    monkeypatch.setitem(app.config, "JWT_DECODE_LEEWAY", 0)
    refused = client.get("/api/v1/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json["code"] == "invalid_token", refused.json


@pytest.mark.parametrize("setting,value", [
    ("JWT_SECRET_KEY", "another-secret-key-for-a-rotation-0123456789"),
    ("JWT_ALGORITHM", "HS512"),
    ("JWT_DECODE_AUDIENCE", "so-tay-khac"),
    ("JWT_DECODE_ISSUER", "so-tay-khac"),
    ("JWT_IDENTITY_CLAIM", "identity"),
])
def test_a_remembered_token_is_decoded_afresh_once_the_decoding_settings_change(client, app, an, monkeypatch,
                                                                                 setting, value):
    """A token is remembered for the settings it was verified under: after a key rotation (or another
    algorithm, audience, issuer, identity claim) it is refused as flask-jwt-extended refuses it."""
    token = _signed(app, an, _session_of(client))
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200   # remembered
    monkeypatch.setitem(app.config, setting, value)
    refused = client.get("/api/v1/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json["code"] == "invalid_token", refused.json
    monkeypatch.undo()
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_the_remembered_tokens_are_bounded(client, app, an, monkeypatch):
    """At most `_VERIFIED_MAX` tokens per process (forgotten all at once when full), the newest always kept."""
    from handbook import auth
    from handbook.extensions import jwt

    monkeypatch.setattr(auth, "_VERIFIED_MAX", 3)
    remembered = jwt.handbook_verified_tokens
    remembered.clear()
    sid = _session_of(client)
    sizes = []
    for _ in range(7):
        token = _signed(app, an, sid)
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
        sizes.append(len(remembered))
        assert [claims["jti"] for key, claims in remembered.items() if key[0] == token] == [_claims(token)["jti"]]
    assert sizes == [1, 2, 3, 1, 2, 3, 1]


def test_a_remembered_token_is_not_decoded_again(client, app, an, monkeypatch):
    """What the remembering saves: a token verified once is not decoded again by flask-jwt-extended while
    its time-bound claims hold, with the configured leeway (here one expired 3 s ago, within 10 s)."""
    from flask_jwt_extended import JWTManager

    from handbook import auth
    from handbook.extensions import jwt

    monkeypatch.setitem(app.config, "JWT_DECODE_LEEWAY", 10)
    decoded = []

    def flask_jwt_extended_decode(encoded_token, csrf_value=None, allow_expired=False):
        decoded.append(encoded_token)
        return JWTManager._decode_jwt_from_config(jwt, encoded_token, csrf_value, allow_expired)

    # The process's manager, installed afresh over flask-jwt-extended's decoding seen through a counter
    # (monkeypatch puts the installed decoder and its remembered tokens back afterwards).
    monkeypatch.setattr(jwt, "_decode_jwt_from_config", jwt._decode_jwt_from_config)
    monkeypatch.setattr(jwt, "handbook_verified_tokens", jwt.handbook_verified_tokens)
    monkeypatch.setitem(jwt.__dict__, "_handbook_undecorated_decode", flask_jwt_extended_decode)
    auth._remember_verified_tokens(jwt)
    sid, now = _session_of(client), int(time.time())
    recent, late = _signed(app, an, sid), _signed(app, an, sid, iat=now - 600, nbf=now - 600, exp=now - 3)
    for token in (recent, late):
        for _ in range(3):
            assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert decoded == [recent, late]


def test_remembering_installed_on_a_new_manager_decodes_through_flask_jwt_extended(app, an):
    """Installed on a manager that never had it (as at import), and again (as tests/conftest.py does
    under `make mutate`): tokens are decoded by flask-jwt-extended's own decoding, then remembered."""
    from flask_jwt_extended import JWTManager

    from handbook import auth

    manager = JWTManager()
    auth._remember_verified_tokens(manager)
    token = create_access_token(identity=str(an.id), additional_claims={"sid": "s"})
    assert manager._decode_jwt_from_config(token)["sub"] == str(an.id)
    auth._remember_verified_tokens(manager)
    for _ in range(2):
        assert manager._decode_jwt_from_config(token)["sub"] == str(an.id)
    assert [key[0] for key in manager.handbook_verified_tokens] == [token]


@pytest.mark.parametrize("claims", ["sub not a number", "no session", "another member's id"])
def test_a_signed_token_naming_no_open_session_of_its_member_is_refused(client, app, an, tree, claims):
    """Only the session's own member: a correctly signed token (which only the holder of the key can make)
    whose subject is not a member id, that names no session, or that puts another member's id beside
    this session, is refused like a revoked one, and answers no one's data."""
    other = member("01000002", tree["b1"], name="Trần Thị Bình")
    sid = _session_of(client)
    named, changed = {"sub not a number": (sid, {"sub": "ba"}), "no session": (None, {}),
                      "another member's id": (sid, {"sub": str(other.id)})}[claims]
    refused = client.get("/api/v1/me", headers=bearer(_signed(app, an, named, **changed)))
    assert refused.status_code == 401 and refused.json["code"] == "token_revoked", refused.json
    assert client.get("/api/v1/me", headers=bearer(_signed(app, an, sid))).json["id"] == an.id


def test_an_authenticated_request_reads_its_member_and_session_once(client, app, an):
    """flask-jwt-extended asks twice per request (is the token revoked? whose is it?): one query answers
    both (the principal is kept on the request)."""
    headers = bearer(login(client, "01000001").json["access_token"])
    statements = executed_statements(lambda: client.get("/api/v1/me", headers=headers))
    assert sum("auth_sessions" in sql for sql in statements) == 1, statements


def test_the_access_log_names_the_member_behind_each_request(client, an, caplog):
    """The access log (handbook.observability) takes the member id from the principal that load_principal
    keeps on the request: the ORM member (/me), a light principal (the feed), nobody without a token."""
    member_id = an.id
    headers = bearer(login(client, "01000001").json["access_token"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="handbook.access"):
        client.get("/api/v1/me", headers=headers)
        client.get("/api/v1/documents", headers=headers)
        client.get("/api/v1/me")
    logged = [(rec.path, rec.status, rec.member_id) for rec in caplog.records if rec.name == "handbook.access"]
    assert logged == [("/api/v1/me", 200, member_id), ("/api/v1/documents", 200, member_id),
                      ("/api/v1/me", 401, None)]


def test_token_types_are_not_interchangeable(client, an):
    tokens = login(client, "01000001").json
    assert client.get("/api/v1/me", headers=bearer(tokens["refresh_token"])).json["code"] == "invalid_token"
    r = client.post("/api/v1/auth/refresh", headers=bearer(tokens["access_token"]))
    assert r.status_code == 401 and r.json["code"] == "invalid_token"


def test_refresh_rotates_and_reuse_revokes_the_whole_session(client, an):
    first = login(client, "01000001").json
    second = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert second.status_code == 200
    pair = second.json
    assert pair["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 200

    reuse = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert reuse.status_code == 401 and reuse.json["code"] == "token_reused"
    # Every token of that session is dead now, including the newest pair.
    assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).json["code"] == "token_revoked"
    assert client.post("/api/v1/auth/refresh", headers=bearer(pair["refresh_token"])).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(first["access_token"])).status_code == 401
    # Another session of the same member is untouched.
    other = login(client, "01000001").json
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_revokes_both_tokens_of_that_session_only(client, an):
    phone = login(client, "01000001").json
    laptop = login(client, "01000001").json
    assert client.post("/api/v1/auth/logout", headers=bearer(phone["access_token"])).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(phone["access_token"])).json["code"] == "token_revoked"
    assert client.post("/api/v1/auth/refresh", headers=bearer(phone["refresh_token"])).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(laptop["access_token"])).status_code == 200
    # Logging out with the refresh token works too, and a second logout is refused.
    assert client.post("/api/v1/auth/logout", headers=bearer(laptop["refresh_token"])).status_code == 204
    assert client.post("/api/v1/auth/logout", headers=bearer(laptop["refresh_token"])).status_code == 401


def test_password_change_revokes_other_sessions(client, an):
    current = login(client, "01000001").json
    other = login(client, "01000001").json
    url, headers = "/api/v1/me/password", bearer(current["access_token"])

    wrong = client.put(url, json={"current_password": "nope", "new_password": "mat-khau-moi-456"}, headers=headers)
    # 403, not 401: the session is fine, only the current password is wrong.
    assert wrong.status_code == 403 and wrong.json["code"] == "invalid_credentials"
    assert "current_password" in wrong.json["errors"]
    weak = client.put(url, json={"current_password": PASSWORD, "new_password": "short"}, headers=headers)
    assert weak.status_code == 422 and weak.json["code"] == "weak_password"
    assert "new_password" in weak.json["errors"]

    ok = client.put(url, json={"current_password": PASSWORD, "new_password": "mat-khau-moi-456"}, headers=headers)
    assert ok.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).json["code"] == "token_revoked"
    assert login(client, "01000001").status_code == 401
    assert login(client, "01000001", "mat-khau-moi-456").status_code == 200
    reasons = {s.revoked_reason for s in db.session.scalars(db.select(AuthSession))}
    assert "password_change" in reasons


def test_deactivated_member_loses_access_at_once(client, an):
    token = login(client, "01000001").json["access_token"]
    an.active = False
    db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_failed_logins_are_throttled_per_account(client, an, tree):
    member("01000009", tree["b2"], phone="0987654321")
    for _ in range(5):
        assert login(client, "01000001", "wrong").status_code == 401
    blocked = login(client, "01000001")  # even the right password waits now
    assert blocked.status_code == 429
    assert blocked.json["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) > 0
    assert login(client, "01000009").status_code == 200  # another account is unaffected


def test_every_spelling_of_one_phone_is_one_throttled_account(client, an, tree):
    """Failures under one spelling of the phone number block the others: the throttle is keyed on the
    number, not on what was typed."""
    member("01000009", tree["b2"], phone="0987654321")
    for spelling in ("0912 345 678", "0912345678", "+84912345678", "84 912.345.678", "0912-345-678"):
        assert login(client, spelling, "wrong").status_code == 401, spelling
    for spelling in ("0912345678", "+84 912 345 678", "0912.345.678"):
        blocked = login(client, spelling)  # the right password, another spelling: still waits
        assert blocked.status_code == 429, spelling
        assert blocked.json["code"] == "rate_limited"
    assert login(client, "0987 654 321").status_code == 200  # another phone is another account


def test_successful_logins_do_not_count_against_the_account(client, an):
    for _ in range(8):
        assert login(client, "01000001").status_code == 200


def test_logins_are_throttled_per_ip(client, app, an, tree):
    app.config["LOGIN_LIMIT_PER_IP"] = "3 per minute"
    try:
        codes = [login(client, f"0100009{i}", "x").status_code for i in range(3)]
        assert codes == [401, 401, 401]
        r = login(client, "01000001")
        assert r.status_code == 429 and "Retry-After" in r.headers
        other_ip = client.post("/api/v1/auth/login", json={"username": "01000001", "password": PASSWORD},
                               environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert other_ip.status_code == 200
    finally:
        app.config["LOGIN_LIMIT_PER_IP"] = "60 per minute;600 per hour"


def test_parallel_refresh_with_one_token_succeeds_exactly_once(client, app, an, backend):
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; the race is exercised on PostgreSQL")
    refresh_token = login(client, "01000001").json["refresh_token"]
    results = in_parallel(app, 4, lambda c: c.post("/api/v1/auth/refresh", headers=bearer(refresh_token)))
    assert len(results) == 4 and sorted(results) == [200, 401, 401, 401], results


def test_prune_sessions_keeps_live_ones(client, app, an):
    from handbook.auth import RefreshToken, prune_sessions
    from handbook.timeutil import as_utc

    live = login(client, "01000001").json
    ended = login(client, "01000001").json
    client.post("/api/v1/auth/logout", headers=bearer(ended["access_token"]))
    assert prune_sessions() == (0, 0)  # nothing is old enough yet
    assert client.get("/api/v1/me", headers=bearer(live["access_token"])).status_code == 200

    # A month after the last refresh token expired, both tokens and both sessions are gone.
    last_expiry = as_utc(db.session.scalar(db.select(db.func.max(RefreshToken.expires_at))))
    assert prune_sessions(last_expiry + timedelta(days=31)) == (2, 2)
    assert db.session.scalar(db.select(db.func.count()).select_from(AuthSession)) == 0
    result = app.test_cli_runner().invoke(args=["handbook", "prune-sessions"])
    assert result.exit_code == 0 and "Pruned 0 expired refresh tokens and 0 ended sessions." in result.output


class CountingHasher(PasswordHasher):
    """The real argon2id hasher, counting its calls."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hashes = self.verifies = 0

    def hash(self, *args, **kwargs):
        self.hashes += 1
        return super().hash(*args, **kwargs)

    def verify(self, *args, **kwargs):
        self.verifies += 1
        return super().verify(*args, **kwargs)


def test_unknown_and_known_accounts_cost_the_same_work(client, app, an):
    hasher = CountingHasher()
    app.extensions["handbook.hasher"] = hasher
    app.extensions.pop("handbook.dummy_hash", None)
    try:
        login(client, "01000001", "wrong")
        assert (hasher.hashes, hasher.verifies) == (0, 1)
        for _ in range(3):
            login(client, "55555555", "wrong")
        # One dummy hash for the process, then one verify per attempt, like a real account.
        assert (hasher.hashes, hasher.verifies) == (1, 4)
    finally:
        app.extensions.pop("handbook.hasher", None)


def test_a_hash_made_with_other_argon2_costs_is_upgraded_at_the_next_login(client, app, an):
    """Passwords are hashed with the configured argon2id costs (ARGON2_*); a hash made with other costs
    (before the operators raised them) still lets its member in, and is replaced by one with the
    configured costs at that login; a wrong password changes nothing."""
    from handbook.auth import hash_password

    configured = "m={ARGON2_MEMORY_COST},t={ARGON2_TIME_COST},p={ARGON2_PARALLELISM}".format(**app.config)
    assert hash_password("mat-khau-bat-ky").split("$")[3] == configured
    older = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=2).hash(PASSWORD)
    an.password_hash = older
    db.session.commit()
    assert login(client, "01000001", "wrong").status_code == 401
    db.session.expire_all()
    assert an.password_hash == older
    assert login(client, "01000001").status_code == 200
    db.session.expire_all()
    assert an.password_hash.split("$")[3] == configured
    assert login(client, "01000001").status_code == 200


def test_parallel_wrong_guesses_cannot_exceed_the_account_budget(client, app, an):
    results = in_parallel(app, 12, lambda c: login(c, "01000001", "guess"))
    assert sorted(set(results)) == [401, 429]
    assert results.count(401) == 5 and results.count(429) == 7


def test_password_change_guesses_are_throttled(client, an):
    token = login(client, "01000001").json["access_token"]
    body = {"current_password": "guess", "new_password": "mat-khau-moi-456"}
    codes = [client.put("/api/v1/me/password", json=body, headers=bearer(token)).status_code for _ in range(6)]
    assert codes == [403] * 5 + [429]
    # The right password is refused too until the budget refills: a stolen token cannot brute-force.
    right = {"current_password": PASSWORD, "new_password": "mat-khau-moi-456"}
    assert client.put("/api/v1/me/password", json=right, headers=bearer(token)).status_code == 429


def test_unauthenticated_requests_are_401_before_any_body_validation(client):
    r = client.put("/api/v1/me/password", json={})
    assert r.status_code == 401 and r.json["code"] == "unauthorized"


def test_ip_limit_retry_after_counts_down_the_real_window(client, app, an):
    app.config["LOGIN_LIMIT_PER_IP"] = "2 per hour"
    try:
        login(client, "01000001")
        login(client, "01000001")
        r = login(client, "01000001")
        assert r.status_code == 429
        assert 60 < int(r.headers["Retry-After"]) <= 3601  # the window's reset time is in whole seconds
    finally:
        app.config["LOGIN_LIMIT_PER_IP"] = "60 per minute;600 per hour"


def test_garbage_forwarded_for_behind_a_trusted_proxy(database_url, app, an):
    from tests.conftest import make_app

    proxied = make_app(database_url, TRUSTED_PROXIES=1).test_client()
    r = proxied.post("/api/v1/auth/login", json={"username": "01000001", "password": PASSWORD},
                     headers={"X-Forwarded-For": "x" * 100})
    assert r.status_code == 200
    r = proxied.post("/api/v1/auth/login", json={"username": "01000001", "password": PASSWORD},
                     headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200
    ips = {s.ip for s in db.session.scalars(db.select(AuthSession))}
    assert ips == {"127.0.0.1", "203.0.113.9"}


def test_auth_scheme_is_case_insensitive_and_204_has_no_body_type(client, an):
    token = login(client, "01000001").json["access_token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"bearer {token}"}).status_code == 200
    r = client.post("/api/v1/auth/logout", headers={"Authorization": f"BEARER {token}"})
    assert r.status_code == 204 and "Content-Type" not in r.headers and r.data == b""


# --- what each auth path writes (found by mutation testing: `make mutate`) ---------------------------

def _session(session_id: str) -> AuthSession:
    db.session.expire_all()
    return db.session.get(AuthSession, session_id)


def _audit(action: str) -> list[tuple]:
    from handbook.audit import AuditEntry

    db.session.expire_all()
    return [(e.actor_id, e.target_type, e.target_id) for e in
            db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def test_a_refresh_token_unknown_to_the_database_or_of_another_session_is_invalid(client, an):
    from handbook.auth import RefreshToken

    first, second = login(client, "01000001").json, login(client, "01000001").json
    # A refresh token whose row is gone (pruned, or never issued by this server).
    db.session.execute(db.delete(RefreshToken).where(RefreshToken.jti == _claims(first["refresh_token"])["jti"]))
    # A refresh token whose row belongs to another session than the one it names.
    db.session.execute(db.update(RefreshToken).where(RefreshToken.jti == _claims(second["refresh_token"])["jti"])
                       .values(session_id=_claims(first["refresh_token"])["sid"]))
    db.session.commit()
    for pair in (first, second):
        r = client.post("/api/v1/auth/refresh", headers=bearer(pair["refresh_token"]))
        assert r.status_code == 401 and r.json["code"] == "invalid_token", r.get_data(as_text=True)
        assert r.content_type == "application/problem+json"
    assert _audit("auth.refresh_reuse") == []  # not a reuse: nothing revoked
    assert _session(_claims(second["refresh_token"])["sid"]).revoked_at is None


def test_refresh_and_its_reuse_leave_their_marks(client, an):
    from handbook.auth import RefreshToken

    first = login(client, "01000001").json
    sid, jti = _claims(first["refresh_token"])["sid"], _claims(first["refresh_token"])["jti"]
    assert _session(sid).refreshed_at is None
    assert client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"])).status_code == 200
    assert _session(sid).refreshed_at is not None
    assert db.session.get(RefreshToken, jti).used_at is not None
    reuse = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert reuse.status_code == 401 and reuse.json["code"] == "token_reused"
    session = _session(sid)
    assert session.revoked_at is not None and session.revoked_reason == "refresh_reuse"
    assert _audit("auth.refresh_reuse") == [(an.id, "session", sid)]


def test_revoking_a_revoked_session_keeps_the_first_reason_and_time(client, an):
    from handbook.auth import revoke_session

    pair = login(client, "01000001").json
    sid = _claims(pair["refresh_token"])["sid"]
    assert client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code == 204
    ended = _session(sid)
    assert ended.revoked_reason == "logout"
    revoked_at = ended.revoked_at
    revoke_session(sid, "refresh_reuse")
    db.session.commit()
    assert (_session(sid).revoked_reason, _session(sid).revoked_at) == ("logout", revoked_at)


def test_a_password_change_revokes_only_the_member_s_own_open_sessions(client, an, tree):
    member("01000002", tree["b1"], name="Trần Thị Bình")
    mine, other, logged_out = (login(client, "01000001").json for _ in range(3))
    theirs = login(client, "01000002").json
    assert client.post("/api/v1/auth/logout", headers=bearer(logged_out["access_token"])).status_code == 204
    before = _session(_claims(logged_out["refresh_token"])["sid"]).revoked_at
    ok = client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "mat-khau-moi-456"},
                    headers=bearer(mine["access_token"]))
    assert ok.status_code == 204
    reasons = {name: (_session(_claims(p["refresh_token"])["sid"]).revoked_reason)
               for name, p in (("mine", mine), ("other", other), ("logged_out", logged_out), ("theirs", theirs))}
    assert reasons == {"mine": None, "other": "password_change", "logged_out": "logout", "theirs": None}
    assert _session(_claims(logged_out["refresh_token"])["sid"]).revoked_at == before
    assert client.get("/api/v1/me", headers=bearer(theirs["access_token"])).status_code == 200
    assert _audit("auth.password_change") == [(an.id, "member", str(an.id))]


def test_password_changes_spend_a_budget_of_the_member_s_own(client, app, an, tree):
    """Right passwords do not count against it; another member's wrong guesses do not spend it."""
    member("01000002", tree["b1"], name="Trần Thị Bình")
    mine = login(client, "01000001").json["access_token"]
    theirs = login(client, "01000002").json["access_token"]
    url = "/api/v1/me/password"
    for _ in range(6):  # more than the budget of 5: successes are refunded
        assert client.put(url, json={"current_password": PASSWORD, "new_password": PASSWORD},
                          headers=bearer(mine)).status_code == 204
    wrong = {"current_password": "guess", "new_password": "mat-khau-moi-456"}
    codes = [client.put(url, json=wrong, headers=bearer(theirs)).status_code for _ in range(6)]
    assert codes == [403] * 5 + [429]
    refused = client.put(url, json=wrong, headers=bearer(mine))
    assert refused.status_code == 403 and refused.json["errors"] == {"current_password": ["Mật khẩu hiện tại không đúng."]}
    assert login(client, "01000001").status_code == 200  # the login budget is another one


@pytest.mark.parametrize("length,status", [(7, 422), (8, 204)])
def test_the_shortest_new_password_is_the_configured_minimum(client, an, length, status):
    token = login(client, "01000001").json["access_token"]
    r = client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "x" * length},
                   headers=bearer(token))
    assert r.status_code == status, r.get_data(as_text=True)
    if status == 422:
        assert r.json["code"] == "weak_password" and r.json["errors"] == {"new_password": ["Mật khẩu quá ngắn."]}
        assert "ít nhất 8 ký tự" in r.json["detail"]


def test_prune_sessions_at_its_boundaries(app, an):
    """Tokens expired strictly before `now` go; a session goes once it has no token left and ended
    (last refreshed, or opened) strictly more than a refresh lifetime before `now`."""
    from handbook.auth import RefreshToken, prune_sessions
    from handbook.timeutil import utcnow

    now = utcnow().replace(microsecond=0)
    horizon = now - app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    hour = timedelta(hours=1)

    def session(name, created, refreshed=None, revoked=None, token_expires=None):
        db.session.add(AuthSession(id=name, member_id=an.id, created_at=created, refreshed_at=refreshed,
                                   revoked_at=revoked))
        db.session.flush()
        if token_expires is not None:
            db.session.add(RefreshToken(jti=f"jti-{name}", session_id=name, expires_at=token_expires))

    session("refreshed-lately", horizon - 24 * hour, refreshed=horizon + hour)      # kept
    session("refreshed-long-ago", horizon - 48 * hour, refreshed=horizon - hour)    # pruned
    session("opened-long-ago", horizon - hour)                                      # pruned
    session("refreshed-at-horizon", horizon - 48 * hour, refreshed=horizon)         # kept: not before it
    session("with-live-token", horizon - 48 * hour, token_expires=now + hour)       # kept: a token lives
    session("token-expires-now", horizon - 48 * hour, token_expires=now)            # kept, token too
    session("token-expired", horizon - 48 * hour, token_expires=now - hour)         # both pruned
    session("revoked-long-ago", horizon - 48 * hour, revoked=horizon - hour)        # pruned
    db.session.commit()
    assert prune_sessions(now) == (1, 4)
    db.session.expire_all()
    assert sorted(db.session.scalars(db.select(AuthSession.id))) == [
        "refreshed-at-horizon", "refreshed-lately", "token-expires-now", "with-live-token"]
    assert sorted(db.session.scalars(db.select(RefreshToken.jti))) == ["jti-token-expires-now", "jti-with-live-token"]


def test_a_session_keeps_the_device_s_user_agent_cut_to_255_and_its_ip(client, an):
    for agent, kept in (("SoTayDangVien/2.1 (Android 14)", "SoTayDangVien/2.1 (Android 14)"),
                        ("x" * 300, "x" * 255), ("", None)):
        r = client.post("/api/v1/auth/login", json={"username": "01000001", "password": PASSWORD},
                        headers={"User-Agent": agent}, environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert r.status_code == 200
        session = _session(_claims(r.json["refresh_token"])["sid"])
        assert (session.user_agent, session.ip, session.member_id) == (kept, "10.9.8.7", an.id)


def test_a_retried_refresh_a_second_later_gets_the_very_pair_it_was_issued(client, an, app, monkeypatch):
    """Within REFRESH_GRACE_SECONDS, a refresh sent again after its answer was lost gets the pair first
    issued, byte for byte, also a second or more later: the tokens carry the time of the first answer
    (iat, nbf), not of the retry. (tests/test_refresh_grace.py has the rest of the window's rules.)"""
    monkeypatch.setitem(app.config, "REFRESH_GRACE_SECONDS", 30)
    first = login(client, "01000001").json
    lost = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert lost.status_code == 200
    time.sleep(1.1)   # the tokens' times are whole seconds
    retry = client.post("/api/v1/auth/refresh", headers=bearer(first["refresh_token"]))
    assert retry.status_code == 200, retry.get_data(as_text=True)
    assert retry.json == lost.json
    claims = _claims(retry.json["access_token"])
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] == int(
        app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
