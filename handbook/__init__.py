"""The handbook service: app factory and wiring.

`create_app()` is the composition root: it loads configuration, binds the extensions, registers the
error envelope, logging and metrics, the CLI, and the two HTTP faces (`api`, JSON for phones, and `console`,
pages for people). It is the only module of the domain packages that imports them; everything else in
handbook/, content/ and push/ stays HTTP-free.
"""
from __future__ import annotations

import json
import os
import secrets
import select
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from config import Config, config_from_env
from handbook.extensions import MAX_ID

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _load_config(app: Flask, config: type[Config] | Mapping | None) -> None:
    base = config_from_env() if config is None or isinstance(config, Mapping) else config
    app.config.from_object(base)
    if isinstance(config, Mapping):
        app.config.update(config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'handbook.db'}"
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite: one writer at a time; wait for the lock instead of failing at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    missing = [k for k in ("SECRET_KEY", "JWT_SECRET_KEY") if not app.config.get(k)]
    if missing:
        if app.config["ENV_NAME"] == "production":
            raise RuntimeError(f"{', '.join(missing)} must be set in production")
        app.config.update(_development_secrets(Path(app.instance_path), missing))
    if app.config.get("REDIS_URL"):
        app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    else:
        app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")


def _development_secrets(instance: Path, names: list[str]) -> dict:
    """Generate secrets once and keep them in instance/ (development only, never committed)."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        stored.setdefault(name, secrets.token_urlsafe(48))
    path.write_text(json.dumps(stored, indent=2))
    path.chmod(0o600)
    return {name: stored[name] for name in names}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


@event.listens_for(Pool, "checkout")
def _alive(dbapi_connection, connection_record, connection_proxy):
    """What pool pre-ping did (a pooled connection that died, e.g. PostgreSQL restarted or crashed, is
    replaced, not handed to a request) without its round trip: an idle connection has nothing to read,
    so a socket that is readable (the server's goodbye, or end of file) or a connection psycopg knows to
    be broken is discarded and the pool connects afresh (DisconnectionError on checkout)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:   # SQLite
        return
    if dbapi_connection.closed or dbapi_connection.broken or pgconn.status != 0:   # 0: CONNECTION_OK
        raise DisconnectionError("connection closed")
    try:
        readable = select.select([pgconn.socket], [], [], 0)[0]
    except (OSError, ValueError) as exc:
        raise DisconnectionError(str(exc)) from exc
    if readable:
        raise DisconnectionError("the server spoke on an idle connection (closing)")


class _AuthSchemeCaseFix:
    """HTTP auth schemes are case-insensitive (RFC 9110 §11.1); flask-jwt-extended wants "Bearer"."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer " and not header.startswith("Bearer "):
            environ["HTTP_AUTHORIZATION"] = "Bearer " + header[7:]
        return self.wsgi_app(environ, start_response)


class _IdConverter(IntegerConverter):
    """`<int:...>` path parts are database ids: past PostgreSQL's 32-bit integer there is no such row,
    so such a path matches no route (404) instead of failing in the database."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def create_app(config: type[Config] | Mapping | None = None) -> Flask:
    # instance/: development secrets, the embedded SQLite database, the embedded push worker's lock and the
    # import jobs' progress on SQLite; INSTANCE_PATH moves it (a read-only checkout; a worker beside the app)
    instance = os.environ.get("INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    app = Flask(__name__, instance_path=os.path.abspath(instance), static_folder=None)  # an API: no files
    app.url_map.converters["int"] = _IdConverter
    _load_config(app, config)
    # Settings that would make every later run fail are refused here, before any extension shared by
    # the process's apps (flask-smorest's Api, the JWT manager) is set up for this one: a refused app must
    # not leave them half-initialised (the OpenAPI document without its paths).
    from push.schedule import check_config

    check_config(app.config)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.wsgi_app = _AuthSchemeCaseFix(app.wsgi_app)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from handbook import errors, observability, security
    from handbook.extensions import api, db, jwt, limiter, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True,
                     compare_type=True)
    jwt.init_app(app)
    limiter.init_app(app)
    api.init_app(app, spec_kwargs={"info": {"description": "Sổ tay đảng viên điện tử: public API v1."}})
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    errors.register(app)
    observability.init_app(app)
    security.init_app(app)

    # Models and JWT hooks register themselves on import.
    from handbook import audit, auth, members, orgunits  # noqa: F401
    import content.models  # noqa: F401
    import content.quizzes  # noqa: F401  (quiz models; results follow membership changes)
    import content.progress  # noqa: F401  (keeps progress counters in step with membership changes)
    import push.models  # noqa: F401
    from push import tasks

    tasks.init_app(app)

    from handbook.cli import register_cli

    register_cli(app)

    import api as http_layer
    import console

    http_layer.init_app(app)
    console.init_app(app)
    return app
