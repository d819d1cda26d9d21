"""push_batches: the fan-out's write-ahead record is one row per batch sent to FCM (not one UPDATE per
device); deliveries are written once, with the outcome

Revision ID: 0012_push_batches
Revises: 0011_import_jobs
Create Date: 2026-12-05 03:50:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0012_push_batches'
down_revision = '0011_import_jobs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('push_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('chunk_id', sa.Integer(), nullable=False),
    sa.Column('claim', sa.Integer(), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('retry', sa.Boolean(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('devices', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chunk_id'], ['push_chunks.id'], name=op.f('fk_push_batches_chunk_id_push_chunks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], name=op.f('fk_push_batches_notification_id_notifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_batches'))
    )
    with op.batch_alter_table('push_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_batches_chunk_id'), ['chunk_id'], unique=False)


def downgrade():
    # A batch still open names devices in doubt: before the table goes, they become deliveries left
    # `sending` under its claim, which the previous code sends again (the same guarantee).
    bind = op.get_bind()
    batches = sa.table('push_batches', sa.column('notification_id'), sa.column('chunk_id'), sa.column('claim'),
                       sa.column('tries'), sa.column('devices', sa.JSON()), sa.column('created_at'))
    deliveries = sa.table('deliveries', sa.column('notification_id'), sa.column('device_id'), sa.column('chunk_id'),
                          sa.column('member_id'), sa.column('state'), sa.column('attempts'), sa.column('claim'),
                          sa.column('updated_at'))
    for n, chunk, claim, tries, devices, at in bind.execute(sa.select(
            batches.c.notification_id, batches.c.chunk_id, batches.c.claim, batches.c.tries, batches.c.devices,
            batches.c.created_at)).all():
        for device_id, member_id in devices:
            exists = bind.execute(sa.select(sa.func.count()).select_from(deliveries).where(
                deliveries.c.notification_id == n, deliveries.c.device_id == device_id)).scalar()
            if exists:
                bind.execute(deliveries.update().where(deliveries.c.notification_id == n,
                                                       deliveries.c.device_id == device_id)
                             .values(state='sending', claim=claim, attempts=deliveries.c.attempts + tries))
            else:
                bind.execute(deliveries.insert().values(notification_id=n, device_id=device_id, chunk_id=chunk,
                                                        member_id=member_id, state='sending', attempts=tries,
                                                        claim=claim, updated_at=at))
    with op.batch_alter_table('push_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_batches_chunk_id'))

    op.drop_table('push_batches')
