"""The authorisation matrix: every route of the app × seven callers, each cell an expected status.

The routes come from `app.url_map` (every method of every rule but HEAD/OPTIONS). ROWS below holds one
row per (method, rule) — a few routes have extra rows (variants: another query, another object) — and
`test_every_route_has_a_row_and_every_row_a_route` fails on a route without a row (a new endpoint must
be thought through here) and on a row without a route (a stale row).

The world (API.md "Organisation and people"): one city, two districts and the city's own office:

    HN  Thành ủy Hà Nội (city)
    ├── HN.BD  Quận ủy Ba Đình (upper, "this district")
    │   ├── HN.BD.DB  Đảng bộ phường Điện Biên (grassroots)
    │   │   ├── HN.BD.DB.1  Chi bộ Tổ dân phố số 1 (branch, "this branch"): the reader, its secretary,
    │   │   │               and the members a secretary briefs, exempts and has briefed/exempted
    │   │   └── HN.BD.DB.2  Chi bộ Tổ dân phố số 2 (branch, "another branch"): its secretary
    │   └── HN.BD.VP  Chi bộ Văn phòng Quận ủy (chi bộ cơ sở): the district's publisher (the author)
    ├── HN.DD  Quận ủy Đống Đa (upper, "another district")
    │   └── HN.DD.LT  Đảng bộ phường Láng Thượng → HN.DD.LT.1 (branch): committee@DD, publisher@DD
    └── HN.KCQ  Đảng bộ Khối các cơ quan Thành phố → HN.KCQ.VP Chi bộ Văn phòng Thành ủy: admin@HN

The district's publisher issued a directive addressed to Ba Đình (so "this branch" and "another branch"
are in its audience, "another district" and the city office are not), with a PDF attachment; a draft
with an attachment; a study series with one published lesson; a directive scheduled for three days from
now; a guidance for the district's secretaries only; a briefing and an exemption already recorded in
this branch; the publication's notification in the reader's inbox; the reader's phone; a manual
reminder the branch secretary sent two days ago.

Callers: anonymous; `member` (a plain reader of this branch); `secretary_this` (secretary@this branch);
`secretary_other` (secretary@another branch of the same district: the document reaches them, this
branch does not); `committee_other` and `publisher_other` (committee@ / publisher@ another district);
`admin` (admin@city, working in the city office, outside the document's audience).

Each cell is one real HTTP request with the caller's own real login and a minimal valid body, so the
status reflects authorisation, not validation. Cells share a world while they only read; a cell that
may have changed it (a non-GET that succeeded — publishing, withdrawing, logging out, a password, a
briefing, a reminder… — or any failure) throws it away and the next cell gets a fresh one (`Worlds`).
Statuses follow API.md: a document or member outside the caller's audience/scope is 404; an org unit
outside the caller's scope is 403; a batch (briefings, exemptions, offline sync) answers 200 with a
per-member/per-item `not_found` for what lies outside. Cells marked xfail(strict) are bugs still to fix
(see their reason); when fixed they pass, and strict xfail makes the mark's removal due.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from werkzeug.datastructures import FileStorage

from content import meetings
from handbook.extensions import db
from tests.conftest import empty_tables
from tests.factories import PASSWORD, bearer, login, member, unit
from tests.test_errors import assert_problem

CALLERS = ("anonymous", "member", "secretary_this", "secretary_other", "committee_other", "publisher_other",
           "admin")
# The card number each caller logs in with (anonymous logs in as nobody).
CARDS = {"member": "BD1-DV01", "secretary_this": "BD1-BT01", "secretary_other": "BD2-BT01",
         "committee_other": "DD-CU01", "publisher_other": "DD-PH01", "admin": "HN-QT01"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PROBLEM_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


# --- the world --------------------------------------------------------------------------------------

@dataclass
class World:
    ids: dict[str, int]
    client: object
    tokens: dict[str, dict] = field(default_factory=dict)
    browsers: dict[str, object] = field(default_factory=dict)   # console: one cookie jar per caller

    def browser(self, caller: str):
        """The caller's browser, signed in through the console's form (anonymous: not signed in)."""
        if caller not in self.browsers:
            from tests.console_helpers import browser

            self.browsers[caller] = browser(self.client.application,
                                            None if caller == "anonymous" else CARDS[caller])
        return self.browsers[caller]

    def csrf(self, caller: str) -> str:
        from tests.console_helpers import page_token

        return page_token(self.browser(caller))

    def login(self, caller: str) -> dict:
        """The caller's login answer (access and refresh tokens), one real login per caller."""
        if caller not in self.tokens:
            response = login(self.client, CARDS[caller])
            assert response.status_code == 200, response.get_data(as_text=True)
            self.tokens[caller] = response.json
        return self.tokens[caller]

    def headers(self, caller: str, *, refresh: bool = False) -> dict:
        if caller == "anonymous":
            return {}
        tokens = self.login(caller)
        return bearer(tokens["refresh_token" if refresh else "access_token"])


def local_today():
    from handbook.timeutil import local_zone

    return datetime.now(local_zone()).date()


def build_world(client) -> World:
    from content import acknowledgements, attachments, documents, questions
    from handbook.timeutil import utcnow
    from push import devices
    from push.models import InboxItem, Notification, NotificationKind, NotificationState

    city = unit("HN", "city", name="Thành ủy Hà Nội")
    bd = unit("HN.BD", "upper", city, "Quận ủy Ba Đình")
    dd = unit("HN.DD", "upper", city, "Quận ủy Đống Đa")
    kcq = unit("HN.KCQ", "upper", city, "Đảng bộ Khối các cơ quan Thành phố")
    phuong = unit("HN.BD.DB", "grassroots", bd, "Đảng bộ phường Điện Biên")
    b1 = unit("HN.BD.DB.1", "branch", phuong, "Chi bộ Tổ dân phố số 1")
    b2 = unit("HN.BD.DB.2", "branch", phuong, "Chi bộ Tổ dân phố số 2")
    bd_office = unit("HN.BD.VP", "grassroots", bd, "Chi bộ Văn phòng Quận ủy Ba Đình")
    lang_thuong = unit("HN.DD.LT", "grassroots", dd, "Đảng bộ phường Láng Thượng")
    dd1 = unit("HN.DD.LT.1", "branch", lang_thuong, "Chi bộ Tổ dân phố số 1 Láng Thượng")
    city_office = unit("HN.KCQ.VP", "grassroots", kcq, "Chi bộ Văn phòng Thành ủy")

    reader = member(CARDS["member"], b1, name="Nguyễn Văn An")
    secretary = member(CARDS["secretary_this"], b1, name="Lê Văn Cường", roles=[("secretary", b1)])
    target = member("BD1-DV02", b1, name="Trần Thị Bình", password=None)      # no app: briefed at a meeting
    briefed = member("BD1-DV03", b1, name="Phạm Văn Đức", password=None)      # already briefed
    exempted = member("BD1-DV04", b1, name="Hoàng Thị Em", password=None)     # already exempted (illness)
    extended = member("BD1-DV05", b1, name="Đinh Văn Phúc", password=None)    # has a deadline extension
    member(CARDS["secretary_other"], b2, name="Đặng Văn Hải", roles=[("secretary", b2)])
    member("BD2-DV01", b2, name="Vũ Thị Giang")
    author = member("BD-PH01", bd_office, name="Bùi Thị Hoa", roles=[("publisher", bd)])
    member(CARDS["committee_other"], dd1, name="Lý Thị Ngọc", roles=[("committee", dd)])
    member(CARDS["publisher_other"], dd1, name="Ngô Văn Khánh", roles=[("publisher", dd)])
    member(CARDS["admin"], city_office, name="Dương Văn Minh", roles=[("admin", city)])

    def issue(**data):
        doc = documents.create_document(author, {"number": "24-CT/QU", "summary": "Tóm tắt",
                                                 "body_html": "<p>Nội dung</p>", "issuing_body": "Quận ủy Ba Đình",
                                                 "audience": {"org_units": [bd.id]}, **data})
        return doc.id

    def attach(doc_id: int, name: str) -> int:
        doc = documents.managed_document(author, doc_id)
        return attachments.add_attachment(author, doc, FileStorage(io.BytesIO(PDF), filename=name)).id

    doc = issue(kind="directive", title="Chỉ thị về tăng cường kỷ luật, kỷ cương")
    doc_attachment = attach(doc, "phu-luc.pdf")
    published = documents.publish_document(author, doc)
    draft = issue(kind="plan", title="Kế hoạch học tập nghị quyết (dự thảo)")
    draft_attachment = attach(draft, "du-thao.pdf")
    series = documents.create_series(author, {"title": "Chuyên đề học tập và làm theo tư tưởng Hồ Chí Minh",
                                              "owner_unit": bd.id}).id
    lesson = issue(kind="study", title="Bài 1", requires_ack=False, series_id=series, lesson_no=1)
    documents.publish_document(author, lesson)
    scheduled = issue(kind="directive", number="25-CT/QU", title="Chỉ thị về phòng, chống thiên tai")
    documents.publish_document(author, scheduled, utcnow() + timedelta(days=3))
    for_secretaries = issue(kind="guidance", number="03-HD/QU", title="Hướng dẫn bí thư chi bộ ghi biên bản",
                            audience={"org_units": [bd.id], "roles": ["secretary"]})
    documents.publish_document(author, for_secretaries)
    acknowledgements.record_briefing(secretary, doc, [briefed.id], local_today(), "Sinh hoạt chi bộ tháng 8")
    acknowledgements.exempt(secretary, doc, [exempted.id], "Ốm dài ngày")
    acknowledgements.extend(secretary, doc, [extended.id], local_today() + timedelta(days=30), "Điều trị dài ngày")
    device, _ = devices.register(reader, {"fid": "fid-reader-phone", "platform": "android"})
    inbox = InboxItem(notification_id=published["notification_id"], member_id=reader.id)
    earlier = utcnow() - timedelta(days=2)
    manual = Notification(kind=NotificationKind.MANUAL.value, state=NotificationState.DONE.value, document_id=doc,
                          org_unit_id=b1.id, created_by=secretary.id, created_at=earlier, due_at=earlier,
                          finished_at=earlier)
    db.session.add_all([inbox, manual])
    db.session.commit()
    meetings_ = _meetings(secretary, b1, doc)
    question = questions.ask(reader, doc, "Chi bộ phổ biến chỉ thị này vào buổi nào?")["id"]
    # Quizzes on the directive (issue 17): the reader passed one; a contest over the district, with the
    # reader's attempt still open (not submitted).
    from content import quizzes

    bank = [{"kind": "single", "text": "Chỉ thị ban hành năm nào?",
                  "options": [{"text": "2023", "correct": True}, {"text": "2021", "correct": False}]}]
    quiz = quizzes.create_quiz(author, doc, {"title": "Kiểm tra hiểu chỉ thị", "questions": bank}).id
    contest = quizzes.create_quiz(author, doc, {"title": "Thi tìm hiểu chỉ thị", "questions": bank,
                                                "contest": {"org_unit": bd.id}}).id
    taken, _ = quizzes.start_attempt(reader, quiz)
    quizzes.submit_attempt(reader, taken["id"], taken["token"], [])
    still_open, _ = quizzes.start_attempt(reader, contest)
    ids = {"doc": doc, "attachment": doc_attachment, "draft": draft, "draft_attachment": draft_attachment,
           "series": series, "scheduled": scheduled, "for_secretaries": for_secretaries,
           "notification": published["notification_id"], "manual_notification": manual.id,
           "inbox_item": inbox.id, "device": device.id, "this_branch": b1.id, "this_district": bd.id,
           "target": target.id, "briefed": briefed.id, "exempted": exempted.id, "extended": extended.id,
           **meetings_, "question": question, "quiz": quiz, "contest": contest, "attempt": taken["id"],
           "open_attempt": still_open["id"], "open_attempt_token": still_open["token"]}
    return World(ids=ids, client=client)


