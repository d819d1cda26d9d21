"""User-facing text: Vietnamese by default, English when Accept-Language prefers it.

Messages are keyed by the stable machine `code` used in problem+json responses. A detail may carry
`{placeholders}` filled from the error's parameters.
"""
from __future__ import annotations

import re

from flask import has_request_context, request

LANGUAGES = ("vi", "en")

# code: (vi title, vi detail, en title, en detail)
PROBLEMS: dict[str, tuple[str, str, str, str]] = {
    "bad_request": ("Yêu cầu không hợp lệ", "Máy chủ không hiểu yêu cầu này.",
                    "Bad request", "The server could not understand this request."),
    "malformed_json": ("JSON không hợp lệ", "Nội dung gửi lên không phải là JSON hợp lệ.",
                       "Malformed JSON", "The request body is not valid JSON."),
    "json_too_complex": ("JSON quá phức tạp",
                         "Nội dung JSON lồng quá {max_depth} cấp hoặc có quá {max_items} giá trị.",
                         "JSON too complex",
                         "The JSON body is nested deeper than {max_depth} levels or holds more than {max_items} values."),
    "validation_error": ("Dữ liệu không hợp lệ", "Một số trường có giá trị không hợp lệ.",
                         "Invalid data", "Some fields have invalid values."),
    "invalid_credentials": ("Sai thông tin đăng nhập", "Số thẻ đảng viên/số điện thoại hoặc mật khẩu không đúng.",
                            "Invalid credentials", "The card number/phone or the password is wrong."),
    "unauthorized": ("Chưa đăng nhập", "Cần đăng nhập để thực hiện thao tác này.",
                     "Not signed in", "You need to sign in to do this."),
    "invalid_token": ("Mã truy cập không hợp lệ", "Mã truy cập không hợp lệ hoặc không đúng loại.",
                      "Invalid token", "The token is invalid or of the wrong type."),
    "token_expired": ("Mã truy cập đã hết hạn", "Mã truy cập đã hết hạn, hãy làm mới hoặc đăng nhập lại.",
                      "Token expired", "The token has expired; refresh it or sign in again."),
    "token_revoked": ("Phiên đăng nhập đã kết thúc", "Phiên đăng nhập này đã bị thu hồi, hãy đăng nhập lại.",
                      "Session ended", "This session was revoked; sign in again."),
    "token_reused": ("Mã làm mới đã được dùng", "Mã làm mới này đã được dùng trước đó; phiên đăng nhập đã bị thu hồi để bảo vệ tài khoản.",
                     "Refresh token reused", "This refresh token was already used; the session was revoked to protect the account."),
    "weak_password": ("Mật khẩu quá yếu", "Mật khẩu mới cần ít nhất {min_length} ký tự.",
                      "Password too weak", "The new password needs at least {min_length} characters."),
    "forbidden": ("Không có quyền", "Bạn không có quyền thực hiện thao tác này.",
                  "Forbidden", "You are not allowed to do this."),
    "not_found": ("Không tìm thấy", "Không tìm thấy tài nguyên được yêu cầu.",
                  "Not found", "The requested resource was not found."),
    "method_not_allowed": ("Phương thức không được hỗ trợ", "Đường dẫn này không hỗ trợ phương thức {method}.",
                           "Method not allowed", "This path does not support the {method} method."),
    "not_acceptable": ("Không đáp ứng được định dạng", "Không thể trả lời theo định dạng được yêu cầu.",
                       "Not acceptable", "The requested format cannot be produced."),
    "unsupported_media_type": ("Kiểu nội dung không được hỗ trợ", "Hãy gửi nội dung dạng application/json.",
                               "Unsupported media type", "Send the body as application/json."),
    "conflict": ("Xung đột dữ liệu", "Yêu cầu xung đột với trạng thái hiện tại.",
                 "Conflict", "The request conflicts with the current state."),
    "stale_version": ("Phiên bản đã cũ", "Văn bản đã có phiên bản mới hơn ({current_version}).",
                      "Stale version", "The document has a newer version ({current_version})."),
    "payload_too_large": ("Dữ liệu quá lớn", "Nội dung gửi lên vượt quá giới hạn {limit} byte.",
                          "Payload too large", "The request body exceeds the {limit}-byte limit."),
    "document_not_out": ("Văn bản chưa được phát hành", "Văn bản này chưa đến thời điểm phát hành, đảng viên chưa đọc được.",
                         "Document not out yet", "This document is not published yet; members cannot read it."),
    "cannot_remove_self": ("Không thể tự xóa mình", "Quản trị viên không thể tự xóa chính mình khỏi tổ chức; hãy nhờ một quản trị viên khác.",
                           "Cannot remove yourself", "An admin cannot remove themselves; ask another admin."),
    "cannot_revoke_self": ("Không thể tự thu hồi quyền của mình",
                           "Quản trị viên không thể tự thu hồi quyền quản trị của chính mình; hãy nhờ một quản trị viên khác.",
                           "Cannot take back your own role",
                           "An admin cannot take back their own admin role; ask another admin."),
    "last_admin": ("Quản trị viên cuối cùng", "Đây là quản trị viên duy nhất còn lại của {unit}; hãy phân quyền quản trị cho người khác trước.",
                   "Last admin", "This is the only admin left over {unit}; grant the admin role to someone else first."),
    "meeting_closed": ("Buổi sinh hoạt đã kết thúc", "Buổi sinh hoạt này đã được kết thúc, không thể thay đổi.",
                       "Meeting closed", "This meeting was closed and cannot change."),
    "meeting_cancelled": ("Buổi sinh hoạt đã bị hủy", "Buổi sinh hoạt này đã bị hủy.",
                          "Meeting cancelled", "This meeting was cancelled."),
    "meeting_started": ("Buổi sinh hoạt đã bắt đầu", "Không thể trả lời tham dự sau khi buổi sinh hoạt đã bắt đầu.",
                        "Meeting started", "You cannot answer once the meeting has started."),
    "meeting_not_open": ("Chưa đến giờ điểm danh", "Chỉ điểm danh được từ 30 phút trước giờ bắt đầu đến khi buổi sinh hoạt kết thúc.",
                         "Check-in not open", "Check-in opens 30 minutes before the start and ends with the meeting."),
    "invalid_code": ("Mã điểm danh không đúng", "Mã điểm danh không đúng hoặc đã hết hạn; hãy nhập mã đang hiển thị tại buổi sinh hoạt.",
                     "Wrong check-in code", "The check-in code is wrong or expired; type the code shown at the meeting."),
    "question_limit": ("Đã gửi đủ số câu hỏi trong ngày", "Mỗi đảng viên gửi tối đa {limit} câu hỏi trong 24 giờ; hãy gửi lại sau.",
                       "Daily question limit reached", "Each member may send {limit} questions in 24 hours; try again later."),
    "reminder_too_soon": ("Đã nhắc trong 24 giờ qua",
                          "Đơn vị này đã được nhắc về văn bản này trong 24 giờ qua; có thể nhắc lại từ {retry_at}.",
                          "Already reminded in the last 24 hours",
                          "This unit was reminded about this document in the last 24 hours; it can be reminded again from {retry_at}."),
    "rate_limited": ("Quá nhiều yêu cầu", "Bạn đã gửi quá nhiều yêu cầu, hãy thử lại sau {retry_after} giây.",
                     "Too many requests", "Too many requests; try again in {retry_after} seconds."),
    "service_unavailable": ("Dịch vụ tạm thời gián đoạn", "Cơ sở dữ liệu tạm thời không truy cập được, hãy thử lại sau.",
                            "Service unavailable", "The database is temporarily unreachable; try again later."),
    "audience_out_of_scope": ("Ngoài phạm vi phát hành", "Đơn vị {unit} nằm ngoài phạm vi bạn được phát hành văn bản.",
                              "Outside your publishing scope", "The unit {unit} is outside the scope you may publish to."),
    "document_withdrawn": ("Văn bản đã bị thu hồi", "Văn bản này đã bị thu hồi.",
                           "Document withdrawn", "This document has been withdrawn."),
    "ack_not_required": ("Văn bản không cần xác nhận", "Văn bản này không yêu cầu xác nhận đã đọc.",
                         "No acknowledgement needed", "This document does not ask for an acknowledgement."),
    "internal_error": ("Lỗi hệ thống", "Đã xảy ra lỗi không mong muốn. Mã yêu cầu: {request_id}.",
                       "Internal error", "An unexpected error occurred. Request id: {request_id}."),
    # Attachments (content/attachments.py, api/attachments.py)
    "unsupported_file_type": ("Loại tệp không được hỗ trợ",
                              ("Chỉ nhận tệp PDF, DOCX hoặc ảnh (PNG, JPEG, WEBP, GIF), và phần mở rộng của tên tệp "
                               "phải khớp với nội dung tệp."),
                              "Unsupported file type",
                              ("Only PDF, DOCX or image files (PNG, JPEG, WEBP, GIF) are accepted, and the file "
                               "name's extension must match the file's content.")),
    "attachment_locked": ("Không thể gỡ tệp đính kèm",
                          "Chỉ gỡ được tệp đính kèm khi văn bản còn là bản nháp hoặc đang chờ phát hành.",
                          "Attachment locked",
                          "Attachments can only be removed while the document is a draft or scheduled."),
    # Quizzes and acknowledgement rules (content/quizzes.py, content/ackgate.py)
    "quiz_required": ("Cần đạt bài kiểm tra", "Văn bản này chỉ được xác nhận sau khi bạn làm đạt bài kiểm tra của phiên bản hiện hành.",
                      "Quiz required", "This document can only be acknowledged after you pass its quiz on the current version."),
    "read_too_fast": ("Đọc quá nhanh", "Cần đọc văn bản ít nhất {min_read_seconds} giây kể từ lần mở đầu tiên trước khi xác nhận.",
                      "Read too fast", "Read the document for at least {min_read_seconds} seconds after first opening it before acknowledging."),
    "quiz_not_open": ("Bài thi chưa mở", "Bài thi chưa đến thời gian mở.",
                      "Quiz not open yet", "The quiz is not open yet."),
    "quiz_closed": ("Bài thi đã đóng", "Đã hết thời gian bắt đầu làm bài thi này.",
                    "Quiz closed", "The time to start this quiz is over."),
    "no_attempts_left": ("Hết lượt làm bài", "Bạn đã dùng hết {max_attempts} lượt làm bài.",
                         "No attempts left", "You have used all {max_attempts} attempts."),
    "attempt_late": ("Nộp bài quá hạn", "Bài làm được nộp sau thời gian cho phép; câu trả lời được lưu nhưng không chấm.",
                     "Attempt submitted too late", "The answers arrived after the time allowed; they are kept but not graded."),
    "attempt_token_mismatch": ("Mã bài làm không đúng", "Mã bài làm không khớp với lượt làm bài này.",
                               "Attempt token mismatch", "The attempt token does not match this attempt."),
    "quiz_has_no_questions": ("Bài kiểm tra chưa có câu hỏi", "Bài kiểm tra này chưa có câu hỏi nào.",
                              "Quiz has no questions", "This quiz has no questions yet."),
    "range_not_satisfiable": ("Khoảng dữ liệu không hợp lệ",
                              "Khoảng byte được yêu cầu không nằm trong tệp ({size} byte).",
                              "Range not satisfiable", "The requested byte range is not within the file ({size} bytes)."),
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


def problem_text(code: str, params: dict) -> tuple[str, str]:
    vi_title, vi_detail, en_title, en_detail = PROBLEMS.get(code, PROBLEMS["bad_request"])
    title, detail = (en_title, en_detail) if language() == "en" else (vi_title, vi_detail)
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
