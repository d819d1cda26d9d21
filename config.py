"""Configuration classes, read from environment variables.

`Config` holds the production-safe defaults; `DevConfig`, `TestConfig` and `ProdConfig` adjust them.
`create_app()` picks one by `HANDBOOK_ENV` (development | test | production, default development)
unless a class or mapping is passed in. Every variable in ../shared/API.md is read here.
"""
from __future__ import annotations

import os
from datetime import timedelta


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in (_env(name, default) or "").split(",") if part.strip()]


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` spellings and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    ENV_NAME = "production"
    # Secrets: required in production; generated into instance/ for development (see handbook.config).
    SECRET_KEY = _env("SECRET_KEY")
    JWT_SECRET_KEY = _env("JWT_SECRET_KEY")

    SQLALCHEMY_DATABASE_URI = normalise_database_url(_env("DATABASE_URL", "") or "")
    # A pooled connection that died (database restarted) is replaced, not handed to a request: checked on
    # checkout without a round trip (handbook._alive), in place of SQLAlchemy's pool_pre_ping SELECT.
    # Connect timeout: a database host that takes the connection but never answers (frozen, half-open
    # network path) costs a request this many seconds and a 503, not a worker hung for good.
    DB_CONNECT_TIMEOUT = _env_int("DB_CONNECT_TIMEOUT", 5)
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"connect_args": {"connect_timeout": DB_CONNECT_TIMEOUT}}
    REDIS_URL = _env("REDIS_URL")
    # A Redis that stops answering without closing its connections (frozen host, half-open network path)
    # costs each operation at most this many seconds: rate limits then carry on in process memory, the
    # push rate cap in the process, and the broker is tried again later (push/tasks.py).
    REDIS_TIMEOUT_SECONDS = float(_env("REDIS_TIMEOUT_SECONDS", "2"))

    # Auth (API.md: 15-minute access tokens, 30-day rotating refresh tokens).
    JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=15)
    JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=30)
    JWT_TOKEN_LOCATION = ["headers"]
    # Tokens travel in the Authorization header only: no CSRF double-submit value in them (it is for
    # cookies), so that a token is a function of its claims (a refresh retried within the grace window
    # gets the very same pair, handbook/auth.py) and every request carries a few bytes less.
    JWT_COOKIE_CSRF_PROTECT = False
    JWT_ALGORITHM = "HS256"
    JWT_DECODE_LEEWAY = 10
    # argon2id cost (RFC 9106 "second recommended option": t=3, m=64 MiB, p=4).
    ARGON2_TIME_COST = _env_int("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST = _env_int("ARGON2_MEMORY_COST", 65536)
    ARGON2_PARALLELISM = _env_int("ARGON2_PARALLELISM", 4)
    PASSWORD_MIN_LENGTH = 8

    # Login throttling (Flask-Limiter). Failed attempts per account; all attempts per client IP.
    LOGIN_LIMIT_PER_ACCOUNT = _env("LOGIN_LIMIT_PER_ACCOUNT", "5 per minute;20 per hour")
    LOGIN_LIMIT_PER_IP = _env("LOGIN_LIMIT_PER_IP", "60 per minute;600 per hour")
    # Our 429 handler sets Retry-After itself; the limiter's own header injection would also rewrite
    # the Retry-After of unrelated responses (503).
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_STRATEGY = "moving-window"
    # With Redis down, keep limiting in process memory rather than failing every request.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_KEY_PREFIX = "handbook-rl"
    RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": REDIS_TIMEOUT_SECONDS,
                                 "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
    # Number of reverse proxies in front of the app whose X-Forwarded-For is trusted (0: none).
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

    # The console (console/): a signed session cookie naming an auth_sessions row, HttpOnly, SameSite=Lax,
    # Secure whenever the request came over HTTPS (console/session.py), ending after this many hours.
    CONSOLE_SESSION_HOURS = _env_int("CONSOLE_SESSION_HOURS", 12)
    # Imports uploaded in the console run within the request up to this size; larger files: the CLI.
    CONSOLE_IMPORT_MAX_BYTES = _env_int("CONSOLE_IMPORT_MAX_BYTES", 2 * 1024 * 1024)
    # Larger files run as a background job (handbook/importjobs.py), up to this size (the import's request
    # only; other requests keep MAX_CONTENT_LENGTH). Hanoi's 440,000 members are about 30 MB of CSV.
    CONSOLE_IMPORT_JOB_MAX_BYTES = _env_int("CONSOLE_IMPORT_JOB_MAX_BYTES", 64 * 1024 * 1024)
    SESSION_COOKIE_NAME = "handbook_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = (_env("SESSION_COOKIE_SECURE", "false") or "").lower() in ("1", "true", "yes")
    WTF_CSRF_TIME_LIMIT = None   # a form's CSRF token lasts as long as the session
    WTF_CSRF_CHECK_DEFAULT = False

    # Requests
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 20 * 1024 * 1024)

    # Attachments (content/attachments.py, content/storage.py). The storage directory defaults to
    # `<instance_path>/attachments` (resolved by content.storage.get_storage). An upload is also bounded
    # by MAX_CONTENT_LENGTH, which covers the whole multipart request.
    ATTACHMENT_STORAGE_DIR = _env("ATTACHMENT_STORAGE_DIR")
    ATTACHMENT_MAX_BYTES = _env_int("ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024)
    # How long a member's device may keep a downloaded file without asking again (private cache).
    ATTACHMENT_CACHE_MAX_AGE = _env_int("ATTACHMENT_CACHE_MAX_AGE", 3600)

    # Time
    HANDBOOK_TIMEZONE = _env("HANDBOOK_TIMEZONE", "Asia/Ho_Chi_Minh")
    QUIET_HOURS = os.environ.get("QUIET_HOURS", "21:00-07:00")
    REMINDER_DAYS = [int(d) for d in _env_list("REMINDER_DAYS", "7,12,14")]
    # Branch meetings: the reminder before a meeting; wrong check-in codes allowed per member and per meeting.
    MEETING_REMINDER_HOURS = int(_env("MEETING_REMINDER_HOURS", "24"))
    CHECK_IN_LIMIT_PER_MEMBER = _env("CHECK_IN_LIMIT_PER_MEMBER", "5 per 10 minutes")
    CHECK_IN_LIMIT_PER_MEETING = _env("CHECK_IN_LIMIT_PER_MEETING", "30 per 10 minutes")
    # Questions on documents: at most this many per member per day.
    QUESTIONS_PER_DAY = int(_env("QUESTIONS_PER_DAY", "10"))
    # Adoption figures are rolled up by `run_due` at most this often (and by `handbook adoption refresh`).
    ADOPTION_REFRESH_MINUTES = int(_env("ADOPTION_REFRESH_MINUTES", "60"))
    # The acknowledgements-over-time chart: `run_due` takes yesterday's progress only this many hours
    # after midnight (local); a later first run leaves the day a gap rather than misdate a count.
    PROGRESS_DAILY_GRACE_HOURS = _env_int("PROGRESS_DAILY_GRACE_HOURS", 6)
    # Quizzes: how late after its time limit a timed attempt's answers are still graded (network, clocks).
    QUIZ_SUBMIT_MARGIN_SECONDS = _env_int("QUIZ_SUBMIT_MARGIN_SECONDS", 120)
    ESCALATION_DAYS = [int(d) for d in _env_list("ESCALATION_DAYS", "12,15")]

    # Push (used by push/)
    PUSH_BACKEND = _env("PUSH_BACKEND", "log")
    FCM_PROJECT_ID = _env("FCM_PROJECT_ID")
    FCM_ENDPOINT = _env("FCM_ENDPOINT")
    FCM_RATE_PER_MINUTE = _env_int("FCM_RATE_PER_MINUTE", 600000)
    GOOGLE_APPLICATION_CREDENTIALS = _env("GOOGLE_APPLICATION_CREDENTIALS")
    FCM_TIMEOUT_SECONDS = _env_int("FCM_TIMEOUT_SECONDS", 30)
    FCM_TRANSPORT = _env("FCM_TRANSPORT", "direct")  # direct | threads (send_each) | async (send_each_async)
    FCM_CONNECTIONS = _env_int("FCM_CONNECTIONS", 64)  # requests in flight per worker process (direct, async)
    # Retention (push/retention.py): what is older goes, in batches, from run-due and `handbook push prune`.
    DELIVERY_RETENTION_DAYS = _env_int("DELIVERY_RETENTION_DAYS", 30)   # after a notification finished
    INBOX_RETENTION_DAYS = _env_int("INBOX_RETENTION_DAYS", 180)
    SESSION_RETENTION_DAYS = _env_int("SESSION_RETENTION_DAYS", 90)     # after a session ended
    RETENTION_BATCH = _env_int("RETENTION_BATCH", 5000)                 # rows per transaction
    RETENTION_BATCHES_PER_RUN = _env_int("RETENTION_BATCHES_PER_RUN", 10)
    PUSH_ANDROID_CHANNEL = _env("PUSH_ANDROID_CHANNEL", "directives")
    # Celery broker; defaults to REDIS_URL. With neither, the embedded worker thread sends (push/embedded.py).
    CELERY_BROKER_URL = _env("CELERY_BROKER_URL")
    CELERY_QUEUE = _env("CELERY_QUEUE", "handbook")
    EMBEDDED_WORKER = _env("EMBEDDED_WORKER", "true").lower() in ("1", "true", "yes")
    PUSH_TICK_SECONDS = _env_int("PUSH_TICK_SECONDS", 15)       # how often run-due runs in the worker
    PUSH_LEASE_SECONDS = _env_int("PUSH_LEASE_SECONDS", 120)    # a chunk's worker is presumed dead after this
    PUSH_MAX_ATTEMPTS = _env_int("PUSH_MAX_ATTEMPTS", 8)        # sends per device before giving up
    PUSH_RETRY_BASE_SECONDS = float(_env("PUSH_RETRY_BASE_SECONDS", "2"))
    PUSH_RETRY_MAX_SECONDS = float(_env("PUSH_RETRY_MAX_SECONDS", "600"))

    # OpenAPI (flask-smorest)
    API_TITLE = "Sổ tay đảng viên điện tử — API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "api/v1/openapi.json"
    # /docs is served by api/docs.py from the pinned swagger-ui-bundle package (no CDN), not by flask-smorest.
    OPENAPI_SWAGGER_UI_PATH = None

    # Logging: "json" (one JSON object a line) or "text".
    LOG_FORMAT = _env("LOG_FORMAT", "json")
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    # HTTP hardening (handbook/security.py). CORS is off unless origins are listed (the phones need none).
    CORS_ORIGINS = _env_list("CORS_ORIGINS", "")
    CORS_MAX_AGE = _env_int("CORS_MAX_AGE", 600)
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31536000)   # sent on HTTPS requests only; 0 turns it off
    JSON_MAX_BYTES = _env_int("JSON_MAX_BYTES", 2 * 1024 * 1024)
    JSON_MAX_DEPTH = _env_int("JSON_MAX_DEPTH", 16)
    JSON_MAX_ITEMS = _env_int("JSON_MAX_ITEMS", 20000)
    # Weak mobile networks: JSON bodies of at least COMPRESS_MIN_SIZE bytes are sent compressed (brotli or
    # gzip, as the client's Accept-Encoding allows; Flask-Compress). A strong ETag of a compressed body
    # gets the encoding appended ("...:br"), and If-None-Match with either form answers 304.
    COMPRESS_ALGORITHM = ["br", "gzip"]
    COMPRESS_MIMETYPES = ["application/json", "application/problem+json"]
    COMPRESS_MIN_SIZE = _env_int("COMPRESS_MIN_SIZE", 1024)
    COMPRESS_LEVEL = 6        # gzip
    COMPRESS_BR_LEVEL = 4     # brotli: most of level 11's gain for a fraction of its CPU
    COMPRESS_STREAMS = False  # streamed exports (CSV, XLSX) are not JSON and stay as they are
    # A refresh whose answer was lost (a phone losing its network mid-request) and that is sent again with
    # the same refresh token within this many seconds gets the pair that was already issued, instead of
    # revoking the session as a reuse; after that, reuse revokes the session (API.md).
    REFRESH_GRACE_SECONDS = _env_int("REFRESH_GRACE_SECONDS", 30)
    # Seconds a client should wait before retrying when the database is unavailable.
    DB_UNAVAILABLE_RETRY_AFTER = _env_int("DB_UNAVAILABLE_RETRY_AFTER", 5)


class DevConfig(Config):
    ENV_NAME = "development"
    LOG_FORMAT = _env("LOG_FORMAT", "text")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    JWT_SECRET_KEY = "test-jwt-secret-key-not-for-production-0123456789"
    SQLALCHEMY_DATABASE_URI = normalise_database_url(_env("TEST_DATABASE_URL", "sqlite://") or "sqlite://")
    REDIS_URL = None
    CELERY_BROKER_URL = None
    EMBEDDED_WORKER = False
    QUIET_HOURS = ""  # tests that need quiet hours set them; the suite must not depend on the hour it runs
    PUSH_BACKEND = "log"
    PUSH_RETRY_BASE_SECONDS = 0.05
    # No grace for a retried refresh unless a test asks for one (tests/test_refresh_grace.py does, with the
    # production default): the suite's reuse tests present a used token at once and expect the revocation.
    REFRESH_GRACE_SECONDS = 0
    # Cheap hashes keep the suite fast; the algorithm (argon2id) is the same.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    ARGON2_PARALLELISM = 1
    LOG_FORMAT = "json"
    LOG_LEVEL = "INFO"


class ProdConfig(Config):
    ENV_NAME = "production"


CONFIGS = {"development": DevConfig, "test": TestConfig, "production": ProdConfig}


def config_from_env() -> type[Config]:
    return CONFIGS[os.environ.get("HANDBOOK_ENV", "development")]
