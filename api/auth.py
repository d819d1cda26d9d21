"""POST /auth/login, /auth/refresh, /auth/logout."""
from __future__ import annotations

from flask import current_app, request
from flask_jwt_extended import get_jwt
from flask_smorest import Blueprint

from api.common import auth_required, session_id
from api.schemas import LoginResponseSchema, LoginSchema, TokenPairSchema
from handbook import auth
from handbook.extensions import client_ip, db, limiter
from handbook.members import profile
from handbook.text import fold, normalise_phone

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Đăng nhập, làm mới mã truy cập, đăng xuất")


def _account_key() -> str:
    """Throttle key for the account being tried: the same for every spelling of one phone number."""
    data = request.get_json(silent=True)
    username = data.get("username") if isinstance(data, dict) else None
    if not isinstance(username, str) or not username.strip():
        return f"ip:{client_ip()}"
    try:
        return f"acct:{normalise_phone(username) or ''}"
    except ValueError:
        return f"acct:{fold(username)[:64]}"


@blp.route("/login", methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], key_func=client_ip, scope="login-ip")
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], key_func=_account_key,
               scope="login-account", deduct_when=lambda response: response.status_code == 401)
@blp.arguments(LoginSchema)
@blp.response(200, LoginResponseSchema)
@blp.alt_response(401, description="invalid_credentials")
@blp.alt_response(429, description="rate_limited (per account and per IP)")
def login(args):
    """Sign in with a party card number or phone number."""
    member, pair = auth.login(args["username"], args["password"],
                              user_agent=request.user_agent.string, ip=client_ip())
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": pair.expires_in, "member": profile(member)}


@blp.route("/refresh", methods=["POST"])
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, description="invalid_token, token_expired, token_revoked or token_reused")
@auth_required(refresh=True)
def refresh():
    """Rotate the refresh token (Bearer refresh token). Reusing a rotated one revokes the session."""
    pair = auth.refresh(get_jwt())
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": pair.expires_in}


@blp.route("/logout", methods=["POST"])
@blp.response(204)
@auth_required(any_type=True)
def logout():
    """End this session: its access and refresh tokens stop working."""
    auth.revoke_session(session_id(), "logout")
    db.session.commit()
