"""Property-based fuzzing of every operation of the served OpenAPI document (schemathesis).

The schema is loaded from the app itself (`/api/v1/openapi.json` through WSGI, no server) on the test
database of each backend, after a real world was built through the API: the 12 members of
tests/test_acknowledgements.py, published documents, a draft, a study series with a lesson, attachments,
devices, pushes and inbox items (`run_due` on the `log` push backend), a briefing and an exemption.
Every operation is then called with generated valid and invalid requests, signed in as the
publisher-admin over the whole city (BT), as a branch secretary (S1), as a plain member (M1) and as
nobody, and every response must:

- never be a 5xx;
- have a documented status code, content type, headers and body (schemathesis' conformance checks), and
  an invalid request must not be accepted (negative_data_rejection);
- when it is an error (4xx/5xx), be `application/problem+json` with type, title, status, detail and code;
- when it is a success, have its status documented explicitly (not only through `default`).

Valid requests often get real ids (units, members, documents, attachments, ...) instead of generated
ones, so that calls get past 404 and do real work; operations that end something (withdrawal, member
removal) only get rows kept for them, so that the world stays alive for the operations after them.
Bounded and reproducible: FUZZ_EXAMPLES examples per operation and mode (valid, invalid), derandomized,
no deadline, no shrinking, no example database written. Uploads go to the suite's temporary folder.

Below the fuzz test: one plain regression test per bug the fuzzing found.
"""
from __future__ import annotations

import io
import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest
import schemathesis
from flask import current_app
from hypothesis import HealthCheck, Phase, configuration, given, seed, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, ignored_auth, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)
from sqlalchemy import select

from handbook import auth
from handbook.extensions import db, limiter
from handbook.members import Member
from push.due import run_due
from tests import factories
from tests.factories import PASSWORD
from tests.test_acknowledgements import ADMIN, API, local_today
from tests.test_errors import PROBLEM_KEYS, assert_problem

# A longer or different exploration by hand: FUZZ_EXAMPLES=200 FUZZ_SEED=7 pytest tests/test_fuzz_openapi.py
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
FUZZ_SEED = os.environ.get("FUZZ_SEED")

FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, derandomize=FUZZ_SEED is None, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                         print_blob=False)
# The test signs each request in itself (schemathesis would send a random bearer token).
# Every request asks for an uncompressed body: schemathesis' WSGI transport sends requests' default
# Accept-Encoding (gzip, br, ...) but hands the body on undecoded, as no HTTP client would (compression
# has its own tests: tests/test_compression.py).
CONFIG = {"generation": {"with-security-parameters": False}, "headers": {"Accept-Encoding": "identity"}}

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


# --- checks ----------------------------------------------------------------------------------------

