"""Documents, versions, attachments, audience, search and acknowledgements.

Modules: models (tables), access (who reads, who manages), documents (publishing workflow, versions),
feed (reading, delta sync, search, series, badge), search (FTS5 / tsvector), sanitize (HTML allow-list),
attachments and storage (files).
"""
from __future__ import annotations


def member_summary(member) -> dict:
    """The badge counts of `GET /me/summary`."""
    from content.feed import member_summary as summary

    return summary(member)
