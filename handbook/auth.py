"""Authentication: argon2id passwords, login sessions, rotating refresh tokens with reuse detection.

A login opens an `AuthSession`; every token issued in it carries the session id (`sid`). Refresh tokens
are single use: refreshing marks the presented token used and issues a new pair in the same session.
Presenting a used refresh token again means it was stolen or replayed, so the whole session is revoked.
Logout revokes the session; a password change revokes the member's other sessions. Every authenticated
request checks its session with one primary-key join (see `load_principal`), so revocation takes effect
at once on every API instance, with PostgreSQL as the single source of truth.
"""
from __future__ import annotations

import functools
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_jwt_extended.config import config as jwt_settings
from sqlalchemy import ForeignKey, String, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column

from handbook import audit, throttle
from handbook.errors import ProblemError
from handbook.extensions import db, jwt, reads
from handbook.members import Member, RoleGrant, find_by_login
from handbook.orgunits import OrgUnit
from handbook.text import fold, normalise_phone
from handbook.timeutil import UTCDateTime, as_utc, utcnow


class AuthSession(db.Model):
    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(db.Model):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The refresh token issued when this one was used (a retry within the grace window gets it again).
    replaced_by: Mapped[str | None] = mapped_column(String(64))


# --- passwords -------------------------------------------------------------------------------------

