"""Flask extensions, created unbound and initialised by `create_app`."""
from __future__ import annotations

import ipaddress

from flask import has_request_context, request
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api as _SmorestApi
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so that migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Primary keys are INTEGER (int4 on PostgreSQL): an id past this cannot exist, and is answered (404, 422)
# before it reaches the database, which would refuse the parameter (a 500).
MAX_ID = 2**31 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def client_ip() -> str:
    """The client address. With TRUSTED_PROXIES, ProxyFix has taken it from X-Forwarded-For; a value
    there that is not an IP address is ignored in favour of the connecting peer."""
    for candidate in (request.remote_addr,
                      request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return "unknown"


class Api(_SmorestApi):
    """flask-smorest's Api, documenting errors as problem+json; `handbook.errors` registers the handlers."""

    from handbook.errors import ProblemSchema as ERROR_SCHEMA  # noqa: N811

    def _register_error_handlers(self):  # handbook.errors.register() owns every error path
        pass

    def _register_responses(self):
        """flask-smorest's response components (one per status, and DEFAULT_ERROR), with error bodies as
        application/problem+json: the content type handbook.errors really sends, not application/json."""
        import http

        from flask_smorest.utils import prepare_response

        from handbook.errors import PROBLEM_MIMETYPE

        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Any other error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
limiter = Limiter(key_func=client_ip)
api = Api()


def _login_limit_per_ip() -> str:
    from flask import current_app

    return current_app.config["LOGIN_LIMIT_PER_IP"]


# Every login attempt from one client address, through the API or the console, spends one budget.
login_ip_limit = limiter.shared_limit(_login_limit_per_ip, scope="login-ip", key_func=client_ip, methods=["POST"])


def upsert(model):
    """INSERT for `model` in the bound database's dialect, so that `.on_conflict_do_nothing()` (PostgreSQL
    and SQLite both have it) is available."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def one_of(column, values):
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values, so
    that a batch of thousands is not a statement with thousands of placeholders to render and parse."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


# --- the light read paths' connection ----------------------------------------------------------------

READER_KEY = "handbook.reader_connection"


def open_reader() -> None:
    """For this request's light reads (api.common.auth_required(light=True) on a GET): a connection of its
    own in autocommit, i.e. no BEGIN and no ROLLBACK round trip around its statements, and psycopg keeps
    its prepared statements (a ROLLBACK makes it drop them). Closed (back to the pool) at the end of the
    request. Each statement sees what was committed when it started: the reads of one request need no
    common snapshot (a validator is read before the body it tags, never after)."""
    if READER_KEY not in request.environ:
        request.environ[READER_KEY] = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def reads():
    """The connection to read with: this request's light one if it has one, else the session's."""
    if has_request_context():
        conn = request.environ.get(READER_KEY)
        if conn is not None:
            return conn
    return db.session.connection()


def close_reader(_exc=None) -> None:
    conn = request.environ.pop(READER_KEY, None)
    if conn is not None:
        conn.close()