def problem_json_errors(ctx, response, case):
    """Every 4xx/5xx is application/problem+json with type, title, status, detail and code."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", \
        f"error {response.status_code} is {content_type!r}, not application/problem+json"
    body = json.loads(response.content)
    missing = PROBLEM_KEYS - set(body)
    assert not missing, f"problem without {sorted(missing)}"
    assert body["status"] == response.status_code, "problem status differs from the HTTP status"
    assert isinstance(body["code"], str) and body["code"], "problem without a code"
    return True


def success_status_documented(ctx, response, case):
    """A 2xx/3xx must be listed for the operation, not merely covered by the `default` response."""
    if response.status_code >= 400 or case.method.upper() != case.operation.method.upper():
        return None
    documented = set(case.operation.definition.raw.get("responses", {}))
    assert str(response.status_code) in documented, \
        f"{response.status_code} is not documented (documented: {sorted(documented)})"
    return True


# Every check but positive_data_acceptance: a schema-valid request may still be refused with 422 for a
# rule JSON Schema cannot say (a weak new password, a briefing dated before the publication, a control
# character in a text field), and that is part of the contract.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth, problem_json_errors,
          success_status_documented]


# --- the world -------------------------------------------------------------------------------------

class World:
    """Real rows made through the API, and the ids the generated requests are steered to."""

    def __init__(self, api):
        self.api, self.client = api, api.client
        self.ids: dict[str, list[int]] = {}
        self.tokens: dict[str, str] = {}

    def token(self, card: str) -> str:
        """An access token of `card`'s own fuzzing session."""
        if card not in self.tokens:
            self.tokens[card] = fresh_tokens(card).access_token
        return self.tokens[card]

    def build(self) -> None:
        api, client, tree = self.api, self.client, self.api.tree
        bt = api.auth("BT")

        def ok(response, status=200):
            assert response.status_code == status, response.get_data(as_text=True)
            return response.json

        published = api.publish("city")
        api.publish("b1", "cbcs", kind="resolution", title="Nghị quyết về công tác cán bộ")
        api.publish("ba_dinh", requires_ack=False, kind="notice", title="Thông báo lịch sinh hoạt")
        spare = api.publish("dong_da", title="Văn bản để thu hồi")
        draft = ok(client.post(ADMIN, headers=bt, json={
            "kind": "plan", "title": "Kế hoạch học tập", "body_html": "<p>x</p>",
            "audience": {"org_units": [tree["city"].id]}}), 201)["id"]
        series = ok(client.post(f"{API}/admin/series", json={"title": "Chuyên đề 2024"}, headers=bt), 201)["id"]
        lesson = ok(client.post(ADMIN, headers=bt, json={
            "kind": "study", "title": "Bài 1", "series_id": series, "lesson_no": 1,
            "audience": {"org_units": [tree["city"].id]}}), 201)["id"]
        ok(client.post(f"{ADMIN}/{lesson}/publish", json={}, headers=bt))
        for doc in (published, draft):
            ok(client.post(f"{ADMIN}/{doc}/attachments", headers=bt, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(PNG), "so-do.png")}), 201)
        api.patch(published, reack=False, title="Chỉ thị về kỷ cương (đính chính)")
        for card in ("M1", "BT", "S1"):
            ok(client.post(f"{API}/me/devices", json={"fid": f"fid-{card}", "platform": "android"},
                           headers=api.auth(card)), 201)
        s1 = api.auth("S1")
        ok(client.post(f"{API}/documents/{published}/acknowledgements", headers=s1, json={
            "member_ids": [api.id("M2")], "method": "briefing", "held_on": local_today().isoformat()}))
        ok(client.post(f"{API}/documents/{published}/exemptions", headers=s1,
                       json={"member_ids": [api.id("M1")], "reason": "Ốm dài ngày"}))
        ok(client.post(f"{API}/documents/{published}/open", headers=api.auth("M3")), 204)
        leaving = factories.member("X1", tree["b1"], name="Trịnh Văn Xuân").id
        deadline_day = ok(client.get(f"{API}/documents/{published}", headers=s1))["deadline"][:10]
        extended = ok(client.post(f"{API}/documents/{published}/extensions", headers=s1, json={
            "member_ids": [api.id("M1")], "until": _day_after(deadline_day, 10), "reason": "Điều trị"}))
        assert extended["results"] == [{"member_id": api.id("M1"), "status": "ok"}]   # (M2 was briefed)
        meetings, minutes = self._meetings(published)
        asked = [ok(client.post(f"{API}/documents/{published}/questions", headers=api.auth(card),
                                    json={"text": f"Câu hỏi của {card}"}), 201)["id"] for card in ("M3", "M4")]
        questions = [{"kind": "single", "text": "Chỉ thị ban hành năm nào?",
                      "options": [{"text": "2023", "correct": True}, {"text": "2021"}]},
                     {"kind": "multiple", "text": "Yêu cầu gì?",
                      "options": [{"text": "Kỷ luật", "correct": True}, {"text": "Kỷ cương", "correct": True},
                                  {"text": "Không gì"}]}]
        quiz = ok(client.post(f"{ADMIN}/{published}/quizzes", headers=bt, json={
            "title": "Kiểm tra", "questions": questions}), 201)["id"]
        contest = ok(client.post(f"{ADMIN}/{published}/quizzes", headers=bt, json={
            "title": "Thi tìm hiểu", "questions": questions, "contest": {"org_unit": tree["city"].id}}), 201)["id"]
        edited = ok(client.post(f"{ADMIN}/{published}/quizzes", headers=bt, json={   # for PATCH alone
            "title": "Kiểm tra để sửa", "questions": questions}), 201)["id"]
        for card, quiz_id in (("M1", quiz), ("S1", contest), ("M3", contest)):
            attempt = ok(client.post(f"{API}/quizzes/{quiz_id}/attempts", json={}, headers=api.auth(card)), 201)
            ok(client.post(f"{API}/quiz-attempts/{attempt['id']}/submission", headers=api.auth(card),
                           json={"token": attempt["token"], "answers": []}))
        assert current_app.config["PUSH_BACKEND"] == "log"   # pushes go to the log, never to Google
        run_due()   # the publications' pushes and inbox items

        from content.models import Attachment, Document
        from content.quiz_models import QuizAttempt
        from push.models import Device, InboxItem, Notification

        def all_ids(column):
            return sorted(db.session.scalars(select(column)))

        self.ids = {
            "document": all_ids(Document.id),
            "member": all_ids(Member.id),
            "unit": [u.id for u in tree.values()],
            "attachment": all_ids(Attachment.id),
            "device": all_ids(Device.id),
            "notification": all_ids(Notification.id),
            "item": all_ids(InboxItem.id),
            "series": [series],
            "version": [1, 2],
            "date": [local_today().isoformat()],
            "meeting": meetings["scheduled"] + meetings["open"],
            "minutes": [minutes],
            "question": asked,
            "invitee": [api.id(card) for card in ("M1", "M2", "S1", "CB")],   # b1's members
            "starts_at": [at_hours(48)],
            "ends_at": [at_hours(50)],
            "until": [_day_after(deadline_day, 20)],
            "quiz": [quiz, contest],
            "attempt": all_ids(QuizAttempt.id),
        }
        # Path parameters that only make sense together.
        self.together = {
            frozenset({"document_id", "attachment_id"}): [
                {"document_id": d, "attachment_id": a}
                for a, d in db.session.execute(select(Attachment.id, Attachment.document_id))],
            frozenset({"document_id", "member_id"}): [
                {"document_id": published, "member_id": api.id(card)} for card in ("M1", "M2")],
            frozenset({"document_id", "version"}): [
                {"document_id": d, "version": v} for d, v in db.session.execute(select(Document.id, Document.version))],
            frozenset({"meeting_id", "minutes_id"}): [{"meeting_id": meetings["open"][0], "minutes_id": minutes}],
        }
        # Operations that end something get rows of their own, so that the world stays alive for the
        # operations fuzzed after them.
        self.only = {"/withdraw": {"document": [spare]}, "/removal": {"member": [leaving]},
                     "/cancel": {"meeting": meetings["to_cancel"]}, "/close": {"meeting": meetings["to_close"]},
                     "/rsvp": {"meeting": meetings["scheduled"]}, "/check-in-code": {"meeting": meetings["open"]},
                     "/attendance": {"meeting": meetings["open"][:1]}, "/attachments": {"meeting": meetings["open"]},
                     # The one document everyone in this world may acknowledge; the units that hold members.
                     "/acknowledgement": {"document": [published]},
                     "/meetings": {"unit": [tree[u].id for u in ("b1", "b2", "cbcs")]},
                     # A generated PATCH may move a meeting out of its window: the scheduled ones only.
                     "/meetings/{meeting_id}": {"meeting": meetings["scheduled"]},
                     # A generated PATCH may end a quiz's contest: it edits a quiz of its own.
                     "/admin/quizzes/{quiz_id}": {"quiz": [edited]}}
        db.session.remove()

    own_units: list[int] = []

    def units_of(self, card: str | None) -> list[int]:
        """The units where `card` holds a follow-up role (a secretary's branch): unit-scoped operations
        succeed there only."""
        from handbook.members import RoleGrant

        if card is None:
            return []
        return sorted(set(db.session.scalars(select(RoleGrant.org_unit_id).join(Member, Member.id == RoleGrant.member_id)
                                             .where(Member.card_number == card))))

    def _meetings(self, document: int) -> tuple[dict[str, list[int]], int]:
        """Meetings of b1 (S1's) and b2 (BT's branch): scheduled in two days, open (started five minutes
        ago), and one of each to cancel and to close; minutes on b1's open one."""
        from content.models import Meeting

        api, out = self.api, {"scheduled": [], "open": [], "to_cancel": [], "to_close": []}
        for unit, card in (("b1", "S1"), ("b2", "S2")):
            for role in out:
                created = api.client.post(f"{API}/org-units/{api.tree[unit].id}/meetings", headers=api.auth(card), json={
                    "title": "Sinh hoạt chi bộ", "kind": "regular", "starts_at": at_hours(48), "ends_at": at_hours(50),
                    "place": "Hội trường", "agenda": [{"title": "Chỉ thị", "document_id": document}]})
                assert created.status_code == 201, created.get_data(as_text=True)
                out[role].append(created.json["id"])
        for meeting_id in out["open"] + out["to_close"]:
            db.session.get(Meeting, meeting_id).starts_at = datetime.now(UTC) - timedelta(minutes=5)
        db.session.commit()
        minutes = api.client.post(f"{API}/meetings/{out['open'][0]}/attachments", headers=api.auth("S1"),
                                  content_type="multipart/form-data", data={"file": (io.BytesIO(PNG), "bien-ban.png")})
        assert minutes.status_code == 201, minutes.get_data(as_text=True)
        return out, minutes.json["id"]

    # What a parameter or body field names.
    KINDS = {"document_id": "document", "member_id": "member", "org_unit_id": "unit", "org_unit": "unit",
             "attachment_id": "attachment", "device_id": "device", "notification_id": "notification",
             "item_id": "item", "series_id": "series", "version": "version", "actor": "member",
             "owner_unit": "unit", "member_ids": "member", "org_units": "unit", "held_on": "date",
             "meeting_id": "meeting", "minutes_id": "minutes", "question_id": "question", "present": "invitee",
             "starts_at": "starts_at", "ends_at": "ends_at", "until": "until",
             "quiz_id": "quiz", "quiz": "quiz", "attempt_id": "attempt"}
    # Headers worth sending alone, in place of generated ones (a random If-Range would void any Range).
    HEADERS = [{"Range": r} for r in ("bytes=0-9", "bytes=5-", "bytes=-3", "bytes=0-0,5-9", "bytes=100000-",
                                      "bytes=9-5", "items=0-5")]

    # Times a rule JSON Schema cannot state must hold for (in the future, after the deadline): mostly real.
    MOSTLY_REAL = {"starts_at", "ends_at", "until"}

    def steer(self, value, path: str, key: str | None = None):
        """A strategy: `value` as generated, or with its ids (and dates) replaced by real ones, recursively."""
        kind = self.KINDS.get(key)
        ids = next((only for suffix, only in self.only.items() if path.endswith(suffix)), {})
        real = ids.get(kind) or self.ids.get(kind)
        if kind == "unit" and real and self.own_units and not ids.get(kind):   # the identity's own units, as
            real = [*real, *(self.own_units * len(real))]
        if key in ("agenda", "absent") and isinstance(value, list):   # every item must name a readable
            # document (an agenda), an invited member (the absent): often none at all
            return st.one_of(st.just([]), st.tuples(*(self.steer(v, path) for v in value)).map(list))
        if real and key in self.MOSTLY_REAL:
            return st.sampled_from([value, *real * 3])
        if real and isinstance(value, (int, str)) and not isinstance(value, bool):
            return st.sampled_from([value, *real])
        if real and isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            return st.one_of(st.just(value), st.lists(st.sampled_from(real), min_size=1, max_size=3))
        if isinstance(value, dict):
            return st.fixed_dictionaries({k: self.steer(v, path, k) for k, v in value.items()})
        if isinstance(value, list):
            return st.tuples(*(self.steer(v, path, key) for v in value)).map(list)
        return st.just(value)


