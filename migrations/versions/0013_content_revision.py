"""content_revision: one counter that every change of what readers see (documents, their audience, their
attachments, study series) moves, for the feed's and a document's conditional GETs (content/feed.py:
`stamp_columns`); an index on documents.deadline (the latest deadline passed, in the same stamps).

Triggers move it, so that no writer can forget to. On PostgreSQL a deferred constraint trigger moves it
once per transaction, at commit: the counter row is the last lock any writer takes, so it adds no edge
to the lock order (documents, receipts by member, counters by unit) and commits are counted in the
order they become visible, which a timestamp or a sequence taken earlier in the transaction would not
be. SQLite has one writer at a time: plain triggers do.

Revision ID: 0013_content_revision
Revises: 0012_push_batches
Create Date: 2026-12-05 04:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013_content_revision'
down_revision = '0012_push_batches'
branch_labels = None
depends_on = None

TABLES = ("documents", "document_audience", "attachments", "series")

_PG_FUNCTION = """
CREATE FUNCTION bump_content_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('handbook.content_bumped', true) = '1' THEN
        RETURN NULL;   -- once per transaction
    END IF;
    PERFORM set_config('handbook.content_bumped', '1', true);
    INSERT INTO content_revision (id, revision) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET revision = content_revision.revision + 1;
    RETURN NULL;
END $$"""


def upgrade():
    op.create_table('content_revision',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_revision'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index('ix_documents_deadline', ['deadline'], unique=False)
    op.execute("INSERT INTO content_revision (id, revision) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in TABLES:
            op.execute(f"CREATE CONSTRAINT TRIGGER content_revision_{table} AFTER INSERT OR UPDATE OR DELETE "
                       f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                       f"EXECUTE FUNCTION bump_content_revision()")
    else:
        for table in TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER content_revision_{table}_{event.lower()} AFTER {event} ON {table} "
                           "BEGIN INSERT INTO content_revision (id, revision) VALUES (1, 1) "
                           "ON CONFLICT (id) DO UPDATE SET revision = revision + 1; END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER content_revision_{table} ON {table}")
        op.execute("DROP FUNCTION bump_content_revision()")
    else:
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER content_revision_{table}_{event}")
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_deadline')
    op.drop_table('content_revision')
