"""The benchmark database: created from scratch, loaded by the project's own commands, then scaled up
with raw SQL (documents, acknowledgement receipts, devices) and made exact with `handbook recount`."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Json

DOCUMENTS = 200             # published documents in all, the demo's included
CITY_SHARE = 0.4            # of the added documents, how many go to the whole city
RECEIPTS_PER_MEMBER = 23    # ≈ 10 million receipts at 440,000 members
HISTORY_DAYS = 300          # the added documents were published over this many days
KINDS = ("directive", "resolution", "conclusion", "plan", "guidance", "directive", "plan", "notice")
STATEMENT_TIMEOUT_MS = 30 * 60 * 1000
DEMO_CARDS = ("01000001", "01000002", "01000003", "01000004")   # handbook/demo.py's demo accounts
ADMIN_CARD = DEMO_CARDS[0]                                          # admin and publisher over the city


def connect(url: str, *, autocommit: bool = True, timeout_ms: int = STATEMENT_TIMEOUT_MS) -> psycopg.Connection:
    """A psycopg connection with a statement timeout, so no step can hang forever."""
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=10,
                           options=f"-c statement_timeout={timeout_ms}")


def recreate_database(url: str) -> None:
    """Drop and create the database named in `url` (connecting to the server's `postgres` database)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with connect(admin_url, timeout_ms=120_000) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    parts = urlsplit(url)
    with connect(urlunsplit(parts._replace(path="/postgres")), timeout_ms=120_000) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parts.path.lstrip("/"))))


# --- documents -------------------------------------------------------------------------------------

def add_documents(conn: psycopg.Connection, rng: random.Random) -> int:
    """Published documents up to DOCUMENTS in all: CITY_SHARE to the whole city, the rest to one upper
    unit each (districts and blocs in turn), with audience, version 1 and search rows. Returns how many."""
    published = conn.execute("SELECT count(*) FROM documents WHERE status = 'published'").fetchone()[0]
    count = max(0, DOCUMENTS - published)
    root_id, root_name = conn.execute("SELECT id, name FROM org_units WHERE depth = 0").fetchone()
    uppers = conn.execute("SELECT id, name FROM org_units WHERE depth = 1 ORDER BY path").fetchall()
    body = conn.execute("SELECT body_html FROM documents WHERE status = 'published' "
                        "ORDER BY length(body_html) DESC LIMIT 1").fetchone()[0]
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        city = rng.random() < CITY_SHARE
        owner_id, owner_name = (root_id, root_name) if city else uppers[i % len(uppers)]
        published_at = now - timedelta(days=HISTORY_DAYS * i / max(count, 1), hours=rng.randint(1, 10))
        deadline = published_at + timedelta(days=14)
        requires_ack = kind != "notice"
        rows.append((kind, f"{100 + i}-BENCH/{'TU' if city else 'QU'}",
                     f"Văn bản số {100 + i} của {owner_name} về triển khai nhiệm vụ trọng tâm năm 2024",
                     f"Tóm tắt văn bản {100 + i}: yêu cầu các chi bộ quán triệt đến từng đảng viên.",
                     body, owner_name, published_at.date(), Json(["bench"]), requires_ack, 14, "published",
                     owner_id, 0, 1, 1, published_at, deadline if requires_ack else None, published_at,
                     deadline if requires_ack and deadline < now else None, 1, published_at, published_at))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE new_docs (id int) ON COMMIT DROP")
        cur.executemany(
            "WITH d AS (INSERT INTO documents (kind, number, title, summary, body_html, issuing_body, issued_on,"
            " tags, requires_ack, ack_days, status, owner_unit_id, roles_mask, version, ack_version, published_at,"
            " deadline, sync_at, closed_at, created_by, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id) INSERT INTO new_docs SELECT id FROM d", rows)
        cur.execute("INSERT INTO document_audience (org_unit_id, document_id) "
                    "SELECT d.owner_unit_id, d.id FROM documents d JOIN new_docs n ON n.id = d.id")
        cur.execute("INSERT INTO document_versions (document_id, version, number, title, summary, body_html,"
                    " issuing_body, issued_on, tags, reack, created_by, created_at) "
                    "SELECT d.id, 1, d.number, d.title, d.summary, d.body_html, d.issuing_body, d.issued_on,"
                    " d.tags, false, d.created_by, d.published_at FROM documents d JOIN new_docs n ON n.id = d.id")
        cur.execute("INSERT INTO document_search (document_id, tsv) "
                    "SELECT d.id, setweight(to_tsvector('simple', lower(d.number)), 'A')"
                    " || setweight(to_tsvector('simple', lower(d.title)), 'B') FROM documents d"
                    " JOIN new_docs n ON n.id = d.id")
    return count