@pytest.fixture()
def hypothesis_home(tmp_path):
    """Hypothesis keeps caches (e.g. the character tables of schemathesis' strings) in its home folder:
    a temporary one for the fuzzing, not .hypothesis/ in the checkout."""
    configuration.set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    configuration.set_hypothesis_home_dir(None)


@pytest.fixture()
def fuzz_world(api):
    """The world above, built through the API on this test's database."""
    world = World(api)
    world.build()
    return world


def load_schema(app, world: World):
    """The served document, loaded through WSGI, with hooks steering generated ids to real ones."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app,
                                            config=schemathesis.Config.from_dict(CONFIG))
    steer = world.steer

    def steer_body(path, body):
        if isinstance(body, dict) and path.endswith("/auth/login"):
            return st.fixed_dictionaries({
                "username": st.sampled_from([body.get("username"), "M1", "BT"]),
                "password": st.sampled_from([body.get("password"), PASSWORD]),
            }).map(lambda d: {k: v for k, v in d.items() if v is not None})
        if isinstance(body, dict) and path.endswith("/me/password"):
            # The real current password only with an unchanged new one: the world's logins keep working.
            return st.sampled_from([body, {"current_password": PASSWORD, "new_password": PASSWORD}])
        return steer(body, path)

    @schema.hook
    def flatmap_case(context, case):
        """Valid requests: ids often replaced by real ones. Invalid requests are sent as generated."""
        if case.meta is not None and case.meta.generation.mode.is_negative:
            return st.just(case)

        def apply(parts):
            # Only what changed is set: schemathesis re-validates a changed part (and would take a
            # multipart file, which it holds as bytes, for a schema violation).
            for name, value in zip(("path_parameters", "query", "body"), parts[:3]):
                if value != getattr(case, name):
                    setattr(case, name, value)
            if parts[3] != dict(case.headers or {}):
                case.headers = CaseInsensitiveDict(parts[3])
            return case

        body = case.body if isinstance(case.body, (dict, list)) else None
        path = case.operation.path
        path_parameters = steer(case.path_parameters, path)
        together = world.together.get(frozenset(case.path_parameters or ()))
        if together:
            path_parameters = st.one_of(path_parameters, st.sampled_from(together))
        headers = st.just(dict(case.headers or {}))
        if any(header.name == "Range" for header in case.operation.headers):
            headers = st.one_of(headers, st.sampled_from(World.HEADERS))
        return st.tuples(path_parameters, steer(case.query, path),
                         steer_body(case.operation.path, body) if body is not None else st.just(case.body),
                         headers).map(apply)

    return schema


def at_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def _day_after(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def fresh_tokens(card: str) -> auth.TokenPair:
    """A new session of `card` (auth.login, in-process), so that logout and refresh cases end only theirs.
    The login throttle is reset first: the fuzzed logins before may have spent the account's budget."""
    limiter.reset()
    _, pair = auth.login(card, PASSWORD, user_agent="fuzz", ip="127.0.0.1")
    db.session.remove()
    return pair


