"""Search through GET /documents?q=: Vietnamese folding (accents, case, đ/d, NFD), numbers, AND and
type-ahead prefix, where matches may be (title, summary, body, inside HTML), ranking, audience and status,
hostile input, length limits, filters, pagination, and re-indexing after an edit.
"""
from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from content.models import Document
from handbook.extensions import db
from handbook.timeutil import utcnow
from tests.factories import bearer, document, login, member, small_tree

API = "/api/v1"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}

DIRECTIVE = "Chỉ thị số 24-CT/TU về tăng cường kỷ cương, kỷ luật trong Đảng"


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.json
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    if code is not None:
        assert body["code"] == code
    text_ = response.get_data(as_text=True)
    for leak in ("Traceback", "SELECT", "sqlalchemy", "psycopg", "sqlite", "tsquery", "fts5", "File \""):
        assert leak not in text_
    return body


class As:
    def __init__(self, client, card: str):
        r = login(client, card)
        assert r.status_code == 200, r.get_data(as_text=True)
        self.client, self.headers = client, bearer(r.json["access_token"])

    def get(self, path, **params):
        return self.client.get(API + path, query_string=params, headers=self.headers)

    def search(self, q: str, **params) -> list[int]:
        params.setdefault("limit", 100)
        r = self.get("/documents", q=q, **params)
        assert r.status_code == 200, r.get_data(as_text=True)
        return [i["id"] for i in r.json["items"]]

    def post(self, path, body=None):
        return self.client.post(API + path, json=body if body is not None else {}, headers=self.headers)

    def patch(self, path, body):
        return self.client.patch(API + path, json=body, headers=self.headers)


def set_doc(doc_id: int, **values) -> None:
    db.session.execute(update(Document).where(Document.id == doc_id).values(**values))
    db.session.commit()


@pytest.fixture()
def tree(app):
    t = small_tree()
    member("09000001", t["city"], name="Trần Văn Phát", roles=[("publisher", t["city"])])
    member("01000001", t["b1"], name="Nguyễn Văn An")
    member("01000004", t["b1"], name="Hoàng Văn Sơn", roles=[("secretary", t["b1"])])
    return t


@pytest.fixture()
def an(client, tree):
    return As(client, "01000001")


@pytest.fixture()
def pub(client, tree):
    return As(client, "09000001")


@pytest.fixture()
def corpus(tree):
    t = tree
    city = t["city"]

    def doc(title, **kw):
        kw.setdefault("number", None)
        return document(city, kw.pop("audience", [city]), title=title, **kw).id

    return {
        "directive": doc(DIRECTIVE, number="24-CT/TU",
                         summary="Yêu cầu các cấp ủy chấp hành nghiêm kỷ cương.",
                         body_html="<p>Thành ủy yêu cầu cán bộ, đảng viên gương mẫu.</p>"),
        "other_number": doc("Chỉ thị số 42-CT/TU về công tác phòng cháy", number="42-CT/TU"),
        "longer_number": doc("Chỉ thị số 124-CT/TU về an toàn giao thông", number="124-CT/TU"),
        "dong_da": doc("Kế hoạch tổ chức hội nghị quận Đống Đa", number="15-KH/QU"),
        "dong_da_lower": doc("Danh sách đảng viên phường đông đa", kind="notice"),
        "meeting": doc("Thông báo lịch sinh hoạt chi bộ", kind="notice",
                       summary="Họp định kỳ vào ngày 5 hằng tháng"),
        "only_guidance": doc("Hướng dẫn sinh hoạt chuyên đề", kind="guidance"),
    }


# --- Vietnamese folding ----------------------------------------------------------------------------

def test_accent_insensitive_search_finds_the_directive(client, corpus, an):
    for q in ("chi thi 24 ky cuong", "Chỉ thị 24 kỷ cương", "CHI THI SO 24 KY CUONG", "kỷ luật", "ky luat",
              "tang cuong ky cuong", "tăng cường"):
        assert an.search(q) == [corpus["directive"]], q


def test_d_matches_dj_both_ways(client, corpus, an):
    assert corpus["directive"] in an.search("dang")          # Đảng
    assert corpus["directive"] in an.search("đảng")
    assert corpus["directive"] in an.search("ĐẢNG")
    for q in ("dong da", "Đống Đa", "đống đa", "ĐỐNG ĐA", "DONG DA", "Dong Da", "đông đa", "dống đá"):
        assert set(an.search(q)) == {corpus["dong_da"], corpus["dong_da_lower"]}, q


