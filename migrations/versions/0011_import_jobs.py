"""import_jobs: large imports uploaded in the console run as background jobs (the file until it has run,
progress, the result kept for later viewing)

Revision ID: 0011_import_jobs
Revises: 0010_progress_daily
Create Date: 2026-12-05 04:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0011_import_jobs'
down_revision = '0010_progress_daily'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('import_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['members.id'], name=op.f('fk_import_jobs_actor_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )


def downgrade():
    op.drop_table('import_jobs')
