"""The fake FCM server (push.fakefcm) answers like FCM HTTP v1, over real HTTP (requests and httpx)."""
from __future__ import annotations

import asyncio
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import firebase_admin
import httpx
import pytest
import requests
from firebase_admin import credentials, messaging
from google.oauth2.credentials import Credentials as AccessToken

from push.fakefcm import FCM_ERRORS, FakeFcm

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": "Bearer test-access-token"}
SEND_PATH = "/v1/projects/demo/messages:send"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@pytest.fixture
def fake():
    with FakeFcm() as server:
        yield server


def send(fake: FakeFcm, message: dict, headers: dict | None = AUTH, **payload) -> requests.Response:
    return requests.post(fake.url + SEND_PATH, json={"message": message, **payload}, headers=headers, timeout=5)


def error_code(response) -> str:
    return next(d["errorCode"] for d in response.json()["error"]["details"] if d["@type"] == FCM_ERROR_TYPE)


def exchange(sock: socket.socket, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Write one raw request and read one response: (status, headers in lower case, body)."""
    sock.sendall(raw)
    with sock.makefile("rb") as reader:  # one response at a time: nothing more to read ahead
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        return status, headers, reader.read(int(headers.get("content-length", "0")))


def raw_send(body: bytes, extra: str = "") -> bytes:
    return (f"POST {SEND_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


# -- success and recording

def test_accepts_a_message_and_records_it(fake):
    message = {"token": "tok-1", "notification": {"title": "Hi"}, "data": {"doc": "7"}}
    before = time.time()
    response = send(fake, message)
    assert response.status_code == 200
    name = response.json()["name"]
    assert name.startswith("projects/demo/messages/")
    [record] = fake.messages("tok-1")
    assert record["target"] == "tok-1" and record["message"] == message and record["name"] == name
    assert before <= record["received_at"] <= time.time()
    assert send(fake, {"topic": "news"}).json()["name"] != name
    assert fake.accepted_count() == 2 and fake.accepted_count("tok-1") == 1
    assert fake.attempts() == [("tok-1", 200), ("news", 200)]
    assert fake.attempts("news") == [("news", 200)]
    assert [m["target"] for m in fake.messages()] == ["tok-1", "news"]


def test_validate_only_is_answered_but_not_recorded(fake):
    response = send(fake, {"token": "tok-1"}, validate_only=True)
    assert response.status_code == 200
    assert response.json() == {"name": "projects/demo/messages/fake_message_id"}
    assert fake.messages() == [] and fake.accepted_count() == 0
    assert fake.attempts() == [("tok-1", 200)]


def test_wait_for(fake):
    threading.Timer(0.1, send, (fake, {"token": "tok-1"})).start()
    assert fake.wait_for(1, timeout=3)
    assert not fake.wait_for(2, timeout=0.1)


def test_max_bodies_caps_what_is_kept_but_not_the_counts():
    with FakeFcm(max_bodies=2) as fake:
        for i in range(5):
            assert send(fake, {"token": f"tok-{i}"}).status_code == 200
        assert [m["target"] for m in fake.messages()] == ["tok-0", "tok-1"]
        assert len(fake.attempts()) == 2
        assert fake.accepted_count() == 5 and fake.accepted_count("tok-4") == 1
        assert fake.stats(targets=False) == {"accepted": 5, "attempts": 5, "by_status": {"200": 5}}


# -- FCM errors

@pytest.mark.parametrize(("error", "status", "canonical"), [
    ("UNREGISTERED", 404, "NOT_FOUND"),
    ("INVALID_ARGUMENT", 400, "INVALID_ARGUMENT"),
    ("QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED"),
    ("UNAVAILABLE", 503, "UNAVAILABLE"),
    ("INTERNAL", 500, "INTERNAL"),
    ("SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED"),
    ("THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED"),
])
def test_each_error_has_fcm_status_body_and_retry_after(fake, error, status, canonical):
    fake.set_rule(target="tok-1", error=error, retry_after=7)
    response = send(fake, {"token": "tok-1"})
    assert response.status_code == status
    assert response.headers["Retry-After"] == "7"
    body = response.json()["error"]
    assert (body["code"], body["status"], body["message"]) == (status, canonical, FCM_ERRORS[error][2])
    assert body["details"][0] == {"@type": FCM_ERROR_TYPE, "errorCode": error}
    assert fake.attempts() == [("tok-1", status)] and fake.accepted_count() == 0


def test_unregistered_body_is_exactly_googles(fake):
    fake.set_rule(target="tok-1", error="UNREGISTERED")
    response = send(fake, {"token": "tok-1"})
    assert "Retry-After" not in response.headers
    assert response.json() == {"error": {
        "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": FCM_ERROR_TYPE, "errorCode": "UNREGISTERED"}]}}


@pytest.mark.parametrize("target_field", ["token", "fid"])
def test_invalid_token_names_the_field(fake, target_field):
    fake.set_rule(target="garbage", error="INVALID_ARGUMENT")
    response = send(fake, {target_field: "garbage"})
    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": 400, "message": "The registration token is not a valid FCM registration token",
        "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": f"message.{target_field}", "description": "Invalid registration token"}]},
        ]}}


def test_times_fails_that_many_attempts_per_target_then_succeeds(fake):
    fake.set_rule(target="tok-1", error="UNAVAILABLE", times=2)
    fake.set_default(error="INTERNAL", times=1)
    assert [send(fake, {"token": "tok-1"}).status_code for _ in range(3)] == [503, 503, 200]
    assert [send(fake, {"token": target}).status_code for target in ("a", "b", "a")] == [500, 500, 200]
    assert fake.messages("tok-1")[0]["message"] == {"token": "tok-1"}


def test_precedence_storm_exact_longest_prefix_default(fake):
    fake.set_default(error="INTERNAL")
    fake.set_rule(prefix="bad-", error="UNREGISTERED")
    fake.set_rule(prefix="bad-quota-", error="QUOTA_EXCEEDED")
    fake.set_rule(target="bad-quota-but-fine")

    def statuses():
        return [send(fake, {"token": t}).status_code for t in ("x", "bad-1", "bad-quota-1", "bad-quota-but-fine")]

    assert statuses() == [500, 404, 429, 200]
    fake.storm("UNAVAILABLE", requests=4)
    assert statuses() == [503, 503, 503, 503]
    assert statuses() == [500, 404, 429, 200]


def test_a_new_rule_replaces_the_old_one(fake):
    fake.set_rule(target="tok-1", error="UNREGISTERED")
    fake.set_rule(target="tok-1", error="QUOTA_EXCEEDED")
    assert send(fake, {"token": "tok-1"}).status_code == 429


def test_storm_by_count(fake):
    fake.storm("QUOTA_EXCEEDED", requests=3, retry_after=2)
    responses = [send(fake, {"token": f"tok-{i}"}) for i in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert [r.headers.get("Retry-After") for r in responses] == ["2", "2", "2", None]
    assert error_code(responses[0]) == "QUOTA_EXCEEDED"


def test_storm_by_seconds(fake):
    fake.storm("UNAVAILABLE", seconds=0.5, retry_after=1)
    assert [send(fake, {"token": "tok-1"}).status_code for _ in range(2)] == [503, 503]
    time.sleep(0.55)
    assert send(fake, {"token": "tok-1"}).status_code == 200


def test_latency_applies_to_success_and_failure(fake):
    fake.set_rule(target="slow", error="UNAVAILABLE", times=1, latency=0.2)
    for expected in (503, 200):
        started = time.monotonic()
        assert send(fake, {"token": "slow"}).status_code == expected
        assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    send(fake, {"token": "fast"})
    assert time.monotonic() - started < 0.2


def test_rule_arguments_are_checked(fake):
    with pytest.raises(ValueError):
        fake.set_rule(target="tok-1", error="NO_SUCH_ERROR")
    with pytest.raises(ValueError):
        fake.set_rule(target="tok-1", prefix="tok-")
    with pytest.raises(ValueError):
        fake.storm("UNAVAILABLE")


def test_reset_forgets_records_and_rules(fake):
    fake.set_rule(target="tok-1", error="UNREGISTERED")
    fake.storm("UNAVAILABLE", requests=1)
    send(fake, {"token": "tok-1"})
    send(fake, {"token": "tok-2"})
    fake.reset()
    assert fake.messages() == [] and fake.attempts() == [] and fake.accepted_count() == 0
    assert send(fake, {"token": "tok-1"}).status_code == 200


# -- requests FCM refuses

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic dTpw"}])
def test_missing_auth_is_401(fake, headers):
    response = send(fake, {"token": "tok-1"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert fake.attempts() == [(None, 401)] and fake.accepted_count() == 0


def test_malformed_json_is_400(fake):
    response = requests.post(fake.url + SEND_PATH, data=b'{"message": {', headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert error_code(response) == "INVALID_ARGUMENT"


@pytest.mark.parametrize("message", [
    {}, {"token": "a", "topic": "b"}, {"fid": "a", "condition": "'b' in topics"}, {"token": 5}, {"token": ""}])
def test_a_message_needs_exactly_one_target(fake, message):
    response = send(fake, message)
    assert response.status_code == 400
    assert error_code(response) == "INVALID_ARGUMENT"
    assert fake.accepted_count() == 0


def test_unknown_path_is_404(fake):
    assert requests.get(fake.url + "/v1/projects/demo/messages", timeout=5).status_code == 404


# -- HTTP

def test_keep_alive_serves_many_requests_on_one_connection(fake):
    with socket.create_connection((fake.host, fake.port), timeout=5) as sock:
        for i in range(100):
            status, headers, _ = exchange(sock, raw_send(f'{{"message": {{"token": "t{i}"}}}}'.encode()))
            assert status == 200 and "connection" not in headers
        status, headers, _ = exchange(sock, raw_send(b'{"message": {"token": "last"}}', "Connection: close\r\n"))
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server
    assert fake.accepted_count() == 101


def test_http_1_0_closes_and_expect_100_continue_is_answered(fake):
    body = b'{"message": {"token": "tok-1"}}'
    with socket.create_connection((fake.host, fake.port), timeout=5) as sock:
        status, headers, _ = exchange(sock, raw_send(body).replace(b"HTTP/1.1", b"HTTP/1.0"))
        assert (status, headers["connection"]) == (200, "close")
    with socket.create_connection((fake.host, fake.port), timeout=5) as sock:
        head, _, body = raw_send(body, "Expect: 100-continue\r\n").partition(b"\r\n\r\n")
        assert exchange(sock, head + b"\r\n\r\n")[0] == 100
        assert exchange(sock, body)[0] == 200
    assert fake.accepted_count() == 2


@pytest.mark.parametrize(("raw", "status"), [
    (b"hello there\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"POST " + SEND_PATH.encode() + b" HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST " + SEND_PATH.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
])
def test_unreadable_requests_are_refused_and_the_connection_closed(fake, raw, status):
    with socket.create_connection((fake.host, fake.port), timeout=5) as sock:
        answered, headers, body = exchange(sock, raw)
        assert (answered, headers["connection"]) == (status, "close")
        assert json.loads(body)["error"]["code"] == status
        assert sock.recv(1) == b""


def test_concurrent_async_requests_are_all_accepted(fake):
    async def burst():
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=fake.url, headers=AUTH, limits=limits, timeout=10) as http:
            return await asyncio.gather(*(http.post(SEND_PATH, json={"message": {"token": f"tok-{i % 30}"}})
                                          for i in range(300)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 300
    assert len({r.json()["name"] for r in responses}) == 300
    assert fake.accepted_count() == 300 and fake.accepted_count("tok-7") == 10
    assert len(fake.messages()) == 300


# -- control over HTTP

def test_control_endpoints(fake):
    with httpx.Client(base_url=fake.url, timeout=5) as control:
        def rule(spec) -> int:
            return control.post("/_fake/rules", json=spec).status_code

        assert rule({"target": "tok-1", "error": "UNREGISTERED"}) == 200
        assert rule({"prefix": "bad-", "error": "INTERNAL", "retry_after": 3}) == 200
        assert rule({"default": {"error": "UNAVAILABLE", "times": 1}}) == 200
        assert [send(fake, {"token": t}).status_code for t in ("tok-1", "bad-1", "ok", "ok")] == [404, 500, 503, 200]
        assert rule({"storm": {"error": "QUOTA_EXCEEDED", "requests": 1}}) == 200
        assert send(fake, {"token": "ok"}).status_code == 429

        assert [m["message"] for m in control.get("/_fake/messages?target=ok").json()] == [{"token": "ok"}]
        assert control.get("/_fake/messages?target=tok-1").json() == []
        assert len(control.get("/_fake/messages").json()) == 1
        assert control.get("/_fake/stats").json() == {
            "accepted": 1, "attempts": 5, "by_status": {"200": 1, "404": 1, "429": 1, "500": 1, "503": 1},
            "accepted_by_target": {"ok": 1}}
        assert "accepted_by_target" not in control.get("/_fake/stats?targets=0").json()

        bad = [{"target": "x", "error": "NOPE"}, {"target": "x", "colour": "red"}, [1],
               {"storm": {"error": "INTERNAL"}}]
        assert [rule(spec) for spec in bad] == [400] * 4
        assert control.post("/_fake/rules", content=b"{").status_code == 400

        assert control.post("/_fake/reset").status_code == 200
        assert control.get("/_fake/stats").json() == {
            "accepted": 0, "attempts": 0, "by_status": {}, "accepted_by_target": {}}
        assert send(fake, {"token": "tok-1"}).status_code == 200


# -- firebase-admin, the real client

class StaticToken(credentials.Base):
    def get_credential(self):
        return AccessToken("test-access-token")


@pytest.fixture
def firebase_app(fake):
    firebase = firebase_admin.initialize_app(StaticToken(), {"projectId": "demo"}, name=f"fakefcm-{id(fake)}")
    messaging._get_messaging_service(firebase)._fcm_url = fake.url + SEND_PATH  # instead of fcm.googleapis.com
    yield firebase
    firebase_admin.delete_app(firebase)


async def send_each_async(messages, firebase):
    try:
        return await messaging.send_each_async(messages, app=firebase)
    finally:  # in this event loop: delete_app() would close the httpx client in a new one, and fail
        await messaging._get_messaging_service(firebase)._async_client.aclose()


def test_firebase_admin_reads_the_answers(fake, firebase_app):
    for target, error in [("gone", "UNREGISTERED"), ("garbage", "INVALID_ARGUMENT"),
                          ("other-sender", "SENDER_ID_MISMATCH"), ("busy", "QUOTA_EXCEEDED")]:
        fake.set_rule(target=target, error=error)
    targets = ("ok", "gone", "garbage", "other-sender", "busy")
    messages = [messaging.Message(fid=target, data={"doc": "7"}) for target in targets]
    expected = [type(None), messaging.UnregisteredError, firebase_admin.exceptions.InvalidArgumentError,
                messaging.SenderIdMismatchError, messaging.QuotaExceededError]

    batch = messaging.send_each(messages, app=firebase_app)  # requests
    assert [type(r.exception) for r in batch.responses] == expected
    assert batch.responses[0].message_id == fake.messages("ok")[0]["name"]
    batch = asyncio.run(send_each_async(messages, firebase_app))  # httpx
    assert [type(r.exception) for r in batch.responses] == expected
    assert fake.accepted_count("ok") == 2
    assert fake.messages("ok")[0]["message"] == {"fid": "ok", "data": {"doc": "7"}}


# -- the CLI

def test_cli_prints_its_url_serves_and_stops_on_sigterm():
    with subprocess.Popen([sys.executable, "-m", "push.fakefcm", "--port", "0", "--latency-ms", "1"],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert select.select([process.stdout], [], [], 10)[0], "the CLI printed nothing"
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            message = {"message": {"token": "tok-1"}}
            assert requests.post(url + SEND_PATH, json=message, headers=AUTH, timeout=5).status_code == 200
            assert requests.get(url + "/_fake/stats", timeout=5).json()["accepted"] == 1
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()  # nothing to do once it has stopped
