"""A local fake of the Firebase Cloud Messaging HTTP v1 API, for tests, benchmarks and demos.

It answers `POST /v1/projects/{project_id}/messages:send` the way FCM does (same statuses, same Google
error bodies, `Retry-After` when asked), fails on demand by rule, and records what it accepted. Its
base URL replaces `https://fcm.googleapis.com`.

In process (the server runs in a daemon thread; every method is safe to call from the test thread):

    with FakeFcm() as fake:
        fake.set_rule(prefix="bad-", error="UNREGISTERED")  # every token starting with "bad-"
        fake.set_rule(target="tok-1", error="UNAVAILABLE", times=2, retry_after=3)  # fails twice
        fake.storm("QUOTA_EXCEEDED", requests=10, retry_after=1)  # the next 10 requests, any target
        ...send to fake.url + "/v1/projects/demo/messages:send"...
        assert fake.wait_for(100, timeout=5)
        fake.messages("tok-1"), fake.accepted_count(), fake.attempts("tok-1")

Rule precedence: storm, then exact target, then longest prefix, then the default rule. A message counts
as accepted when it arrives; a rule's latency only delays the answer.

In another process:

    python -m push.fakefcm --host 127.0.0.1 --port 9099 [--latency-ms N] [--max-bodies N]

prints its URL on one line, then serves until SIGTERM or SIGINT. It is driven over HTTP:

    GET  /_fake/messages[?target=T]   accepted messages (JSON list)
    GET  /_fake/stats[?targets=0]     counts; targets=0 leaves out the per-target map
    POST /_fake/rules                 {"target" or "prefix": ..., "error", "times", "retry_after", "latency"}
                                      or {"default": {...}} or {"storm": {"error", "requests" or "seconds",
                                      "retry_after"}}
    POST /_fake/reset                 forget records and rules

The HTTP server is a minimal HTTP/1.1 one (keep-alive, Content-Length bodies; chunked bodies get 411).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl

# FCM errorCode -> (HTTP status, canonical status, message)
FCM_ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
TARGET_FIELDS = ("fid", "token", "topic", "condition")
SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


class ApiError(Exception):
    """An error answer, with a body in Google's JSON error format."""

    def __init__(self, code: int, status: str, message: str, details: list[dict] | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        error = {"code": code, "message": message, "status": status}
        if details:
            error["details"] = details
        self.body = {"error": error}
        self.retry_after = retry_after

    def response(self) -> Response:
        headers = () if self.retry_after is None else (("Retry-After", str(self.retry_after)),)
        return Response(self.code, self.body, headers)


def fcm_error(error_code: str, target_field: str, retry_after: int | None = None) -> ApiError:
    """The error FCM answers with `error_code` for a message sent to `target_field` (token, fid...)."""
    code, status, message = FCM_ERRORS[error_code]
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    if error_code == "INVALID_ARGUMENT":
        details.append(_field_violation(f"message.{target_field}", "Invalid registration token"))
    return ApiError(code, status, message, details, retry_after)


def _field_violation(field_path: str, description: str) -> dict:
    return {"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": field_path, "description": description}]}


def _invalid_request(message: str, field_path: str | None = None) -> ApiError:
    """400 for a message FCM cannot read, as FCM words it."""
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"}]
    if field_path:
        details.append(_field_violation(field_path, message))
    return ApiError(400, "INVALID_ARGUMENT", message, details)


@dataclass(frozen=True)
class Response:
    status: int
    body: object  # JSON-serialisable
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, keep_alive: bool) -> bytes:
        body = json.dumps(self.body).encode()
        lines = [f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
                 "Content-Type: application/json; charset=UTF-8", f"Content-Length: {len(body)}",
                 *(f"{name}: {value}" for name, value in self.headers)]
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query
    headers: dict[str, str]  # names in lower case
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """The next request on the connection; None when the client closed it between requests.

    Raises ApiError when the request cannot be read (answer it, then close the connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise ApiError(400, "INVALID_ARGUMENT", "Incomplete request.") from None
        return None
    except asyncio.LimitOverrunError:
        raise ApiError(431, "INVALID_ARGUMENT", "Request header too large.") from None
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise ApiError(400, "INVALID_ARGUMENT", "Malformed request line.")
    method, target, version = parts
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ApiError(400, "INVALID_ARGUMENT", "Malformed header.")
        headers[name.lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ApiError(411, "INVALID_ARGUMENT", "Chunked bodies are not supported; send Content-Length.")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid Content-Length.")
    if headers.get("expect", "").lower() == "100-continue":  # curl asks before sending bodies over 1 KiB
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await reader.readexactly(int(length))
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return Request(method, target, headers, body, keep_alive)


def parse_send(headers: dict[str, str], body: bytes) -> tuple[str, str, dict, bool]:
    """(target field, target, message, validate_only) of a send request; ApiError if FCM would refuse it."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiError(401, "UNAUTHENTICATED", "Request is missing required authentication credential. "
                       "Expected OAuth 2 access token, login cookie or other valid authentication credential.")
    try:
        payload = json.loads(body)
    except ValueError:
        raise _invalid_request("Invalid JSON payload received.") from None
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        raise _invalid_request("Invalid JSON payload received. Expected a message.", "message")
    fields = [name for name in TARGET_FIELDS if message.get(name) is not None]
    if not fields:
        raise _invalid_request("Recipient of the message is not set.", "message")
    if len(fields) > 1:
        raise _invalid_request(f"Invalid value at 'message' (oneof), oneof field 'target' is already set. "
                               f"Cannot set '{fields[1]}'", "message")
    target = message[fields[0]]
    if not isinstance(target, str) or not target:
        raise _invalid_request(f"Invalid value at 'message.{fields[0]}' (TYPE_STRING)", f"message.{fields[0]}")
    return fields[0], target, message, payload.get("validate_only") is True


