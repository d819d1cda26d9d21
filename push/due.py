"""Everything that falls due at an instant: scheduled publications, deadlines that close (progress frozen
for the compliance view); reminders and escalations next.

The worker (Celery beat) calls `run_due()` continuously; `flask --app wsgi handbook push run-due --at T`
calls it once. Each step is idempotent, so running it twice for the same instant does nothing more.
"""
from __future__ import annotations

from datetime import datetime

from content.documents import publish_due
from content.progress import close_due
from handbook.timeutil import utcnow


def _name(doc) -> str:
    return f"{doc.id}: {doc.number + ' ' if doc.number else ''}{doc.title}"


def run_due(at: datetime | None = None) -> list[str]:
    """Do what is due at `at` (default now); one line per thing done."""
    at = at or utcnow()
    lines = [f"published document {_name(doc)}" for doc in publish_due(at)]
    lines += [f"closed document {_name(doc)} (progress frozen at its deadline)" for doc in close_due(at)]
    return lines
