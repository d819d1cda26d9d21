"""Sending pushes: one small interface, two backends.

- `FcmBackend` sends through the real firebase-admin 7 library (FCM HTTP v1). `FCM_TRANSPORT=threads`
  (default) uses `send_each` (requests, a thread per message of the batch, pooled connections);
  `async` uses `send_each_async` (httpx). Measured against the fake on this 2-core machine, 4 batches
  of 500: threads about 800 messages/s per process, async 170-440 (httpx's connection pool is the
  bottleneck over HTTP/1.1; over FCM's HTTP/2 it may do better, so it stays selectable).
  With `FCM_ENDPOINT` set it talks to that base URL instead of `https://fcm.googleapis.com` (the
  project's fake, `push.fakefcm`) with a local stand-in credential, so no Google credentials are
  needed. firebase-admin's own retries are turned off: `push.fanout` owns the retry policy (backoff with
  jitter, `Retry-After`, the shared rate cap), so that a 503 storm never parks a worker inside a request.
- `LogBackend` (`PUSH_BACKEND=log`, the development default) writes each message to the log.

Both answer a list of `Outcome`s, one per message, in order. Tokens never reach the log.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import firebase_admin
import requests
from firebase_admin import credentials, exceptions, messaging
from firebase_admin import _http_client, _retry  # noqa: PLC2701 (see _configure_service)
from google.auth.credentials import Credentials as GoogleCredentials

log = logging.getLogger("handbook.push")

SENT, RETRY, INVALID, FAILED = "sent", "retry", "invalid", "failed"


@dataclass(frozen=True)
class Outcome:
    status: str                       # sent | retry | invalid | failed
    message_id: str | None = None
    error: str | None = None          # FCM error code (UNREGISTERED, QUOTA_EXCEEDED, ...) or a short reason
    retry_after: float | None = None  # seconds, from the Retry-After header


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _is_bad_target(error: exceptions.FirebaseError) -> bool:
    """An INVALID_ARGUMENT about the fid/token itself (delete the device), not about our payload."""
    response = error.http_response
    try:
        details = json.loads(response.content)["error"].get("details", []) if response is not None else []
    except (ValueError, KeyError, TypeError, AttributeError):
        details = []
    fields = {v.get("field") for d in details for v in d.get("fieldViolations", []) if isinstance(v, dict)}
    if fields & {"message.token", "message.fid"}:
        return True
    return "registration token" in str(error).lower()


def classify(error: Exception) -> Outcome:
    """What to do about a failed send."""
    if isinstance(error, messaging.UnregisteredError):
        return Outcome(INVALID, error="UNREGISTERED")
    if isinstance(error, exceptions.InvalidArgumentError):
        return Outcome(INVALID, error="INVALID_ARGUMENT") if _is_bad_target(error) \
            else Outcome(FAILED, error="INVALID_ARGUMENT")
    if isinstance(error, (messaging.SenderIdMismatchError, messaging.ThirdPartyAuthError,
                          exceptions.PermissionDeniedError, exceptions.UnauthenticatedError)):
        code = {messaging.SenderIdMismatchError: "SENDER_ID_MISMATCH",
                messaging.ThirdPartyAuthError: "THIRD_PARTY_AUTH_ERROR"}.get(type(error), error.code)
        log.error("push configuration error: %s (%s)", code, error)
        return Outcome(FAILED, error=str(code))
    if isinstance(error, messaging.QuotaExceededError):
        return Outcome(RETRY, error="QUOTA_EXCEEDED", retry_after=_retry_after(error.http_response))
    if isinstance(error, exceptions.FirebaseError):
        # UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, UNKNOWN (network errors): try again later.
        return Outcome(RETRY, error=str(error.code).upper(), retry_after=_retry_after(error.http_response))
    return Outcome(RETRY, error=type(error).__name__)


class _LocalCredential(GoogleCredentials):
    """Stands in for a Google credential when FCM_ENDPOINT points at a local fake."""

    def refresh(self, request) -> None:
        self.token = "local-fake-fcm-token"
        self.expiry = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)


class _LocalFirebaseCredential(credentials.Base):
    def __init__(self) -> None:
        self._credential = _LocalCredential()

    def get_credential(self):
        return self._credential


_app_names = itertools.count()


class FcmBackend:
    name = "fcm"

    def __init__(self, config) -> None:
        endpoint = (config.get("FCM_ENDPOINT") or "").rstrip("/")
        project_id = config.get("FCM_PROJECT_ID") or ("handbook-local" if endpoint else None)
        if endpoint:
            credential = _LocalFirebaseCredential()
        elif config.get("GOOGLE_APPLICATION_CREDENTIALS"):
            credential = credentials.Certificate(config["GOOGLE_APPLICATION_CREDENTIALS"])
        else:
            credential = credentials.ApplicationDefault()
        options = {"httpTimeout": config.get("FCM_TIMEOUT_SECONDS", 30)}
        if project_id:
            options["projectId"] = project_id
        self.app = firebase_admin.initialize_app(credential, options, name=f"handbook-push-{next(_app_names)}")
        self._service = messaging._get_messaging_service(self.app)  # noqa: SLF001
        _configure_service(self._service, endpoint, options["httpTimeout"])
        self._async = config.get("FCM_TRANSPORT", "threads") == "async"
        self._runner = asyncio.Runner() if self._async else None
        self._lock = threading.Lock()

    def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        if not messages:
            return []
        if self._async:
            with self._lock:  # one event loop per backend, shared by the threads of a process
                batch = self._runner.run(messaging.send_each_async(messages, app=self.app))
        else:
            batch = messaging.send_each(messages, app=self.app)
        return [Outcome(SENT, message_id=r.message_id) if r.success else classify(r.exception)
                for r in batch.responses]


def _configure_service(service, endpoint: str, timeout: float) -> None:
    """Point firebase-admin's messaging service at `endpoint` and take its retries away.

    firebase-admin 7.7 keeps the send URL in `_fcm_url` (built from the class constant FCM_URL) and
    its clients in `_client` (requests) and `_async_client` (httpx); both retry 500/503 by themselves.
    Pinned in requirements.txt; tests/test_push_fcm.py fails if these attributes change.
    """
    base = endpoint or "https://fcm.googleapis.com"
    if endpoint:
        service._fcm_url = service._fcm_url.replace("https://fcm.googleapis.com", endpoint)  # noqa: SLF001
    adapter = requests.adapters.HTTPAdapter(pool_connections=100, pool_maxsize=500, max_retries=0)
    session = service._client.session  # noqa: SLF001
    session.mount(base, adapter)
    # requests reads the proxy and CA settings from os.environ on *every* request (a quarter of the CPU
    # a message costs, measured with cProfile); read them once here instead.
    session.proxies.update(requests.utils.get_environ_proxies(base))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or session.verify
    session.trust_env = False
    service._async_client = _http_client.HttpxAsyncClient(  # noqa: SLF001
        credential=service._credential, timeout=timeout,  # noqa: SLF001
        retry_config=_retry.HttpxRetry(max_retries=0), http2=True)


class LogBackend:
    """Writes each message to the log instead of sending it (development)."""

    name = "log"
    _ids = itertools.count(1)

    def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        outcomes = []
        for message in messages:
            notification = message.notification
            log.info("push (log backend): %s — %s [%s]", notification.title if notification else "",
                     notification.body if notification else "", json.dumps(message.data, ensure_ascii=False))
            outcomes.append(Outcome(SENT, message_id=f"log/{os.getpid()}/{next(self._ids)}"))
        return outcomes



_backends: dict[tuple, object] = {}
_backends_lock = threading.Lock()


def get_backend(config):
    """The process's backend for this configuration (created after a fork, never shared across one)."""
    kind = config.get("PUSH_BACKEND", "log")
    key = (os.getpid(), kind, config.get("FCM_ENDPOINT"), config.get("FCM_PROJECT_ID"))
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            if kind == "fcm":
                backend = FcmBackend(config)
            elif kind == "log":
                backend = LogBackend()
            else:
                raise ValueError(f"PUSH_BACKEND must be 'fcm' or 'log', not {kind!r}")
            _backends[key] = backend
        return backend

