"""What a notification says, in Vietnamese or English, and the FCM message that carries it.

The same texts serve the push (in the device's locale) and the in-app inbox (in the reader's
`Accept-Language`). A push carries a small data payload so that the app opens the right screen, a
collapse key and a tag per document (a later push about a document replaces an earlier one, and a push
sent twice shows once), Android high priority on the configured channel, APNs alert headers, and a TTL
that ends at the deadline (FCM keeps a message at most 28 days).
"""
from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta

from firebase_admin import messaging

from handbook.timeutil import as_utc
from push.models import MEETING_KINDS

MAX_TTL = timedelta(days=28)
MIN_TTL = timedelta(hours=1)
TITLE_MAX = 120
BODY_MAX = 240

KIND_NAMES = {
    "vi": {"directive": "Chỉ thị", "resolution": "Nghị quyết", "conclusion": "Kết luận", "plan": "Kế hoạch",
           "guidance": "Hướng dẫn", "notice": "Thông báo", "study": "Tài liệu học tập"},
    "en": {"directive": "Directive", "resolution": "Resolution", "conclusion": "Conclusion", "plan": "Plan",
           "guidance": "Guidance", "notice": "Notice", "study": "Study material"},
}

# kind → language → (title, body). Placeholders: doc (kind name and number), title, deadline, count,
# units, names.
TEXTS = {
    "published": {
        "vi": ("{doc}: văn bản mới", "{title}{deadline_vi}"),
        "en": ("{doc}: new document", "{title}{deadline_en}"),
    },
    "reack": {
        "vi": ("{doc} đã được sửa đổi, đề nghị xác nhận lại", "{title}{deadline_vi}"),
        "en": ("{doc} was amended: please acknowledge again", "{title}{deadline_en}"),
    },
    "reminder": {
        "vi": ("Nhắc nhở: đồng chí chưa xác nhận {doc}", "{title}{deadline_vi}"),
        "en": ("Reminder: you have not acknowledged {doc}", "{title}{deadline_en}"),
    },
    "manual": {
        "vi": ("Chi ủy nhắc: đề nghị đồng chí đọc và xác nhận {doc}", "{title}{deadline_vi}"),
        "en": ("Your branch asks you to read and acknowledge {doc}", "{title}{deadline_en}"),
    },
    "answer": {
        "vi": ("Câu hỏi của đồng chí về {doc} đã được trả lời", "{title}"),
        "en": ("Your question on {doc} was answered", "{title}"),
    },
    "meeting": {
        "vi": ("Lịch sinh hoạt: {title}", "{when} tại {place}"),
        "en": ("Meeting: {title}", "{when} at {place}"),
    },
    "meeting_reminder": {
        "vi": ("Nhắc lịch sinh hoạt: {title}", "{when} tại {place}"),
        "en": ("Meeting reminder: {title}", "{when} at {place}"),
    },
    "meeting_changed": {
        "vi": ("Thay đổi lịch sinh hoạt: {title}", "{when} tại {place}"),
        "en": ("Meeting changed: {title}", "{when} at {place}"),
    },
    "meeting_cancelled": {
        "vi": ("Hủy buổi sinh hoạt: {title}", "Buổi sinh hoạt lúc {when} không diễn ra."),
        "en": ("Meeting cancelled: {title}", "The meeting at {when} will not take place."),
    },
    "escalation": {
        "vi": ("{count} đảng viên chưa xác nhận {doc}", "{names}"),
        "en": ("{count} members have not acknowledged {doc}", "{names}"),
    },
}


def language_of(locale: str | None) -> str:
    return "en" if (locale or "").lower().startswith("en") else "vi"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _local_date(at: datetime, zone) -> str:
    return as_utc(at).astimezone(zone).strftime("%d/%m/%Y")


def _local_time(at: datetime, zone) -> str:
    return as_utc(at).astimezone(zone).strftime("%H:%M %d/%m/%Y")