# --- receipts and devices --------------------------------------------------------------------------

# (document, audience subtree) of published documents with one audience unit and no role filter: every
# (document, member) pair below is then unique.
_AUDIENCE = """
    SELECT d.id AS document_id, d.requires_ack, d.published_at, LEAST(COALESCE(d.deadline, now()), now()) AS until,
           au.path AS lo, left(au.path, -1) || '0' AS hi
    FROM documents d JOIN document_audience a ON a.document_id = d.id JOIN org_units au ON au.id = a.org_unit_id
    WHERE d.status = 'published' AND d.roles_mask = 0
      AND (SELECT count(*) FROM document_audience x WHERE x.document_id = d.id) = 1
"""


def add_receipts(conn: psycopg.Connection, members: int) -> int:
    """About RECEIPTS_PER_MEMBER receipts per member, drawn at random over the pairs (document, audience
    member): acknowledged in the app between publication and the deadline (opened only, for documents
    that need no acknowledgement). Indexes are dropped during the insert and rebuilt after."""
    pairs = conn.execute(f"""
        SELECT COALESCE(sum((SELECT count(*) FROM members m JOIN org_units u ON u.id = m.org_unit_id
                             WHERE m.active AND u.path >= aud.lo AND u.path < aud.hi)), 0)
        FROM ({_AUDIENCE}) aud""").fetchone()[0]
    share = min(1.0, RECEIPTS_PER_MEMBER * members / max(int(pairs), 1))
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET synchronous_commit = off")
    with conn.transaction():
        conn.execute("ALTER TABLE receipts DROP CONSTRAINT pk_receipts")
        conn.execute("DROP INDEX ix_receipts_member_id_document_id")
        conn.execute("CREATE TEMP TABLE demo_receipts ON COMMIT DROP AS SELECT * FROM receipts")
        conn.execute("DELETE FROM receipts")
        conn.execute(f"""
            INSERT INTO receipts (document_id, member_id, opened_at, acknowledged_at, acknowledged_version,
                                  method, recorded_by, recorded_at, platform)
            SELECT s.document_id, s.member_id, s.at - interval '3 minutes',
                   CASE WHEN s.requires_ack THEN s.at END, CASE WHEN s.requires_ack THEN 1 END,
                   CASE WHEN s.requires_ack THEN 'app' END, CASE WHEN s.requires_ack THEN s.member_id END,
                   CASE WHEN s.requires_ack THEN s.at END, 'android'
            FROM (SELECT aud.document_id, aud.requires_ack, m.id AS member_id,
                         aud.published_at + random() * (aud.until - aud.published_at) AS at
                  FROM ({_AUDIENCE}) aud
                  JOIN org_units u ON u.path >= aud.lo AND u.path < aud.hi
                  JOIN members m ON m.org_unit_id = u.id AND m.active
                  WHERE random() < %s) s""", (share,))
        # The demo's own receipts (quizzes, meetings) stay: a drawn one for the same pair goes.
        conn.execute("""DELETE FROM receipts r USING demo_receipts d
                        WHERE r.document_id = d.document_id AND r.member_id = d.member_id""")
        conn.execute("INSERT INTO receipts SELECT * FROM demo_receipts")
        conn.execute("ALTER TABLE receipts ADD CONSTRAINT pk_receipts PRIMARY KEY (document_id, member_id)")
        conn.execute("CREATE INDEX ix_receipts_member_id_document_id ON receipts (member_id, document_id)")
    return conn.execute("SELECT count(*) FROM receipts").fetchone()[0]


