"""Every schema change is a migration: the migrated database matches the models exactly."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from content.search import is_search_table
from handbook.extensions import db
from tests.conftest import make_app


def schema_diff() -> list:
    """What separates the migrated database from the models (the search index tables aside)."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, type_, _: not (type_ == "table" and is_search_table(name))})
        return compare_metadata(context, db.metadata)


def test_models_match_migrations(app):
    assert schema_diff() == []


def test_subtree_path_column_is_byte_ordered_on_postgresql(app, backend):
    if backend != "postgresql":
        pytest.skip("column collations are PostgreSQL's (SQLite compares bytes anyway)")
    collation = db.session.execute(db.text(
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_name = 'org_units' AND column_name = 'path'")).scalar()
    assert collation == "C"


# --- upgrade and downgrade, on a database of their own --------------------------------------------

REVISIONS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "migrations" / "versions").glob("0*.py"))


@pytest.fixture()
def scratch_url(backend, database_url, tmp_path):
    """A new, empty database beside the suite's (which stays at head for the other tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_migrations"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_every_migration_downgrades_and_upgrades_again_with_data_in_the_tables(scratch_url):
    """The stairway: each revision goes up, down and up again; then the whole chain goes down to an
    empty schema while the tables hold the demo's data, and back up to a schema equal to the models."""
    from flask_migrate import downgrade, upgrade

    from content.demo import load_demo_documents
    from content.quiz_demo import load_demo_quizzes
    from handbook.demo import load_demo

    assert REVISIONS[0] == "0001_foundation" and len(REVISIONS) >= 7
    app = make_app(scratch_url)
    with app.app_context():
        try:
            previous = "base"
            for revision in REVISIONS:
                upgrade(revision=revision)
                after_up = _tables(db.engine)
                downgrade(revision=previous)
                upgrade(revision=revision)
                assert _tables(db.engine) == after_up, revision
                previous = revision

            load_demo(60, seed=7)
            load_demo_documents()
            load_demo_quizzes(sample=10)
            db.session.commit()
            assert db.session.execute(text("SELECT count(*) FROM members")).scalar() == 60
            for table in ("documents", "progress_counters", "notifications", "quiz_attempts", "quiz_unit_stats"):
                assert db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0, table
            db.session.remove()

            downgrade(revision="base")
            assert _tables(db.engine) - {"document_fts"} == set()  # nothing left behind
            if db.engine.dialect.name == "postgresql":
                leftovers = db.session.execute(text(
                    "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = 'public' AND t.typtype = 'e'")).scalars().all()
                assert leftovers == []  # no enum type outlives its table

            upgrade()
            assert schema_diff() == []
        finally:
            db.session.remove()
            db.engine.dispose()
