"""forum_group_rosters, forum_group_members, forum_membership_changes

A pledge needs its author's membership of the round's group. Asked user by user
(`GET /u/{username}.json`), that was one API call per member not seen in the last 120 s, which caps
how many members' pledges are applied at the API ceiling (about 50 a minute by default). A roster,
read in pages of 1,000, says yes for every member listed; `group_user` events mark the users whose
memberships changed since, who are then asked one by one, as is anyone the roster does not list.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'forum_group_rosters',
        sa.Column('group_key', sa.String(length=100), nullable=False),
        sa.Column('loaded_at', sa.Float(), nullable=False),
        sa.Column('unlisted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('size', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('group_key', name=op.f('pk_forum_group_rosters')),
    )
    op.create_table(
        'forum_group_members',
        sa.Column('group_key', sa.String(length=100), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint('group_key', 'user_id', name=op.f('pk_forum_group_members')),
    )
    op.create_table(
        'forum_membership_changes',
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('changed_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_forum_membership_changes')),
    )


def downgrade() -> None:
    op.drop_table('forum_membership_changes')
    op.drop_table('forum_group_members')
    op.drop_table('forum_group_rosters')