def add_devices(conn: psycopg.Connection) -> int:
    """One Android device per member (fid 'fid-<member id>')."""
    cur = conn.execute("INSERT INTO devices (member_id, fid, platform, app_version, locale, created_at, last_seen_at)"
                       " SELECT id, 'fid-' || id, 'android', '1.0.0', 'vi', now(), now() FROM members"
                       " WHERE active ON CONFLICT DO NOTHING")
    return cur.rowcount


# --- quiz results (issue 17) -----------------------------------------------------------------------

QUIZ_TAKERS = 0.3           # share of members with a result in the city-wide quiz
QUIZ_TAKERS_MAX = 150_000   # and at most this many rows (the builder stays bounded)


def city_quiz(conn: psycopg.Connection) -> int | None:
    """The demo's city-wide quiz (on Chỉ thị 24-CT/TU, required to acknowledge)."""
    row = conn.execute("SELECT id FROM quizzes WHERE required_for_ack ORDER BY id LIMIT 1").fetchone()
    return row[0] if row else None


def add_quiz_results(conn: psycopg.Connection) -> int:
    """Best results of QUIZ_TAKERS of the members in the city-wide quiz (scores in steps of 10 %, passed
    at 80 %, 1-3 attempts, 1-9 minutes): the rows `quiz_unit_stats` is recounted from (`handbook
    recount-quizzes`). The attempts themselves (evidence) are not generated: no figure reads them."""
    quiz = city_quiz(conn)
    if quiz is None:
        return 0
    conn.execute("SELECT setseed(0.17)")
    cur = conn.execute("""
        INSERT INTO quiz_results (quiz_id, member_id, attempts, best_score, best_duration, passed, passed_version,
                                  last_submitted_at)
        SELECT %s, s.id, 1 + (s.id %% 3), s.score, 60 + (s.id %% 480), s.score >= 8000,
               CASE WHEN s.score >= 8000 THEN 1 END, now() - (s.id %% 20) * interval '1 day'
        FROM (SELECT id, (floor(random() * 11) * 1000)::int AS score FROM members
              WHERE active AND random() < %s LIMIT %s) s
        ON CONFLICT DO NOTHING""", (quiz, QUIZ_TAKERS, QUIZ_TAKERS_MAX))
    return cur.rowcount


def add_quiz_question_stats(conn: psycopg.Connection) -> int:
    """Per (question, unit) of the city-wide quiz: answered by the unit's takers, fully right by a share
    that differs by question (so there are hardest questions). Run after `recount-quizzes`."""
    quiz = city_quiz(conn)
    if quiz is None:
        return 0
    cur = conn.execute("""
        INSERT INTO quiz_question_stats (quiz_id, question_id, org_unit_id, l1_id, l2_id, l3_id, answered, correct)
        SELECT s.quiz_id, q.id, s.org_unit_id, s.l1_id, s.l2_id, s.l3_id, s.took,
               floor(s.took * (0.35 + 0.6 * ((q.id %% 7) / 7.0)))::int
        FROM quiz_unit_stats s JOIN quiz_questions q ON q.quiz_id = s.quiz_id AND NOT q.retired
        WHERE s.quiz_id = %s
        ON CONFLICT (quiz_id, question_id, org_unit_id)
        DO UPDATE SET answered = quiz_question_stats.answered + excluded.answered,
                      correct = quiz_question_stats.correct + excluded.correct""", (quiz,))
    return cur.rowcount


def freeze_closed(conn: psycopg.Connection) -> int:
    """Documents whose deadline passed were marked closed: give them the snapshot `run-due` would have
    taken (every generated acknowledgement falls before the deadline, so it equals the live counters)."""
    cols = "document_id, org_unit_id, l1_id, l2_id, l3_id, total, opened, acknowledged, exempt"
    cur = conn.execute(f"INSERT INTO progress_snapshots ({cols}) SELECT {cols} FROM progress_counters c "
                       "WHERE c.document_id IN (SELECT id FROM documents WHERE closed_at IS NOT NULL)")
    return cur.rowcount


