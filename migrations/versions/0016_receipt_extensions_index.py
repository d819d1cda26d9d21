"""A partial index on the receipts that carry a deadline extension: past a document's deadline every
progress read subtracts the pending members whose extension still runs (content.progress
._extended_pending), and without it PostgreSQL read every receipt of the document to find the few
extended ones (3.5 million rows, ~600 ms, for a city-wide directive at 440,000 members).

Revision ID: 0016_receipt_extensions_index
Revises: 0015_meeting_month_stats
Create Date: 2026-12-05 08:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016_receipt_extensions_index'
down_revision = '0015_meeting_month_stats'
branch_labels = None
depends_on = None

WHERE = sa.text("extended_until IS NOT NULL")


def upgrade():
    op.create_index("ix_receipts_document_id_extended_until", "receipts", ["document_id", "extended_until"],
                    postgresql_where=WHERE, sqlite_where=WHERE)


def downgrade():
    op.drop_index("ix_receipts_document_id_extended_until", table_name="receipts")
