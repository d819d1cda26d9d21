"""gunicorn settings, read from the working directory (`make run`, the README's production command, the bench).

The request line and header limits are gunicorn's largest, and the API's query parameters are bounded in
the OpenAPI document so that the longest valid query (every parameter at its maximum, percent-encoded)
fits in `limit_request_line` (tests/test_adversarial_defects.py checks it); a longer but still fitting
one is refused by the API as problem+json. A request gunicorn itself refuses before the app sees it (a
line past the limit, malformed HTTP) gets problem+json too, not gunicorn's HTML page: every error of this
service has one shape.
"""
import json
import os

from gunicorn import util

# Threads per worker (gthread when more than one); `-w` / GUNICORN_CMD_ARGS still set the workers.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))

limit_request_line = 8190
limit_request_field_size = 8190

_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
          431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}
_DETAILS = {
    414: "Địa chỉ yêu cầu quá dài (tối đa 8.190 byte); hãy rút ngắn từ khóa tìm kiếm.",
    431: "Phần đầu yêu cầu quá lớn.",
    500: "Lỗi máy chủ.",
}


def _problem_error(sock, status_int, reason, mesg):
    """gunicorn's `util.write_error`, answering application/problem+json instead of an HTML page."""
    body = json.dumps({
        "type": f"urn:handbook:problem:{_CODES.get(status_int, 'bad_request')}", "title": reason,
        "status": status_int, "detail": _DETAILS.get(status_int, "Yêu cầu HTTP không hợp lệ."),
        "code": _CODES.get(status_int, "bad_request"),
    }, ensure_ascii=False).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin1")
    util.write_nonblock(sock, head + body)


util.write_error = _problem_error