def fuzz_operation(operation, world: World, card: str | None, examples: int, seed_value: int | None = None
                   ) -> list[int]:
    """`examples` valid and `examples` invalid requests to one operation, each response checked; the
    status codes of the valid ones."""
    path = operation.path
    valid: list[int] = []

    def call(case):
        if card is None:
            headers = {}
        elif path.endswith("/auth/refresh"):
            headers = {"Authorization": f"Bearer {fresh_tokens(card).refresh_token}"}
        elif path.endswith("/auth/logout"):
            headers = {"Authorization": f"Bearer {fresh_tokens(card).access_token}"}
        else:
            headers = {"Authorization": f"Bearer {world.token(card)}"}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        if case.meta is None or not case.meta.generation.mode.is_negative:
            valid.append(response.status_code)

    modes = [GenerationMode.POSITIVE]
    if any((operation.path_parameters, operation.query, operation.body)):   # something to make invalid
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:
        chosen = seed_value if seed_value is not None else (int(FUZZ_SEED) if FUZZ_SEED is not None else None)
        test = settings(FUZZ_SETTINGS, max_examples=examples, derandomize=chosen is None)(
            given(case=operation.as_strategy(generation_mode=mode))(call))
        if chosen is not None:
            test = seed(chosen)(test)
        test()
    return valid


