"""refresh_tokens.replaced_by: the refresh token issued when this one was used, so that a retry of a
refresh whose answer was lost gets the same pair again within REFRESH_GRACE_SECONDS (handbook/auth.py)

Revision ID: 0014_refresh_grace
Revises: 0013_content_revision
Create Date: 2026-12-05 05:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014_refresh_grace'
down_revision = '0013_content_revision'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaced_by', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('replaced_by')
