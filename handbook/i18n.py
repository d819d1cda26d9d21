"""User-facing text: Vietnamese by default, English when Accept-Language prefers it.

Problem texts are keyed by the stable machine `code` used in problem+json responses: PROBLEMS holds the
English title and detail, the gettext catalogue `handbook/translations/vi/LC_MESSAGES/messages.po` their
Vietnamese (msgctxt = code), compiled in memory when first needed, as the console compiles its own; the
console's Flask-Babel domain merges this catalogue into its own, so every translation lives in a .po
catalogue. A detail may carry `{placeholders}` filled from the error's parameters.
"""
from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import has_request_context, request

LANGUAGES = ("vi", "en")

# code: (English title, English detail). The Vietnamese texts are in the gettext catalogue
# handbook/translations/vi/LC_MESSAGES/messages.po (msgctxt = code, msgid = the English text).
PROBLEMS: dict[str, tuple[str, str]] = {
    "bad_request": ("Bad request",
                   "The server could not understand this request."),
    "malformed_json": ("Malformed JSON",
                      "The request body is not valid JSON."),
    "json_too_complex": ("JSON too complex",
                        "The JSON body is nested deeper than {max_depth} levels or holds more than {max_items} values."),
    "validation_error": ("Invalid data",
                        "Some fields have invalid values."),
    "invalid_credentials": ("Invalid credentials",
                           "The card number/phone or the password is wrong."),
    "unauthorized": ("Not signed in",
                    "You need to sign in to do this."),
    "invalid_token": ("Invalid token",
                     "The token is invalid or of the wrong type."),
    "token_expired": ("Token expired",
                     "The token has expired; refresh it or sign in again."),
    "token_revoked": ("Session ended",
                     "This session was revoked; sign in again."),
    "token_reused": ("Refresh token reused",
                    "This refresh token was already used; the session was revoked to protect the account."),
    "weak_password": ("Password too weak",
                     "The new password needs at least {min_length} characters."),
    "forbidden": ("Forbidden",
                 "You are not allowed to do this."),
    "not_found": ("Not found",
                 "The requested resource was not found."),
    "method_not_allowed": ("Method not allowed",
                          "This path does not support the {method} method."),
    "not_acceptable": ("Not acceptable",
                      "The requested format cannot be produced."),
    "unsupported_media_type": ("Unsupported media type",
                              "Send the body as application/json."),
    "conflict": ("Conflict",
                "The request conflicts with the current state."),
    "stale_version": ("Stale version",
                     "The document has a newer version ({current_version})."),
    "payload_too_large": ("Payload too large",
                         "The request body exceeds the {limit}-byte limit."),
    "document_not_out": ("Document not out yet",
                        "This document is not published yet; members cannot read it."),
    "cannot_remove_self": ("Cannot remove yourself",
                          "An admin cannot remove themselves; ask another admin."),
    "cannot_revoke_self": ("Cannot take back your own role",
                          "An admin cannot take back their own admin role; ask another admin."),
    "last_admin": ("Last admin",
                  "This is the only admin left over {unit}; grant the admin role to someone else first."),
    "meeting_closed": ("Meeting closed",
                      "This meeting was closed and cannot change."),
    "meeting_cancelled": ("Meeting cancelled",
                         "This meeting was cancelled."),
    "meeting_started": ("Meeting started",
                       "You cannot answer once the meeting has started."),
    "meeting_not_open": ("Check-in not open",
                        "Check-in opens 30 minutes before the start and ends with the meeting."),
    "invalid_code": ("Wrong check-in code",
                    "The check-in code is wrong or expired; type the code shown at the meeting."),
    "question_limit": ("Daily question limit reached",
                      "Each member may send {limit} questions in 24 hours; try again later."),
    "reminder_too_soon": ("Already reminded in the last 24 hours",
                         "This unit was reminded about this document in the last 24 hours; it can be reminded again from {retry_at}."),
    "rate_limited": ("Too many requests",
                    "Too many requests; try again in {retry_after} seconds."),
    "service_unavailable": ("Service unavailable",
                           "The database is temporarily unreachable; try again later."),
    "audience_out_of_scope": ("Outside your publishing scope",
                             "The unit {unit} is outside the scope you may publish to."),
    "document_withdrawn": ("Document withdrawn",
                          "This document has been withdrawn."),
    "ack_not_required": ("No acknowledgement needed",
                        "This document does not ask for an acknowledgement."),
    "internal_error": ("Internal error",
                      "An unexpected error occurred. Request id: {request_id}."),
    "unsupported_file_type": ("Unsupported file type",
                             "Only PDF, DOCX or image files (PNG, JPEG, WEBP, GIF) are accepted, and the file name's extension must match the file's content."),
    "attachment_locked": ("Attachment locked",
                         "Attachments can only be removed while the document is a draft or scheduled."),
    "quiz_required": ("Quiz required",
                     "This document can only be acknowledged after you pass its quiz on the current version."),
    "read_too_fast": ("Read too fast",
                     "Read the document for at least {min_read_seconds} seconds after first opening it before acknowledging."),
    "quiz_not_open": ("Quiz not open yet",
                     "The quiz is not open yet."),
    "quiz_closed": ("Quiz closed",
                   "The time to start this quiz is over."),
    "no_attempts_left": ("No attempts left",
                        "You have used all {max_attempts} attempts."),
    "attempt_late": ("Attempt submitted too late",
                    "The answers arrived after the time allowed; they are kept but not graded."),
    "attempt_token_mismatch": ("Attempt token mismatch",
                              "The attempt token does not match this attempt."),
    "quiz_has_no_questions": ("Quiz has no questions",
                             "This quiz has no questions yet."),
    "range_not_satisfiable": ("Range not satisfiable",
                             "The requested byte range is not within the file ({size} bytes)."),
}

