"""The database schema (SQLAlchemy Core). Alembic migrations in `migrations/` create it.

Idempotency comes from unique constraints (a post is one pledge, a topic one commons, an outbox key
one pending row), not from reads before writes.
"""

from __future__ import annotations

from datetime import timezone

from sqlalchemy import (
    TypeDecorator,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator):
    """Aware datetimes stored in UTC on every database (SQLite would drop the offset silently)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the service only stores aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def _when(name: str, **kw) -> Column:
    return Column(name, UTCDateTime(), **kw)


rounds = Table(
    "rounds", metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("allocation_cents", BigInteger, nullable=False),
    Column("group_name", String(100), nullable=False),
    _when("opens_at", nullable=False),
    _when("closes_at"),
    Column("recurring", String(10)),
    Column("unspent", String(10), nullable=False, server_default="carry"),
    Column("matching_ratio", String(32)),
    Column("matching_pool_cents", BigInteger),
    Column("matching_cap_cents", BigInteger),
    Column("matching_group", String(100)),
    Column("partial_threshold_pct", Integer),
    Column("remind_days", String(64), nullable=False, server_default="7,2"),
    Column("results_topic_id", BigInteger),
    _when("closed_at"),
    Column("matching_used_cents", BigInteger, nullable=False, server_default="0"),
    _when("created_at", nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", ForeignKey("rounds.id"), nullable=False),
    Column("username", String(100), nullable=False),
    Column("credited_cents", BigInteger, nullable=False, server_default="0"),
    Column("pledged_cents", BigInteger, nullable=False, server_default="0"),
    Column("periods_credited", Integer, nullable=False, server_default="0"),
    UniqueConstraint("round_id", "username", name="uq_accounts_round_username"),
)

commons = Table(
    "commons", metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", ForeignKey("rounds.id"), nullable=False, index=True),
    Column("topic_id", BigInteger, unique=True),
    Column("title", Text, nullable=False),
    Column("goal_cents", BigInteger),
    Column("cap_cents", BigInteger),
    Column("status", String(32), nullable=False),
    Column("first_post_number", Integer, nullable=False, server_default="0"),
    Column("referent", Text),
    Column("organisations", Text),
    Column("next_steps", Text),
    Column("discussion_url", Text),
    Column("wiki_title", Text, unique=True),
    Column("pledged_cents", BigInteger, nullable=False, server_default="0"),
    Column("contributed_cents", BigInteger, nullable=False, server_default="0"),
    Column("matched_cents", BigInteger, nullable=False, server_default="0"),
    Column("closed_raised_cents", BigInteger),
    Column("closed_cofunders", Integer),
    _when("figures_changed_at"),
    _when("created_at", nullable=False),
    # Adapters' bookkeeping: the status post found or created, what was last written to the wiki.
    Column("status_post_id", BigInteger),
    Column("wiki_last_written", Text),
    Column("wiki_revid", BigInteger),
)

pledges = Table(
    "pledges", metadata,
    Column("id", Integer, primary_key=True),
    Column("post_id", BigInteger, nullable=False, unique=True),
    Column("round_id", ForeignKey("rounds.id"), nullable=False),
    Column("commons_id", ForeignKey("commons.id"), nullable=False),
    Column("username", String(100), nullable=False),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("requested_cents", BigInteger),
    Column("requested_error", String(64)),
    Column("amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("kept_version", Integer, nullable=False, server_default="0"),
    Column("matched_cents", BigInteger, nullable=False, server_default="0"),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    Column("state", String(16), nullable=False),
    Column("refusal", String(64)),
    Column("payment", String(16), nullable=False, server_default="pledged"),
    Column("post_number", Integer),
    Column("matching_eligible", Boolean, nullable=False, server_default=text("false")),
    _when("created_at", nullable=False),
    _when("updated_at", nullable=False),
    Index("ix_pledges_commons_state", "commons_id", "state"),
    Index("ix_pledges_round_username", "round_id", "username"),
)

contributions = Table(
    "contributions", metadata,
    Column("id", Integer, primary_key=True),
    Column("commons_id", ForeignKey("commons.id"), nullable=False, index=True),
    Column("round_id", ForeignKey("rounds.id"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("username", String(100)),
    Column("payment", String(16), nullable=False, server_default="pledged"),
    _when("created_at", nullable=False),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", Integer, primary_key=True),
    _when("at", nullable=False),
    Column("round_id", ForeignKey("rounds.id"), nullable=False, index=True),
    Column("commons_id", ForeignKey("commons.id"), index=True),
    Column("username", String(100)),
    Column("kind", String(32), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("pledge_post_id", BigInteger),
    Column("contribution_id", Integer),
    Column("note", Text),
)

payment_marks = Table(
    "payment_marks", metadata,
    Column("id", Integer, primary_key=True),
    _when("at", nullable=False),
    Column("pledge_id", ForeignKey("pledges.id")),
    Column("contribution_id", ForeignKey("contributions.id")),
    Column("state", String(16), nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("key", String(200), nullable=False),
    Column("payload", Text, nullable=False, server_default="{}"),
    Column("seq", Integer, nullable=False, server_default="1"),
    _when("created_at", nullable=False),
    _when("updated_at", nullable=False),
    _when("not_before", nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _when("claimed_until"),
    _when("done_at"),
    # One pending row per key: a burst of changes to one commons coalesces into one row.
    Index("uq_outbox_pending_key", "key", unique=True,
          sqlite_where=text("done_at IS NULL"), postgresql_where=text("done_at IS NULL")),
    Index("ix_outbox_due", "done_at", "not_before"),
    Index("ix_outbox_key_done", "key", "done_at"),  # when a key was last sent (status-post latency)
)
