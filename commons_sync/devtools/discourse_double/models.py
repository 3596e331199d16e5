"""The forum's records (users, groups, categories, topics, posts), kept in memory."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone


def now_iso() -> str:
    """The current time the way Discourse writes it: `2025-03-18T14:07:22.418Z`."""
    moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def slugify(title: str) -> str:
    """Discourse's ASCII slug of a title: accents dropped, apostrophes removed, dashes between words."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("'", "")
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text or "topic"


def fancy_title(title: str) -> str:
    """The title as Discourse's `fancy_title`: HTML-escaped, with typographic apostrophes."""
    return html.escape(title, quote=False).replace("’", "&rsquo;").replace("'", "&rsquo;")


@dataclass
class User:
    """A forum account; `staff` means admin or moderator, as in Discourse."""

    id: int
    username: str
    name: str | None
    email: str
    admin: bool = False
    moderator: bool = False
    trust_level: int = 1
    primary_group_id: int | None = None
    title: str | None = None
    created_at: str = field(default_factory=now_iso)
    last_posted_at: str | None = None

    @property
    def staff(self) -> bool:
        return self.admin or self.moderator


@dataclass
class GroupUser:
    """A user's membership of a group (`owner` marks a group owner)."""

    id: int
    group_id: int
    user_id: int
    owner: bool = False
    created_at: str = field(default_factory=now_iso)


@dataclass
class Group:
    """A group; automatic ones (admins, moderators, staff, trust_level_N) are computed."""

    id: int
    name: str
    full_name: str | None = None
    automatic: bool = False
    members: dict[int, GroupUser] = field(default_factory=dict)


@dataclass
class Category:
    """A category topics are filed in."""

    id: int
    name: str
    slug: str


@dataclass
class Topic:
    """A topic (or private message when `archetype` is `private_message`)."""

    id: int
    title: str
    slug: str
    category_id: int | None
    user_id: int
    archetype: str = "regular"
    allowed_user_ids: list[int] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)
    last_posted_at: str | None = None
    last_poster_id: int | None = None
    closed: bool = False
    archived: bool = False
    visible: bool = True
    deleted_at: str | None = None
    post_ids: list[int] = field(default_factory=list)
    highest_post_number: int = 0


@dataclass
class Post:
    """A post; `version` counts its revisions, `user_deleted` marks a deletion by its author."""

    id: int
    topic_id: int
    post_number: int
    user_id: int
    raw: str
    cooked: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    version: int = 1
    post_type: int = 1
    reply_to_post_number: int | None = None
    edit_reason: str | None = None
    deleted_at: str | None = None
    deleted_by_id: int | None = None
    user_deleted: bool = False
    raw_before_author_deletion: str | None = None
    locked: bool = False
    hidden: bool = False
    wiki: bool = False
    action_code: str | None = None
    last_version_at: float = 0.0
