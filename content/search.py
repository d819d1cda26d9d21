"""Full-text search that a Vietnamese reader expects: accents, case and đ/d do not matter.

Text is folded in Python (`handbook.text.fold`: NFD, drop combining marks, đ→d, casefold) and cut into
plain alphanumeric tokens before it reaches either engine, so both see the same clean words and no
query syntax ever comes from the user:

- SQLite: an FTS5 table `document_fts(number, title, summary, body)` keyed by the document id, ranked
  by bm25 with column weights 20 / 10 / 3 / 1.
- PostgreSQL: a table `document_search(document_id, tsv)` with a GIN index; the tsvector uses the
  `simple` configuration (no stemming, no stop words: Vietnamese has neither) and weights A/B/C/D for
  number / title / summary and tags / body, ranked by ts_rank.

A document that carries the number ranks above one that only cites it; the title (with the series'
title for a lesson) above the summary and tags, and those above the body.

Every query word must match (AND); the last one also matches as a prefix, for type-ahead. The two
tables are created by migration 0002 with dialect-specific DDL and kept out of the SQLAlchemy metadata.
"""
from __future__ import annotations

import html
import re

import nh3
from sqlalchemy import Float, Integer, text

from handbook.extensions import db
from handbook.text import fold

SQLITE_TABLE = "document_fts"
POSTGRES_TABLE = "document_search"
MAX_QUERY_TOKENS = 32

_TOKEN = re.compile(r"[^\W_]+")

def is_search_table(name: str) -> bool:
    """Tables (and FTS5 shadow tables) that the migrations manage outside the model metadata."""
    return name == POSTGRES_TABLE or name.startswith(SQLITE_TABLE)


def tokens(value: str | None) -> list[str]:
    """'Chỉ thị số 24-CT/TU' → ['chi', 'thi', 'so', '24', 'ct', 'tu']."""
    return _TOKEN.findall(fold(value or ""))


def html_to_text(body_html: str) -> str:
    """The words of an HTML body, tags dropped and entities decoded."""
    return html.unescape(nh3.clean(re.sub(r"<(br|/p|/h\d|/li|/td|/th|/tr|/div)\b", r" \g<0>", body_html or ""),
                                   tags=set()))


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def index_document(doc, series_title: str | None = None) -> None:
    """(Re)index one document, in the caller's transaction: its number; its title (and its series'
    title); its summary and tags; its body."""
    if series_title is None and doc.series_id is not None:
        from content.models import Series

        series_title = db.session.get(Series, doc.series_id).title
    params = {
        "id": doc.id,
        "number": " ".join(tokens(doc.number)),
        "title": " ".join(tokens(doc.title) + tokens(series_title)),
        "summary": " ".join(tokens(doc.summary) + [t for tag in doc.tags or [] for t in tokens(tag)]),
        "body": " ".join(tokens(html_to_text(doc.body_html))),
    }
    if _dialect() == "postgresql":
        db.session.execute(text(
            f"INSERT INTO {POSTGRES_TABLE} (document_id, tsv) VALUES (:id, "
            "setweight(to_tsvector('simple', :number), 'A') || setweight(to_tsvector('simple', :title), 'B')"
            " || setweight(to_tsvector('simple', :summary), 'C') || setweight(to_tsvector('simple', :body), 'D')) "
            "ON CONFLICT (document_id) DO UPDATE SET tsv = EXCLUDED.tsv"), params)
    else:
        db.session.execute(text(f"DELETE FROM {SQLITE_TABLE} WHERE rowid = :id"), params)
        db.session.execute(text(
            f"INSERT INTO {SQLITE_TABLE} (rowid, number, title, summary, body) "
            "VALUES (:id, :number, :title, :summary, :body)"), params)


def unindex_document(document_id: int) -> None:
    table, key = (POSTGRES_TABLE, "document_id") if _dialect() == "postgresql" else (SQLITE_TABLE, "rowid")
    db.session.execute(text(f"DELETE FROM {table} WHERE {key} = :id"), {"id": document_id})


def query_tokens(q: str) -> list[str]:
    return tokens(q)[:MAX_QUERY_TOKENS]


def matches(q: str):
    """A subquery of (document_id, score) for documents matching every word of `q`; lower score is better.

    Returns None when `q` has no searchable word (the caller then matches nothing).
    """
    words = query_tokens(q)
    if not words:
        return None
    if _dialect() == "postgresql":
        # ts_rank adds up every occurrence, so a body repeating the words could outrank a title that has
        # them once. Rank first by the best field in which all the words occur (the same query limited
        # to weights A, AB, ABC), then by ts_rank within that tier.
        def query(weights: str = "") -> str:
            return " & ".join([f"{w}:{weights}" if weights else w for w in words[:-1]]
                              + [f"{words[-1]}:*{weights}"])

        stmt = text(
            f"SELECT document_id, -(CASE WHEN tsv @@ to_tsquery('simple', :a) THEN 3 "
            "WHEN tsv @@ to_tsquery('simple', :ab) THEN 2 WHEN tsv @@ to_tsquery('simple', :abc) THEN 1 "
            "ELSE 0 END + ts_rank(tsv, to_tsquery('simple', :tsq), 1)) AS score "
            f"FROM {POSTGRES_TABLE} WHERE tsv @@ to_tsquery('simple', :tsq)"
        ).bindparams(tsq=query(), a=query("A"), ab=query("AB"), abc=query("ABC"))
    else:
        fts = " ".join([f'"{w}"' for w in words[:-1]] + [f'"{words[-1]}"*'])
        stmt = text(
            f"SELECT rowid AS document_id, bm25({SQLITE_TABLE}, 20.0, 10.0, 3.0, 1.0) AS score FROM {SQLITE_TABLE} "
            f"WHERE {SQLITE_TABLE} MATCH :fts").bindparams(fts=fts)
    return stmt.columns(document_id=Integer, score=Float).subquery("hits")
