"""Console sign-in: a cookie that names one row of `auth_sessions`, checked on every request.

`handbook.auth.login` opens the session (same throttles, same audit, same row as an app login); the
cookie keeps its id, the member's id and the sign-in time. `current_member()` looks the row up with
`handbook.auth.load_principal`, exactly as a bearer token is checked: a revoked session or an
inactive member is signed out at once. The cookie also expires after CONSOLE_SESSION_HOURS.
"""
from __future__ import annotations

import functools
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_jwt_extended import decode_token

from handbook import auth
from handbook.extensions import client_ip, db
from handbook.members import Member


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (behind a proxy too,
    with TRUSTED_PROXIES), so plain-HTTP development still works."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app: Flask) -> None:
    app.session_interface = _SessionInterface()
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["CONSOLE_SESSION_HOURS"])


def sign_in(username: str, password: str) -> Member:
    """Check the password with the API's login (throttles included) and start a console session."""
    member, pair = auth.login(username, password, user_agent=request.user_agent.string, ip=client_ip())
    sid = decode_token(pair.access_token)["sid"]
    if session.get("sid"):                 # signing in again over a session: that one ends
        auth.revoke_session(session["sid"], "logout")
        db.session.commit()
    lang = session.get("lang")
    session.clear()                      # a fresh session (and CSRF token) for the signed-in member
    if lang:
        session["lang"] = lang
    session.update(sid=sid, mid=member.id, at=int(time.time()))
    session.permanent = True
    return member


def sign_out() -> None:
    sid = session.get("sid")
    if sid:
        auth.revoke_session(sid, "logout")
        db.session.commit()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def current_member() -> Member | None:
    sid, mid, at = session.get("sid"), session.get("mid"), session.get("at")
    if not sid or not isinstance(mid, int) or not isinstance(at, int):
        return None
    from flask import current_app

    if time.time() - at > current_app.config["CONSOLE_SESSION_HOURS"] * 3600:
        return None
    return auth.load_principal({"sid": sid, "sub": str(mid), "jti": f"console:{sid}"})


def safe_next(target: str | None) -> str | None:
    """A path on this site only (no scheme, no host, no `//`): never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def login_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        member = current_member()
        if member is None:
            if session.get("sid"):
                session.pop("sid", None)
                session.pop("mid", None)
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("console.login", next=target), 303)
        return view(member, *args, **kwargs)

    return wrapper