def test_case_does_not_matter(client, corpus, an):
    for q in ("KỶ CƯƠNG", "Kỷ Cương", "kY cUoNg", "kỶ CưƠnG"):
        assert an.search(q) == [corpus["directive"]], q


def test_decomposed_query_matches_composed_text_and_back(client, tree, corpus, an):
    nfd = unicodedata.normalize("NFD", "kỷ cương Đảng")
    assert nfd != "kỷ cương Đảng"
    assert an.search(nfd) == [corpus["directive"]]
    # Text stored decomposed (pasted from another editor) is found by a composed query, and vice versa.
    decomposed = document(tree["city"], [tree["city"]], number=None,
                          title=unicodedata.normalize("NFD", "Nghị quyết về phát triển thủ đô")).id
    assert an.search("nghị quyết phát triển thủ đô") == [decomposed]
    assert an.search(unicodedata.normalize("NFD", "thủ đô")) == [decomposed]
    assert an.search("thu do") == [decomposed]


# --- numbers ---------------------------------------------------------------------------------------

def test_number_search_in_any_spelling(client, corpus, an):
    for q in ("24-CT/TU", "24-ct/tu", "24 CT TU", "24/CT-TU", "  24 - CT / TU  ", "số 24-CT/TU"):
        assert an.search(q) == [corpus["directive"]], q
    assert an.search("42-CT/TU") == [corpus["other_number"]]
    assert an.search("124-CT/TU") == [corpus["longer_number"]]
    assert an.search("15-KH/QU") == [corpus["dong_da"]]


# --- AND, prefix -----------------------------------------------------------------------------------

def test_every_word_must_match(client, corpus, an):
    assert an.search("ky cuong hoi nghi") == []              # one in each of two documents
    assert an.search("sinh hoat chi bo") == [corpus["meeting"]]
    assert set(an.search("sinh hoat")) == {corpus["meeting"], corpus["only_guidance"]}
    assert an.search("sinh hoat chuyen de chi bo") == []
    assert an.search("ky cuong xyzzy") == []


def test_last_word_matches_as_a_prefix_for_type_ahead(client, corpus, an):
    for q in ("ky cuo", "ky cu", "kỷ cươ", "chi thi so 24 ky c", "phong ch"):
        found = an.search(q)
        assert found, q
    assert an.search("ky cuo") == [corpus["directive"]]
    assert an.search("phong ch") == [corpus["other_number"]]
    assert corpus["dong_da"] in an.search("hoi ng")
    assert an.search("ky cuongx") == []


# --- where the words are ---------------------------------------------------------------------------

def test_matches_in_title_summary_and_body_including_html(client, tree, an):
    t = tree
    in_title = document(t["city"], [t["city"]], number=None, title="Nghị quyết về chuyển đổi số").id
    in_summary = document(t["city"], [t["city"]], number=None, title="Kế hoạch năm",
                          summary="Phân bổ ngân sách cho các phường").id
    in_table = document(t["city"], [t["city"]], number=None, title="Danh sách",
                        body_html="<table><tr><td>Phường</td><td>Điện Biên</td></tr>"
                                  "<tr><td>Hà</td><td>Nội</td></tr></table>").id
    with_entities = document(t["city"], [t["city"]], number=None, title="Quy chế",
                             body_html="<p>Tr&aacute;ch nhiệm &amp; quyền hạn; Kh&ocirc;ng được "
                                       "vi phạm; Tr&#7845;n &#x110;&#xEA;</p>").id
    split_inline = document(t["city"], [t["city"]], number=None, title="Thông tri",
                            body_html="<p>Phê <b>duy</b><i>ệt</i> dự toán</p><p>Bình<br>Định</p>"
                                      "<ul><li>Quảng</li><li>Ngãi</li></ul>").id

    assert an.search("chuyen doi so") == [in_title]
    assert an.search("ngan sach phuong") == [in_summary]
    assert an.search("phuong dien bien") == [in_table]
    assert an.search("ha noi") == [in_table]
    assert an.search("trach nhiem quyen han") == [with_entities]
    assert an.search("khong duoc vi pham") == [with_entities]
    assert an.search("tran de") == [with_entities]            # numeric character references
    assert an.search("phe duyet du toan") == [split_inline]    # a word split by inline tags stays one word
    assert an.search("binh dinh") == [split_inline]            # <br> separates words
    assert an.search("quang ngai") == [split_inline]           # list items are separate words
    # Cells, lines and list items are not glued together.
    assert an.search("hanoi") == [] and an.search("binhdinh") == [] and an.search("quangngai") == []