def _check_error(error: str | None) -> None:
    if error is not None and error not in FCM_ERRORS:
        raise ValueError(f"unknown FCM error {error!r}; expected one of {', '.join(FCM_ERRORS)}")


@dataclass
class Rule:
    """How to answer the targets a rule covers: `error` (None: success) for the first `times` attempts
    per target (None: always), then success; `latency` seconds before every answer."""
    error: str | None = None
    times: int | None = None
    retry_after: int | None = None
    latency: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)  # per target, counted only when `times` is set

    def __post_init__(self):
        _check_error(self.error)

    def error_for(self, target: str) -> str | None:
        """The error for this attempt at `target`, counting it; None for success."""
        if self.error is None or self.times is None:
            return self.error
        if self.failures[target] >= self.times:
            return None
        self.failures[target] += 1
        return self.error


@dataclass
class Storm:
    """`error` for the next `requests` requests, or for every request until `until` (time.monotonic())."""
    error: str
    retry_after: int | None
    requests: int | None
    until: float | None

    def hits(self) -> bool:
        """Whether the storm answers this request (counting it)."""
        if self.until is not None:
            return time.monotonic() < self.until
        if self.requests > 0:
            self.requests -= 1
            return True
        return False


class FakeFcm:
    """The fake FCM server: start() it, point the FCM client at `url`, shape its answers with rules, and
    read what it recorded. `max_bodies` caps the message bodies and attempt entries kept (counts stay
    exact), so that long benchmarks use bounded memory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0,
                 max_bodies: int | None = None):
        self.host, self.port = host, port
        self._latency, self._max_bodies = latency, max_bodies
        self._ids = itertools.count(1)  # never reset, so that names stay unique
        self._cond = threading.Condition(threading.Lock())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._reset_state()

    def _reset_state(self) -> None:
        self._storm: Storm | None = None
        self._rules: dict[str, Rule] = {}
        self._prefix_rules: dict[str, Rule] = {}
        self._default = Rule(latency=self._latency)
        self._attempts: list[tuple[str | None, int]] = []
        self._attempt_count = 0
        self._by_status: Counter[int] = Counter()
        self._messages: list[dict] = []
        self._accepted_by_target: Counter[str] = Counter()
        self._accepted = 0

    # -- lifecycle

    @property
    def url(self) -> str:
        """The base URL (known after start()) that replaces https://fcm.googleapis.com."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeFcm:
        """Listen (on a free port when port is 0) and serve from a daemon thread."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakefcm", daemon=True)
        self._thread.start()
        listening = asyncio.start_server(self._on_connect, self.host, self.port, backlog=1024)
        try:
            self._server = asyncio.run_coroutine_threadsafe(listening, self._loop).result()
        except BaseException:
            self.stop()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""
        if self._loop is None:
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._server = None

    async def _close(self) -> None:
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> FakeFcm:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- rules

    def set_rule(self, target: str | None = None, prefix: str | None = None, error: str | None = None,
                 times: int | None = None, retry_after: int | None = None, latency: float | None = None) -> None:
        """Answer `target` (exact) or every target starting with `prefix` this way; replaces the rule
        for the same target or prefix."""
        if (target is None) == (prefix is None):
            raise ValueError("give exactly one of target and prefix")
        rule = Rule(error, times, retry_after, latency or 0.0)
        with self._cond:
            if target is not None:
                self._rules[target] = rule
            else:
                self._prefix_rules[prefix] = rule

    def set_default(self, error: str | None = None, times: int | None = None, retry_after: int | None = None,
                    latency: float | None = None) -> None:
        """Replace the rule for the targets no other rule covers (latency included)."""
        rule = Rule(error, times, retry_after, latency or 0.0)
        with self._cond:
            self._default = rule

    def storm(self, error: str, requests: int | None = None, seconds: float | None = None,
              retry_after: int | None = None) -> None:
        """Answer `error` to the next `requests` requests, or to every request for `seconds`, whatever
        the target and without latency."""
        if error is None or (requests is None) == (seconds is None):
            raise ValueError("give an error, and exactly one of requests and seconds")
        _check_error(error)
        until = None if seconds is None else time.monotonic() + seconds
        with self._cond:
            self._storm = Storm(error, retry_after, requests, until)

    def reset(self) -> None:
        """Forget records, rules and storm: back to how it was constructed."""
        with self._cond:
            self._reset_state()

    def _rule_for(self, target: str) -> Rule:
        if target in self._rules:
            return self._rules[target]
        prefix = max((p for p in self._prefix_rules if target.startswith(p)), key=len, default=None)
        return self._default if prefix is None else self._prefix_rules[prefix]

    # -- records

    def messages(self, target: str | None = None) -> list[dict]:
        """Accepted messages kept (see max_bodies), oldest first: {"target", "message", "received_at", "name"}."""
        with self._cond:
            return [m for m in self._messages if target is None or m["target"] == target]

    def accepted_count(self, target: str | None = None) -> int:
        with self._cond:
            return self._accepted if target is None else self._accepted_by_target[target]

    def attempts(self, target: str | None = None) -> list[tuple[str | None, int]]:
        """(target, HTTP status) of every send attempt kept, oldest first; target None when unreadable."""
        with self._cond:
            return [a for a in self._attempts if target is None or a[0] == target]

    def stats(self, targets: bool = True) -> dict:
        """Counts, as GET /_fake/stats answers them; `targets=False` leaves out the per-target map."""
        with self._cond:
            stats = {"accepted": self._accepted, "attempts": self._attempt_count,
                     "by_status": {str(status): n for status, n in sorted(self._by_status.items())}}
            if targets:
                stats["accepted_by_target"] = dict(self._accepted_by_target)
            return stats

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` messages were accepted in all; False if `timeout` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._accepted >= count, timeout)

    def _keeps_more(self, records: list) -> bool:
        return self._max_bodies is None or len(records) < self._max_bodies

    def _record_attempt(self, target: str | None, status: int) -> None:
        self._attempt_count += 1
        self._by_status[status] += 1
        if self._keeps_more(self._attempts):
            self._attempts.append((target, status))

    def _record_accepted(self, target: str, message: dict, received_at: float, name: str) -> None:
        self._accepted += 1
        self._accepted_by_target[target] += 1
        if self._keeps_more(self._messages):
            self._messages.append({"target": target, "message": message, "received_at": received_at, "name": name})
        self._cond.notify_all()

    # -- HTTP

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task rather than the one start_server would make, so that stop() can cancel it quietly.
        task = asyncio.create_task(self._serve_connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader, writer)) is not None:
                writer.write((await self._respond(request)).encode(request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    break
        except ApiError as error:
            writer.write(error.response().encode(keep_alive=False))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()

    async def _respond(self, request: Request) -> Response:
        path, _, query = request.target.partition("?")
        if request.method == "POST" and (match := SEND_PATH.fullmatch(path)):
            response, latency = self._send(match[1], request)
            if latency:
                await asyncio.sleep(latency)
            return response
        try:
            return Response(200, self._control(request.method, path, dict(parse_qsl(query)), request.body))
        except ApiError as error:
            return error.response()
        except (TypeError, ValueError) as error:
            return ApiError(400, "INVALID_ARGUMENT", str(error)).response()

    def _send(self, project_id: str, request: Request) -> tuple[Response, float]:
        """The answer to a send request, recorded, and the seconds to wait before giving it."""
        received_at = time.time()
        try:
            target_field, target, message, validate_only = parse_send(request.headers, request.body)
        except ApiError as error:
            with self._cond:
                self._record_attempt(None, error.code)
            return error.response(), 0.0
        with self._cond:
            if self._storm is not None and self._storm.hits():
                error, retry_after, latency = self._storm.error, self._storm.retry_after, 0.0
            else:
                rule = self._rule_for(target)
                error, retry_after, latency = rule.error_for(target), rule.retry_after, rule.latency
            if error is not None:
                response = fcm_error(error, target_field, retry_after).response()
            else:
                name = f"projects/{project_id}/messages/{'fake_message_id' if validate_only else next(self._ids)}"
                if not validate_only:
                    self._record_accepted(target, message, received_at, name)
                response = Response(200, {"name": name})
            self._record_attempt(target, response.status)
        return response, latency

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> object:
        match method, path:
            case "GET", "/_fake/messages":
                return self.messages(query.get("target"))
            case "GET", "/_fake/stats":
                return self.stats(targets=query.get("targets") != "0")
            case "POST", "/_fake/rules":
                self._apply_rule(json.loads(body))
                return {}
            case "POST", "/_fake/reset":
                self.reset()
                return {}
        raise ApiError(404, "NOT_FOUND", "Requested entity was not found.")

    def _apply_rule(self, spec: dict) -> None:
        if "default" in spec:
            self.set_default(**spec["default"])
        elif "storm" in spec:
            self.storm(**spec["storm"])
        else:
            self.set_rule(**spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m push.fakefcm", description="Run a fake FCM HTTP v1 server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099, help="0 for a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency of the default rule")
    parser.add_argument("--max-bodies", type=int, help="keep at most this many message bodies")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with FakeFcm(args.host, args.port, latency=args.latency_ms / 1000, max_bodies=args.max_bodies) as fake:
        print(fake.url, flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