# In CI a second exploration, seeded, as the admin (who may call every operation): other inputs each run.
SECOND_SEED = [pytest.param("BT", FUZZ_EXAMPLES, 20261205, id="admin-second-seed")] \
    if os.environ.get("CI") == "true" else []


@pytest.mark.parametrize("card,examples,seed_value", [
    pytest.param("BT", FUZZ_EXAMPLES, None, id="admin"), pytest.param("S1", FUZZ_EXAMPLES, None, id="secretary"),
    pytest.param("M1", FUZZ_EXAMPLES, None, id="member"), pytest.param(None, 3, None, id="anonymous"),
    *SECOND_SEED])
def test_fuzz_every_operation(app, fuzz_world, card, examples, seed_value, subtests, hypothesis_home):
    fuzz_world.own_units = fuzz_world.units_of(card)
    schema = load_schema(app, fuzz_world)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = [(path, method) for path, item in schema.raw_schema["paths"].items() for method in item
                  if method != "parameters"]
    assert len(operations) == len(documented) > 40
    valid: dict[str, list[int]] = {}
    attempted: list[str] = []
    for operation in operations:
        with subtests.test(msg=operation.label):
            attempted.append(operation.label)
            valid[operation.label] = fuzz_operation(operation, fuzz_world, card, examples, seed_value)
    # Every operation was fuzzed (a failing one is reported by its own subtest above) with valid requests ...
    assert sorted(attempted) == sorted(op.label for op in operations)
    assert all(valid.values()), [label for label, statuses in valid.items() if not statuses]
    # ... and valid requests get through: an API answering 401, 404 or 422 to everything would pass every
    # check above. Each operation the card may use answers 2xx to at least MIN_2XX_SHARE of them (in the
    # derandomized runs; a seeded exploration looks for failures, not for shares).
    if seed_value is not None:
        return
    expected = {label for label in valid if may_succeed(card, label)}
    shares = {label: sum(200 <= s < 300 for s in valid[label]) / len(valid[label]) for label in valid}
    assert {label: round(shares[label], 2) for label in sorted(expected) if shares[label] < MIN_2XX_SHARE} == {}
    if card is None:
        assert {label: sorted(set(valid[label])) for label in valid if label not in expected
                and set(valid[label]) != {401}} == {}