def test_markup_itself_is_not_searchable(client, tree, an):
    t = tree
    plain = document(t["city"], [t["city"]], number=None, title="Tài liệu tham khảo",
                     body_html='<p class="tieuđiem">Xem <a href="https://example.vn/matkhau-bimat" '
                               'title="chuthich">liên kết</a></p><table><tr><td>ô</td></tr></table>'
                               "<script>alert('pwned')</script><style>.x{color:red}</style>").id
    assert an.search("lien ket") == [plain]
    for q in ("matkhau", "bimat", "example", "href", "https", "chuthich", "tieudiem", "class", "td",
              "table", "pwned", "alert", "script", "color", "red"):
        assert an.search(q) == [], q


def test_title_matches_rank_above_body_only_matches(client, tree, an):
    t = tree
    body = "<p>" + " ".join(
        ["Các cơ quan cần bảo đảm an ninh mạng và bảo mật thông tin trong mọi hoạt động."] * 6) + "</p>"
    base = utcnow() - timedelta(days=1)
    in_title = document(t["city"], [t["city"]], number=None, title="Quy định về bảo mật thông tin",
                        body_html="<p>Quy định chung.</p>").id
    in_summary = document(t["city"], [t["city"]], number=None, title="Hướng dẫn công tác văn thư",
                          summary="Về bảo mật thông tin trong văn thư").id
    in_body = document(t["city"], [t["city"]], number=None, title="Kế hoạch chuyển đổi số", body_html=body).id
    # The body-only match is the newest, so recency alone would put it first.
    for i, d in enumerate((in_title, in_summary, in_body)):
        set_doc(d, published_at=base + timedelta(hours=i))
    for q in ("bao mat thong tin", "bảo mật", "bao mat thong ti"):
        found = an.search(q)
        assert set(found) == {in_title, in_summary, in_body}, q
        assert found[0] == in_title, q
        assert found.index(in_title) < found.index(in_body), q


def test_a_document_carrying_the_number_ranks_above_one_citing_it(client, tree, corpus, an):
    citing = document(tree["city"], [tree["city"]], number="30-HD/TU", title="Hướng dẫn thực hiện",
                      body_html="<p>Thực hiện Chỉ thị số 24-CT/TU của Thành ủy.</p>").id
    found = an.search("24-CT/TU")
    assert found == [corpus["directive"], citing]


# --- audience and status ---------------------------------------------------------------------------

def test_search_never_leaks_documents_outside_the_audience_or_not_out(client, tree, an):
    t = tree
    word = "Quyết định khen thưởng"
    visible = document(t["city"], [t["b1"]], number=None, title=word).id
    document(t["city"], [t["b2"]], number=None, title=word)                       # sibling branch
    document(t["city"], [t["cbcs"]], number=None, title=word)                     # other district
    document(t["city"], [t["city"]], number=None, title=word, roles=["secretary"])  # not my role
    document(t["city"], [t["city"]], number=None, title=word, status="draft")
    wd = document(t["city"], [t["city"]], number=None, title=word, status="withdrawn").id
    set_doc(wd, withdrawn_at=utcnow())
    future = document(t["city"], [t["city"]], number=None, title=word, status="scheduled").id
    set_doc(future, published_at=utcnow() + timedelta(hours=1))

    assert an.search("quyet dinh khen thuong") == [visible]
    assert an.search("khen") == [visible]
    for params in ({"kind": "directive"}, {"state": "new"}, {"state": "pending"}, {"limit": 1}):
        assert an.search("khen thuong", **params) == [visible], params
    # The secretary of the same branch also sees the role-restricted one.
    assert len(As(client, "01000004").search("khen thuong")) == 2


