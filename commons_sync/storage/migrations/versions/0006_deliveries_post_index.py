"""forum_deliveries: an index on post_id

The status-post latency metric (`service.ops._pledges_received`) joins the inbox with the pledges of
one commons by post id; the inbox keeps every delivery 30 days, so without this index each status
post sent read the whole inbox (150 ms for a round of 200,000 pledges, growing with the round).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 01:10:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_forum_deliveries_post', 'forum_deliveries', ['post_id'])


def downgrade() -> None:
    op.drop_index('ix_forum_deliveries_post', table_name='forum_deliveries')
