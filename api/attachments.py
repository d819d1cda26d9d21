"""Placeholder: filled in by the content issue."""
from __future__ import annotations

from api.common import Blueprint

PREFIX = ""
blp = Blueprint("attachments", __name__)
