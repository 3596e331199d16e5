"""Tables of a round's life: reminders sent, opt-outs, announcements made once, cancellations.

They hang on the shared `metadata` (migration `0004_lifecycle`). As elsewhere, "once" is a unique
constraint, not a read before a write: a reminder is one row per (round, reminder, member), an
announcement one row per (kind, subject), an agreement to a transfer one row per (commons, member).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from commons_sync.storage.tables import metadata


def _when(name: str, **kw) -> Column:
    return Column(name, DateTime(timezone=True), **kw)


# One row per reminder queued for a member: `reminder` is "7", "2" (days before the close),
# "expiry:<period>" (a recurring round's balance about to expire) or "manual:<date>".
lifecycle_reminders = Table(
    "lifecycle_reminders", metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", Integer, nullable=False),
    Column("reminder", String(40), nullable=False),
    Column("username", String(100), nullable=False),  # case-folded
    Column("balance_cents", BigInteger, nullable=False),
    Column("commons_id", Integer),  # the commons suggested (closest to its goal)
    _when("queued_at", nullable=False),
    _when("send_after", nullable=False),
    UniqueConstraint("round_id", "reminder", "username", name="uq_lifecycle_reminders_once"),
)

# Members who said `/rappels non` (`/reminders off`) in any commons topic; `/rappels oui` flips it back.
lifecycle_reminder_prefs = Table(
    "lifecycle_reminder_prefs", metadata,
    Column("username", String(100), primary_key=True),  # case-folded
    Column("opted_out", Boolean, nullable=False),
    Column("post_id", BigInteger, nullable=False),  # the post that said it last
    _when("updated_at", nullable=False),
)

# Announcements made once whatever happens after: "funded" (subject: commons id), "results"
# (subject: round id). Written when the post is sent, in the sender.
lifecycle_announcements = Table(
    "lifecycle_announcements", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Column("post_id", BigInteger),
    _when("sent_at", nullable=False),
    UniqueConstraint("kind", "subject_id", name="uq_lifecycle_announcements_once"),
)

# A cancelled commons: why, by whom, and where its cofunders may move their pledges until when.
lifecycle_cancellations = Table(
    "lifecycle_cancellations", metadata,
    Column("commons_id", Integer, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("cancelled_by", String(100)),
    _when("cancelled_at", nullable=False),
    Column("redirect_to", Integer),
    _when("agree_until"),
)

# What each cofunder had pledged when the commons was cancelled (released at once), and what
# became of their agreement to move it: `moved_cents` pledged to the target, or `refusal` (a
# reason code) when the target's cap or their balance did not allow it.
lifecycle_cancelled_pledges = Table(
    "lifecycle_cancelled_pledges", metadata,
    Column("id", Integer, primary_key=True),
    Column("commons_id", Integer, nullable=False),
    Column("username", String(100), nullable=False),
    Column("released_cents", BigInteger, nullable=False),
    Column("matching_eligible", Boolean, nullable=False),
    Column("agreed", Boolean),
    Column("agreement_post_id", BigInteger),
    Column("moved_cents", BigInteger),
    Column("refusal", String(40)),
    _when("decided_at"),
    UniqueConstraint("commons_id", "username", name="uq_lifecycle_cancelled_pledges_member"),
)

# Post versions whose lifecycle commands (`/annuler`, `/transferer`, `/rappels`) were carried out.
lifecycle_post_commands = Table(
    "lifecycle_post_commands", metadata,
    Column("post_id", BigInteger, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
)