# A valid request to an operation the card may use answers 2xx at least this often (1 in 20 by default).
MIN_2XX_SHARE = 0.05
PUBLIC = {"POST /api/v1/auth/login", "GET /healthz", "GET /readyz", "GET /metrics"}
# What a branch secretary may do and a plain member may not (the member gets 403).
FOLLOW_UP = {"GET /api/v1/documents/{document_id}/progress", "GET /api/v1/documents/{document_id}/members",
             "GET /api/v1/documents/{document_id}/progress/daily",
             "POST /api/v1/documents/{document_id}/acknowledgements",
             "DELETE /api/v1/documents/{document_id}/acknowledgements/{member_id}",
             "POST /api/v1/documents/{document_id}/exemptions",
             "DELETE /api/v1/documents/{document_id}/exemptions/{member_id}",
             "GET /api/v1/org-units/{org_unit_id}/overview", "GET /api/v1/org-units/{org_unit_id}/compliance",
             "POST /api/v1/documents/{document_id}/reminders",
             "POST /api/v1/documents/{document_id}/extensions",
             "DELETE /api/v1/documents/{document_id}/extensions/{member_id}",
             "POST /api/v1/org-units/{org_unit_id}/meetings", "GET /api/v1/org-units/{org_unit_id}/meetings",
             "GET /api/v1/org-units/{org_unit_id}/meetings/stats", "GET /api/v1/org-units/{org_unit_id}/adoption",
             "PATCH /api/v1/meetings/{meeting_id}", "POST /api/v1/meetings/{meeting_id}/cancel",
             "GET /api/v1/meetings/{meeting_id}/check-in-code", "PUT /api/v1/meetings/{meeting_id}/attendance",
             "POST /api/v1/meetings/{meeting_id}/close", "POST /api/v1/meetings/{meeting_id}/attachments",
             "GET /api/v1/quizzes/{quiz_id}/results", "GET /api/v1/quizzes/{quiz_id}/members",
             "GET /api/v1/series/{series_id}/members"}
