"""Sending pushes: one small interface, two backends.

- `FcmBackend` sends through the real firebase-admin 7 library (FCM HTTP v1). firebase-admin always
  encodes the messages, holds the credential and builds the errors; `FCM_TRANSPORT` chooses what carries
  the requests:
  - `direct` (default): `DirectSender`, keep-alive HTTP/1.1 connections (`FCM_CONNECTIONS`, default 64)
    on one asyncio loop per process, about 40 µs of CPU a message;
  - `threads`: firebase-admin's `send_each` (requests, a thread per message of the batch), ~650 µs;
  - `async`: firebase-admin's `send_each_async` (httpx, HTTP/2 where the server offers it), ~2,200 µs
    against the HTTP/1.1 fake even with its pool tuned.
  (Measured with `python -m bench.transports`, 10,000 messages, two processes, against the fake on this
  2-core machine; docs/performance.md.)
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
import httpx
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


class DirectSender:
    """FCM HTTP v1 requests from firebase-admin's own parts, sent over keep-alive HTTP/1.1 connections on
    one asyncio loop.

    firebase-admin still encodes every message (`encode_message`), supplies the URL, headers and the
    OAuth2 access token (its google-auth credential), and turns every error answer into its own
    `FirebaseError` (`_handle_fcm_httpx_error`), so `classify` sees exactly what `send_each_async` would
    give it. What it replaces is only the per-request machinery: `send_each` starts a thread per message
    and runs each through requests, urllib3 and google-auth's AuthorizedSession (about 1.2 ms of CPU a
    message here), `send_each_async` runs each through httpx. Here a message costs its JSON encoding,
    one write and one read (docs/performance.md has the profile).

    Up to `connections` requests are in flight at once, one per connection; an idle connection that the
    server closed meanwhile is reopened and the request written again (nothing of it was answered).
    """

    def __init__(self, service, timeout: float, connections: int) -> None:
        from urllib.parse import urlsplit

        self._service = service
        url = urlsplit(service._fcm_url)  # noqa: SLF001
        self._url = service._fcm_url  # noqa: SLF001
        self._host, self._tls = url.hostname, url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        host = url.netloc
        headers = {"Host": host, "Content-Type": "application/json; charset=UTF-8",
                   **service._fcm_headers}  # noqa: SLF001 (X-GOOG-API-FORMAT-VERSION, X-FIREBASE-CLIENT)
        self._head = (f"POST {url.path} HTTP/1.1\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode("latin-1")
        self._timeout = timeout
        self._connections = max(1, connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._ssl = None
        if self._tls:
            import ssl

            self._ssl = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE")
                                                   or os.environ.get("SSL_CERT_FILE") or None)

    def _token(self) -> str:
        credential = self._service._credential  # noqa: SLF001
        if not credential.valid:
            import google.auth.transport.requests

            credential.refresh(google.auth.transport.requests.Request())
        return credential.token

    async def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        auth = f"Authorization: Bearer {self._token()}\r\n".encode("latin-1")
        requests_ = []
        for body in _bodies(self._service.encode_message, messages):
            requests_.append(b"%s%sContent-Length: %d\r\n\r\n%s" % (self._head, auth, len(body), body))
        outcomes: list[Outcome | None] = [None] * len(requests_)
        pending = iter(range(len(requests_)))

        async def lane() -> None:
            connection = None
            for i in pending:  # the lanes share one iterator: each message is taken by one lane
                outcomes[i], connection = await self._post(requests_[i], connection)
            if connection is not None:
                self._idle.append(connection)

        await asyncio.gather(*(lane() for _ in range(min(self._connections, len(requests_)))))
        return outcomes

    async def _open(self):
        return await asyncio.open_connection(self._host, self._port, ssl=self._ssl,
                                             server_hostname=self._host if self._tls else None)

    async def _post(self, request: bytes, connection) -> tuple[Outcome, object]:
        reused = connection is not None or bool(self._idle)
        if connection is None and self._idle:
            connection = self._idle.pop()
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    try:
                        if connection is None:
                            connection = await self._open()
                        reader, writer = connection
                        writer.write(request)
                        status, headers, body = await _read_response(reader)
                        break
                    except (ConnectionError, asyncio.IncompleteReadError) as error:
                        _close(connection)
                        connection = None
                        nothing_read = not isinstance(error, asyncio.IncompleteReadError) or not error.partial
                        if not (reused and nothing_read):
                            raise
                        reused = False  # a keep-alive connection closed by the server: once more, afresh
        except TimeoutError:
            _close(connection)
            return self._error(httpx.ReadTimeout(f"no answer from FCM within {self._timeout} s")), None
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            _close(connection)
            return self._error(httpx.ConnectError(f"{type(error).__name__}: {error}")), None
        if headers.get("connection", "").lower() == "close":
            _close(connection)
            connection = None
        if 200 <= status < 300:
            try:
                return Outcome(SENT, message_id=json.loads(body)["name"]), connection
            except (ValueError, KeyError, TypeError):
                return Outcome(RETRY, error="UNKNOWN"), connection
        response = httpx.Response(status, headers=list(headers.items()), content=body,
                                  request=httpx.Request("POST", self._url))
        return self._error(httpx.HTTPStatusError(f"FCM answered {status}", request=response.request,
                                                 response=response)), connection

    def _error(self, error: httpx.HTTPError) -> Outcome:
        return classify(self._service._handle_fcm_httpx_error(error))  # noqa: SLF001

    async def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())


def _bodies(encode, messages: list[messaging.Message]) -> list[bytes]:
    """The request bodies, `{"message": …}` as firebase-admin encodes each message. Messages that share
    their parts (the same data, notification, android, apns, webpush and fcm_options objects, as
    push.messages.build_many makes them) and differ only in their fid/token are encoded once: the first
    one whole, by firebase-admin; the others are that encoding with their own target put in."""
    dumps = json.dumps
    templates: dict[tuple, str] = {}
    out = []
    for m in messages:
        key = (id(m.data), id(m.notification), id(m.android), id(m.webpush), id(m.apns), id(m.fcm_options))
        target = ("fid", m.fid) if m.fid is not None else ("token", m.token)
        rest = templates.get(key)
        plain = (m.topic is None and m.condition is None and (m.fid is None or m.token is None)
                 and isinstance(target[1], str) and target[1])
        if rest is None or not plain:
            encoded = encode(m)   # firebase-admin validates and encodes every part (and raises as it does)
            if plain and rest is None:
                parts = {k: v for k, v in encoded.items() if k not in ("fid", "token")}
                templates[key] = dumps(parts, separators=(",", ":"), ensure_ascii=False)[1:]
            out.append(dumps({"message": encoded}, separators=(",", ":"), ensure_ascii=False).encode())
            continue
        head = '{"message":{"%s":%s' % (target[0], dumps(target[1], ensure_ascii=False))
        out.append((head + ("}}" if rest == "}" else "," + rest + "}")).encode())
    return out


def _close(connection) -> None:
    if connection is not None:
        connection[1].close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, headers (lower-case names), body (Content-Length or chunked)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        status = int(status)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
            headers["connection"] = "close"
        if status >= 200 or status < 100:
            break  # (1xx: an interim answer; the real one follows)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return status, headers, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        return status, headers, await reader.readexactly(int(length))
    if status in (204, 304):
        return status, headers, b""
    headers["connection"] = "close"  # the body runs to the end of the connection
    return status, headers, await reader.read()


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
        connections = int(config.get("FCM_CONNECTIONS") or 64)
        _configure_service(self._service, endpoint, options["httpTimeout"], connections)
        self.transport = config.get("FCM_TRANSPORT") or "direct"
        if self.transport not in ("direct", "threads", "async"):
            raise ValueError(f"FCM_TRANSPORT must be 'direct', 'threads' or 'async', not {self.transport!r}")
        self._direct = DirectSender(self._service, options["httpTimeout"], connections) \
            if self.transport == "direct" else None
        self._runner = asyncio.Runner() if self.transport != "threads" else None
        self._lock = threading.Lock()

    def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        if not messages:
            return []
        if self._direct is not None:
            with self._lock:  # one event loop (and its connections) per backend, shared by a process's threads
                return self._runner.run(self._direct.send(messages))
        if self._runner is not None:
            with self._lock:
                batch = self._runner.run(messaging.send_each_async(messages, app=self.app))
        else:
            batch = messaging.send_each(messages, app=self.app)
        return [Outcome(SENT, message_id=r.message_id) if r.success else classify(r.exception)
                for r in batch.responses]


def _configure_service(service, endpoint: str, timeout: float, connections: int = 64) -> None:
    """Point firebase-admin's messaging service at `endpoint` and take its retries away.

    firebase-admin 7.7 keeps the send URL in `_fcm_url` (built from the class constant FCM_URL) and
    its clients in `_client` (requests) and `_async_client` (httpx); both retry 500/503 by themselves.
    Pinned in requirements.txt; if these attributes change, every push test (tests/test_push.py and the
    others, which send through this service to the fake FCM) fails, as nothing then reaches the fake.
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
    client = _http_client.HttpxAsyncClient(credential=service._credential, timeout=timeout,  # noqa: SLF001
                                           retry_config=_retry.HttpxRetry(max_retries=0), http2=True)
    # Tuned: httpx keeps only 20 idle connections by default, so a batch of 500 concurrent requests over
    # HTTP/1.1 (a local fake) opened and closed connections all the time; keep as many as are in flight.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client._async_client = httpx.AsyncClient(  # noqa: SLF001
        http2=True, timeout=timeout, headers=client._headers,  # noqa: SLF001
        auth=_http_client.GoogleAuthCredentialFlow(service._credential),  # noqa: SLF001
        mounts={scheme: _retry.HttpxRetryTransport(retry=_retry.HttpxRetry(max_retries=0), limits=limits)
                for scheme in ("http://", "https://")})
    service._async_client = client  # noqa: SLF001


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