# Marshmallow / webargs messages (and our own validation words) in Vietnamese.
FIELD_MESSAGES_VI: dict[str, str] = {
    "Missing data for required field.": "Trường này là bắt buộc.",
    "Unknown field.": "Trường không được chấp nhận.",
    "Field may not be null.": "Trường này không được để trống.",
    "Not a valid string.": "Giá trị phải là chuỗi ký tự.",
    "Not a valid integer.": "Giá trị phải là số nguyên.",
    "Not a valid number.": "Giá trị phải là số.",
    "Not a valid boolean.": "Giá trị phải là true hoặc false.",
    "Not a valid list.": "Giá trị phải là danh sách.",
    "Not a valid mapping type.": "Giá trị phải là đối tượng.",
    "Not a valid date.": "Ngày không hợp lệ (định dạng YYYY-MM-DD).",
    "Not a valid datetime.": "Thời điểm không hợp lệ (RFC 3339).",
    "Not a valid aware datetime.": "Thời điểm phải có múi giờ (RFC 3339, ví dụ 2026-12-01T08:00:00+07:00).",
    "Invalid input type.": "Kiểu dữ liệu không hợp lệ.",
    "Invalid JSON body.": "Nội dung không phải JSON hợp lệ.",
    "Shorter than minimum length {min}.": "Ngắn hơn độ dài tối thiểu {min}.",
    "Longer than maximum length {max}.": "Dài hơn độ dài tối đa {max}.",
    "Length must be between {min} and {max}.": "Độ dài phải từ {min} đến {max}.",
    "password_too_short": "Mật khẩu quá ngắn.",
    "wrong_password": "Mật khẩu hiện tại không đúng.",
    "invalid_characters": "Chứa ký tự không hợp lệ.",
    "Must be one of: {choices}.": "Phải là một trong các giá trị: {choices}.",
    "Must be greater than or equal to {min} and less than or equal to {max}.": "Phải từ {min} đến {max}.",
    "Must be greater than or equal to {min}.": "Phải lớn hơn hoặc bằng {min}.",
    "required": "Trường này là bắt buộc.",
    "invalid_cursor": "Con trỏ phân trang không hợp lệ.",
    "unknown_unit": "Không có đơn vị này.",
    "unknown_series": "Không có chuyên đề này trong phạm vi của bạn.",
    "must_contain_audience": "Đơn vị ban hành phải bao gồm mọi đơn vị nhận văn bản.",
    "spans_several_scopes": "Các đơn vị nhận văn bản thuộc nhiều phạm vi phát hành khác nhau; hãy chọn đơn vị ban hành.",
    "only_for_study": "Chỉ tài liệu học tập (study) mới thuộc một chuyên đề.",
    "series_needs_study": "Văn bản thuộc chuyên đề phải là tài liệu học tập (study).",
    "locked_after_publication": "Không thể thay đổi sau khi đã phát hành.",
    "must_be_future": "Thời điểm phải ở tương lai.",
    "lesson_taken": "Chuyên đề đã có bài với số thứ tự này.",
    "empty_file": "Tệp rỗng (0 byte).",
    "fid_or_token": "Cần fid hoặc token (hoặc cả hai).",
    "missing_filename": "Tệp cần có tên (kèm phần mở rộng).",
    "not_a_file": "Phần này phải là một tệp.",
    "unknown_version": "Văn bản chưa có phiên bản này.",
    "not_in_future": "Ngày không được ở tương lai.",
    "before_publication": "Ngày không được trước ngày phát hành văn bản.",
    "needs_timezone": "Thời điểm phải có múi giờ (RFC 3339).",
    "ends_before_start": "Giờ kết thúc phải sau giờ bắt đầu.",
    "not_after_deadline": "Ngày gia hạn phải sau hạn xác nhận của văn bản.",
    "too_far": "Chỉ gia hạn tối đa 90 ngày sau hạn xác nhận.",
    "too_long_meeting": "Buổi sinh hoạt dài tối đa 12 giờ.",
    "thematic_only": "Ở cấp này chỉ tổ chức được sinh hoạt chuyên đề (thematic).",
    "unknown_document": "Văn bản không tồn tại hoặc đảng viên của đơn vị không đọc được.",
    "not_invited": "Có đảng viên không thuộc danh sách mời dự buổi sinh hoạt.",
    "present_and_absent": "Một đảng viên không thể vừa có mặt vừa vắng mặt.",
    "invalid_code": "Mã điểm danh gồm 6 chữ số.",
    "invalid_month": "Tháng theo định dạng YYYY-MM.",
    "https_url": "Đường dẫn phải bắt đầu bằng https://.",
    "too_long_text": "Dài tối đa 2.000 ký tự.",
    "narrow_unit": "Hãy chọn một đơn vị nhỏ hơn để tìm theo tên.",
    "duplicate_option": "Các phương án không được trùng nhau.",
    "single_needs_one_correct": "Câu hỏi một lựa chọn cần đúng một phương án đúng.",
    "needs_a_correct_option": "Câu hỏi cần ít nhất một phương án đúng.",
    "more_than_questions": "Số câu rút ra nhiều hơn số câu trong ngân hàng câu hỏi.",
    "closes_before_opening": "Thời điểm đóng phải sau thời điểm mở.",
    "ack_not_required": "Văn bản không yêu cầu xác nhận.",
    "not_in_attempt": "Câu hỏi không thuộc lượt làm bài này.",
    "answered_twice": "Câu hỏi được trả lời hai lần.",
    "unknown_option": "Phương án không thuộc câu hỏi này.",
    "one_option_only": "Câu hỏi một lựa chọn chỉ nhận một phương án.",
    "contest_cannot_gate": "Bài thi (giới hạn phạm vi và thời gian) không thể là điều kiện xác nhận văn bản.",
}
FIELD_MESSAGES_EN: dict[str, str] = {
    "password_too_short": "Password is too short.",
    "wrong_password": "The current password is wrong.",
    "invalid_characters": "Contains characters that are not allowed.",
    "required": "This field is required.",
    "invalid_cursor": "Invalid pagination cursor.",
    "unknown_unit": "No such unit.",
    "unknown_series": "No such series in your scope.",
    "must_contain_audience": "The issuing unit must contain every audience unit.",
    "spans_several_scopes": "The audience spans several of your publishing scopes; choose the issuing unit.",
    "only_for_study": "Only study materials belong to a series.",
    "series_needs_study": "A document in a series must be a study material.",
    "locked_after_publication": "Cannot change after publication.",
    "must_be_future": "The time must be in the future.",
    "lesson_taken": "The series already has a lesson with this number.",
    "empty_file": "The file is empty (0 bytes).",
    "fid_or_token": "Send a fid or a token (or both).",
    "missing_filename": "The file needs a name (with its extension).",
    "not_a_file": "This part must be a file.",
    "unknown_version": "The document has no such version.",
    "not_in_future": "The date cannot be in the future.",
    "before_publication": "The date cannot be before the document was published.",
    "needs_timezone": "The time needs a UTC offset (RFC 3339).",
    "ends_before_start": "The end must come after the start.",
    "not_after_deadline": "The new date must come after the document's deadline.",
    "too_far": "At most 90 days after the deadline.",
    "too_long_meeting": "A meeting lasts at most 12 hours.",
    "thematic_only": "At this level only a thematic meeting can be held.",
    "unknown_document": "No such document, or the unit's members cannot read it.",
    "not_invited": "Some members are not invited to this meeting.",
    "present_and_absent": "A member cannot be both present and absent.",
    "invalid_code": "The check-in code has 6 digits.",
    "invalid_month": "The month as YYYY-MM.",
    "https_url": "The link must start with https://.",
    "too_long_text": "At most 2,000 characters.",
    "narrow_unit": "Choose a smaller unit to search by name.",
    "duplicate_option": "Options must differ.",
    "single_needs_one_correct": "A single-choice question needs exactly one correct option.",
    "needs_a_correct_option": "A question needs at least one correct option.",
    "more_than_questions": "More questions to draw than the bank holds.",
    "closes_before_opening": "The closing time must come after the opening time.",
    "ack_not_required": "The document does not ask for acknowledgement.",
    "not_in_attempt": "The question is not part of this attempt.",
    "answered_twice": "The question is answered twice.",
    "unknown_option": "The option does not belong to this question.",
    "one_option_only": "A single-choice question takes one option only.",
    "contest_cannot_gate": "A contest (limited to a subtree and a window) cannot be required to acknowledge.",
}


