"""progress_daily: a document's progress per unit subtree at the end of each local day (the
acknowledgements-over-time chart), and progress_daily_runs (which days were taken, for idempotence)

Revision ID: 0010_progress_daily
Revises: 0009_quizzes
Create Date: 2026-12-05 03:50:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010_progress_daily'
down_revision = '0009_quizzes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('progress_daily',
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('opened', sa.Integer(), nullable=False),
    sa.Column('acknowledged', sa.Integer(), nullable=False),
    sa.Column('exempt', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_progress_daily_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_units.id'], name=op.f('fk_progress_daily_org_unit_id_org_units')),
    sa.PrimaryKeyConstraint('document_id', 'org_unit_id', 'day', name=op.f('pk_progress_daily'))
    )
    op.create_table('progress_daily_runs',
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_progress_daily_runs_document_id_documents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id', 'day', name=op.f('pk_progress_daily_runs'))
    )


def downgrade():
    op.drop_table('progress_daily_runs')
    op.drop_table('progress_daily')