def test_search_through_the_api_after_publishing_editing_and_withdrawing(client, tree, pub, an):
    r = pub.post("/admin/documents", {"kind": "plan", "title": "Kế hoạch tuyên truyền kỷ niệm ngày thành lập",
                                      "audience": {"org_units": [tree["b1"].id]}})
    assert r.status_code == 201
    doc = r.json["id"]
    assert an.search("tuyen truyen") == []                  # a draft
    assert pub.post(f"/admin/documents/{doc}/publish").status_code == 200
    assert an.search("tuyen truyen") == [doc]

    r = pub.patch(f"/admin/documents/{doc}", {"title": "Kế hoạch học tập nghị quyết Đại hội"})
    assert r.status_code == 200 and r.json["version"] == 2
    assert an.search("tuyen truyen") == []
    assert an.search("ky niem") == []
    assert an.search("hoc tap nghi quyet dai hoi") == [doc]
    assert an.search("đại hội") == [doc]

    r = pub.patch(f"/admin/documents/{doc}", {"summary": "Tổ chức quán triệt sâu rộng", "reack": True,
                                              "body_html": "<p>Thời gian: quý III</p>"})
    assert r.status_code == 200
    assert an.search("quan triet sau rong") == [doc]
    assert an.search("thoi gian quy iii") == [doc]

    assert pub.post(f"/admin/documents/{doc}/withdraw", {"reason": "Thay thế"}).status_code == 200
    assert an.search("hoc tap nghi quyet") == []


def test_search_finds_a_draft_edit_only_once_published(client, tree, pub, an):
    r = pub.post("/admin/documents", {"kind": "notice", "title": "Bản nháp đầu",
                                      "audience": {"org_units": [tree["city"].id]}})
    doc = r.json["id"]
    assert pub.patch(f"/admin/documents/{doc}", {"title": "Thông báo kết quả kiểm tra"}).status_code == 200
    assert an.search("ket qua kiem tra") == []
    pub.post(f"/admin/documents/{doc}/publish")
    assert an.search("ket qua kiem tra") == [doc]
    assert an.search("ban nhap") == []


# --- hostile and odd input -------------------------------------------------------------------------

HOSTILE = ["' OR 1=1 --", '"', "*", "NEAR(", "a:*", "!(", "&|", "%_", "\\", "\\\\'", "<script>alert(1)</script>",
           "chi thi\" OR \"1", "kỷ cương*", "ky AND cuong", "ky OR cuong", "NOT ky", "-ky", "ky:*&cuong",
           "(ky | cuong)", "title:ky", "head:ky", "{ky}", "^ky", "ky NEAR/2 cuong", "'; DROP TABLE documents; --",
           "%", "_", "ky%", "😀", "\u0301\u0303", "x²", "ª", "漢字", "ß", "İ", "ﬁ", "\u200b", "\ufeffky",
           "ky\tcuong", "ky\ncuong", "-- ; /* */", "$$", "@@version", "\x7f"]


def test_hostile_queries_are_harmless(client, corpus, an):
    before = db.session.scalar(select(func.count()).select_from(Document))
    for q in HOSTILE:
        r = an.get("/documents", q=q)
        assert r.status_code in (200, 422), (q, r.get_data(as_text=True))
        if r.status_code == 422:
            assert_problem(r, 422, "validation_error")
        else:
            assert isinstance(r.json["items"], list)
            for it in r.json["items"]:
                assert it["id"] in corpus.values()
    assert db.session.scalar(select(func.count()).select_from(Document)) == before
    # Query syntax is never interpreted: operators are just punctuation between words.
    assert an.search("ky AND cuong") == []                   # 'and' is a word that is not there
    assert an.search("kỷ cương*") == [corpus["directive"]]
    assert an.search("(ky | cuong)") == [corpus["directive"]]
    assert an.search("ky:*&cuong") == [corpus["directive"]]
    assert an.search("\ufeffky cuong") == [corpus["directive"]]
    assert an.search("' OR 1=1 --") == []
    assert an.search('chi thi" OR "1') == []


@pytest.mark.parametrize("q", ["!", "...", "-- ; /* */", "' \" ` ~ ! @ # $ % ^ & * ( ) + = [ ] { } | \\ : ; < > , . ? /",
                               "   ", "\u0301", "😀😀", "\u200b"])
def test_a_query_without_words_is_an_empty_result(client, corpus, an, q):
    r = an.get("/documents", q=q)
    assert r.status_code == 200
    assert r.json == {"items": [], "next_cursor": None}


