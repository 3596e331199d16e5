"""forum side: webhook inbox, membership cache, shared API-call log, locks, post commands

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'forum_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('event', sa.String(length=80), nullable=False),
        sa.Column('instance', sa.Text(), nullable=True),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('topic_id', sa.BigInteger(), nullable=True),
        sa.Column('post_id', sa.BigInteger(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('opens_commons', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_forum_deliveries')),
        sa.UniqueConstraint('event_id', name=op.f('uq_forum_deliveries_event_id')),
    )
    with op.batch_alter_table('forum_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_forum_deliveries_pending', ['applied_at', 'id'], unique=False)
        batch_op.create_index('ix_forum_deliveries_topic', ['topic_id', 'opens_commons'], unique=False)

    op.create_table(
        'forum_memberships',
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=True),
        sa.Column('display_name', sa.Text(), nullable=True),
        sa.Column('groups', sa.Text(), server_default='[]', nullable=False),
        sa.Column('fetched_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('username', name=op.f('pk_forum_memberships')),
    )
    with op.batch_alter_table('forum_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forum_memberships_user_id'), ['user_id'], unique=False)

    op.create_table(
        'forum_api_calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_forum_api_calls')),
    )
    with op.batch_alter_table('forum_api_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forum_api_calls_at'), ['at'], unique=False)

    locks = op.create_table(
        'forum_locks',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('holder', sa.String(length=100), nullable=True),
        sa.Column('until', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_forum_locks')),
    )
    op.bulk_insert(locks, [{'name': 'api'}, {'name': 'inbox'}])

    op.create_table(
        'forum_post_commands',
        sa.Column('post_id', sa.BigInteger(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), server_default='', nullable=False),
        sa.PrimaryKeyConstraint('post_id', name=op.f('pk_forum_post_commands')),
    )


def downgrade() -> None:
    op.drop_table('forum_post_commands')
    op.drop_table('forum_locks')
    with op.batch_alter_table('forum_api_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forum_api_calls_at'))
    op.drop_table('forum_api_calls')
    with op.batch_alter_table('forum_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forum_memberships_user_id'))
    op.drop_table('forum_memberships')
    with op.batch_alter_table('forum_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_forum_deliveries_topic')
        batch_op.drop_index('ix_forum_deliveries_pending')
    op.drop_table('forum_deliveries')
