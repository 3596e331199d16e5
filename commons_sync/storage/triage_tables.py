"""Tables of the email intake and the staff triage: submissions, mailbox state, acknowledgements.

They hang on the shared `metadata` so one Alembic history creates them all (migration
`0003_triage`). As elsewhere, idempotency comes from unique constraints: a message is one
submission by its Message-ID, or by `(uidvalidity, uid)` when it has none; a staff login nonce is
used once because consuming it is a conditional delete.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from commons_sync.storage.tables import UTCDateTime, metadata

SUBMISSION_STATUSES = ("queued", "accepted", "rejected", "merged", "spam")


def _when(name: str, **kw) -> Column:
    return Column(name, UTCDateTime(), **kw)


# One incoming proposal. `reference` is quoted in the acknowledgement; the raw source is kept
# byte for byte so staff can read a message the parser could not.
submissions = Table(
    "submissions", metadata,
    Column("id", Integer, primary_key=True),
    Column("reference", String(32), unique=True),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("sender_name", Text),
    Column("sender_address", Text),
    Column("reply_address", Text),
    Column("subject", Text, nullable=False, server_default=""),
    Column("body", Text, nullable=False, server_default=""),
    _when("sent_at"),  # the sender's Date header
    _when("received_at", nullable=False),
    Column("message_id", String(998), unique=True),
    Column("in_reply_to", String(998)),
    Column("references_header", Text),
    Column("uidvalidity", BigInteger),
    Column("uid", BigInteger),
    Column("raw", LargeBinary, nullable=False),
    Column("malformed", Boolean, nullable=False, server_default=text("false")),
    Column("malformed_reason", String(32)),
    Column("automatic", Boolean, nullable=False, server_default=text("false")),
    Column("acknowledged", Boolean, nullable=False, server_default=text("false")),
    Column("commons_id", ForeignKey("commons.id")),
    Column("decision_reason", Text),
    Column("decided_by", String(100)),
    _when("decided_at"),
    UniqueConstraint("uidvalidity", "uid", name="uq_submissions_uidvalidity_uid"),
    Index("ix_submissions_status", "status", "id"),
)

# Files attached to a submission; `data` is NULL when the file was over the size limit.
submission_attachments = Table(
    "submission_attachments", metadata,
    Column("id", Integer, primary_key=True),
    Column("submission_id", ForeignKey("submissions.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("filename", Text),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary),
)

# Per IMAP folder: the UIDVALIDITY and the highest UID handled (an optimisation, see mail/store.py).
mailbox_state = Table(
    "mailbox_state", metadata,
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
)

# Acknowledgements sent per sender address (case-folded) and day: at most a few, no mail loop.
mail_acknowledgements = Table(
    "mail_acknowledgements", metadata,
    Column("address", String(320), primary_key=True),
    Column("day", String(10), primary_key=True),  # ISO date in the service's time zone
    Column("count", Integer, nullable=False, server_default="0"),
)

# The forum topic an accepted submission asks for: the text to post, and whether a creation was
# attempted (a crash after the forum call leaves `attempt_started_at` set: never create again
# until the topic is linked, by the sender or by the bot's own `post_created` webhook).
topic_requests = Table(
    "topic_requests", metadata,
    Column("commons_id", ForeignKey("commons.id"), primary_key=True),
    Column("submission_id", ForeignKey("submissions.id")),
    Column("title", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("category", Integer),
    _when("attempt_started_at"),
    Column("topic_id", BigInteger),
    _when("linked_at"),
)

# The history of a commons kept by the service: e.g. the text of a submission merged into it.
commons_notes = Table(
    "commons_notes", metadata,
    Column("id", Integer, primary_key=True),
    Column("commons_id", ForeignKey("commons.id"), nullable=False, index=True),
    _when("at", nullable=False),
    Column("kind", String(32), nullable=False),
    Column("submission_id", ForeignKey("submissions.id")),
    Column("author", String(100)),
    Column("body", Text, nullable=False),
)

# DiscourseConnect nonces of staff logins in progress: single use, short-lived.
staff_login_nonces = Table(
    "staff_login_nonces", metadata,
    Column("nonce", String(64), primary_key=True),
    _when("created_at", nullable=False),
    Column("return_to", Text),
)
