"""Documents, versions, attachments, audience, search and acknowledgements (issues 3 and 4).

Until documents exist, a member has nothing pending or overdue; push/ adds unread notifications.
"""
from __future__ import annotations


def member_summary(member) -> dict:
    """The badge counts of `GET /me/summary`: zero until content and the inbox exist."""
    return {"pending": 0, "overdue": 0, "unread_notifications": 0}
