"""meeting_month_counters: the meetings closed per (unit, local month), kept by the close, so that the
monthly roll-up of a whole city reads O(units) counter rows, not the month's meetings (issue 15).
Backfilled from the meetings already closed. An index on org_units.updated_at: the roll-up's version
of the tree (content/meetings.py) is read from it.

Revision ID: 0015_meeting_month_stats
Revises: 0014_refresh_grace
Create Date: 2026-12-05 07:00:00

"""
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa


revision = '0015_meeting_month_stats'
down_revision = '0014_refresh_grace'
branch_labels = None
depends_on = None


def _zone() -> ZoneInfo:
    try:
        from flask import current_app
        return ZoneInfo(current_app.config["HANDBOOK_TIMEZONE"])
    except (RuntimeError, KeyError):
        return ZoneInfo("Asia/Ho_Chi_Minh")


def _backfill(table, versions) -> None:
    """One row per (unit, local month of the start) from the closed meetings, as content.meetings counts
    them (written out here: a migration must not depend on code that may change after it)."""
    conn = op.get_bind()
    zone = _zone()
    rows: dict[tuple[int, int], dict] = {}
    result = conn.execute(sa.text(
        "SELECT m.org_unit_id, u.path, m.kind, m.starts_at, m.invited, m.present FROM meetings m "
        "JOIN org_units u ON u.id = m.org_unit_id WHERE m.status = 'closed'"))
    for unit_id, path, kind, starts_at, invited, present in result:
        if isinstance(starts_at, str):      # SQLite hands back text
            starts_at = datetime.fromisoformat(starts_at)
        if starts_at.tzinfo is None:
            starts_at = starts_at.replace(tzinfo=UTC)
        local = starts_at.astimezone(zone)
        key = (unit_id, local.year * 100 + local.month)
        row = rows.get(key)
        if row is None:
            ids = [int(p) for p in path.strip("/").split("/")]
            row = rows[key] = {"org_unit_id": unit_id, "month": key[1],
                               **{f"l{i}_id": (ids[i] if len(ids) > i else None) for i in (1, 2, 3)},
                               "meetings": 0, "regular": 0, "invited": 0, "present": 0}
        row["meetings"] += 1
        row["regular"] += kind == "regular"
        row["invited"] += invited or 0
        row["present"] += present or 0
    values = list(rows.values())
    for start in range(0, len(values), 5000):
        op.bulk_insert(table, values[start:start + 5000])
    months = sorted({row["month"] for row in values})
    if months:
        op.bulk_insert(versions, [{"month": month, "version": 1} for month in months])


def upgrade():
    table = op.create_table('meeting_month_counters',
    sa.Column('org_unit_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('l1_id', sa.Integer(), nullable=True),
    sa.Column('l2_id', sa.Integer(), nullable=True),
    sa.Column('l3_id', sa.Integer(), nullable=True),
    sa.Column('meetings', sa.Integer(), nullable=False),
    sa.Column('regular', sa.Integer(), nullable=False),
    sa.Column('invited', sa.Integer(), nullable=False),
    sa.Column('present', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_unit_id'], ['org_units.id'], name=op.f('fk_meeting_month_counters_org_unit_id_org_units')),
    sa.PrimaryKeyConstraint('org_unit_id', 'month', name=op.f('pk_meeting_month_counters'))
    )
    with op.batch_alter_table('meeting_month_counters', schema=None) as batch_op:
        batch_op.create_index('ix_meeting_month_counters_month_l1_id', ['month', 'l1_id'], unique=False)
        batch_op.create_index('ix_meeting_month_counters_month_l2_id', ['month', 'l2_id'], unique=False)
        batch_op.create_index('ix_meeting_month_counters_month_l3_id', ['month', 'l3_id'], unique=False)
    versions = op.create_table('meeting_month_versions',
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_meeting_month_versions'))
    )
    _backfill(table, versions)
    # The roll-up's version of the org tree is max(id), max(updated_at): two index probes.
    op.create_index('ix_org_units_updated_at', 'org_units', ['updated_at'], unique=False)


def downgrade():
    op.drop_index('ix_org_units_updated_at', table_name='org_units')
    with op.batch_alter_table('meeting_month_counters', schema=None) as batch_op:
        batch_op.drop_index('ix_meeting_month_counters_month_l3_id')
        batch_op.drop_index('ix_meeting_month_counters_month_l2_id')
        batch_op.drop_index('ix_meeting_month_counters_month_l1_id')
    op.drop_table('meeting_month_counters')
    op.drop_table('meeting_month_versions')
