"""Webhook deliveries from Discourse turned into typed snapshots, and the ones the service ignores.

As Zulip's integrations do, dispatch goes through one dict, `EVENT_HANDLERS`, keyed by the
`X-Discourse-Event-Type` header and the `X-Discourse-Event` header; known but unwanted events are
listed by name in `IGNORED_EVENTS`; anything else raises `UnsupportedEvent` (answered 200).

Traps of the real forum handled here (see Discourse's `emit_web_hook_event.rb` and
`012-web_hook_events.rb`):
- topic status changes arrive with the original name in `X-Discourse-Event`
  (`topic_closed_status_updated`, `topic_pinned_status_updated`…): any event of type `topic` is
  read as a topic snapshot;
- group membership events are named `user_added_to_group` / `user_removed_from_group`, while the
  admin UI calls them `group_user_added` / `group_user_removed`: both spellings are accepted. Their
  payload holds only ids (`group_id`, `user_id`): names are read when present, else left None;
- unknown keys (plugins, newer versions) are ignored; missing optional keys become None.

`classify()` says what CONTRACT §3 ignores with a 200 from the delivery alone (ping, private
messages, whispers, small actions, the bot's own posts). Whether a topic is a commons needs the
service's data, so `Accepted` exposes the topic id and whether the post holds a `/commun` line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Union

from commons_sync.discourse.commands import has_command
from commons_sync.discourse.errors import MalformedDelivery, UnsupportedEvent

# Discourse post types (Post.types).
POST_TYPE_REGULAR = 1
POST_TYPE_MODERATOR_ACTION = 2
POST_TYPE_SMALL_ACTION = 3
POST_TYPE_WHISPER = 4
PRIVATE_MESSAGE = "private_message"


# --- the delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One webhook request: its Discourse headers and its decoded JSON body (`payload`)."""

    event_type: str  # X-Discourse-Event-Type: ping, post, topic, group_user…
    event: str  # X-Discourse-Event: post_created, topic_closed_status_updated…
    event_id: int  # X-Discourse-Event-Id (an automatic retry gets a new one)
    instance: str | None  # X-Discourse-Instance, the forum's base URL
    payload: Mapping[str, Any] = field(hash=False)


DELIVERY_HEADERS = ("X-Discourse-Event", "X-Discourse-Event-Type", "X-Discourse-Event-Id",
                    "X-Discourse-Instance")