def language() -> str:
    if not has_request_context():
        return "vi"
    return request.accept_languages.best_match(LANGUAGES, default="vi") or "vi"


TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def compile_po(path: Path, lang: str) -> NullTranslations:
    """A .po catalogue compiled in memory (babel's reader and writer): no build step, no .mo file."""
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalogue = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


@cache
def catalogue(lang: str) -> NullTranslations:
    """The domain's own catalogue (problem texts) for `lang`; English is the msgids themselves."""
    return compile_po(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", lang)


def problem_text(code: str, params: dict) -> tuple[str, str]:
    if code not in PROBLEMS:
        code = "bad_request"
    en_title, en_detail = PROBLEMS[code]
    lang = language()
    if lang == "en":
        title, detail = en_title, en_detail
    else:
        translations = catalogue(lang)
        title, detail = translations.pgettext(code, en_title), translations.pgettext(code, en_detail)
    try:
        return title, detail.format(**params)
    except (KeyError, IndexError):
        return title, detail.split("{")[0].rstrip(" (:") + "."


def _template_pattern(template: str) -> re.Pattern:
    escaped = re.escape(template)
    for name in ("min", "max", "choices"):
        escaped = escaped.replace(re.escape("{%s}" % name), f"(?P<{name}>.+?)")
    return re.compile(f"^{escaped}$")


_TEMPLATED_VI = [(_template_pattern(t), vi) for t, vi in FIELD_MESSAGES_VI.items() if "{" in t]


def field_message(message: str) -> str:
    """Translate a validation message (exact or `{min}`/`{max}` templated) into the caller's language."""
    if language() == "en":
        return FIELD_MESSAGES_EN.get(message, message)
    if message in FIELD_MESSAGES_VI:
        return FIELD_MESSAGES_VI[message]
    for pattern, translated in _TEMPLATED_VI:
        match = pattern.match(message)
        if match:
            return translated.format(**match.groupdict())
    return message