def test_query_length_limit(client, tree, corpus, an):
    too_long = "ky cuong " * 22 + "abc"
    assert len(too_long) > 200
    body = assert_problem(an.get("/documents", q=too_long), 422, "validation_error")
    assert "q" in body["errors"]
    assert_problem(an.get("/documents", q="a" * 201), 422, "validation_error")
    assert_problem(an.get("/documents", q="ư" * 201), 422, "validation_error")

    # 200 characters of words, even more words than the engine takes, is fine.
    words = ("ky cuong " * 30)[:200]
    assert len(words) == 200
    r = an.get("/documents", q=words)
    assert r.status_code == 200 and [i["id"] for i in r.json["items"]] == [corpus["directive"]]
    many = " ".join(["a"] * 100)[:199] + "a"
    assert len(many) <= 200
    assert an.get("/documents", q=many).status_code == 200
    assert an.get("/documents", q="x" * 200).status_code == 200
    assert an.search("x" * 200) == []
    # Words beyond the engine's limit do not make the query fail; a 40-word query that matches.
    title_words = "một hai ba bốn năm sáu bảy tám chín mười"
    long_doc = document(tree["city"], [tree["city"]], number=None, title=" ".join([title_words] * 4)).id
    q = " ".join([title_words] * 4)
    assert len(q.split()) == 40 and len(q) <= 200
    assert an.search(q) == [long_doc]


# --- filters and pagination ------------------------------------------------------------------------

def test_search_combined_with_kind_and_state(client, tree, corpus, an):
    from content.models import Receipt

    assert set(an.search("chi thi")) == {corpus["directive"], corpus["other_number"], corpus["longer_number"]}
    assert an.search("chi bo", kind="notice") == [corpus["meeting"]]
    assert an.search("chi bo", kind="guidance") == []
    assert set(an.search("sinh hoat", kind="guidance")) == {corpus["only_guidance"]}
    db.session.add(Receipt(document_id=corpus["other_number"], member_id=_member_id("01000001"),
                           opened_at=utcnow(), acknowledged_at=utcnow(), acknowledged_version=1))
    db.session.commit()
    assert an.search("chi thi", state="acknowledged") == [corpus["other_number"]]
    assert set(an.search("chi thi", state="pending")) == {corpus["directive"], corpus["longer_number"]}
    assert_problem(an.get("/documents", q="chi thi", kind="law"), 422, "validation_error")


def _member_id(card: str) -> int:
    from handbook.members import Member

    return db.session.scalar(select(Member.id).where(Member.card_number == card))


def test_search_pagination_covers_every_result_once(client, tree, an):
    t = tree
    ids = []
    base = utcnow() - timedelta(days=1)
    for i in range(23):
        where = "title" if i % 3 == 0 else "summary" if i % 3 == 1 else "body"
        kw = {"title": f"Văn bản {i}", "summary": "", "body_html": "<p>Khác</p>"}
        if where == "title":
            kw["title"] = f"Báo cáo sơ kết số {i}"
        elif where == "summary":
            kw["summary"] = "Báo cáo sơ kết giữa nhiệm kỳ"
        else:
            kw["body_html"] = "<p>Kèm theo báo cáo sơ kết.</p>"
        d = document(t["city"], [t["city"] if i % 2 else t["b1"]], number=None, **kw).id
        set_doc(d, published_at=base + timedelta(minutes=i // 4))   # ties in time, too
        ids.append(d)
    document(t["city"], [t["b2"]], number=None, title="Báo cáo sơ kết của chi bộ khác")

    full = an.search("bao cao so ket")
    assert sorted(full) == sorted(ids)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": "bao cao so ket", "limit": 5}
        if cursor:
            params["cursor"] = cursor
        r = an.get("/documents", **params)
        assert r.status_code == 200
        seen.extend(i["id"] for i in r.json["items"])
        cursor = r.json["next_cursor"]
        pages += 1
        if not cursor:
            break
    assert pages == 5
    assert seen == full
    assert len(set(seen)) == len(seen) == 23


def test_search_cursor_validation(client, corpus, an):
    import base64
    import json

    def b64(v):
        return base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")

    raw = [base64.urlsafe_b64encode(v).decode().rstrip("=") for v in (b"[Infinity]", b"[NaN]", b"[", b"[1e999]")]
    for cursor in ("garbage", b64([-5]), b64(["5"]), b64([True]), b64([None]), b64([1, 2]), b64({}), *raw):
        body = assert_problem(an.get("/documents", q="chi thi", cursor=cursor), 422, "validation_error")
        assert "cursor" in body["errors"], cursor
    # A cursor past the end is an empty page.
    r = an.get("/documents", q="chi thi", cursor=b64([1000]))
    assert r.status_code == 200 and r.json == {"items": [], "next_cursor": None}


def test_search_cursor_with_a_huge_offset_is_not_a_server_error(client, corpus, an):
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps([10**30]).encode()).decode().rstrip("=")
    r = an.get("/documents", q="chi thi", cursor=cursor)
    assert r.status_code in (200, 422), r.get_data(as_text=True)