# A check-in needs the code shown at the meeting, a submission its attempt's token: a generated one must
# fail, whoever sends it.
UNGUESSABLE = {"POST /api/v1/meetings/{meeting_id}/check-in", "POST /api/v1/quiz-attempts/{attempt_id}/submission"}
# A contest's ranking: committee, publishers and admins over its unit (the city here): BT only.
RANKING = {"GET /api/v1/quizzes/{quiz_id}/ranking"}
# Item ids are drawn from every member's inbox: the publisher's and M1's own are seldom drawn, and an
# item of another member is 404. A branch secretary's reminders: the document drawn must be in their
# reach and their unit not reminded in the last 24 hours (checked by the push tests). Unit ids are
# steered to the identity's own units half of the time (World.own_units), so the secretary's other
# unit-scoped operations (overview, compliance, meetings, adoption) must reach 2xx like any other.
SELDOM = {"BT": {"POST /api/v1/me/notifications/{item_id}/read"},
          "S1": {"POST /api/v1/documents/{document_id}/reminders"},
          "M1": {"POST /api/v1/me/notifications/{item_id}/read"}}


def may_succeed(card: str | None, label: str) -> bool:
    """Whether valid requests of `card` to the operation `label` should often be answered 2xx."""
    if card is None:
        return label in PUBLIC
    if label in SELDOM.get(card, ()) or label in UNGUESSABLE or (label in RANKING and card != "BT"):
        return False
    if card != "BT" and " /api/v1/admin/" in label:
        return False
    return not (card == "M1" and label in FOLLOW_UP)


# --- regressions: what the fuzzing found ------------------------------------------------------------

def _spec(client) -> dict:
    return client.get("/api/v1/openapi.json").json


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def _response(spec: dict, response: dict) -> dict:
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def test_every_documented_error_is_problem_json(client):
    """The document said application/json for its default and 422 responses and nothing at all for the
    others (401, 403, 404, 409, 429 ...), while every error is sent as application/problem+json."""
    spec = _spec(client)
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) >= 400:
                content = _response(spec, response).get("content")
                assert content is not None and list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_every_signed_in_operation_documents_its_401(client):
    spec = _spec(client)
    for path, method, operation in _operations(spec):
        if operation.get("security"):
            assert "401" in operation["responses"], (method, path)


def test_the_problem_schema_requires_the_envelope_and_allows_extension_members(client, tree):
    """A stale_version problem carries `current_version` and `ack_version`: the Problem schema must allow
    extension members (RFC 9457), and it names the five members every problem has."""
    problem = _spec(client)["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == PROBLEM_KEYS
    assert problem.get("additionalProperties", True) is not False


def test_the_member_list_export_types_are_documented(client):
    """format=xlsx answered a content type the document did not list (only application/json, text/csv)."""
    spec = _spec(client)
    content = spec["paths"]["/api/v1/documents/{document_id}/members"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv",
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@pytest.mark.parametrize("member_ids", [[-2**90], [2**31], [0]])
def test_an_impossible_member_id_is_422_not_500(api, member_ids):
    """`member_ids: [-1866175745179280675807690752]` reached the database: 500 (SQLite OverflowError;
    PostgreSQL: integer out of range)."""
    doc = api.publish("city")
    r = api.client.post(f"{API}/documents/{doc}/exemptions", headers=api.auth("BT"),
                        json={"member_ids": member_ids, "reason": "Ốm"})
    body = assert_problem(r, 422, "validation_error")
    assert list(body["errors"]) == ["member_ids"]
    r = api.client.post(f"{API}/documents/{doc}/acknowledgements", headers=api.auth("S1"),
                        json={"member_ids": member_ids, "method": "briefing", "held_on": local_today().isoformat()})
    assert_problem(r, 422, "validation_error")


def test_an_impossible_audience_unit_is_422_not_500(api):
    """`audience.org_units: [-42511943841544036352]` on POST /admin/documents: 500."""
    r = api.client.post(ADMIN, headers=api.auth("BT"), json={
        "kind": "directive", "title": "Chỉ thị", "audience": {"org_units": [-42511943841544036352]}})
    body = assert_problem(r, 422, "validation_error")
    assert "audience" in body["errors"]


@pytest.mark.parametrize("query", ["org_unit=99999999999", "org_unit=0"])
def test_an_impossible_unit_in_a_query_is_422(api, query):
    doc = api.publish("city")
    for what in ("progress", "members", "progress/daily"):
        r = api.client.get(f"{API}/documents/{doc}/{what}?{query}", headers=api.auth("BT"))
        assert_problem(r, 422, "validation_error")
    r = api.client.get(f"{API}/admin/audit?actor=99999999999", headers=api.auth("BT"))
    assert_problem(r, 422, "validation_error")


def test_an_impossible_document_id_in_an_offline_sync_is_422(api):
    r = api.client.post(f"{API}/me/acknowledgements/sync", headers=api.auth("M1"),
                        json={"items": [{"document_id": 2**40, "version": 1}]})
    assert_problem(r, 422, "validation_error")


def test_an_upload_with_another_part_is_422(api):
    """Parts other than `file` were silently ignored (the document says the body has `file` only)."""
    doc = api.publish("city")
    r = api.client.post(f"{ADMIN}/{doc}/attachments", headers=api.auth("BT"), content_type="multipart/form-data",
                        data={"file": (io.BytesIO(PNG), "so-do.png"), "note": "x"})
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"note": ["Trường không được chấp nhận."]}


def test_an_upload_whose_file_part_is_text_is_422(api):
    doc = api.publish("city")
    r = api.client.post(f"{ADMIN}/{doc}/attachments", headers=api.auth("BT"), content_type="multipart/form-data",
                        data={"file": "not a file"})
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"file": ["Phần này phải là một tệp."]}