def parse_delivery(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Read a delivery's headers (any case) and raw body; the signature is checked before, apart.

    Raises:
        MalformedDelivery: a missing or invalid `X-Discourse-*` header, or a body that is not a
            JSON object in UTF-8.
    """
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    event = lowered.get("x-discourse-event", "").strip()
    event_type = lowered.get("x-discourse-event-type", "").strip()
    raw_id = lowered.get("x-discourse-event-id", "").strip()
    if not event:
        raise MalformedDelivery("missing X-Discourse-Event header")
    if not event_type:
        raise MalformedDelivery("missing X-Discourse-Event-Type header")
    # ASCII digits only: `str.isdigit` also accepts "²" or "٣", which `int()` refuses or reads;
    # 20 digits already exceed the 64-bit range checked by the caller.
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 20:
        raise MalformedDelivery("missing or non-numeric X-Discourse-Event-Id header")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDelivery(f"body is not JSON text: {exc}") from None
    except RecursionError:
        raise MalformedDelivery("body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise MalformedDelivery("body is not a JSON object")
    instance = lowered.get("x-discourse-instance") or None
    return Delivery(event_type=event_type, event=event, event_id=int(raw_id), instance=instance,
                    payload=payload)


# --- snapshots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostSnapshot:
    """A post as Discourse serialised it at one moment; the highest `version` is its current state.

    `raw` is None when the forum did not send it (topic views without `include_raw`);
    `topic_archetype` and `category_id` are None in REST answers that do not carry them.
    """

    post_id: int
    topic_id: int
    post_number: int
    username: str
    user_id: int | None
    name: str | None
    version: int
    raw: str | None
    cooked: str | None
    deleted_at: datetime | None
    user_deleted: bool
    post_type: int
    topic_archetype: str | None
    category_id: int | None
    reply_to_post_number: int | None
    staff: bool
    admin: bool
    moderator: bool
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def is_private_message(self) -> bool:
        """Whether the post is in a private message."""
        return self.topic_archetype == PRIVATE_MESSAGE

    @property
    def is_whisper(self) -> bool:
        """Whether the post is a staff whisper."""
        return self.post_type == POST_TYPE_WHISPER

    @property
    def is_small_action(self) -> bool:
        """Whether the post is a small action ("closed this topic", "split this topic"…)."""
        return self.post_type == POST_TYPE_SMALL_ACTION

    @property
    def is_deleted(self) -> bool:
        """Whether staff deleted the post or its author withdrew it (`user_deleted`)."""
        return self.deleted_at is not None or self.user_deleted


@dataclass(frozen=True)
class TopicSnapshot:
    """A topic as Discourse serialised it at one moment (title, category, status flags)."""

    topic_id: int
    title: str
    category_id: int | None
    archetype: str
    user_id: int | None
    username: str | None  # created_by.username when the payload has it
    created_at: datetime | None
    closed: bool
    archived: bool
    visible: bool
    deleted_at: datetime | None
    posts_count: int | None

    @property
    def is_private_message(self) -> bool:
        """Whether the topic is a private message."""
        return self.archetype == PRIVATE_MESSAGE


@dataclass(frozen=True)
class GroupUserChange:
    """A user joined or left a group: refresh the membership cache (payloads carry only ids)."""

    group_id: int
    user_id: int
    added: bool
    group_name: str | None = None
    username: str | None = None


Subject = Union[PostSnapshot, TopicSnapshot, GroupUserChange]


# --- tiny accessors -----------------------------------------------------------------------------


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise MalformedDelivery(f"body has no {key!r} object")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedDelivery(f"{key!r} is not an integer")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():  # the spec types reply_to_post_number as string
        return int(value)
    return _int(data, key)


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedDelivery(f"{key!r} is not a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _str(data, key)


def _flag(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MalformedDelivery(f"{key!r} is not a boolean")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedDelivery(f"{key!r} is not a date")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedDelivery(f"{key!r} is not an ISO 8601 date") from None


def get_created_by_username(topic: Mapping[str, Any]) -> str | None:
    """The topic author's username, from `created_by` (webhooks) or `details.created_by` (REST)."""
    created_by = topic.get("created_by") or (topic.get("details") or {}).get("created_by")
    if isinstance(created_by, dict) and isinstance(created_by.get("username"), str):
        return created_by["username"]
    return None


def post_snapshot(post: Mapping[str, Any]) -> PostSnapshot:
    """A `PostSnapshot` from a serialised post (webhook `post` object or REST answer).

    Raises:
        MalformedDelivery: a required field is missing or has the wrong type.
    """
    return PostSnapshot(
        post_id=_int(post, "id"),
        topic_id=_int(post, "topic_id"),
        post_number=_int(post, "post_number"),
        username=_str(post, "username"),
        user_id=_opt_int(post, "user_id"),
        name=_opt_str(post, "name"),
        version=_int(post, "version"),
        raw=_opt_str(post, "raw"),
        cooked=_opt_str(post, "cooked"),
        deleted_at=_time(post, "deleted_at"),
        user_deleted=_flag(post, "user_deleted"),
        post_type=_opt_int(post, "post_type") or POST_TYPE_REGULAR,
        topic_archetype=_opt_str(post, "topic_archetype"),
        category_id=_opt_int(post, "category_id"),
        reply_to_post_number=_opt_int(post, "reply_to_post_number"),
        staff=_flag(post, "staff"),
        admin=_flag(post, "admin"),
        moderator=_flag(post, "moderator"),
        created_at=_time(post, "created_at"),
        updated_at=_time(post, "updated_at"),
    )


def topic_snapshot(topic: Mapping[str, Any]) -> TopicSnapshot:
    """A `TopicSnapshot` from a serialised topic (webhook `topic` object or `GET /t/{id}.json`).

    Raises:
        MalformedDelivery: a required field is missing or has the wrong type.
    """
    return TopicSnapshot(
        topic_id=_int(topic, "id"),
        title=_str(topic, "title"),
        category_id=_opt_int(topic, "category_id"),
        archetype=_opt_str(topic, "archetype") or "regular",
        user_id=_opt_int(topic, "user_id"),
        username=get_created_by_username(topic),
        created_at=_time(topic, "created_at"),
        closed=_flag(topic, "closed"),
        archived=_flag(topic, "archived"),
        visible=_flag(topic, "visible", default=True),
        deleted_at=_time(topic, "deleted_at"),
        posts_count=_opt_int(topic, "posts_count"),
    )


def _group_user_change(payload: Mapping[str, Any], added: bool) -> GroupUserChange:
    group_user = _object(payload, "group_user")
    return GroupUserChange(
        group_id=_int(group_user, "group_id"),
        user_id=_int(group_user, "user_id"),
        added=added,
        group_name=_opt_str(group_user, "group_name"),
        username=_opt_str(group_user, "username"),
    )


# --- dispatch -----------------------------------------------------------------------------------


def _read_post(delivery: Delivery) -> PostSnapshot:
    return post_snapshot(_object(delivery.payload, "post"))


def _read_topic(delivery: Delivery) -> TopicSnapshot:
    return topic_snapshot(_object(delivery.payload, "topic"))


def _read_group_user_added(delivery: Delivery) -> GroupUserChange:
    return _group_user_change(delivery.payload, added=True)


def _read_group_user_removed(delivery: Delivery) -> GroupUserChange:
    return _group_user_change(delivery.payload, added=False)


ANY_EVENT = "*"

# (X-Discourse-Event-Type, X-Discourse-Event) -> parser; ANY_EVENT matches names not listed.
EVENT_HANDLERS: dict[tuple[str, str], Callable[[Delivery], Subject]] = {
    ("post", "post_created"): _read_post,
    ("post", "post_edited"): _read_post,
    ("post", "post_destroyed"): _read_post,
    ("post", "post_recovered"): _read_post,
    ("topic", ANY_EVENT): _read_topic,  # topic_created, topic_edited, topic_*_status_updated…
    ("group_user", "user_added_to_group"): _read_group_user_added,
    ("group_user", "group_user_added"): _read_group_user_added,
    ("group_user", "user_removed_from_group"): _read_group_user_removed,
    ("group_user", "group_user_removed"): _read_group_user_removed,
}

# Event names for the service's own vocabulary: both spellings of group events become one.
CANONICAL_EVENTS: dict[str, str] = {
    "group_user_added": "user_added_to_group",
    "group_user_removed": "user_removed_from_group",
}

# Known events the service does not want (answered 200). The webhook should not even send most.
IGNORED_EVENTS: frozenset[str] = frozenset({
    "ping",
    "user_created", "user_updated", "user_logged_in", "user_logged_out", "user_approved",
    "user_confirmed_email", "user_destroyed", "user_suspended", "user_unsuspended",
    "group_created", "group_updated", "group_destroyed",
    "category_created", "category_updated", "category_destroyed",
    "tag_created", "tag_updated", "tag_destroyed",
    "post_liked", "user_badge_granted", "user_badge_revoked", "notification_created",
    "reviewable_created", "reviewable_updated", "reviewable_score_updated",
    "reviewable_transitioned_to", "solved_accepted_solution", "solved_unaccepted_solution",
    "chat_message_created", "chat_message_edited", "chat_message_trashed",
    "chat_message_restored", "user_promoted",
})


def canonical_event(delivery: Delivery) -> str:
    """The delivery's event name, one spelling per event (`group_user_added` → `user_added_to_group`)."""
    return CANONICAL_EVENTS.get(delivery.event, delivery.event)


def read_subject(delivery: Delivery) -> Subject:
    """The snapshot or change the delivery carries, through `EVENT_HANDLERS`.

    Raises:
        UnsupportedEvent: an ignored or unknown event.
        MalformedDelivery: a known event whose body lacks what it must hold.
    """
    handler = (EVENT_HANDLERS.get((delivery.event_type, delivery.event))
               or EVENT_HANDLERS.get((delivery.event_type, ANY_EVENT)))
    if handler is None or delivery.event in IGNORED_EVENTS:
        raise UnsupportedEvent(delivery.event_type, delivery.event)
    return handler(delivery)


# --- what CONTRACT §3 ignores ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ignored:
    """A delivery answered 200 and not stored; `reason` is a short English phrase for the log."""

    reason: str


@dataclass(frozen=True)
class Accepted:
    """A delivery worth storing, unless (`needs_commons_topic`) its topic is not a commons.

    `opens_commons`: the post holds a `/commun` line (or is the bot's first post of a topic it
    created, `links_topic`), accepted even in a topic that is not a commons yet; whether its author
    is in the staff group is checked later, when it is applied (`author_is_staff` only reflects
    Discourse's own admin/moderator flag). It is parsed only when asked: the webhook asks only for
    topics it does not know as commons, so most deliveries skip the Markdown parse.
    """

    event: str  # canonical_event(delivery)
    subject: Subject
    topic_id: int | None
    needs_commons_topic: bool
    links_topic: bool = False
    author_is_staff: bool = False

    @cached_property
    def opens_commons(self) -> bool:
        if self.links_topic:
            return True
        return isinstance(self.subject, PostSnapshot) and has_command(self.subject.raw or "", "commun")


Classification = Union[Ignored, Accepted]


def classify(delivery: Delivery, bot_username: str) -> Classification:
    """Whether CONTRACT §3 ignores the delivery (200) or it should be stored (202).

    Raises:
        MalformedDelivery: a known event whose body lacks what it must hold (answer 400).
    """
    if delivery.event_type == "ping" or delivery.event == "ping":
        return Ignored("ping")
    if delivery.event in IGNORED_EVENTS:
        return Ignored(f"{delivery.event} is not used by the service")
    try:
        subject = read_subject(delivery)
    except UnsupportedEvent as exc:
        return Ignored(str(exc))
    event = canonical_event(delivery)
    if isinstance(subject, GroupUserChange):
        return Accepted(event=event, subject=subject, topic_id=None, needs_commons_topic=False)
    if isinstance(subject, TopicSnapshot):
        if subject.is_private_message:
            return Ignored("private message")
        return Accepted(event=event, subject=subject, topic_id=subject.topic_id,
                        needs_commons_topic=True)
    if subject.is_private_message:
        return Ignored("private message")
    if subject.is_whisper:
        return Ignored("whisper")
    if subject.is_small_action:
        return Ignored("small action")
    if subject.post_type == POST_TYPE_MODERATOR_ACTION:
        return Ignored("moderator action")
    if subject.username.casefold() == bot_username.casefold():
        return Ignored("the bot's own post")
    return Accepted(event=event, subject=subject, topic_id=subject.topic_id,
                    needs_commons_topic=True, author_is_staff=subject.staff)
