"""history: a callback's context on its record; callback outcomes in the rollups

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_INTS = ("callbacks_requested", "callbacks_completed", "callbacks_failed",
         "callbacks_cancelled", "callbacks_answered")


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback', sa.JSON(none_as_null=True),
                                      nullable=True))
    for table in ('call_rollup', 'call_rollup_day'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in _INTS:
                batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False,
                                              server_default='0'))
            batch_op.add_column(sa.Column('callback_delay', sa.Float(), nullable=False,
                                          server_default='0'))


def downgrade() -> None:
    for table in ('call_rollup_day', 'call_rollup'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('callback_delay')
            for name in reversed(_INTS):
                batch_op.drop_column(name)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('callback')
