"""history: calls, offers, agent intervals, rollups

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('agent_intervals',
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=True),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('agent', 'start')
    )
    with op.batch_alter_table('agent_intervals', schema=None) as batch_op:
        batch_op.create_index('ix_agent_intervals_bucket', ['bucket'], unique=False)
        batch_op.create_index('ix_agent_intervals_end', ['end'], unique=False)

    op.create_table('agent_rollup',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('what', sa.String(length=80), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'agent', 'what')
    )
    with op.batch_alter_table('agent_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_agent_rollup_day', ['day'], unique=False)

    op.create_table('agent_rollup_day',
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('what', sa.String(length=80), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('agent', 'what', 'day')
    )
    with op.batch_alter_table('agent_rollup_day', schema=None) as batch_op:
        batch_op.create_index('ix_agent_rollup_day_day', ['day'], unique=False)

    op.create_table('call_rollup',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('dim', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('offered', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('answered_within', sa.Integer(), nullable=False),
    sa.Column('abandoned', sa.Integer(), nullable=False),
    sa.Column('abandoned_after', sa.Integer(), nullable=False),
    sa.Column('abandoned_short', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Integer(), nullable=False),
    sa.Column('exited', sa.Integer(), nullable=False),
    sa.Column('handled', sa.Integer(), nullable=False),
    sa.Column('transferred', sa.Integer(), nullable=False),
    sa.Column('wait_answered', sa.Float(), nullable=False),
    sa.Column('wait_abandoned', sa.Float(), nullable=False),
    sa.Column('wait_max', sa.Float(), nullable=False),
    sa.Column('talk', sa.Float(), nullable=False),
    sa.Column('wrap_up', sa.Float(), nullable=False),
    sa.Column('agent_offers', sa.Integer(), nullable=False),
    sa.Column('rona', sa.Integer(), nullable=False),
    sa.Column('overflowed', sa.Integer(), nullable=False),
    sa.Column('partner_answered', sa.Integer(), nullable=False),
    sa.Column('partner_wait', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'dim', 'key')
    )
    with op.batch_alter_table('call_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_call_rollup_dim_bucket', ['dim', 'bucket'], unique=False)
        batch_op.create_index('ix_call_rollup_dim_day', ['dim', 'day'], unique=False)

    op.create_table('call_rollup_day',
    sa.Column('dim', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('offered', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('answered_within', sa.Integer(), nullable=False),
    sa.Column('abandoned', sa.Integer(), nullable=False),
    sa.Column('abandoned_after', sa.Integer(), nullable=False),
    sa.Column('abandoned_short', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Integer(), nullable=False),
    sa.Column('exited', sa.Integer(), nullable=False),
    sa.Column('handled', sa.Integer(), nullable=False),
    sa.Column('transferred', sa.Integer(), nullable=False),
    sa.Column('wait_answered', sa.Float(), nullable=False),
    sa.Column('wait_abandoned', sa.Float(), nullable=False),
    sa.Column('wait_max', sa.Float(), nullable=False),
    sa.Column('talk', sa.Float(), nullable=False),
    sa.Column('wrap_up', sa.Float(), nullable=False),
    sa.Column('agent_offers', sa.Integer(), nullable=False),
    sa.Column('rona', sa.Integer(), nullable=False),
    sa.Column('overflowed', sa.Integer(), nullable=False),
    sa.Column('partner_answered', sa.Integer(), nullable=False),
    sa.Column('partner_wait', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('dim', 'key', 'day')
    )
    with op.batch_alter_table('call_rollup_day', schema=None) as batch_op:
        batch_op.create_index('ix_call_rollup_day_dim_day', ['dim', 'day'], unique=False)

    op.create_table('calls',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('leg', sa.Integer(), nullable=False),
    sa.Column('offered', sa.Boolean(), nullable=False),
    sa.Column('entry_time', sa.Float(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('week', sa.Integer(), nullable=False),
    sa.Column('month', sa.Integer(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('first_queue', sa.String(length=64), nullable=False),
    sa.Column('caller', sa.String(length=64), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.Column('region_known', sa.Boolean(), nullable=False),
    sa.Column('region_source', sa.String(length=16), nullable=False),
    sa.Column('segment', sa.String(length=64), nullable=False),
    sa.Column('did', sa.String(length=64), nullable=False),
    sa.Column('menu_choice', sa.String(length=8), nullable=False),
    sa.Column('server', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('sl_target', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('answered_at', sa.Float(), nullable=True),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.Column('agent', sa.String(length=64), nullable=True),
    sa.Column('site', sa.String(length=64), nullable=True),
    sa.Column('agent_site', sa.String(length=64), nullable=True),
    sa.Column('wait', sa.Float(), nullable=False),
    sa.Column('talk', sa.Float(), nullable=True),
    sa.Column('wrap_up', sa.Float(), nullable=True),
    sa.Column('reentries', sa.Integer(), nullable=False),
    sa.Column('exit', sa.String(length=64), nullable=True),
    sa.Column('exits', sa.JSON(), nullable=True),
    sa.Column('transfers', sa.JSON(), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('recording', sa.JSON(), nullable=True),
    sa.Column('disposition', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('writer', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('call_id', 'leg')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_agent_entry', ['agent', 'entry_time'], unique=False)
        batch_op.create_index('ix_calls_bucket', ['bucket'], unique=False)
        batch_op.create_index('ix_calls_entry_time', ['entry_time'], unique=False)
        batch_op.create_index('ix_calls_open', ['final', 'updated_at'], unique=False)

    op.create_table('meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('offers',
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('leg', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('wait', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('dialstatus', sa.String(length=32), nullable=False),
    sa.Column('ended', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('call_id', 'leg', 'at', 'target')
    )
    op.create_table('recording_access',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('leg', sa.Integer(), nullable=False),
    sa.Column('who', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('rollup_dirty',
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bucket')
    )



def downgrade() -> None:

    op.drop_table('rollup_dirty')
    op.drop_table('recording_access')
    op.drop_table('offers')
    op.drop_table('meta')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_open')
        batch_op.drop_index('ix_calls_entry_time')
        batch_op.drop_index('ix_calls_bucket')
        batch_op.drop_index('ix_calls_agent_entry')

    op.drop_table('calls')
    with op.batch_alter_table('call_rollup_day', schema=None) as batch_op:
        batch_op.drop_index('ix_call_rollup_day_dim_day')

    op.drop_table('call_rollup_day')
    with op.batch_alter_table('call_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_call_rollup_dim_day')
        batch_op.drop_index('ix_call_rollup_dim_bucket')

    op.drop_table('call_rollup')
    with op.batch_alter_table('agent_rollup_day', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_rollup_day_day')

    op.drop_table('agent_rollup_day')
    with op.batch_alter_table('agent_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_rollup_day')

    op.drop_table('agent_rollup')
    with op.batch_alter_table('agent_intervals', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_intervals_end')
        batch_op.drop_index('ix_agent_intervals_bucket')

    op.drop_table('agent_intervals')