def texts(kind: str, doc, lang: str, zone, data: dict | None = None) -> tuple[str, str]:
    """(title, body) of a notification about `doc` (a meeting for the meeting kinds) in `lang`."""
    if kind in MEETING_KINDS:
        title, body = TEXTS[kind][lang]
        values = {"title": doc.title, "when": _local_time(doc.starts_at, zone), "place": doc.place}
        return _clip(title.format(**values), TITLE_MAX), _clip(body.format(**values), BODY_MAX)
    name = KIND_NAMES[lang].get(doc.kind, doc.kind)
    label = f"{name} {doc.number}" if doc.number else name
    deadline = doc.deadline and _local_date(doc.deadline, zone)
    units = (data or {}).get("units", [])
    names = [n for unit in units for n in unit.get("names", [])]
    more = sum(unit.get("pending", 0) for unit in units) - len(names)
    title, body = TEXTS[kind][lang]
    values = {
        "doc": label, "title": doc.title,
        "deadline_vi": f". Hạn xác nhận: {deadline}." if deadline else "",
        "deadline_en": f". Acknowledge by {deadline}." if deadline else "",
        "count": sum(unit.get("pending", 0) for unit in units),
        "names": ", ".join(names) + ((f" và {more} người khác" if lang == "vi" else f" and {more} others")
                                      if more > 0 else ""),
    }
    return _clip(title.format(**values), TITLE_MAX), _clip(body.format(**values), BODY_MAX)


@dataclass(frozen=True)
class Target:
    """One device to push to."""
    device_id: int
    fid: str | None
    token: str | None
    platform: str
    locale: str | None


def build(notification, doc, target: Target, zone, now: datetime, *, channel_id: str,
          data: dict | None = None) -> messaging.Message:
    """The FCM HTTP v1 message for one device (`doc` is the meeting for the meeting kinds)."""
    title, body = texts(notification.kind, doc, language_of(target.locale), zone, data)
    if notification.kind in MEETING_KINDS:
        ttl = min(MAX_TTL, max(MIN_TTL, as_utc(doc.ends_at) - now))
        collapse = f"meeting-{doc.id}"
        payload = {"notification_id": str(notification.id), "kind": notification.kind, "meeting_id": str(doc.id),
                   "starts_at": as_utc(doc.starts_at).isoformat()}
    else:
        if doc.deadline is not None and notification.kind != "escalation":
            ttl = min(MAX_TTL, max(MIN_TTL, as_utc(doc.deadline) - now))
        else:
            ttl = MAX_TTL if notification.kind != "escalation" else timedelta(days=3)
        collapse = f"doc-{doc.id}-{notification.kind}" if notification.kind in ("escalation", "answer") \
            else f"doc-{doc.id}"
        payload = {"notification_id": str(notification.id), "kind": notification.kind, "document_id": str(doc.id),
                   "document_kind": doc.kind, "version": str(doc.version),
                   "deadline": as_utc(doc.deadline).isoformat() if doc.deadline else ""}
    expires = int((now + ttl).timestamp())
    with warnings.catch_warnings():  # `token` is deprecated in firebase-admin 7; older apps still send one
        warnings.simplefilter("ignore", DeprecationWarning)
        return _message(target, payload, title, body, ttl, collapse, channel_id, expires)


def build_many(notification, doc, targets: list[tuple[Target, dict | None]], zone, now: datetime, *,
               channel_id: str) -> list[messaging.Message]:
    """`build` for many devices: one message is built per (language, data) and the others are copies of
    it that differ only in their fid/token, sharing its parts (so a transport may encode those once:
    push.fcm.DirectSender)."""
    templates: dict[tuple, messaging.Message] = {}
    out = []
    for target, data in targets:
        key = (language_of(target.locale), json.dumps(data, sort_keys=True) if data else None)
        template = templates.get(key)
        if template is None:
            template = templates[key] = build(notification, doc, target, zone, now, channel_id=channel_id, data=data)
            out.append(template)
            continue
        message = copy.copy(template)
        message.fid = target.fid if target.fid else None
        message.token = target.token if not target.fid else None
        out.append(message)
    return out


def _message(target, payload, title, body, ttl, collapse, channel_id, expires) -> messaging.Message:
    return messaging.Message(
        fid=target.fid if target.fid else None,
        token=target.token if not target.fid else None,
        data=payload,
        notification=messaging.Notification(title=title, body=body),
        android=messaging.AndroidConfig(
            priority="high", ttl=ttl, collapse_key=collapse,
            notification=messaging.AndroidNotification(channel_id=channel_id, tag=collapse)),
        apns=messaging.APNSConfig(
            headers={"apns-priority": "10", "apns-push-type": "alert", "apns-collapse-id": collapse,
                     "apns-expiration": str(expires)},
            payload=messaging.APNSPayload(aps=messaging.Aps(sound="default", thread_id=collapse))),
    )
