"""triage: submissions, attachments, mailbox state, acknowledgements, topic requests, commons notes, staff nonces

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'mail_acknowledgements',
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('count', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('address', 'day', name=op.f('pk_mail_acknowledgements')),
    )
    op.create_table(
        'mailbox_state',
        sa.Column('folder', sa.String(length=255), nullable=False),
        sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
        sa.Column('last_uid', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('folder', name=op.f('pk_mailbox_state')),
    )
    op.create_table(
        'staff_login_nonces',
        sa.Column('nonce', sa.String(length=64), nullable=False),
        _when('created_at', nullable=False),
        sa.Column('return_to', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('nonce', name=op.f('pk_staff_login_nonces')),
    )
    op.create_table(
        'submissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
        sa.Column('sender_name', sa.Text(), nullable=True),
        sa.Column('sender_address', sa.Text(), nullable=True),
        sa.Column('reply_address', sa.Text(), nullable=True),
        sa.Column('subject', sa.Text(), server_default='', nullable=False),
        sa.Column('body', sa.Text(), server_default='', nullable=False),
        _when('sent_at'),
        _when('received_at', nullable=False),
        sa.Column('message_id', sa.String(length=998), nullable=True),
        sa.Column('in_reply_to', sa.String(length=998), nullable=True),
        sa.Column('references_header', sa.Text(), nullable=True),
        sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
        sa.Column('uid', sa.BigInteger(), nullable=True),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.Column('malformed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('malformed_reason', sa.String(length=32), nullable=True),
        sa.Column('automatic', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('acknowledged', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('commons_id', sa.Integer(), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.Column('decided_by', sa.String(length=100), nullable=True),
        _when('decided_at'),
        sa.ForeignKeyConstraint(['commons_id'], ['commons.id'],
                                name=op.f('fk_submissions_commons_id_commons')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_submissions')),
        sa.UniqueConstraint('message_id', name=op.f('uq_submissions_message_id')),
        sa.UniqueConstraint('reference', name=op.f('uq_submissions_reference')),
        sa.UniqueConstraint('uidvalidity', 'uid', name='uq_submissions_uidvalidity_uid'),
    )
    op.create_index('ix_submissions_status', 'submissions', ['status', 'id'], unique=False)
    op.create_table(
        'commons_notes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('commons_id', sa.Integer(), nullable=False),
        _when('at', nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=True),
        sa.Column('author', sa.String(length=100), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['commons_id'], ['commons.id'],
                                name=op.f('fk_commons_notes_commons_id_commons')),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'],
                                name=op.f('fk_commons_notes_submission_id_submissions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_commons_notes')),
    )
    op.create_index(op.f('ix_commons_notes_commons_id'), 'commons_notes', ['commons_id'], unique=False)
    op.create_table(
        'submission_attachments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('filename', sa.Text(), nullable=True),
        sa.Column('content_type', sa.String(length=255), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'],
                                name=op.f('fk_submission_attachments_submission_id_submissions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_submission_attachments')),
    )
    op.create_index(op.f('ix_submission_attachments_submission_id'), 'submission_attachments',
                    ['submission_id'], unique=False)
    op.create_table(
        'topic_requests',
        sa.Column('commons_id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=True),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('raw', sa.Text(), nullable=False),
        sa.Column('category', sa.Integer(), nullable=True),
        _when('attempt_started_at'),
        sa.Column('topic_id', sa.BigInteger(), nullable=True),
        _when('linked_at'),
        sa.ForeignKeyConstraint(['commons_id'], ['commons.id'],
                                name=op.f('fk_topic_requests_commons_id_commons')),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'],
                                name=op.f('fk_topic_requests_submission_id_submissions')),
        sa.PrimaryKeyConstraint('commons_id', name=op.f('pk_topic_requests')),
    )


def downgrade() -> None:
    op.drop_table('topic_requests')
    op.drop_index(op.f('ix_submission_attachments_submission_id'), table_name='submission_attachments')
    op.drop_table('submission_attachments')
    op.drop_index(op.f('ix_commons_notes_commons_id'), table_name='commons_notes')
    op.drop_table('commons_notes')
    op.drop_index('ix_submissions_status', table_name='submissions')
    op.drop_table('submissions')
    op.drop_table('staff_login_nonces')
    op.drop_table('mailbox_state')
    op.drop_table('mail_acknowledgements')