def _hasher() -> PasswordHasher:
    ext = current_app.extensions
    if "handbook.hasher" not in ext:
        cfg = current_app.config
        ext["handbook.hasher"] = PasswordHasher(
            time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"],
            parallelism=cfg["ARGON2_PARALLELISM"],
        )
    return ext["handbook.hasher"]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password(member: Member | None, password: str) -> bool:
    """Verify in constant work whether or not the member exists; upgrade an outdated hash."""
    hasher = _hasher()
    if member is None or not member.active or not member.password_hash:
        ext = current_app.extensions
        if "handbook.dummy_hash" not in ext:  # computed once: unknown users cost exactly one verify
            ext["handbook.dummy_hash"] = hasher.hash(secrets.token_hex(16))
        try:
            hasher.verify(ext["handbook.dummy_hash"], password)
        except VerificationError:
            pass
        return False
    try:
        hasher.verify(member.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if hasher.check_needs_rehash(member.password_hash):
        member.password_hash = hasher.hash(password)
    return True


def validate_new_password(password: str) -> None:
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        raise ProblemError("weak_password", 422, errors={"new_password": ["password_too_short"]},
                           min_length=minimum)


# --- sessions and tokens ---------------------------------------------------------------------------

@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _issue(member_id: int, session_id: str, *, at: int | None = None, refresh_jti: str | None = None,
           record: bool = True) -> TokenPair:
    """An access and a refresh token of the session, issued at `at` (Unix seconds; now by default). The
    claims that would differ from one issue to the next (jti, iat, nbf, exp) are set here, from the refresh
    token's jti and `at`: issuing again with the same two gives the same tokens, byte for byte (a refresh
    retried within the grace window). `record`: store the refresh token (not when issuing it again)."""
    cfg = current_app.config
    at = int(time.time()) if at is None else at
    refresh_jti = refresh_jti or str(uuid.uuid4())
    identity, base = str(member_id), {"sid": session_id, "iat": at, "nbf": at}
    refresh_exp = at + int(cfg["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds())
    access = create_access_token(identity=identity, additional_claims={
        **base, "jti": f"{refresh_jti}.access", "exp": at + int(cfg["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())})
    refresh = create_refresh_token(identity=identity, additional_claims={**base, "jti": refresh_jti,
                                                                          "exp": refresh_exp})
    if record:
        db.session.add(RefreshToken(jti=refresh_jti, session_id=session_id,
                                    expires_at=datetime.fromtimestamp(refresh_exp, tz=UTC)))
    return TokenPair(access, refresh, int(cfg["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()))


def account_key(username: str) -> str:
    """Throttle key of the account being tried: the same for every spelling of one phone number."""
    try:
        phone = normalise_phone(username)
    except ValueError:
        phone = None
    return f"acct:{phone or fold(username)[:64]}"


def login(username: str, password: str, *, user_agent: str | None, ip: str | None) -> tuple[Member, TokenPair]:
    key = account_key(username)
    throttle.spend("login-account", key, "LOGIN_LIMIT_PER_ACCOUNT")
    member = find_by_login(username)
    if not check_password(member, password):
        raise ProblemError("invalid_credentials", 401)
    throttle.refund("login-account", key, "LOGIN_LIMIT_PER_ACCOUNT")
    session = AuthSession(id=secrets.token_hex(16), member_id=member.id,
                          user_agent=(user_agent or "")[:255] or None, ip=ip)
    db.session.add(session)
    if member.first_signed_in_at is None:   # adoption: "ever signed in" outlives pruned sessions
        member.first_signed_in_at = utcnow()
    pair = _issue(member.id, session.id)
    db.session.commit()
    return member, pair


def refresh(jwt_data: dict) -> TokenPair:
    """Rotate the presented refresh token; a second use of it revokes the whole session, unless it is the
    retry of a refresh whose answer was lost (`_retried`)."""
    token = db.session.get(RefreshToken, jwt_data["jti"])
    if token is None or token.session_id != jwt_data.get("sid"):
        raise ProblemError("invalid_token", 401)
    now = utcnow()
    successor = str(uuid.uuid4())
    claimed = db.session.execute(
        update(RefreshToken).where(RefreshToken.jti == token.jti, RefreshToken.used_at.is_(None))
        .values(used_at=now, replaced_by=successor).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        again = _retried(token.jti, int(jwt_data["sub"]), now)
        if again is not None:
            db.session.commit()
            return again
        revoke_session(token.session_id, "refresh_reuse")
        audit.record("auth.refresh_reuse", actor_id=int(jwt_data["sub"]), target_type="session",
                     target_id=token.session_id)
        db.session.commit()
        raise ProblemError("token_reused", 401)
    session = db.session.get(AuthSession, token.session_id)
    session.refreshed_at = now
    pair = _issue(int(jwt_data["sub"]), session.id, at=int(now.timestamp()), refresh_jti=successor)
    db.session.commit()
    return pair


def _retried(jti: str, member_id: int, now: datetime) -> TokenPair | None:
    """The pair issued when `jti` was used, if this is a retry of that refresh: within
    REFRESH_GRACE_SECONDS of it, and while the refresh token it gave is still unused (once the phone used
    that one, the session has moved on, and the old token coming back is a replay). None otherwise."""
    row = db.session.execute(select(RefreshToken.used_at, RefreshToken.replaced_by, RefreshToken.session_id)
                             .where(RefreshToken.jti == jti)).one()
    grace = current_app.config["REFRESH_GRACE_SECONDS"]
    if grace <= 0 or row.used_at is None or row.replaced_by is None:
        return None
    used_at = as_utc(row.used_at)
    # (negative when a concurrent request took its time before this one's claim: a retry all the same)
    if (now - used_at).total_seconds() > grace:
        return None
    successor_used = db.session.scalar(select(RefreshToken.used_at).where(RefreshToken.jti == row.replaced_by))
    if successor_used is not None or db.session.get(RefreshToken, row.replaced_by) is None:
        return None
    return _issue(member_id, row.session_id, at=int(used_at.timestamp()), refresh_jti=row.replaced_by, record=False)


def revoke_session(session_id: str, reason: str) -> None:
    db.session.execute(
        update(AuthSession).where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason).execution_options(synchronize_session=False)
    )


def revoke_member_sessions(member_id: int, reason: str, *, keep: str | None = None) -> None:
    """Revoke every open session of a member (all but `keep`): password change, removal, role change."""
    stmt = update(AuthSession).where(AuthSession.member_id == member_id, AuthSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    db.session.execute(stmt.values(revoked_at=utcnow(), revoked_reason=reason)
                       .execution_options(synchronize_session=False))


def change_password(member: Member, session_id: str, current: str, new: str) -> None:
    """A wrong current password is 403 (not 401: the session itself is fine) and spends the same
    failed-attempt budget as logins, so a stolen access token cannot be used to guess the password."""
    key = f"member:{member.id}"
    throttle.spend("password-change", key, "LOGIN_LIMIT_PER_ACCOUNT")
    if not check_password(member, current):
        raise ProblemError("invalid_credentials", 403, errors={"current_password": ["wrong_password"]})
    throttle.refund("password-change", key, "LOGIN_LIMIT_PER_ACCOUNT")
    validate_new_password(new)
    member.password_hash = hash_password(new)
    revoke_member_sessions(member.id, "password_change", keep=session_id)
    audit.record("auth.password_change", actor_id=member.id, target_type="member", target_id=member.id)
    db.session.commit()


def prune_sessions(now: datetime | None = None) -> tuple[int, int]:
    """Delete expired refresh tokens, then sessions with no token left that ended (revoked, or last
    refreshed) more than a refresh lifetime ago. Returns (tokens, sessions) deleted. Safe at any time:
    an expired refresh token is refused by its signature anyway, so nothing live is lost."""
    now = now or utcnow()
    horizon = now - current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    tokens = db.session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now)).rowcount
    live = select(RefreshToken.session_id).where(RefreshToken.session_id == AuthSession.id).exists()
    ended = or_(AuthSession.revoked_at < horizon,
                func.coalesce(AuthSession.refreshed_at, AuthSession.created_at) < horizon)
    sessions = db.session.execute(
        delete(AuthSession).where(~live, ended).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return tokens, sessions


# --- flask-jwt-extended hooks ----------------------------------------------------------------------

PRINCIPAL_KEY = "handbook.principal"
# Set on the request by `api.common.auth_required(light=True)`: the endpoint reads its caller as a
# `Principal` (rows, no ORM), with `stamps` ("stamps") when it answers conditional GETs from them.
LIGHT_KEY = "handbook.light"


@dataclass(frozen=True, slots=True)
class UnitRef:
    """An org unit as a read path needs it: what `OrgUnit.brief()` shows, and its place in the tree."""

    id: int
    code: str
    name: str
    kind: str
    path: str
    depth: int

    def brief(self) -> dict:
        return {"id": self.id, "code": self.code, "name": self.name, "kind": self.kind}

    @property
    def ancestor_ids(self) -> list[int]:
        return [int(part) for part in self.path.strip("/").split("/")[:-1]]

    def contains(self, other) -> bool:
        return other.path.startswith(self.path)


@dataclass(frozen=True, slots=True)
class GrantRef:
    role: str
    org_unit: UnitRef


@dataclass(slots=True)
class Principal:
    """The caller of a hot read or acknowledge path: the member's id, unit and roles, read with the session
    check in one statement built once, as rows (no ORM object, no identity map). It answers what those
    paths ask of a `Member` (`id`, `org_unit`, `org_unit_id`, `roles`); every other endpoint gets the
    ORM `Member`. `stamps` (conditional GETs, `content.feed.validator`) when asked for."""

    id: int
    org_unit_id: int
    org_unit: UnitRef
    roles: tuple[GrantRef, ...]
    session_id: str
    stamps: tuple | None = None
    active: bool = True


def _unit_columns(table):
    return (table.c.id, table.c.code, table.c.name, table.c.kind, table.c.path, table.c.depth)


_UNIT_WIDTH = 6


@functools.cache
def _principal_statement(with_stamps: bool, dialect: str):
    """Session open, member active, the member's unit and their role grants (with their units): one
    statement, a row per grant (one with NULL grant columns for a member with none). Built once; the
    stamps of conditional GETs (`content.feed.stamp_columns`) ride along as uncorrelated subqueries."""
    sessions, members, grants = AuthSession.__table__, Member.__table__, RoleGrant.__table__
    unit = OrgUnit.__table__.alias("unit")
    grant_unit = OrgUnit.__table__.alias("grant_unit")
    columns = [members.c.id, *_unit_columns(unit), grants.c.role, *_unit_columns(grant_unit)]
    if with_stamps:
        from content.feed import stamp_columns

        columns += stamp_columns(bindparam("mid"), bindparam("now"), dialect)
    return (
        select(*columns)
        .select_from(sessions.join(members, members.c.id == sessions.c.member_id)
                     .join(unit, unit.c.id == members.c.org_unit_id)
                     .outerjoin(grants, grants.c.member_id == members.c.id)
                     .outerjoin(grant_unit, grant_unit.c.id == grants.c.org_unit_id))
        .where(sessions.c.id == bindparam("sid"), members.c.id == bindparam("mid"),
               sessions.c.revoked_at.is_(None), members.c.active.is_(True))
    )


_COMPILED: dict = {}   # id(statement built once, kept for good by functools.cache) → (its SQL, compiled form)


def _driver_rows(conn, stmt, params: dict) -> list[tuple]:
    """`conn.execute(stmt, params).all()` on psycopg's own cursor: the statement compiled once, no
    SQLAlchemy execution context or result object per call (~75 µs of CPU a call, a third of the whole
    statement's client cost). For statements whose parameters need no bind processing and whose rows
    are read as plain values (the principal's). The engine's cursor events still see it (logs, statement
    counts, timings); psycopg's errors are answered like SQLAlchemy's (handbook.errors)."""
    entry = _COMPILED.get(id(stmt))
    if entry is None:
        compiled = stmt.compile(dialect=conn.dialect)
        entry = _COMPILED[id(stmt)] = (str(compiled), compiled)
    sql, compiled = entry
    values = compiled.construct_params(params, escape_names=False)
    with conn.connection.driver_connection.cursor() as cursor:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, values, None, False)
        cursor.execute(sql, values)
        rows = cursor.fetchall()
        conn.dispatch.after_cursor_execute(conn, cursor, sql, values, None, False)
    return rows


def _light_principal(sid: str, member_id: int, with_stamps: bool) -> Principal | None:
    params = {"sid": sid, "mid": member_id}
    if with_stamps:
        params["now"] = utcnow()
    conn = reads()
    stmt = _principal_statement(with_stamps, conn.dialect.name)
    rows = _driver_rows(conn, stmt, params) if conn.dialect.name == "postgresql" else conn.execute(stmt, params).all()
    if not rows:
        return None
    first = rows[0]
    unit = UnitRef(*first[1:1 + _UNIT_WIDTH])
    roles, units = [], {unit.id: unit}
    base = 1 + _UNIT_WIDTH
    for row in rows:
        if row[base] is not None:
            unit_id = row[base + 1]
            grant_unit = units.get(unit_id) or units.setdefault(unit_id, UnitRef(*row[base + 1:base + 1 + _UNIT_WIDTH]))
            roles.append(GrantRef(row[base], grant_unit))
    stamps = tuple(first[base + 1 + _UNIT_WIDTH:]) + (params["now"],) if with_stamps else None
    return Principal(first[0], unit.id, unit, tuple(roles), sid, stamps)


def load_principal(jwt_data: dict) -> Member | Principal | None:
    """The member behind a token, if its session is still open and the member active (one query): the
    ORM `Member`, or on endpoints marked light (`LIGHT_KEY`) a `Principal`."""
    # Cached on the request itself (not `g`, whose app context may outlive one request).
    environ = request.environ if has_request_context() else {}
    cached = environ.get(PRINCIPAL_KEY)
    if cached is not None and cached[0] == jwt_data.get("jti"):
        return cached[1]
    member = None
    sid, sub = jwt_data.get("sid"), jwt_data.get("sub")
    light = environ.get(LIGHT_KEY)
    if sid and sub and sub.isdigit():
        if light:
            member = _light_principal(sid, int(sub), light == "stamps")
        else:
            # Roles joined in too (a member has few): the whole principal in one round trip.
            member = db.session.scalars(
                select(Member).join(AuthSession, AuthSession.member_id == Member.id)
                .options(joinedload(Member.roles))
                .where(AuthSession.id == sid, Member.id == int(sub), AuthSession.revoked_at.is_(None),
                       Member.active.is_(True))
            ).unique().one_or_none()
    # The id is kept apart: reading `member.id` after a commit would reload the expired member.
    environ[PRINCIPAL_KEY] = (jwt_data.get("jti"), member, member.id if member is not None else None)
    return member


@jwt.token_in_blocklist_loader
def _is_revoked(jwt_header, jwt_data) -> bool:
    return load_principal(jwt_data) is None


@jwt.user_lookup_loader
def _lookup(jwt_header, jwt_data) -> Member | Principal | None:
    return load_principal(jwt_data)


# --- the token's signature, checked once per token and process -----------------------------------------

_VERIFIED_MAX = 10_000   # distinct tokens remembered per process (~1.5 KB each; all forgotten when full)


def _remember_verified_tokens(manager) -> None:
    """flask-jwt-extended parses every token three times per request (its claims unverified, its header
    unverified, then verified: base64 and JSON each time, PyJWT checking each segment's alphabet character
    by character in Python), ~0.1 ms of CPU. A token's signature and claims never change, so each process
    keeps the claims of the tokens it verified, keyed by the token itself, the app and its decoding
    settings; on every request the time-bound claims (exp, nbf, iat, with the configured leeway) are
    checked again, and a token failing them goes through flask-jwt-extended's own decoding, which raises
    exactly what it always raised. Revocation is not cached here: it is the session check that follows."""
    # The undecorated decoder is kept, so that installing this again (tests/conftest.py under `make mutate`,
    # where the module was imported before the mutant was chosen) starts afresh instead of stacking.
    original = manager.__dict__.setdefault("_handbook_undecorated_decode", manager._decode_jwt_from_config)
    verified: dict = {}
    manager.handbook_verified_tokens = verified   # (read by tests and operators: how many it holds)

    def decode(encoded_token, csrf_value=None, allow_expired=False):
        if csrf_value or allow_expired or not isinstance(encoded_token, str):
            return original(encoded_token, csrf_value, allow_expired)
        # What flask-jwt-extended decodes with, read as it reads it (the key: JWT_SECRET_KEY, or
        # JWT_PUBLIC_KEY for an asymmetric algorithm; the algorithms: JWT_DECODE_ALGORITHMS and JWT_ALGORITHM).
        key = (encoded_token, id(current_app._get_current_object()), jwt_settings.decode_key,
               tuple(jwt_settings.decode_algorithms), repr(jwt_settings.decode_audience), jwt_settings.decode_issuer,
               jwt_settings.identity_claim_key, jwt_settings.verify_sub)
        claims = verified.get(key)
        if claims is not None:
            leeway = jwt_settings.leeway or 0
            leeway = leeway.total_seconds() if hasattr(leeway, "total_seconds") else leeway
            now = time.time()
            if (("exp" not in claims or claims["exp"] > now - leeway)
                    and ("nbf" not in claims or claims["nbf"] <= now + leeway)
                    and ("iat" not in claims or claims["iat"] <= now + leeway)):
                return dict(claims)
        claims = original(encoded_token, csrf_value, allow_expired)
        if len(verified) >= _VERIFIED_MAX:
            verified.clear()
        verified[key] = dict(claims)
        return claims

    manager._decode_jwt_from_config = decode


_remember_verified_tokens(jwt)
