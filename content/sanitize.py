"""Document bodies are HTML from publishers' editors; readers get only what is safe to render.

nh3 (ammonia) parses the HTML like a browser and keeps an allow-list: headings, paragraphs, lists,
tables, emphasis, links and images. Scripts, styles, event handlers, `javascript:`/`data:` URLs, iframes
and forms go. Links get `rel="noopener noreferrer"`. Text is stored in NFC.
"""
from __future__ import annotations

import unicodedata

import nh3

TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "div", "span", "blockquote", "pre", "code",
    "strong", "b", "em", "i", "u", "s", "sub", "sup", "small", "mark",
    "ul", "ol", "li", "dl", "dt", "dd",
    "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
    "a", "img", "figure", "figcaption",
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def clean_html(value: str | None) -> str:
    if not value:
        return ""
    value = unicodedata.normalize("NFC", value)
    return nh3.clean(value, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel="noopener noreferrer", strip_comments=True).strip()