def _meetings(secretary, branch, doc: int) -> dict[str, int]:
    """This branch's meeting in two days (agenda: the directive), and one that started five minutes ago."""
    from content.models import Meeting
    from handbook.timeutil import utcnow

    now = utcnow()
    out = {}
    for name, start in (("meeting", now + timedelta(days=2)), ("open_meeting", now + timedelta(hours=1))):
        out[name] = meetings.schedule(secretary, branch.id, {
            "title": "Sinh hoạt chi bộ thường kỳ", "kind": "regular", "starts_at": start,
            "ends_at": start + timedelta(hours=2), "place": "Nhà văn hóa tổ dân phố",
            "agenda": [{"title": "Quán triệt chỉ thị", "document_id": doc}]}).id
    db.session.get(Meeting, out["open_meeting"]).starts_at = now - timedelta(minutes=5)
    db.session.commit()
    out["minutes"] = meetings.add_minutes(secretary, out["open_meeting"],
                                          FileStorage(io.BytesIO(PDF), filename="bien-ban.pdf")).id
    return out


def current_code(w: World, c: str) -> dict:
    """The open meeting's check-in code, as its secretary would show it."""
    from content.models import Meeting

    meeting = db.session.get(Meeting, w.ids["open_meeting"])
    return {"json": {"code": meetings._code(meeting, int(time.time()) // meetings.CODE_PERIOD)}}


# --- the table --------------------------------------------------------------------------------------

Request = Callable[[World, str], dict]   # (world, caller) → keyword arguments of client.open


@dataclass(frozen=True)
class Row:
    method: str
    rule: str                  # as app.url_map spells it
    path: str                  # the concrete path, with {names} from World.ids
    expect: tuple[int, ...]    # one status per caller, in CALLERS order
    variant: str = ""          # what distinguishes a second row of one route
    request: Request | None = None
    codes: dict[str, str] = field(default_factory=dict)   # problem code of a caller's 4xx, when not the usual
    check: Callable[[World, str, object], None] | None = None  # more about a 2xx answer
    xfail: dict[str, str] = field(default_factory=dict)  # caller → why the app still disagrees (strict)
    # "api": bearer tokens and problem+json; "console": the caller's signed-in browser (cookies), HTML
    # pages, anonymous visitors sent to the sign-in page (303).
    face: str = "api"
    # What a success of a non-GET leaves behind: by default a spoilt world (the next cell gets a new one);
    # KEEPS when every later cell's answer stays the same; SIGNS_OUT when only the caller's own sessions
    # changed (signed out; or the console's sign-in, which signs an anonymous caller's browser in as the
    # member): the caller gets a new login and browser at its next cell.
    after: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.rule}" + (f" [{self.variant}]" if self.variant else "")


def body(payload: dict | Callable[[World, str], dict]) -> Request:
    return lambda w, c: {"json": payload(w, c) if callable(payload) else payload}


def query(payload: Callable[[World], dict]) -> Request:
    return lambda w, c: {"query_string": payload(w)}


def page(payload: dict | Callable[[World, str], dict] | None = None, *, csrf: bool = True) -> Request:
    """A console request in the caller's browser: a form (with its CSRF token unless `csrf=False`)."""
    def build(w: World, c: str) -> dict:
        kwargs = {"client": w.browser(c)}
        if payload is not None or csrf:
            data = payload(w, c) if callable(payload) else dict(payload or {})
            if csrf:
                data["csrf_token"] = w.csrf(c)
            kwargs["data"] = data
        return kwargs
    return build


def console(method: str, rule: str, path: str, expect: tuple[int, ...], *, request: Request | None = None,
            **kwargs) -> Row:
    return Row(method, rule, path, expect, face="console",
               request=request or page(csrf=method != "GET" and method != "HEAD"), **kwargs)


def E(*statuses: int) -> tuple[int, ...]:  # noqa: N802 (reads as a table)
    assert len(statuses) == len(CALLERS)
    return statuses


def _in_audience(caller: str) -> bool:
    return caller in ("member", "secretary_this", "secretary_other")


def check_feed(w: World, caller: str, response) -> None:
    ids = {item["id"] for item in response.json["items"]}
    assert (w.ids["doc"] in ids) is _in_audience(caller), ids


def check_sync(w: World, caller: str, response) -> None:
    [result] = response.json["results"]
    assert result["status"] == ("ok" if _in_audience(caller) else "not_found"), result


def check_batch(w: World, caller: str, response) -> None:
    """A secretary of another branch is answered per member: this branch's member is not found."""
    [result] = response.json["results"]
    assert result["member_id"] == w.ids["target"]
    assert result["status"] == ("not_found" if caller == "secretary_other" else "ok"), result


def check_member_list(w: World, caller: str, response) -> None:
    """Default scope: the caller's own subtree only (another branch's secretary never sees this branch)."""
    cards = {row["member"]["card_number"] for row in response.json["items"]}
    assert (CARDS["member"] in cards) is (caller != "secretary_other"), cards


def check_admin_list(w: World, caller: str, response) -> None:
    ids = {item["id"] for item in response.json["items"]}
    assert (w.ids["doc"] in ids) is (caller == "admin"), ids


def check_series_list(w: World, caller: str, response) -> None:
    ids = {item["id"] for item in response.json["items"]}
    assert (w.ids["series"] in ids) is _in_audience(caller), ids


OUT_OF_SCOPE = "audience_out_of_scope"
KEEPS, SIGNS_OUT = "keeps", "signs out"
QUIZ_FORM = {"action": "save", "title": "Kiểm tra nhanh", "pass_mark": "60", "count": "1", "q0_kind": "multiple",
             "q0_text": "Chỉ thị yêu cầu gì?", "q0_points": "1", "q0_width": "3", "q0_o0": "Kỷ luật", "q0_c0": "y",
             "q0_o1": "Kỷ cương", "q0_c1": "y", "q0_o2": "Không gì cả"}


ROWS: list[Row] = [
    # Row(method, rule, concrete path, E(anonymous, member, secretary_this, secretary_other, committee_other,
    #                                    publisher_other, admin), ...)
    # --- operations (public) ---
    Row("GET", "/healthz", "/healthz", E(200, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/readyz", "/readyz", E(200, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/metrics", "/metrics", E(200, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", E(200, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/docs", "/docs", E(200, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/docs/assets/<path:filename>", "/docs/assets/swagger-ui-bundle.js",
        E(200, 200, 200, 200, 200, 200, 200)),

    # --- auth ---
    Row("POST", "/api/v1/auth/login", "/api/v1/auth/login", E(200, 200, 200, 200, 200, 200, 200),
        request=body(lambda w, c: {"username": CARDS["member" if c == "anonymous" else c], "password": PASSWORD}),
        after=KEEPS),
    Row("POST", "/api/v1/auth/refresh", "/api/v1/auth/refresh", E(401, 200, 200, 200, 200, 200, 200),
        request=lambda w, c: {"headers": w.headers(c, refresh=True)}, after=SIGNS_OUT),
    Row("POST", "/api/v1/auth/logout", "/api/v1/auth/logout", E(401, 204, 204, 204, 204, 204, 204),
        after=SIGNS_OUT),

    # --- me (every member, about themselves only) ---
    Row("GET", "/api/v1/me", "/api/v1/me", E(401, 200, 200, 200, 200, 200, 200)),
    Row("PUT", "/api/v1/me/password", "/api/v1/me/password", E(401, 204, 204, 204, 204, 204, 204),
        request=body({"current_password": PASSWORD, "new_password": "mat-khau-moi-456"})),
    Row("GET", "/api/v1/me/summary", "/api/v1/me/summary", E(401, 200, 200, 200, 200, 200, 200)),
    Row("POST", "/api/v1/me/devices", "/api/v1/me/devices", E(401, 201, 201, 201, 201, 201, 201),
        request=body(lambda w, c: {"fid": f"fid-{c}", "platform": "android", "locale": "vi-VN"}), after=KEEPS),
    Row("GET", "/api/v1/me/devices", "/api/v1/me/devices", E(401, 200, 200, 200, 200, 200, 200)),
    # The reader's phone: nobody else can remove it, whatever their roles.
    Row("DELETE", "/api/v1/me/devices/<int:device_id>", "/api/v1/me/devices/{device}",
        E(401, 204, 404, 404, 404, 404, 404)),
    Row("GET", "/api/v1/me/notifications", "/api/v1/me/notifications", E(401, 200, 200, 200, 200, 200, 200)),
    # The reader's inbox item: nobody else can mark it read.
    Row("POST", "/api/v1/me/notifications/<int:item_id>/read", "/api/v1/me/notifications/{inbox_item}/read",
        E(401, 204, 404, 404, 404, 404, 404), after=KEEPS),
    Row("POST", "/api/v1/me/notifications/read-all", "/api/v1/me/notifications/read-all",
        E(401, 200, 200, 200, 200, 200, 200), after=KEEPS),
    Row("POST", "/api/v1/me/acknowledgements/sync", "/api/v1/me/acknowledgements/sync",
        E(401, 200, 200, 200, 200, 200, 200), check=check_sync, after=KEEPS,
        request=body(lambda w, c: {"items": [{"document_id": w.ids["doc"], "version": 1}]})),

    # --- reading (the document's audience only) ---
    Row("GET", "/api/v1/documents", "/api/v1/documents", E(401, 200, 200, 200, 200, 200, 200), check=check_feed),
    Row("GET", "/api/v1/documents/<int:document_id>", "/api/v1/documents/{doc}",
        E(401, 200, 200, 200, 404, 404, 404)),
    # A document for the district's secretaries only (audience narrowed by role): not for the reader.
    Row("GET", "/api/v1/documents/<int:document_id>", "/api/v1/documents/{for_secretaries}",
        E(401, 404, 200, 200, 404, 404, 404), variant="audience: secretaries only"),
    # Scheduled for three days from now: nobody reads it before it is out (its manager uses /admin).
    Row("GET", "/api/v1/documents/<int:document_id>", "/api/v1/documents/{scheduled}",
        E(401, 404, 404, 404, 404, 404, 404), variant="scheduled, not yet out"),
    # Readers in the audience, and whoever manages the document (the admin over the city).
    Row("GET", "/api/v1/documents/<int:document_id>/attachments/<int:attachment_id>",
        "/api/v1/documents/{doc}/attachments/{attachment}", E(401, 200, 200, 200, 404, 404, 200)),
    # A draft's attachment: only for whoever manages the draft.
    Row("GET", "/api/v1/documents/<int:document_id>/attachments/<int:attachment_id>",
        "/api/v1/documents/{draft}/attachments/{draft_attachment}", E(401, 404, 404, 404, 404, 404, 200),
        variant="draft's attachment"),
    # A readable document's id with the draft's attachment id: never served through another document.
    Row("GET", "/api/v1/documents/<int:document_id>/attachments/<int:attachment_id>",
        "/api/v1/documents/{doc}/attachments/{draft_attachment}", E(401, 404, 404, 404, 404, 404, 404),
        variant="another document's attachment"),
    Row("POST", "/api/v1/documents/<int:document_id>/open", "/api/v1/documents/{doc}/open",
        E(401, 204, 204, 204, 404, 404, 404), after=KEEPS),
    Row("PUT", "/api/v1/documents/<int:document_id>/acknowledgement", "/api/v1/documents/{doc}/acknowledgement",
        E(401, 200, 200, 200, 404, 404, 404), request=body({"version": 1}), after=KEEPS),
    Row("GET", "/api/v1/series", "/api/v1/series", E(401, 200, 200, 200, 200, 200, 200), check=check_series_list),
    Row("GET", "/api/v1/series/<int:series_id>", "/api/v1/series/{series}", E(401, 200, 200, 200, 404, 404, 404)),

    # --- following up (secretary, committee, publisher, admin within their scope) ---
    # Default unit: the caller's scope root. Another branch's secretary gets their own branch (the document
    # reaches it); another district's committee/publisher: the document does not reach them → 404.
    Row("GET", "/api/v1/documents/<int:document_id>/progress", "/api/v1/documents/{doc}/progress",
        E(401, 403, 200, 200, 404, 404, 200), variant="own scope"),
    # This branch asked for by name: outside the scope of everyone but its secretary and the admin → 403.
    Row("GET", "/api/v1/documents/<int:document_id>/progress", "/api/v1/documents/{doc}/progress",
        E(401, 403, 200, 403, 403, 403, 200), variant="org_unit=this branch",
        request=query(lambda w: {"org_unit": w.ids["this_branch"]})),
    # Not yet out: readers cannot see it, so neither can their secretaries (no existence leak); the
    # admin manages it and may look at its (all-new) progress.
    Row("GET", "/api/v1/documents/<int:document_id>/progress", "/api/v1/documents/{scheduled}/progress",
        E(401, 403, 404, 404, 404, 404, 200), variant="scheduled, not yet out"),
    # Acknowledgements over time: the progress's own access (it reads the same unit and document).
    Row("GET", "/api/v1/documents/<int:document_id>/progress/daily", "/api/v1/documents/{doc}/progress/daily",
        E(401, 403, 200, 200, 404, 404, 200), variant="own scope"),
    Row("GET", "/api/v1/documents/<int:document_id>/progress/daily", "/api/v1/documents/{doc}/progress/daily",
        E(401, 403, 200, 403, 403, 403, 200), variant="org_unit=this branch",
        request=query(lambda w: {"org_unit": w.ids["this_branch"]})),
    Row("GET", "/api/v1/documents/<int:document_id>/members", "/api/v1/documents/{doc}/members",
        E(401, 403, 200, 200, 404, 404, 200), variant="own scope", check=check_member_list),
    Row("GET", "/api/v1/documents/<int:document_id>/members", "/api/v1/documents/{doc}/members",
        E(401, 403, 200, 403, 403, 403, 200), variant="org_unit=this branch, csv",
        request=query(lambda w: {"org_unit": w.ids["this_branch"], "format": "csv"})),
    Row("GET", "/api/v1/documents/<int:document_id>/members", "/api/v1/documents/{scheduled}/members",
        E(401, 403, 404, 404, 404, 404, 200), variant="scheduled, not yet out"),
    # Briefings and exemptions: secretaries (and admins) only; a member outside the scope is `not_found`.
    Row("POST", "/api/v1/documents/<int:document_id>/acknowledgements", "/api/v1/documents/{doc}/acknowledgements",
        E(401, 403, 200, 200, 403, 403, 200), check=check_batch,
        request=body(lambda w, c: {"member_ids": [w.ids["target"]], "method": "briefing",
                                   "held_on": local_today().isoformat(), "note": "Sinh hoạt chi bộ"})),
    Row("DELETE", "/api/v1/documents/<int:document_id>/acknowledgements/<int:member_id>",
        "/api/v1/documents/{doc}/acknowledgements/{briefed}", E(401, 403, 204, 404, 403, 403, 204)),
    Row("POST", "/api/v1/documents/<int:document_id>/exemptions", "/api/v1/documents/{doc}/exemptions",
        E(401, 403, 200, 200, 403, 403, 200), check=check_batch,
        request=body(lambda w, c: {"member_ids": [w.ids["target"]], "reason": "Ốm dài ngày"})),
    Row("POST", "/api/v1/documents/<int:document_id>/exemptions", "/api/v1/documents/{scheduled}/exemptions",
        E(401, 403, 404, 404, 403, 403, 200), variant="scheduled, not yet out", check=check_batch,
        request=body(lambda w, c: {"member_ids": [w.ids["target"]], "reason": "Ốm dài ngày"})),
    Row("DELETE", "/api/v1/documents/<int:document_id>/exemptions/<int:member_id>",
        "/api/v1/documents/{doc}/exemptions/{exempted}", E(401, 403, 204, 404, 403, 403, 204)),
    Row("POST", "/api/v1/documents/<int:document_id>/extensions", "/api/v1/documents/{doc}/extensions",
        E(401, 403, 200, 200, 403, 403, 200), check=check_batch,
        request=body(lambda w, c: {"member_ids": [w.ids["target"]], "reason": "Đi công tác dài ngày",
                                   "until": (local_today() + timedelta(days=40)).isoformat()})),
    Row("DELETE", "/api/v1/documents/<int:document_id>/extensions/<int:member_id>",
        "/api/v1/documents/{doc}/extensions/{extended}", E(401, 403, 204, 404, 403, 403, 204)),
    Row("POST", "/api/v1/documents/<int:document_id>/reminders", "/api/v1/documents/{doc}/reminders",
        E(401, 403, 202, 403, 403, 403, 202), request=body(lambda w, c: {"org_unit": w.ids["this_branch"]})),
    # The admin manages the scheduled directive: told there is nothing to remind of yet (409).
    Row("POST", "/api/v1/documents/<int:document_id>/reminders", "/api/v1/documents/{scheduled}/reminders",
        E(401, 403, 404, 404, 403, 403, 409), variant="scheduled, not yet out",
        codes={"admin": "document_not_out"}, request=body(lambda w, c: {"org_unit": w.ids["this_branch"]})),
    Row("GET", "/api/v1/org-units/<int:org_unit_id>/overview", "/api/v1/org-units/{this_branch}/overview",
        E(401, 403, 200, 403, 403, 403, 200)),
    Row("GET", "/api/v1/org-units/<int:org_unit_id>/compliance", "/api/v1/org-units/{this_branch}/compliance",
        E(401, 403, 200, 403, 403, 403, 200)),

    # --- publishing (publishers within their scope, admins) ---
    Row("POST", "/api/v1/admin/documents", "/api/v1/admin/documents", E(401, 403, 403, 403, 403, 403, 201),
        codes={"publisher_other": OUT_OF_SCOPE}, after=KEEPS,
        request=body(lambda w, c: {"kind": "notice", "title": "Thông báo lịch sinh hoạt chi bộ",
                                   "audience": {"org_units": [w.ids["this_branch"]]}})),
    Row("GET", "/api/v1/admin/documents", "/api/v1/admin/documents", E(401, 403, 403, 403, 403, 200, 200),
        check=check_admin_list),
    Row("GET", "/api/v1/admin/documents/<int:document_id>", "/api/v1/admin/documents/{doc}",
        E(401, 404, 404, 404, 404, 404, 200)),
    Row("PATCH", "/api/v1/admin/documents/<int:document_id>", "/api/v1/admin/documents/{doc}",
        E(401, 404, 404, 404, 404, 404, 200), after=KEEPS,
        request=body({"title": "Chỉ thị về tăng cường kỷ luật, kỷ cương (sửa lỗi chính tả)", "reack": False})),
    Row("POST", "/api/v1/admin/documents/<int:document_id>/attachments", "/api/v1/admin/documents/{draft}/attachments",
        E(401, 404, 404, 404, 404, 404, 201), after=KEEPS,
        request=lambda w, c: {"data": {"file": (io.BytesIO(PDF), "phu-luc-2.pdf")},
                              "content_type": "multipart/form-data"}),
    Row("DELETE", "/api/v1/admin/documents/<int:document_id>/attachments/<int:attachment_id>",
        "/api/v1/admin/documents/{draft}/attachments/{draft_attachment}", E(401, 404, 404, 404, 404, 404, 204)),
    Row("POST", "/api/v1/admin/documents/<int:document_id>/publish", "/api/v1/admin/documents/{draft}/publish",
        E(401, 404, 404, 404, 404, 404, 200), request=body({})),
    Row("POST", "/api/v1/admin/documents/<int:document_id>/withdraw", "/api/v1/admin/documents/{doc}/withdraw",
        E(401, 404, 404, 404, 404, 404, 200), request=body({"reason": "Văn bản được thay thế"})),
    Row("GET", "/api/v1/admin/documents/<int:document_id>/versions", "/api/v1/admin/documents/{doc}/versions",
        E(401, 404, 404, 404, 404, 404, 200)),
    Row("GET", "/api/v1/admin/documents/<int:document_id>/versions/<int:version>",
        "/api/v1/admin/documents/{doc}/versions/1", E(401, 404, 404, 404, 404, 404, 200)),
    Row("GET", "/api/v1/admin/notifications/<int:notification_id>", "/api/v1/admin/notifications/{notification}",
        E(401, 404, 404, 404, 404, 404, 200), variant="publication"),
    # The secretary who sent a manual reminder sees its delivery figures; another branch's does not.
    Row("GET", "/api/v1/admin/notifications/<int:notification_id>",
        "/api/v1/admin/notifications/{manual_notification}", E(401, 404, 200, 404, 404, 404, 200),
        variant="manual reminder by this branch's secretary"),
    Row("POST", "/api/v1/admin/series", "/api/v1/admin/series", E(401, 403, 403, 403, 403, 403, 201),
        codes={"publisher_other": OUT_OF_SCOPE}, after=KEEPS,
        request=body(lambda w, c: {"title": "Chuyên đề năm 2025", "owner_unit": w.ids["this_district"]})),
    Row("GET", "/api/v1/admin/audit", "/api/v1/admin/audit", E(401, 403, 403, 403, 403, 403, 200)),

    # --- branch meetings: its runners (this branch's secretary, an admin over it) run it; the invited
    # (this branch's members) see it and answer; nobody else sees it (404) ---
    Row("POST", "/api/v1/org-units/<int:org_unit_id>/meetings", "/api/v1/org-units/{this_branch}/meetings",
        E(401, 403, 201, 403, 403, 403, 201), after=KEEPS,
        request=body(lambda w, c: {"title": "Sinh hoạt chuyên đề", "kind": "thematic", "place": "Hội trường",
                                   "starts_at": (datetime.now().astimezone() + timedelta(days=3)).isoformat(),
                                   "ends_at": (datetime.now().astimezone() + timedelta(days=3, hours=2)).isoformat()})),
    Row("GET", "/api/v1/org-units/<int:org_unit_id>/meetings", "/api/v1/org-units/{this_branch}/meetings",
        E(401, 403, 200, 403, 403, 403, 200)),
    Row("GET", "/api/v1/org-units/<int:org_unit_id>/meetings/stats", "/api/v1/org-units/{this_branch}/meetings/stats",
        E(401, 403, 200, 403, 403, 403, 200), request=query(lambda w: {"month": "2026-11"})),
    Row("GET", "/api/v1/me/meetings", "/api/v1/me/meetings", E(401, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/api/v1/meetings/<int:meeting_id>", "/api/v1/meetings/{meeting}", E(401, 200, 200, 404, 404, 404, 200)),
    Row("PATCH", "/api/v1/meetings/<int:meeting_id>", "/api/v1/meetings/{meeting}",
        E(401, 403, 200, 404, 404, 404, 200), request=body({"place": "Nhà văn hóa (phòng 2)"})),
    Row("POST", "/api/v1/meetings/<int:meeting_id>/cancel", "/api/v1/meetings/{meeting}/cancel",
        E(401, 403, 200, 404, 404, 404, 200), request=body({"reason": "Trùng lịch họp phường"})),
    # The admin follows the branch but is not invited: cannot answer nor check in (403).
    Row("PUT", "/api/v1/meetings/<int:meeting_id>/rsvp", "/api/v1/meetings/{meeting}/rsvp",
        E(401, 200, 200, 404, 404, 404, 403), request=body({"response": "attending"})),
    Row("GET", "/api/v1/meetings/<int:meeting_id>/check-in-code", "/api/v1/meetings/{open_meeting}/check-in-code",
        E(401, 403, 200, 404, 404, 404, 200)),
    Row("POST", "/api/v1/meetings/<int:meeting_id>/check-in", "/api/v1/meetings/{open_meeting}/check-in",
        E(401, 200, 200, 404, 404, 404, 403), request=current_code),
    Row("PUT", "/api/v1/meetings/<int:meeting_id>/attendance", "/api/v1/meetings/{open_meeting}/attendance",
        E(401, 403, 200, 404, 404, 404, 200), request=body(lambda w, c: {"present": [w.ids["target"]]})),
    Row("POST", "/api/v1/meetings/<int:meeting_id>/close", "/api/v1/meetings/{open_meeting}/close",
        E(401, 403, 200, 404, 404, 404, 200)),
    Row("POST", "/api/v1/meetings/<int:meeting_id>/attachments", "/api/v1/meetings/{open_meeting}/attachments",
        E(401, 403, 201, 404, 404, 404, 201), after=KEEPS,
        request=lambda w, c: {"data": {"file": (io.BytesIO(PDF), "bien-ban-2.pdf")},
                              "content_type": "multipart/form-data"}),
    Row("GET", "/api/v1/meetings/<int:meeting_id>/attachments/<int:minutes_id>",
        "/api/v1/meetings/{open_meeting}/attachments/{minutes}", E(401, 200, 200, 404, 404, 404, 200)),

    # --- questions on a document (its audience asks; whoever manages it answers) and adoption ---
    Row("POST", "/api/v1/documents/<int:document_id>/questions", "/api/v1/documents/{doc}/questions",
        E(401, 201, 201, 201, 404, 404, 404), request=body({"text": "Văn bản có hiệu lực từ ngày nào?"})),
    Row("GET", "/api/v1/documents/<int:document_id>/questions", "/api/v1/documents/{doc}/questions",
        E(401, 200, 200, 200, 404, 404, 404)),
    Row("GET", "/api/v1/me/questions", "/api/v1/me/questions", E(401, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/api/v1/admin/questions", "/api/v1/admin/questions", E(401, 403, 403, 403, 403, 200, 200)),
    Row("POST", "/api/v1/admin/questions/<int:question_id>/answer", "/api/v1/admin/questions/{question}/answer",
        E(401, 404, 404, 404, 404, 404, 200), request=body({"text": "Từ ngày ký.", "public": True})),
    Row("GET", "/api/v1/org-units/<int:org_unit_id>/adoption", "/api/v1/org-units/{this_branch}/adoption",
        E(401, 403, 200, 403, 403, 403, 200)),
    # --- quizzes (issue 17): managers author; the audience takes them; follow-up roles read results ---
    Row("POST", "/api/v1/admin/documents/<int:document_id>/quizzes", "/api/v1/admin/documents/{doc}/quizzes",
        E(401, 404, 404, 404, 404, 404, 201), after=KEEPS,
        request=body({"title": "Kiểm tra nhanh", "questions": [
            {"kind": "multiple", "text": "Chỉ thị yêu cầu gì?",
             "options": [{"text": "Kỷ luật", "correct": True}, {"text": "Kỷ cương", "correct": True},
                         {"text": "Không gì cả"}]}]})),
    Row("GET", "/api/v1/admin/quizzes/<int:quiz_id>", "/api/v1/admin/quizzes/{quiz}",
        E(401, 404, 404, 404, 404, 404, 200)),
    Row("PATCH", "/api/v1/admin/quizzes/<int:quiz_id>", "/api/v1/admin/quizzes/{quiz}",
        E(401, 404, 404, 404, 404, 404, 200), request=body({"pass_mark": 70})),
    Row("PUT", "/api/v1/admin/documents/<int:document_id>/ack-rules", "/api/v1/admin/documents/{doc}/ack-rules",
        E(401, 404, 404, 404, 404, 404, 200), request=body({"min_read_seconds": 30})),
    Row("GET", "/api/v1/documents/<int:document_id>/quizzes", "/api/v1/documents/{doc}/quizzes",
        E(401, 200, 200, 200, 404, 404, 404)),
    Row("GET", "/api/v1/quizzes/<int:quiz_id>", "/api/v1/quizzes/{quiz}", E(401, 200, 200, 200, 404, 404, 404)),
    Row("POST", "/api/v1/quizzes/<int:quiz_id>/attempts", "/api/v1/quizzes/{quiz}/attempts",
        E(401, 201, 201, 201, 404, 404, 404), request=body({}), after=KEEPS),
    # The reader's own attempt; as evidence, to follow-up roles over the reader's branch.
    Row("GET", "/api/v1/quiz-attempts/<int:attempt_id>", "/api/v1/quiz-attempts/{attempt}",
        E(401, 200, 200, 404, 404, 404, 200)),
    Row("POST", "/api/v1/quiz-attempts/<int:attempt_id>/submission", "/api/v1/quiz-attempts/{open_attempt}/submission",
        E(401, 200, 404, 404, 404, 404, 404),
        request=body(lambda w, c: {"token": w.ids["open_attempt_token"], "answers": []})),
    Row("GET", "/api/v1/me/quiz-attempts", "/api/v1/me/quiz-attempts", E(401, 200, 200, 200, 200, 200, 200)),
    Row("GET", "/api/v1/quizzes/<int:quiz_id>/results", "/api/v1/quizzes/{quiz}/results",
        E(401, 403, 200, 200, 404, 404, 200)),
    Row("GET", "/api/v1/quizzes/<int:quiz_id>/results", "/api/v1/quizzes/{quiz}/results",
        E(401, 403, 200, 403, 403, 403, 200), variant="org_unit=this branch",
        request=query(lambda w: {"org_unit": w.ids["this_branch"]})),
    Row("GET", "/api/v1/quizzes/<int:quiz_id>/members", "/api/v1/quizzes/{quiz}/members",
        E(401, 403, 200, 200, 404, 404, 200)),
    Row("GET", "/api/v1/quizzes/<int:quiz_id>/members", "/api/v1/quizzes/{quiz}/members",
        E(401, 403, 200, 403, 403, 403, 200), variant="org_unit=this branch, csv",
        request=query(lambda w: {"org_unit": w.ids["this_branch"], "format": "csv"})),
    Row("GET", "/api/v1/series/<int:series_id>/study", "/api/v1/series/{series}/study",
        E(401, 200, 200, 200, 404, 404, 404)),
    Row("GET", "/api/v1/series/<int:series_id>/members", "/api/v1/series/{series}/members",
        E(401, 403, 200, 200, 404, 404, 200)),
    # The organising committee (committee, publisher, admin over the contest's reach) only.
    Row("GET", "/api/v1/quizzes/<int:quiz_id>/ranking", "/api/v1/quizzes/{contest}/ranking",
        E(401, 403, 403, 403, 404, 404, 200)),

    # --- member administration (admins within their scope) ---
    Row("POST", "/api/v1/admin/members/<int:member_id>/removal", "/api/v1/admin/members/{target}/removal",
        E(401, 403, 403, 403, 403, 403, 204), request=body({"reason": "Chuyển sinh hoạt đảng ra ngoài thành phố"})),

    Row("GET", "/api/v1/admin/members/<int:member_id>/roles", "/api/v1/admin/members/{target}/roles",
        E(401, 403, 403, 403, 403, 403, 200)),
    Row("POST", "/api/v1/admin/members/<int:member_id>/roles", "/api/v1/admin/members/{target}/roles",
        E(401, 403, 403, 403, 403, 403, 201), request=body(lambda w, c: {"role": "committee",
                                                                        "org_unit": w.ids["this_branch"]})),
    Row("DELETE", "/api/v1/admin/members/<int:member_id>/roles", "/api/v1/admin/members/{target}/roles",
        E(401, 403, 403, 403, 403, 403, 204),
        request=query(lambda w: {"role": "committee", "org_unit": w.ids["this_branch"]})),

    # --- the console (pages; same domain calls, so the same 403/404 as the API's rows above) ---
    # Anonymous visitors are sent to the sign-in page (303); a signed-in caller's POST that worked answers
    # 303 back to a page; a refused one is an HTML page with the API's status and writes nothing.
    console("GET", "/static/console/<path:filename>", "/static/console/console.css",
            E(200, 200, 200, 200, 200, 200, 200)),
    console("GET", "/login", "/login", E(200, 303, 303, 303, 303, 303, 303)),
    console("POST", "/login", "/login", E(303, 303, 303, 303, 303, 303, 303), after=SIGNS_OUT,
            request=page(lambda w, c: {"username": CARDS["member" if c == "anonymous" else c],
                                       "password": PASSWORD})),
    console("POST", "/logout", "/logout", E(303, 303, 303, 303, 303, 303, 303), after=SIGNS_OUT),
    console("POST", "/language", "/language", E(303, 303, 303, 303, 303, 303, 303), after=KEEPS,
            request=page({"lang": "vi"})),
    console("GET", "/password", "/password", E(303, 200, 200, 200, 200, 200, 200)),
    console("POST", "/password", "/password", E(303, 303, 303, 303, 303, 303, 303),
            request=page({"current_password": PASSWORD, "new_password": "mat-khau-moi-456"})),
    # Secretaries and committees land on their unit's overview; publishers and admins on the board; a plain
    # member on the feed. Any follow-up role may open a unit's overview by name.
    console("GET", "/", "/", E(303, 303, 200, 200, 200, 303, 303)),
    console("GET", "/", "/?unit={this_branch}", E(303, 303, 200, 403, 403, 403, 200), variant="unit=this branch"),
    console("GET", "/compliance", "/compliance", E(303, 403, 200, 200, 200, 200, 200)),
    console("GET", "/compliance", "/compliance?unit={this_branch}", E(303, 403, 200, 403, 403, 403, 200),
            variant="unit=this branch"),
    console("GET", "/documents/<int:document_id>/follow", "/documents/{doc}/follow",
            E(303, 403, 200, 200, 404, 404, 200), variant="own scope"),
    console("GET", "/documents/<int:document_id>/follow", "/documents/{doc}/follow?unit={this_branch}",
            E(303, 403, 200, 403, 403, 403, 200), variant="unit=this branch"),
    console("GET", "/documents/<int:document_id>/follow", "/documents/{scheduled}/follow",
            E(303, 403, 404, 404, 404, 404, 200), variant="scheduled, not yet out"),
    console("GET", "/documents/<int:document_id>/timeline", "/documents/{doc}/timeline",
            E(303, 403, 200, 200, 404, 404, 200), variant="own scope"),
    console("GET", "/documents/<int:document_id>/timeline", "/documents/{doc}/timeline?unit={this_branch}",
            E(303, 403, 200, 403, 403, 403, 200), variant="unit=this branch"),
    console("GET", "/documents/<int:document_id>/timeline", "/documents/{scheduled}/timeline",
            E(303, 403, 404, 404, 404, 404, 200), variant="scheduled, not yet out"),
    console("POST", "/documents/<int:document_id>/follow", "/documents/{doc}/follow",
            E(303, 403, 303, 303, 403, 403, 303),
            request=page(lambda w, c: {"action": "briefing", "member_ids": [w.ids["target"]],
                                       "held_on": local_today().isoformat(), "unit": w.ids["this_branch"]})),
    console("POST", "/documents/<int:document_id>/follow", "/documents/{doc}/follow",
            E(400, 400, 400, 400, 400, 400, 400), variant="no CSRF token",
            request=page(lambda w, c: {"action": "briefing", "member_ids": [w.ids["target"]],
                                       "held_on": local_today().isoformat()}, csrf=False)),
    console("POST", "/documents/<int:document_id>/follow", "/documents/{doc}/follow",
            E(303, 403, 303, 303, 403, 403, 303), variant="exemption",
            request=page(lambda w, c: {"action": "exempt", "member_ids": [w.ids["target"]],
                                       "reason": "Ốm dài ngày"})),
    console("POST", "/documents/<int:document_id>/briefings/<int:member_id>/undo",
            "/documents/{doc}/briefings/{briefed}/undo", E(303, 403, 303, 404, 403, 403, 303)),
    console("POST", "/documents/<int:document_id>/exemptions/<int:member_id>/undo",
            "/documents/{doc}/exemptions/{exempted}/undo", E(303, 403, 303, 404, 403, 403, 303)),
    console("POST", "/documents/<int:document_id>/reminders", "/documents/{doc}/reminders?unit={this_branch}",
            E(303, 403, 303, 403, 403, 403, 303)),
    console("GET", "/documents/<int:document_id>/members.<any(csv, xlsx):fmt>", "/documents/{doc}/members.csv",
            E(303, 403, 200, 200, 404, 404, 200)),
    console("GET", "/documents/<int:document_id>/members.<any(csv, xlsx):fmt>",
            "/documents/{doc}/members.xlsx?unit={this_branch}", E(303, 403, 200, 403, 403, 403, 200),
            variant="xlsx, unit=this branch"),
    console("GET", "/feed", "/feed", E(303, 200, 200, 200, 200, 200, 200)),
    console("GET", "/read/<int:document_id>", "/read/{doc}", E(303, 200, 200, 200, 404, 404, 404)),
    console("GET", "/read/<int:document_id>", "/read/{scheduled}", E(303, 404, 404, 404, 404, 404, 404),
            variant="scheduled, not yet out"),
    console("POST", "/read/<int:document_id>/acknowledge", "/read/{doc}/acknowledge",
            E(303, 303, 303, 303, 404, 404, 404), after=KEEPS, request=page({"version": "1"})),
    console("GET", "/read/<int:document_id>/attachments/<int:attachment_id>", "/read/{doc}/attachments/{attachment}",
            E(303, 200, 200, 200, 404, 404, 200)),
    console("GET", "/read/<int:document_id>/attachments/<int:attachment_id>",
            "/read/{draft}/attachments/{draft_attachment}", E(303, 404, 404, 404, 404, 404, 200),
            variant="draft's attachment"),
    console("GET", "/inbox", "/inbox", E(303, 200, 200, 200, 200, 200, 200)),
    console("POST", "/inbox/<int:item_id>/read", "/inbox/{inbox_item}/read", E(303, 303, 404, 404, 404, 404, 404),
            after=KEEPS),
    console("POST", "/inbox/read-all", "/inbox/read-all", E(303, 303, 303, 303, 303, 303, 303), after=KEEPS),
    console("GET", "/audit", "/audit", E(303, 403, 403, 403, 403, 403, 200)),
    console("GET", "/members", "/members?q=BD1-DV02", E(303, 403, 403, 403, 403, 403, 200)),
    console("GET", "/imports", "/imports", E(303, 403, 403, 403, 403, 403, 200)),
    console("POST", "/imports", "/imports", E(303, 403, 403, 403, 403, 403, 200), after=KEEPS,
            request=lambda w, c: {"client": w.browser(c), "content_type": "multipart/form-data", "data": {
                "csrf_token": w.csrf(c), "kind": "members",
                "file": (io.BytesIO("card_number,full_name,org_unit_code\nBD1-DV09,Lê Thị Mai,HN.BD.DB.1\n"
                                    .encode()), "dang-vien.csv")}}),
    console("GET", "/members/<int:member_id>", "/members/{target}", E(303, 403, 403, 403, 403, 403, 200)),
    console("POST", "/members/<int:member_id>/roles", "/members/{target}/roles",
            E(303, 403, 403, 403, 403, 403, 303),
            request=page(lambda w, c: {"role": "committee", "org_unit": w.ids["this_branch"]})),
    console("POST", "/members/<int:member_id>/roles/revoke", "/members/{target}/roles/revoke",
            E(303, 403, 403, 403, 403, 403, 303),
            request=page(lambda w, c: {"role": "committee", "org_unit": w.ids["this_branch"]})),
    console("GET", "/imports/<int:job_id>", "/imports/1", E(303, 403, 403, 403, 403, 403, 404)),
    console("POST", "/members/<int:member_id>/removal", "/members/{target}/removal",
            E(303, 403, 403, 403, 403, 403, 303), request=page({"reason": "Chuyển sinh hoạt đảng ra ngoài thành phố"})),
    # Branch meetings, as /api/v1/meetings: runners run them, the invited answer and check in, followers
    # of the unit see them; the month's figures and adoption for the follow-up roles in their scope.
    console("GET", "/meetings", "/meetings", E(303, 200, 200, 200, 200, 200, 200)),
    console("GET", "/meetings/new", "/meetings/new", E(303, 403, 200, 200, 403, 403, 403)),
    console("POST", "/meetings/new", "/meetings/new?unit={this_branch}", E(303, 403, 303, 403, 403, 403, 303),
            after=KEEPS, request=page({"title": "Sinh hoạt chuyên đề", "kind": "thematic", "place": "Hội trường",
                                       "day": "2099-01-15", "start": "19:30", "end": "21:00"})),
    console("GET", "/meetings/<int:meeting_id>", "/meetings/{meeting}", E(303, 200, 200, 404, 404, 404, 200)),
    console("POST", "/meetings/<int:meeting_id>/rsvp", "/meetings/{meeting}/rsvp", E(303, 303, 303, 404, 404, 404, 403),
            request=page({"response": "attending"})),
    console("POST", "/meetings/<int:meeting_id>/check-in", "/meetings/{open_meeting}/check-in",
            E(303, 303, 303, 404, 404, 404, 403),
            request=page(lambda w, c: {"code": current_code(w, c)["json"]["code"]})),
    console("POST", "/meetings/<int:meeting_id>/attendance", "/meetings/{open_meeting}/attendance",
            E(303, 403, 303, 404, 404, 404, 303), request=page(lambda w, c: {f"m-{w.ids['target']}": "present"})),
    console("POST", "/meetings/<int:meeting_id>/close", "/meetings/{open_meeting}/close",
            E(303, 403, 303, 404, 404, 404, 303)),
    console("POST", "/meetings/<int:meeting_id>/cancel", "/meetings/{meeting}/cancel",
            E(303, 403, 303, 404, 404, 404, 303), request=page({"reason": "Trùng lịch họp phường"})),
    console("POST", "/meetings/<int:meeting_id>/minutes", "/meetings/{open_meeting}/minutes",
            E(303, 403, 303, 404, 404, 404, 303), after=KEEPS,
            request=lambda w, c: {"client": w.browser(c), "content_type": "multipart/form-data",
                                  "data": {"csrf_token": w.csrf(c), "file": (io.BytesIO(PDF), "bien-ban-3.pdf")}}),
    console("GET", "/meetings/<int:meeting_id>/minutes/<int:minutes_id>", "/meetings/{open_meeting}/minutes/{minutes}",
            E(303, 200, 200, 404, 404, 404, 200)),
    console("GET", "/units/meetings", "/units/meetings", E(303, 403, 200, 200, 200, 200, 200)),
    console("GET", "/units/meetings", "/units/meetings?unit={this_branch}", E(303, 403, 200, 403, 403, 403, 200),
            variant="unit=this branch"),
    console("GET", "/units/adoption", "/units/adoption", E(303, 403, 200, 200, 200, 200, 200)),
    console("GET", "/units/adoption", "/units/adoption?unit={this_branch}", E(303, 403, 200, 403, 403, 403, 200),
            variant="unit=this branch"),
    # Quizzes (issue 17), as /api/v1's quiz rows: managers of the document author them; its audience
    # takes them (an attempt is its member's own); follow-up roles read results; organisers the ranking.
    console("GET", "/board/documents/<int:document_id>/quizzes", "/board/documents/{doc}/quizzes",
            E(303, 404, 404, 404, 404, 404, 200)),
    console("GET", "/board/documents/<int:document_id>/quizzes/new", "/board/documents/{doc}/quizzes/new",
            E(303, 404, 404, 404, 404, 404, 200)),
    console("POST", "/board/documents/<int:document_id>/quizzes/new", "/board/documents/{doc}/quizzes/new",
            E(303, 404, 404, 404, 404, 404, 303), after=KEEPS, request=page(QUIZ_FORM)),
    console("GET", "/board/quizzes/<int:quiz_id>", "/board/quizzes/{quiz}", E(303, 404, 404, 404, 404, 404, 200)),
    console("POST", "/board/quizzes/<int:quiz_id>", "/board/quizzes/{quiz}", E(303, 404, 404, 404, 404, 404, 303),
            request=page({**QUIZ_FORM, "pass_mark": "70"})),
    console("POST", "/board/documents/<int:document_id>/ack-rules", "/board/documents/{doc}/ack-rules",
            E(303, 404, 404, 404, 404, 404, 303), request=page({"min_read_seconds": "30"})),
    console("GET", "/quizzes/<int:quiz_id>", "/quizzes/{quiz}", E(303, 200, 200, 200, 404, 404, 404)),
    console("POST", "/quizzes/<int:quiz_id>/attempts", "/quizzes/{quiz}/attempts", E(303, 303, 303, 303, 404, 404, 404),
            after=KEEPS),
    console("GET", "/attempts/<int:attempt_id>", "/attempts/{attempt}", E(303, 200, 404, 404, 404, 404, 404)),
    console("POST", "/attempts/<int:attempt_id>", "/attempts/{open_attempt}", E(303, 303, 404, 404, 404, 404, 404),
            request=page(lambda w, c: {"token": w.ids["open_attempt_token"]})),
    console("GET", "/quizzes/<int:quiz_id>/results", "/quizzes/{quiz}/results", E(303, 403, 200, 200, 404, 404, 200)),
    console("GET", "/quizzes/<int:quiz_id>/results", "/quizzes/{quiz}/results?unit={this_branch}",
            E(303, 403, 200, 403, 403, 403, 200), variant="unit=this branch"),
    console("GET", "/quizzes/<int:quiz_id>/results", "/quizzes/{quiz}/results?unit={this_branch}&format=csv",
            E(303, 403, 200, 403, 403, 403, 200), variant="unit=this branch, csv"),
    console("GET", "/quizzes/<int:quiz_id>/ranking", "/quizzes/{contest}/ranking", E(303, 403, 403, 403, 404, 404, 200)),
    console("GET", "/series/<int:series_id>", "/series/{series}", E(303, 200, 200, 200, 404, 404, 404)),
    console("GET", "/series/<int:series_id>/members", "/series/{series}/members", E(303, 403, 200, 200, 404, 404, 200)),
    # The board: publishers within their scope and admins, as /api/v1/admin/documents.
    console("GET", "/board", "/board", E(303, 403, 403, 403, 403, 200, 200)),
    console("GET", "/board/new", "/board/new", E(303, 403, 403, 403, 403, 200, 200)),
    console("POST", "/board/new", "/board/new", E(303, 403, 403, 403, 403, 403, 303), after=KEEPS,
            request=page(lambda w, c: {"action": "save", "kind": "notice", "title": "Thông báo lịch sinh hoạt",
                                       "ack_days": "14", "requires_ack": "y", "audience": [w.ids["this_branch"]]})),
    console("GET", "/board/documents/<int:document_id>", "/board/documents/{doc}", E(303, 404, 404, 404, 404, 404, 200)),
    console("GET", "/board/documents/<int:document_id>/edit", "/board/documents/{doc}/edit",
            E(303, 404, 404, 404, 404, 404, 200)),
    console("POST", "/board/documents/<int:document_id>/edit", "/board/documents/{doc}/edit",
            E(303, 404, 404, 404, 404, 404, 303),
            request=page({"title": "Chỉ thị về tăng cường kỷ luật, kỷ cương (sửa lỗi chính tả)"})),
    console("POST", "/board/documents/<int:document_id>/publish", "/board/documents/{draft}/publish",
            E(303, 404, 404, 404, 404, 404, 303), request=page({"publish_at": ""})),
    console("POST", "/board/documents/<int:document_id>/withdraw", "/board/documents/{doc}/withdraw",
            E(303, 404, 404, 404, 404, 404, 303), request=page({"reason": "Văn bản được thay thế"})),
    console("POST", "/board/documents/<int:document_id>/attachments", "/board/documents/{draft}/attachments",
            E(303, 404, 404, 404, 404, 404, 303), after=KEEPS,
            request=lambda w, c: {"client": w.browser(c), "content_type": "multipart/form-data",
                                  "data": {"csrf_token": w.csrf(c), "file": (io.BytesIO(PDF), "phu-luc-2.pdf")}}),
]


def _cells():
    for row in ROWS:
        for index, caller in enumerate(CALLERS):
            marks = ()
            if caller in row.xfail:
                marks = (pytest.mark.xfail(strict=True, reason=row.xfail[caller]),)
            yield pytest.param(row, caller, row.expect[index], id=f"{row.id} <- {caller}", marks=marks)


def database_contents() -> dict[str, list]:
    """Every row of every table, read through a connection of its own: a refused request changes none."""
    with db.engine.connect() as conn:
        return {table.name: sorted(map(repr, conn.execute(table.select()).all()))
                for table in db.metadata.sorted_tables}


# --- worlds shared while nothing changes them --------------------------------------------------------

class Worlds:
    """One world at a time. Cells that only read (GET, or a refused request) share it; a cell whose
    request may have changed something (a non-GET that succeeded, or any failure) spoils it, and the
    next cell gets a new one. Building a world costs ~0.1-0.2 s; sharing keeps the matrix fast."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.world: World | None = None

    def current(self) -> World:
        if self.world is None:
            from handbook.extensions import limiter

            limiter.reset()
            self.world = build_world(self.client)
        return self.world

    def spoil(self) -> None:
        if self.world is not None:
            self.world = None
            empty_tables()


@pytest.fixture(scope="module")
def worlds(_session_app):
    with _session_app.app_context():
        shared = Worlds(_session_app)
        try:
            yield shared
        finally:
            shared.world = None
            empty_tables()  # the next module starts from empty tables, as after conftest's `app`


# --- the tests --------------------------------------------------------------------------------------

def test_every_route_has_a_row_and_every_row_a_route(_session_app):
    routes = {(method, rule.rule) for rule in _session_app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    rows = {(row.method, row.rule) for row in ROWS}
    missing = sorted(f"{m} {r}" for m, r in routes - rows)
    stale = sorted(f"{m} {r}" for m, r in rows - routes)
    assert not missing, f"routes without a row in tests/test_authz_matrix.py ROWS (add one per caller): {missing}"
    assert not stale, f"rows in tests/test_authz_matrix.py ROWS whose route no longer exists: {stale}"
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), "two rows with the same method, rule and variant"


@pytest.mark.parametrize(("row", "caller", "expected"), list(_cells()))
def test_cell(worlds: Worlds, row: Row, caller: str, expected: int):
    world = worlds.current()
    client = worlds.client
    try:
        kwargs = row.request(world, caller) if row.request else {}
        client = kwargs.pop("client", client)
        headers = kwargs.pop("headers", None)
        if headers is None:
            headers = world.headers(caller) if row.face == "api" else {}
        before = database_contents() if expected >= 400 else None  # a refused request leaves no trace
        response = client.open(row.path.format(**world.ids), method=row.method, headers=headers, **kwargs)
        if row.face == "console":
            assert response.status_code == expected, response.get_data(as_text=True)[:2000]
            if expected == 303 and caller == "anonymous" and row.rule not in ("/login", "/logout", "/language"):
                assert response.headers["Location"].startswith("/login"), response.headers["Location"]
            if expected >= 400:
                assert response.mimetype == "text/html"
                changed = sorted(name for name, rows in database_contents().items() if before[name] != rows)
                assert not changed, f"a refused request changed {changed}"
        elif expected >= 400:
            assert_problem(response, expected, row.codes.get(caller) or PROBLEM_CODES[expected])
            if before is not None:
                after = database_contents()
                changed = sorted(name for name in before if before[name] != after[name])
                assert not changed, f"a refused request changed {changed}"
        else:
            assert response.status_code == expected, response.get_data(as_text=True)[:2000]
            if row.check is not None:
                row.check(world, caller, response)
    except BaseException:
        worlds.spoil()
        raise
    if row.method != "GET" and response.status_code < 400:
        if row.after == SIGNS_OUT:
            world.tokens.pop(caller, None)
            world.browsers.pop(caller, None)
        elif row.after != KEEPS:
            worlds.spoil()


# --- roles are read per request ----------------------------------------------------------------------

class Caller:
    """One member's requests with one token, each in an app context of its own (as in production: a
    fresh database session per request, nothing remembered between requests but the token)."""

    def __init__(self, worlds: Worlds, caller: str):
        self.worlds, self.world = worlds, worlds.current()
        self.headers = self.world.headers(caller)

    def __call__(self, method: str, path: str, **kwargs):
        with self.worlds.app.app_context():
            return self.worlds.client.open(path.format(**self.world.ids), method=method, headers=self.headers,
                                           **kwargs)

    def roles(self) -> list[str]:
        me = self("GET", "/api/v1/me")
        assert me.status_code == 200, me.get_data(as_text=True)
        return [f"{g['role']}@{g['org_unit']['code']}" for g in me.json["roles"]]


def _import_member(tmp_path, card: str, unit_code: str, roles: str) -> None:
    """Re-import one member's row (API.md "CSV imports"): `roles` is their whole set of roles."""
    from handbook.imports import import_members

    path = tmp_path / f"members-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(f"card_number,full_name,org_unit_code,roles\n{card},Lê Văn Cường,{unit_code},{roles}\n",
                    encoding="utf-8")
    report = import_members(str(path))
    assert report.ok, report.errors


def test_a_role_taken_back_or_changed_applies_to_the_very_next_request_with_the_same_token(worlds, tmp_path):
    secretary = Caller(worlds, "secretary_this")
    card, branch = CARDS["secretary_this"], "HN.BD.DB.1"
    progress = "/api/v1/documents/{doc}/progress"
    this_branch = {"query_string": {"org_unit": secretary.world.ids["this_branch"]}}
    briefing = {"json": {"member_ids": [secretary.world.ids["target"]], "method": "briefing",
                         "held_on": local_today().isoformat()}}
    try:
        assert secretary.roles() == [f"secretary@{branch}"]
        assert secretary("GET", progress, **this_branch).status_code == 200

        # The role is taken back (the branch elected another secretary): the same token is a plain reader's.
        _import_member(tmp_path, card, branch, "")
        assert secretary.roles() == []
        assert_problem(secretary("GET", progress, **this_branch), 403, "forbidden")
        assert_problem(secretary("GET", "/api/v1/org-units/{this_branch}/overview"), 403, "forbidden")
        assert_problem(secretary("POST", "/api/v1/documents/{doc}/acknowledgements", **briefing), 403, "forbidden")
        assert_problem(secretary("DELETE", "/api/v1/documents/{doc}/acknowledgements/{briefed}"), 403, "forbidden")
        assert secretary("GET", "/api/v1/documents/{doc}").status_code == 200  # still a reader

        # Elected to the district's committee: sees the whole district's progress, records no briefing.
        _import_member(tmp_path, card, branch, "committee@HN.BD")
        assert secretary.roles() == ["committee@HN.BD"]
        assert secretary("GET", progress, **this_branch).status_code == 200
        whole = secretary("GET", progress)
        assert whole.status_code == 200 and whole.json["org_unit"]["code"] == "HN.BD"
        assert_problem(secretary("POST", "/api/v1/documents/{doc}/acknowledgements", **briefing), 403, "forbidden")

        # Now secretary of the other branch: this branch is out of scope again, its members not found.
        _import_member(tmp_path, card, branch, "secretary@HN.BD.DB.2")
        assert secretary.roles() == ["secretary@HN.BD.DB.2"]
        assert_problem(secretary("GET", progress, **this_branch), 403, "forbidden")
        own = secretary("GET", progress)
        assert own.status_code == 200 and own.json["org_unit"]["code"] == "HN.BD.DB.2"
        assert_problem(secretary("DELETE", "/api/v1/documents/{doc}/acknowledgements/{briefed}"), 404, "not_found")
    finally:
        worlds.spoil()


def test_a_grant_written_by_another_process_applies_to_the_next_request(worlds):
    """Roles changed outside this process (another API instance, the CLI): read from the database on the
    next request, not from the token or any cache."""
    from sqlalchemy import delete, insert

    from handbook.members import RoleGrant

    admin = Caller(worlds, "admin")
    reader = Caller(worlds, "member")
    ids = admin.world.ids
    try:
        assert admin("GET", "/api/v1/admin/audit").status_code == 200
        assert_problem(reader("GET", "/api/v1/documents/{doc}/progress"), 403, "forbidden")
        reader_id = reader("GET", "/api/v1/me").json["id"]
        admin_id = admin("GET", "/api/v1/me").json["id"]
        with db.engine.begin() as conn:  # a connection of its own: another writer
            conn.execute(delete(RoleGrant).where(RoleGrant.member_id == admin_id))
            conn.execute(insert(RoleGrant).values(member_id=reader_id, role="committee",
                                                  org_unit_id=ids["this_branch"]))
        assert_problem(admin("GET", "/api/v1/admin/audit"), 403, "forbidden")
        assert_problem(admin("GET", "/api/v1/admin/documents/{doc}"), 404, "not_found")
        assert reader("GET", "/api/v1/documents/{doc}/progress").status_code == 200
        assert_problem(reader("GET", "/api/v1/documents/{doc}/progress",
                              query_string={"org_unit": ids["this_district"]}), 403, "forbidden")
    finally:
        worlds.spoil()


def test_a_removed_member_s_token_stops_on_the_next_request(worlds):
    admin = Caller(worlds, "admin")
    secretary = Caller(worlds, "secretary_this")
    try:
        assert secretary("GET", "/api/v1/documents/{doc}/progress").status_code == 200
        secretary_id = secretary("GET", "/api/v1/me").json["id"]
        removed = admin("POST", f"/api/v1/admin/members/{secretary_id}/removal", json={"reason": "Từ trần"})
        assert removed.status_code == 204, removed.get_data(as_text=True)
        assert_problem(secretary("GET", "/api/v1/me"), 401, "token_revoked")
        assert_problem(secretary("GET", "/api/v1/documents/{doc}/progress"), 401, "token_revoked")
    finally:
        worlds.spoil()


def test_a_former_secretary_no_longer_sees_the_figures_of_a_reminder_they_sent(worlds, tmp_path):
    secretary = Caller(worlds, "secretary_this")
    stats = "/api/v1/admin/notifications/{manual_notification}"
    try:
        assert secretary("GET", stats).status_code == 200
        _import_member(tmp_path, CARDS["secretary_this"], "HN.BD.DB.1", "")  # another secretary was elected
        assert_problem(secretary("GET", "/api/v1/documents/{doc}/progress"), 403, "forbidden")
        assert_problem(secretary("GET", stats), 404, "not_found")
    finally:
        worlds.spoil()


def test_only_an_admin_over_a_root_unit_may_import(worlds, tmp_path):
    """A file of units or members may move a member or grant a role anywhere in the tree, so the console's
    imports are for an admin over a root unit only: a role at the root that is not admin (the city's
    publisher or committee) is refused, and so is an admin of one district. (The matrix's callers hold
    neither, so its cells cannot tell `and` from `or` in permissions.can_import.)"""
    world = worlds.current()
    browser = world.browser("publisher_other")
    card, unit_code = CARDS["publisher_other"], "HN.DD.LT.1"
    try:
        seen = []
        for roles in ("publisher@HN", "committee@HN", "admin@HN.DD", "admin@HN"):
            _import_member(tmp_path, card, unit_code, roles)
            seen.append((roles, browser.get("/imports").status_code))
        assert seen == [("publisher@HN", 403), ("committee@HN", 403), ("admin@HN.DD", 403), ("admin@HN", 200)]
    finally:
        worlds.spoil()
