"""Vietnamese text helpers: NFC storage, accent/case/đ-insensitive folding, phone numbers."""
from __future__ import annotations

import re
import unicodedata

_FOLD_EXTRA = str.maketrans({"đ": "d", "Đ": "d"})

# Lone surrogates cannot be stored or hashed; NUL and other C0 controls (but tab/newline/CR) have no place
# in any text and PostgreSQL rejects NUL outright. Every string from outside (bodies, queries, cursors)
# is checked against this before it can reach the database.
BAD_CHARACTERS = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same set as an OpenAPI (ECMA-262) pattern for input strings: none of those characters.
NO_BAD_CHARACTERS_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"


def has_bad_characters(value: str) -> bool:
    return BAD_CHARACTERS.search(value) is not None


def nfc(value: str | None) -> str | None:
    """Normalise to NFC and trim; None stays None."""
    if value is None:
        return None
    return unicodedata.normalize("NFC", value).strip()


def fold(value: str) -> str:
    """Lower-case, strip diacritics and map đ→d: 'Đống Đa' → 'dong da'."""
    decomposed = unicodedata.normalize("NFD", value.translate(_FOLD_EXTRA))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.casefold().split())


_PHONE_JUNK = re.compile(r"[\s.\-()]")
_PHONE_OK = re.compile(r"^0\d{9,10}$")


def normalise_phone(value: str | None) -> str | None:
    """Canonical Vietnamese phone number ('0912345678'); +84/84 prefixes become 0.

    Returns None for an empty value and raises ValueError for something that is not a phone number.
    """
    if value is None:
        return None
    raw = _PHONE_JUNK.sub("", value)
    if not raw:
        return None
    if raw.startswith("+84"):
        raw = "0" + raw[3:]
    elif raw.startswith("84") and len(raw) in (11, 12):
        raw = "0" + raw[2:]
    if not _PHONE_OK.match(raw):
        raise ValueError(value)
    return raw
