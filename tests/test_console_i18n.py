"""The console's Vietnamese catalogue is complete: every string marked for translation in console/
(views, forms, templates) has a Vietnamese text, with the same placeholders; nothing stale is kept."""
from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "console" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> set:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT / "console"), method_map, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_every_console_string_has_a_vietnamese_translation_with_its_placeholders():
    with PO.open("rb") as f:
        catalogue = read_po(f, locale="vi")
    translated = {(m.id if isinstance(m.id, str) else tuple(m.id)): m for m in catalogue if m.id}
    wanted = extracted()
    assert wanted, "nothing extracted"
    missing = sorted(str(m) for m in wanted - set(translated))
    assert not missing, f"add these to {PO.relative_to(ROOT)}: {missing}"
    stale = sorted(str(m) for m in set(translated) - wanted)
    assert not stale, f"no longer used, remove from {PO.relative_to(ROOT)}: {stale}"
    for key, message in translated.items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"empty translation for {key!r}"
        source = key if isinstance(key, str) else key[0]
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source)), (key, text)
        assert not message.fuzzy, key


def test_the_catalogue_compiles_and_translates():
    from console.i18n import load_catalogue

    assert load_catalogue("vi").gettext("Sign in") == "Đăng nhập"
    assert load_catalogue("vi").ngettext("%(num)d day left", "%(num)d days left", 3) % {"num": 3} == "Còn 3 ngày"
