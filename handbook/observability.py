"""Structured logs with a request id, Prometheus metrics, and redaction of secrets from log lines."""
from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

from handbook.auth import PRINCIPAL_KEY

REQUESTS = Counter("handbook_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "handbook_http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# (method, route, status) → its counter and histogram children: bounded by the routes × statuses, and
# prometheus_client's `labels()` takes a lock and validates the labels on every call.
_SERIES: dict = {}

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
# JWTs, bearer values, and password/token fields in any `key=value` or JSON-ish text.
_REDACTIONS = [
    (re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), "[redacted-jwt]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(\"?(?:password|new_password|current_password|refresh_token|access_token|token|fid|secret)"
                r"\"?\s*[:=]\s*\"?)[^\s\",}]+"), r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "member_id", "ip"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RequestContextFilter(logging.Filter):
    """Adds the current request id to every record logged while handling a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
        return True


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if app.config["LOG_FORMAT"] == "json"
                         else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger("handbook")
    root.handlers = [handler]
    root.setLevel(app.config["LOG_LEVEL"])
    root.propagate = True  # lets pytest's caplog see records too
    # werkzeug's own access log would repeat ours (and prints query strings); keep it to errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


access_log = logging.getLogger("handbook.access")


def init_app(app: Flask) -> None:
    configure_logging(app)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_OK.match(incoming) else secrets.token_hex(8)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response):
        started = g.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        endpoint = request.url_rule.rule if request.url_rule else "<unmatched>"
        key = (request.method, endpoint, response.status_code)
        series = _SERIES.get(key)
        if series is None:   # the labelled children, looked up once per (method, route, status)
            series = _SERIES[key] = (REQUESTS.labels(*key), LATENCY.labels(*key[:2]))
        series[0].inc()
        series[1].observe(elapsed)
        response.headers["X-Request-ID"] = g.request_id
        principal = request.environ.get(PRINCIPAL_KEY)
        access_log.info(
            "%s %s %s", request.method, request.path, response.status_code,
            extra={"method": request.method, "path": request.path, "status": response.status_code,
                   "duration_ms": round(elapsed * 1000, 2), "ip": request.remote_addr,
                   "member_id": principal[2] if principal else None},
        )
        return response


def metrics_response() -> Response:
    """Prometheus text; aggregates gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    from prometheus_client import REGISTRY

    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)
