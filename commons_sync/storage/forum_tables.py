"""Tables of the forum side: the webhook inbox, the membership cache, the shared API-call log.

They hang on the same `metadata` as the core tables so one Alembic history creates them all
(migration `0002_forum`). As in `tables.py`, idempotency comes from unique constraints: a
delivery's `event_id` is stored once, whatever Discourse redelivers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from commons_sync.storage.tables import metadata


def _when(name: str, **kw) -> Column:
    return Column(name, DateTime(timezone=True), **kw)


# Webhook deliveries as received: `id` is the order of arrival, the body is kept byte for byte.
forum_deliveries = Table(
    "forum_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", BigInteger, nullable=False, unique=True),
    Column("event_type", String(40), nullable=False),
    Column("event", String(80), nullable=False),
    Column("instance", Text),
    Column("body", LargeBinary, nullable=False),
    _when("received_at", nullable=False),
    Column("topic_id", BigInteger),
    Column("post_id", BigInteger),
    Column("version", Integer),
    Column("opens_commons", Boolean, nullable=False, server_default=text("false")),
    _when("applied_at"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Index("ix_forum_deliveries_pending", "applied_at", "id"),
    Index("ix_forum_deliveries_topic", "topic_id", "opens_commons"),
    Index("ix_forum_deliveries_post", "post_id"),  # joined with a commons' pledges (status-post latency)
)

# Group memberships read from `GET /u/{username}.json`, kept a short while (refreshed by
# `group_user` events, which carry only ids: hence `user_id`).
forum_memberships = Table(
    "forum_memberships", metadata,
    Column("username", String(100), primary_key=True),  # case-folded
    Column("user_id", BigInteger, index=True),
    Column("display_name", Text),
    Column("groups", Text, nullable=False, server_default="[]"),  # JSON list of group names
    Column("fetched_at", Float, nullable=False),  # POSIX seconds
)

# The members of a group as `GET /groups/{name}/members.json` listed them: one read says yes for
# every member of a round's group (`service.forum.Membership.in_group`).
forum_group_rosters = Table(
    "forum_group_rosters", metadata,
    Column("group_key", String(100), primary_key=True),  # case-folded group name
    Column("loaded_at", Float, nullable=False),  # POSIX seconds
    # Too large or hidden from the bot: its members are asked one by one.
    Column("unlisted", Boolean, nullable=False, server_default=text("false")),
    Column("size", Integer, nullable=False, server_default="0"),
)

forum_group_members = Table(
    "forum_group_members", metadata,
    Column("group_key", String(100), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),  # by id: a username can change hands
    Column("username", String(100), nullable=False),
)

# Users whose group memberships changed (a `group_user` event), and when: a roster read before
# that is not trusted for them.
forum_membership_changes = Table(
    "forum_membership_changes", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("changed_at", Float, nullable=False),  # POSIX seconds
)

# One row per API request sent, across every process: the shared sliding window of
# COMMONS_SYNC_DISCOURSE_MAX_RPM.
forum_api_calls = Table(
    "forum_api_calls", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False, index=True),  # POSIX seconds
)

# Named leases and lock rows: `api` serialises the rate limiter (SELECT … FOR UPDATE), `inbox`
# lets one worker at a time apply deliveries, so they are applied in the order received.
forum_locks = Table(
    "forum_locks", metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(100)),
    Column("until", Float),
)

# The highest version of each post whose non-pledge commands were applied (`/interesse`…), so an
# older version arriving late never overrides a newer one; `digest` of its command lines tells a
# quick edit that kept the version (Discourse's grace period) from a repeat.
forum_post_commands = Table(
    "forum_post_commands", metadata,
    Column("post_id", BigInteger, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False, server_default=""),
)

LOCK_NAMES = ("api", "inbox")