def test_a_partial_download_has_the_files_own_content_type_as_documented(api, client):
    """A 206 was documented as application/octet-stream; it is sent with the file's own type."""
    doc = api.publish("city")
    bt = api.auth("BT")
    upload = client.post(f"{ADMIN}/{doc}/attachments", headers=bt, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(PNG), "so-do.png")})
    assert upload.status_code == 201
    r = client.get(upload.headers["Location"], headers={**api.auth("M1"), "Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content_type == "image/png" and r.data == PNG[:10]
    content = _spec(client)["paths"]["/api/v1/documents/{document_id}/attachments/{attachment_id}"]["get"][
        "responses"]["206"]["content"]
    assert "image/png" in content and "application/octet-stream" not in content


def test_a_range_in_another_unit_is_ignored_not_416(api, client):
    """RFC 9110 §14.2: a Range in a unit the server does not know is ignored (was 416)."""
    doc = api.publish("city")
    upload = client.post(f"{ADMIN}/{doc}/attachments", headers=api.auth("BT"), content_type="multipart/form-data",
                         data={"file": (io.BytesIO(PNG), "so-do.png")})
    r = client.get(upload.headers["Location"], headers={**api.auth("M1"), "Range": "items=0-5"})
    assert r.status_code == 200 and r.data == PNG
    r = client.get(upload.headers["Location"], headers={**api.auth("M1"), "Range": f"bytes={len(PNG)}-"})
    assert_problem(r, 416, "range_not_satisfiable")


STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))


def test_fuzz_stateful_sequences(app, fuzz_world, hypothesis_home):
    """The stateful phase: sequences of calls chained through the links schemathesis infers from the
    document (an id a response returns fed to the operations that take it), as the city's admin, every
    response checked as above. Bounded: FUZZ_STATEFUL_EXAMPLES sequences of at most 6 steps."""
    schema = load_schema(app, fuzz_world)
    machine = schema.as_state_machine()
    token = fuzz_world.token("BT")
    seen: list[tuple[str, int]] = []

    class Stateful(machine):
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {token}"}}

        def validate_response(self, response, case, **kwargs):
            seen.append((case.operation.label, response.status_code))
            # (ignored_auth does not apply: every step is signed in by get_call_kwargs, not generated)
            case.validate_response(response, checks=[c for c in CHECKS if c is not ignored_auth])

    run_settings = settings(FUZZ_SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=6)
    if FUZZ_SEED is not None:
        run_settings = settings(run_settings, derandomize=False)
    Stateful.run(settings=run_settings)
    assert len(seen) >= STATEFUL_EXAMPLES   # the sequences ran ...
    chained = {label for label, status in seen if "{" in label and 200 <= status < 300}
    assert chained, seen   # ... and some reached an operation on an id a previous response gave
