"""A real-browser journey for quizzes (issue 17), in tests/test_console_browser.py's style and with its
fixtures (the app on a local port, Debian's Chromium, JavaScript off): a member on a 360×740 phone is told
why the acknowledgement waits, takes the required quiz, passes it and then acknowledges; the board looks
at the quiz's form and its results on a 1366×768 screen. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

from content import quizzes
from tests.test_console_browser import (DESKTOP, PHONE, browser_page, check_basics, server, shot,  # noqa: F401
                                        sign_in, world)

BANK = [
    {"kind": "single", "text": "Chỉ thị được ban hành năm nào?",
     "options": [{"text": "Năm 2023", "correct": True}, {"text": "Năm 2021"}, {"text": "Năm 2019"}]},
    {"kind": "multiple", "text": "Chỉ thị yêu cầu những gì?",
     "options": [{"text": "Tăng cường kỷ luật", "correct": True}, {"text": "Nâng cao trách nhiệm", "correct": True},
                 {"text": "Bỏ phê bình và tự phê bình"}]},
]


def test_a_member_passes_the_required_quiz_and_then_acknowledges_on_a_phone(browser_page, server, world, backend):
    people, doc = world
    quiz = quizzes.create_quiz(people["A1"], doc, {"title": "Kiểm tra hiểu Chỉ thị", "pass_mark": 80,
                                                   "time_limit_seconds": 900, "required_for_ack": True,
                                                   "questions": BANK}).id
    page = browser_page(PHONE)
    sign_in(page, server, "M1")
    page.get_by_role("link", name="Chỉ thị về tăng cường").click()
    page.get_by_role("button", name="Tôi đã đọc và nắm nội dung văn bản").click()
    assert "Cần làm đạt bài kiểm tra của phiên bản này" in page.inner_text("main")
    check_basics(page)
    shot(page, backend, "20-quiz-required-360")
    page.locator("#ack-error").get_by_role("link", name="Làm bài kiểm tra").click()
    assert page.locator("h1").inner_text() == "Kiểm tra hiểu Chỉ thị"
    assert "15 phút" in page.inner_text("main")
    check_basics(page)
    page.get_by_role("button", name="Bắt đầu làm bài").click()
    assert "Nộp bài trước" in page.inner_text("main")
    assert page.locator("script").count() == 0
    check_basics(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]   # no sideways scrolling
    shot(page, backend, "21-quiz-attempt-360")
    page.get_by_label("Năm 2023").check()
    page.get_by_label("Tăng cường kỷ luật").check()
    page.get_by_label("Nâng cao trách nhiệm").check()
    page.get_by_role("button", name="Nộp bài").click()
    text = page.inner_text("main")
    assert "Điểm của đồng chí: 100%" in text and "Đạt" in text
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, backend, "22-quiz-passed-360")
    page.get_by_role("link", name="Quay lại văn bản để xác nhận").click()
    page.get_by_role("button", name="Tôi đã đọc và nắm nội dung văn bản").click()
    assert "Đã xác nhận lúc" in page.inner_text("main")
    shot(page, backend, "23-quiz-acknowledged-360")

    board = browser_page(DESKTOP)
    sign_in(board, server, "A1")
    board.goto(f"{server}/board/documents/{doc}/quizzes")
    check_basics(board)
    board.get_by_role("link", name="Kiểm tra hiểu Chỉ thị").click()
    check_basics(board)
    assert board.get_by_label("Điểm đạt (phần trăm)").input_value() == "80"
    shot(board, backend, "24-quiz-form-1366")
    board.goto(f"{server}/quizzes/{quiz}/results")
    check_basics(board)
    assert "1 đạt" in board.inner_text("main") and board.locator("svg.chart a").count() >= 1
    shot(board, backend, "25-quiz-results-1366")
    # The same pages at the other width: the member's result on a wide screen, the results on a phone.
    wide = browser_page(DESKTOP)
    sign_in(wide, server, "M1")
    wide.goto(f"{server}/quizzes/{quiz}")
    shot(wide, backend, "26-quiz-member-1366")
    narrow = browser_page(PHONE)
    sign_in(narrow, server, "A1")
    narrow.goto(f"{server}/quizzes/{quiz}/results")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(narrow, backend, "27-quiz-results-360")
