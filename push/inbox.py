"""The in-app inbox (`/me/notifications`, because pushes get lost) and notification statistics for
publishers (`/admin/notifications/{id}`)."""
from __future__ import annotations

from sqlalchemy import func, or_, select, update

from content.access import can_manage
from content.acknowledgements import BRIEFING_ROLES
from content.models import Document, Meeting, Status
from handbook.extensions import db
from handbook.i18n import language
from handbook.members import Member
from handbook.orgunits import OrgUnit
from handbook.pagination import decode_cursor, page
from handbook.permissions import ADMIN_ROLES, has_role_over, not_found
from handbook.timeutil import local_zone, utcnow
from push.messages import texts
from push.models import Delivery, DeliveryState, InboxItem, Notification, NotificationKind, PushBatch


def unread_count(member: Member) -> int:
    """Unread items, not counting those about withdrawn documents (they stay listed, marked withdrawn)."""
    return db.session.scalar(
        select(func.count()).select_from(InboxItem)
        .join(Notification, Notification.id == InboxItem.notification_id)
        .outerjoin(Document, Document.id == Notification.document_id)
        .where(InboxItem.member_id == member.id, InboxItem.read_at.is_(None),
               or_(Document.id.is_(None), Document.status != Status.WITHDRAWN.value)))


def items(member: Member, *, limit: int, cursor: str | None = None, unread: bool | None = None) -> dict:
    """The member's inbox, newest first."""
    stmt = (select(InboxItem, Notification.kind, Document, Meeting)
            .join(Notification, Notification.id == InboxItem.notification_id)
            .outerjoin(Document, Document.id == Notification.document_id)
            .outerjoin(Meeting, Meeting.id == Notification.meeting_id)
            .where(InboxItem.member_id == member.id))
    if unread is not None:
        stmt = stmt.where(InboxItem.read_at.is_(None) if unread else InboxItem.read_at.is_not(None))
    if cursor:
        (last_id,) = decode_cursor(cursor, int)
        stmt = stmt.where(InboxItem.id < last_id)
    rows, next_cursor = page(list(db.session.execute(stmt.order_by(InboxItem.id.desc()).limit(limit + 1))), limit,
                             key=lambda row: (row[0].id,))
    lang, zone = language(), local_zone()
    return {"items": [_view(item, kind, doc, meeting, lang, zone) for item, kind, doc, meeting in rows],
            "next_cursor": next_cursor}


def _view(item: InboxItem, kind: str, doc: Document | None, meeting: Meeting | None, lang: str, zone) -> dict:
    title, body = texts(kind, meeting if meeting is not None else doc, lang, zone, item.data)
    return {"id": item.id, "notification_id": item.notification_id, "kind": kind, "title": title, "body": body,
            "document": doc and {"id": doc.id, "kind": doc.kind, "number": doc.number, "title": doc.title,
                                 "deadline": doc.deadline, "status": doc.status},
            "meeting": meeting and {"id": meeting.id, "title": meeting.title, "starts_at": meeting.starts_at,
                                    "place": meeting.place, "status": meeting.status},
            "units": (item.data or {}).get("units"), "created_at": item.created_at, "read_at": item.read_at}


def mark_read(member: Member, item_id: int) -> None:
    """POST /me/notifications/{id}/read; idempotent (the first reading time stays)."""
    item = db.session.scalar(select(InboxItem).where(InboxItem.id == item_id, InboxItem.member_id == member.id))
    if item is None:
        raise not_found()
    if item.read_at is None:
        item.read_at = utcnow()
    db.session.commit()


def mark_all_read(member: Member) -> int:
    """POST /me/notifications/read-all: returns how many were unread."""
    result = db.session.execute(update(InboxItem).where(InboxItem.member_id == member.id,
                                                        InboxItem.read_at.is_(None))
                                .values(read_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount


def notification_stats(actor: Member, notification_id: int) -> dict:
    """GET /admin/notifications/{id}: for the managers of its document, admins over its unit, and the
    secretary who sent a manual reminder; 404 for everyone else."""
    notification = db.session.get(Notification, notification_id)
    if notification is not None and notification.meeting_id is not None:
        if not _may_see_meeting_stats(actor, notification):
            raise not_found()
        return _stats(notification)
    doc = notification and notification.document_id and db.session.get(Document, notification.document_id)
    # The sender of a manual reminder, while they still may send one to that unit (a role taken back
    # takes the figures with it).
    sender = notification is not None and notification.kind == NotificationKind.MANUAL.value \
        and notification.created_by == actor.id \
        and has_role_over(actor, db.session.get(OrgUnit, notification.org_unit_id), BRIEFING_ROLES)
    if not doc or not (can_manage(actor, doc) or sender or has_role_over(actor, doc.owner_unit, ADMIN_ROLES)):
        raise not_found()
    return _stats(notification)


def _may_see_meeting_stats(actor: Member, notification: Notification) -> bool:
    """A meeting notification's figures: whoever may run the meeting (its unit's secretaries, committee
    over it, admins)."""
    from content.meetings import may_run

    meeting = db.session.get(Meeting, notification.meeting_id)
    return meeting is not None and may_run(actor, meeting)


def _stats(notification: Notification) -> dict:
    states = dict(db.session.execute(select(Delivery.state, func.count()).where(
        Delivery.notification_id == notification.id,
        Delivery.state.in_([DeliveryState.QUEUED.value, DeliveryState.SENDING.value, DeliveryState.RETRY.value,
                            DeliveryState.SKIPPED.value])).group_by(Delivery.state)).all())
    skipped = states.pop(DeliveryState.SKIPPED.value, 0)
    # Batches handed to FCM and not recorded yet (or left in doubt by a dead worker) count as in progress.
    in_progress = sum(states.values()) + db.session.scalar(
        select(func.coalesce(func.sum(PushBatch.size), 0)).where(PushBatch.notification_id == notification.id))
    return {"id": notification.id, "kind": notification.kind, "state": notification.state,
            "document_id": notification.document_id, "meeting_id": notification.meeting_id,
            "org_unit_id": notification.org_unit_id,
            "urgent": notification.urgent, "recipients": notification.recipients, "devices": notification.devices,
            "sent": notification.sent, "failed": notification.failed, "invalid_tokens": notification.invalid_tokens,
            "resent": notification.resent, "skipped": skipped, "in_progress": in_progress,
            "due_at": notification.due_at,
            "created_at": notification.created_at, "started_at": notification.started_at,
            "finished_at": notification.finished_at}
