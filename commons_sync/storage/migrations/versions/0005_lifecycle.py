"""lifecycle: reminders sent, reminder opt-outs, announcements made once, cancellations and transfers

Revision ID: 0005
Revises: 0004_ops
Create Date: 2026-11-21 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004_ops'
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'lifecycle_reminders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.Integer(), nullable=False),
        sa.Column('reminder', sa.String(length=40), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('balance_cents', sa.BigInteger(), nullable=False),
        sa.Column('commons_id', sa.Integer(), nullable=True),
        _when('queued_at', nullable=False),
        _when('send_after', nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_reminders')),
        sa.UniqueConstraint('round_id', 'reminder', 'username', name='uq_lifecycle_reminders_once'),
    )
    op.create_table(
        'lifecycle_reminder_prefs',
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('opted_out', sa.Boolean(), nullable=False),
        sa.Column('post_id', sa.BigInteger(), nullable=False),
        _when('updated_at', nullable=False),
        sa.PrimaryKeyConstraint('username', name=op.f('pk_lifecycle_reminder_prefs')),
    )
    op.create_table(
        'lifecycle_announcements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('subject_id', sa.BigInteger(), nullable=False),
        sa.Column('post_id', sa.BigInteger(), nullable=True),
        _when('sent_at', nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_announcements')),
        sa.UniqueConstraint('kind', 'subject_id', name='uq_lifecycle_announcements_once'),
    )
    op.create_table(
        'lifecycle_cancellations',
        sa.Column('commons_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('cancelled_by', sa.String(length=100), nullable=True),
        _when('cancelled_at', nullable=False),
        sa.Column('redirect_to', sa.Integer(), nullable=True),
        _when('agree_until'),
        sa.PrimaryKeyConstraint('commons_id', name=op.f('pk_lifecycle_cancellations')),
    )
    op.create_table(
        'lifecycle_cancelled_pledges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('commons_id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=100), nullable=False),
        sa.Column('released_cents', sa.BigInteger(), nullable=False),
        sa.Column('matching_eligible', sa.Boolean(), nullable=False),
        sa.Column('agreed', sa.Boolean(), nullable=True),
        sa.Column('agreement_post_id', sa.BigInteger(), nullable=True),
        sa.Column('moved_cents', sa.BigInteger(), nullable=True),
        sa.Column('refusal', sa.String(length=40), nullable=True),
        _when('decided_at'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_cancelled_pledges')),
        sa.UniqueConstraint('commons_id', 'username', name='uq_lifecycle_cancelled_pledges_member'),
    )
    op.create_table(
        'lifecycle_post_commands',
        sa.Column('post_id', sa.BigInteger(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('post_id', name=op.f('pk_lifecycle_post_commands')),
    )


def downgrade() -> None:
    for table in ('lifecycle_post_commands', 'lifecycle_cancelled_pledges', 'lifecycle_cancellations',
                  'lifecycle_announcements', 'lifecycle_reminder_prefs', 'lifecycle_reminders'):
        op.drop_table(table)
