"""Console text: Flask-Babel with English msgids and the Vietnamese catalogue as the default.

The catalogue is the committed `translations/vi/LC_MESSAGES/messages.po`, compiled in memory when first
needed (babel's own reader and writer): nothing to build, no binary .mo in the repository, and an
edited .po counts from the next start. The domain's catalogue (`handbook/translations`: the API's problem
texts, keyed by their code as msgctxt) is merged into it, so the console's gettext has them too. tests/test_console_i18n.py checks that every string of the
templates and views has a Vietnamese translation.

The language is the visitor's choice (the switch in the page header, kept in the session), Vietnamese
until they choose. The domain's own texts (problem titles, inbox texts) follow the same choice.
"""
from __future__ import annotations

from pathlib import Path

from babel.support import NullTranslations, Translations
from flask import Flask, has_request_context, request, session
from flask_babel import Babel, Domain

from handbook.i18n import catalogue as domain_catalogue
from handbook.i18n import compile_po

LANGUAGES = ("vi", "en")
DEFAULT = "vi"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def load_catalogue(lang: str) -> NullTranslations:
    """The console's catalogue with the domain's (the API's problem texts) merged in: one gettext domain."""
    translations = compile_po(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", lang)
    if isinstance(translations, Translations):
        translations.merge(domain_catalogue(lang))
    return translations


class _PoDomain(Domain):
    def get_translations(self):
        from flask_babel import get_locale

        lang = str(get_locale() or DEFAULT) if has_request_context() else DEFAULT
        if lang not in self.cache:
            self.cache[lang] = load_catalogue(lang)
        return self.cache[lang]


def current_language() -> str:
    if not has_request_context():
        return DEFAULT
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT


def init_app(app: Flask) -> None:
    babel = Babel()
    babel.init_app(app, default_locale=DEFAULT, locale_selector=current_language,
                   default_timezone=app.config["HANDBOOK_TIMEZONE"])
    babel.domain_instance = _PoDomain()


def align_domain_language() -> None:
    """Make `handbook.i18n.language()` (problem texts, inbox texts) answer in the console's language."""
    request.environ["HTTP_ACCEPT_LANGUAGE"] = current_language()
    request.__dict__.pop("accept_languages", None)
