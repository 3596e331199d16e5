"""ops: worker heartbeats and the counters shared by every process

Revision ID: 0004_ops
Revises: 0003
Create Date: 2026-11-21 22:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_ops'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ops_heartbeats',
        sa.Column('worker_id', sa.String(length=200), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_pass_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('passes', sa.BigInteger(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_ops_heartbeats')),
    )
    op.create_table(
        'ops_counters',
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('labels', sa.String(length=200), nullable=False),
        sa.Column('value', sa.Float(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('name', 'labels', name=op.f('pk_ops_counters')),
    )


def downgrade() -> None:
    op.drop_table('ops_counters')
    op.drop_table('ops_heartbeats')
