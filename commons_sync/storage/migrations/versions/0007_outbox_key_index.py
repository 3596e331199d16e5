"""outbox: an index on (key, done_at)

The status-post latency metric (`service.ops._last_status_edit`) asks when a key was last sent. The
outbox keeps every row sent, so without this index PostgreSQL walked the sent rows backwards until
it met the key: all of them for a commons never sent (8 ms at 27,000 rows, growing with the round).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 02:00:00
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_key_done', 'outbox', ['key', 'done_at'])


def downgrade() -> None:
    op.drop_index('ix_outbox_key_done', table_name='outbox')