def vacuum(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM ANALYZE")


# --- who the load generator plays ------------------------------------------------------------------

@dataclass
class Cast:
    """The members the load generator logs in as, and the documents and units the figures ask about."""

    members: list[tuple[int, str]]      # (id, card number) of sampled ordinary members
    admin_card: str                     # admin over the city (demo account 01000001)
    city_documents: list[int]           # published city-wide documents needing acknowledgement, newest first
    root_id: int
    district_id: int                    # the upper unit with the most members
    branch_id: int                      # that unit's largest branch


def choose_cast(conn: psycopg.Connection, count: int, password_hash: str) -> Cast:
    """Sample `count` members (deterministically) and give them and the demo accounts `password_hash`."""
    conn.execute("SELECT setseed(0.42)")
    members = conn.execute("SELECT id, card_number FROM (SELECT id, card_number, random() AS r FROM members"
                           " WHERE active AND id > 4) s ORDER BY r LIMIT %s", (count,)).fetchall()
    conn.execute("UPDATE members SET password_hash = %s WHERE id = ANY(%s) OR card_number = ANY(%s)",
                 (password_hash, [m[0] for m in members], list(DEMO_CARDS)))
    root_id = conn.execute("SELECT id FROM org_units WHERE depth = 0").fetchone()[0]
    city_documents = [r[0] for r in conn.execute(
        "SELECT d.id FROM documents d JOIN document_audience a ON a.document_id = d.id AND a.org_unit_id = %s"
        " WHERE d.status = 'published' AND d.requires_ack ORDER BY d.published_at DESC", (root_id,))]
    district_id = conn.execute(
        "SELECT up.id FROM org_units up JOIN org_units u ON u.path >= up.path AND u.path < left(up.path, -1) || '0'"
        " JOIN members m ON m.org_unit_id = u.id WHERE up.depth = 1 GROUP BY up.id ORDER BY count(*) DESC, up.id"
        " LIMIT 1").fetchone()[0]
    branch_id = conn.execute(
        "SELECT u.id FROM org_units up JOIN org_units u ON u.path >= up.path AND u.path < left(up.path, -1) || '0'"
        " JOIN members m ON m.org_unit_id = u.id WHERE up.id = %s AND u.kind = 'branch'"
        " GROUP BY u.id ORDER BY count(*) DESC, u.id LIMIT 1", (district_id,)).fetchone()[0]
    return Cast(members, ADMIN_CARD, city_documents, root_id, district_id, branch_id)


def unacknowledged_pairs(conn: psycopg.Connection, member_ids: list[int], limit: int) -> list[tuple[int, int, int]]:
    """(member id, document id, version) for documents in the members' audience that need acknowledgement
    and that they have not acknowledged, shuffled."""
    return conn.execute(f"""
        SELECT m.id, aud.document_id, d.version
        FROM members m JOIN org_units u ON u.id = m.org_unit_id
        JOIN ({_AUDIENCE}) aud ON u.path >= aud.lo AND u.path < aud.hi AND aud.requires_ack
        JOIN documents d ON d.id = aud.document_id
        LEFT JOIN receipts r ON r.document_id = aud.document_id AND r.member_id = m.id
        WHERE m.id = ANY(%s) AND r.acknowledged_version IS NULL
          -- the quiz and reading-time gates would refuse them (409): not acknowledgements
          AND d.min_read_seconds IS NULL AND d.ack_quiz_id IS NULL
        ORDER BY md5(m.id::text || '-' || aud.document_id::text) LIMIT %s""", (member_ids, limit)).fetchall()


def holder_unit_codes(conn: psycopg.Connection) -> list[str]:
    """Codes of the units that hold members (branches and chi bộ cơ sở)."""
    return [r[0] for r in conn.execute(
        "SELECT code FROM org_units WHERE id IN (SELECT DISTINCT org_unit_id FROM members) ORDER BY path")]


def subtree_bounds(conn: psycopg.Connection, unit_id: int) -> tuple[str, str]:
    path = conn.execute("SELECT path FROM org_units WHERE id = %s", (unit_id,)).fetchone()[0]
    return path, path[:-1] + "0"
