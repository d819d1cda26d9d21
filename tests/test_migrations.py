"""Every schema change is a migration: the migrated database matches the models exactly."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from content.search import is_search_table
from handbook.extensions import db


def test_models_match_migrations(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, type_, _: not (type_ == "table" and is_search_table(name))})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_subtree_path_column_is_byte_ordered_on_postgresql(app, backend):
    if backend != "postgresql":
        return
    collation = db.session.execute(db.text(
        "SELECT collation_name FROM information_schema.columns "
        "WHERE table_name = 'org_units' AND column_name = 'path'")).scalar()
    assert collation == "C"
