"""Everything that falls due at an instant: scheduled publications now; reminders and escalations next.

The worker (Celery beat) calls `run_due()` continuously; `flask --app wsgi handbook push run-due --at T`
calls it once. Each step is idempotent, so running it twice for the same instant does nothing more.
"""
from __future__ import annotations

from datetime import datetime

from content.documents import publish_due


def run_due(at: datetime | None = None) -> list[str]:
    """Do what is due at `at` (default now); one line per thing done."""
    lines = []
    for doc in publish_due(at):
        lines.append(f"published document {doc.id}: {doc.number + ' ' if doc.number else ''}{doc.title}")
    return lines
