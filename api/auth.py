"""POST /auth/login, /auth/refresh, /auth/logout."""
from __future__ import annotations

from flask import request
from flask_jwt_extended import get_jwt

from api.common import Blueprint, auth_required, session_id
from api.schemas import LoginResponseSchema, LoginSchema, TokenPairSchema
from handbook import auth
from handbook.extensions import client_ip, db, login_ip_limit
from handbook.members import profile

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Đăng nhập, làm mới mã truy cập, đăng xuất")


@blp.route("/login", methods=["POST"])
@login_ip_limit
@blp.arguments(LoginSchema)
@blp.response(200, LoginResponseSchema)
@blp.alt_response(401, description="invalid_credentials")
@blp.alt_response(429, description="rate_limited (per account and per IP)")
def login(args):
    """Sign in with a party card number or phone number.

    Throttled per client IP (all attempts) and per account (failed attempts since the last success,
    counted before the password is checked)."""
    member, pair = auth.login(args["username"], args["password"],
                              user_agent=request.user_agent.string, ip=client_ip())
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": pair.expires_in, "member": profile(member)}


@blp.route("/refresh", methods=["POST"])
@auth_required(refresh=True)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, description="invalid_token, token_expired, token_revoked or token_reused")
def refresh():
    """Rotate the refresh token (Bearer refresh token). Reusing a rotated one revokes the session."""
    pair = auth.refresh(get_jwt())
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": pair.expires_in}


@blp.route("/logout", methods=["POST"])
@auth_required(any_type=True)
@blp.response(204)
def logout():
    """End this session: its access and refresh tokens stop working."""
    auth.revoke_session(session_id(), "logout")
    db.session.commit()
