"""The forum's in-memory state and the operations people and the API perform on it.

Every change that Discourse reports by webhook calls `emit(event_type, event_name, payload)`
with a snapshot taken under the lock, in the order Discourse would enqueue the jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from . import serializers
from .config import DoubleConfig
from .cooking import cook
from .errors import Forbidden, InvalidRequest, NotFound
from .models import Category, Group, GroupUser, Post, Topic, User, now_iso, slugify

Emit = Callable[[str, str, dict[str, Any]], None]

REGULAR, SMALL_ACTION, WHISPER = 1, 3, 4

AUTOMATIC_GROUPS = {"admins": 1, "moderators": 2, "staff": 3, "trust_level_0": 10, "trust_level_1": 11,
                    "trust_level_2": 12, "trust_level_3": 13, "trust_level_4": 14}


class Forum:
    """Users, groups, categories, topics and posts of one imitated Discourse, thread-safe."""

    def __init__(self, config: DoubleConfig, emit: Emit | None = None):
        self.config = config
        self.lock = threading.RLock()
        self.emit: Emit = emit or (lambda event_type, event_name, payload: None)
        self.users_by_id: dict[int, User] = {}
        self.users: dict[str, User] = {}
        self.groups_by_id: dict[int, Group] = {}
        self.groups: dict[str, Group] = {}
        self.categories: dict[int, Category] = {}
        self.topics: dict[int, Topic] = {}
        self.posts: dict[int, Post] = {}
        self._next = {"user": 1, "group": 41, "category": 5, "topic": 301, "post": 2001, "group_user": 1}
        for name, group_id in AUTOMATIC_GROUPS.items():
            group = Group(id=group_id, name=name, automatic=True)
            self.groups[name] = group
            self.groups_by_id[group_id] = group
        self.system = self._add_user(User(id=-1, username="system", name="system",
                                          email="no_email", admin=True, trust_level=4))
        self.create_user(config.api_username, name=config.api_username, admin=True, trust_level=4)
        self.create_category("Général", slug="general")

    # -- identifiers and lookups ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return urlsplit(self.config.instance_url or "http://localhost").netloc or "localhost"

    def _new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] += 1
        return value

    def user(self, username: str) -> User:
        user = self.users.get(username.lower())
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    def group(self, name: str) -> Group:
        group = self.groups.get(name.lower())
        if group is None:
            raise NotFound(f"no group {name!r}")
        return group

    def topic(self, topic_id: int) -> Topic:
        topic = self.topics.get(topic_id)
        if topic is None:
            raise NotFound(f"no topic {topic_id}")
        return topic

    def post(self, post_id: int) -> Post:
        post = self.posts.get(post_id)
        if post is None:
            raise NotFound(f"no post {post_id}")
        return post

    def post_by_number(self, topic: Topic, post_number: int) -> Post | None:
        for post_id in topic.post_ids:
            if self.posts[post_id].post_number == post_number:
                return self.posts[post_id]
        return None

    def can_see_topic(self, topic: Topic, viewer: User) -> bool:
        if topic.deleted_at is not None and not viewer.staff:
            return False
        if topic.archetype == "private_message":
            return viewer.admin or viewer.id in topic.allowed_user_ids
        return True

    def can_see_post(self, post: Post, viewer: User) -> bool:
        if (post.deleted_at is not None or post.post_type == WHISPER) and not viewer.staff:
            return False
        return self.can_see_topic(self.topics[post.topic_id], viewer)

    def visible_posts(self, topic: Topic, viewer: User) -> list[Post]:
        posts = [self.posts[post_id] for post_id in topic.post_ids]
        return [post for post in posts if self.can_see_post(post, viewer)]

    def topic_posts_count(self, topic: Topic) -> int:
        return sum(1 for post_id in topic.post_ids if self.posts[post_id].deleted_at is None
                   and not self.posts[post_id].user_deleted and self.posts[post_id].post_type == REGULAR)

    def reply_count(self, post: Post) -> int:
        topic = self.topics[post.topic_id]
        return sum(1 for post_id in topic.post_ids
                   if self.posts[post_id].reply_to_post_number == post.post_number
                   and self.posts[post_id].deleted_at is None)

    def word_count(self, topic: Topic) -> int:
        return sum(len(self.posts[post_id].raw.split()) for post_id in topic.post_ids
                   if self.posts[post_id].deleted_at is None)

    def has_deleted(self, topic: Topic) -> bool:
        return any(self.posts[post_id].deleted_at is not None for post_id in topic.post_ids)

    def participants(self, topic: Topic) -> list[tuple[User, int]]:
        counts: dict[int, int] = {}
        for post_id in topic.post_ids:
            post = self.posts[post_id]
            if post.deleted_at is None:
                counts[post.user_id] = counts.get(post.user_id, 0) + 1
        return [(self.users_by_id[user_id], count) for user_id, count in counts.items()]

    # -- groups ---------------------------------------------------------------------------------

    def group_member_ids(self, group: Group) -> list[int]:
        """Ids of a group's members; automatic groups follow the users' flags and trust levels."""
        if not group.automatic:
            return list(group.members)
        users = [user for user in self.users_by_id.values() if user.id > 0]
        if group.name == "admins":
            return [user.id for user in users if user.admin]
        if group.name == "moderators":
            return [user.id for user in users if user.moderator]
        if group.name == "staff":
            return [user.id for user in users if user.staff]
        level = int(group.name.rsplit("_", 1)[1])
        return [user.id for user in users if user.trust_level >= level]

    def is_member(self, group: Group, user: User) -> bool:
        """Whether the user is in the group, without listing its members (a forum of 10,000 users
        answers `GET /u/{username}.json` in constant time, as Discourse does from its index)."""
        if not group.automatic:
            return user.id in group.members
        if user.id <= 0:
            return False
        if group.name == "admins":
            return user.admin
        if group.name == "moderators":
            return user.moderator
        if group.name == "staff":
            return user.staff
        return user.trust_level >= int(group.name.rsplit("_", 1)[1])

    def groups_of(self, user: User) -> list[Group]:
        return sorted((group for group in self.groups.values() if self.is_member(group, user)),
                      key=lambda group: group.id)

    def is_owner(self, group: Group, user: User) -> bool:
        membership = group.members.get(user.id)
        return bool(membership and membership.owner)

    # -- setup (test control) -------------------------------------------------------------------

    def _add_user(self, user: User) -> User:
        self.users[user.username.lower()] = user
        self.users_by_id[user.id] = user
        return user

    def create_user(self, username: str, *, name: str | None = None, email: str | None = None,
                    admin: bool = False, moderator: bool = False, trust_level: int = 1,
                    groups: list[str] | tuple[str, ...] = (), primary_group: str | None = None,
                    title: str | None = None) -> User:
        """A new account, added to `groups` (which fires group_user events, as Discourse does)."""
        with self.lock:
            if not username or username.lower() in self.users:
                raise InvalidRequest([f"Username {username!r} must be unique"])
            user = self._add_user(User(id=self._new_id("user"), username=username, name=name,
                                       email=email or f"{username}@example.org", admin=admin,
                                       moderator=moderator, trust_level=trust_level, title=title))
            for group_name in groups:
                self.add_to_group(group_name, username)
            if primary_group:
                user.primary_group_id = self.group(primary_group).id
            return user

    def create_group(self, name: str, full_name: str | None = None) -> Group:
        with self.lock:
            if name.lower() in self.groups:
                raise InvalidRequest(["Name has already been taken"])
            group = Group(id=self._new_id("group"), name=name, full_name=full_name)
            self.groups[name.lower()] = group
            self.groups_by_id[group.id] = group
            return group

    def create_category(self, name: str, slug: str | None = None, category_id: int | None = None) -> Category:
        with self.lock:
            identifier = category_id if category_id is not None else self._new_id("category")
            if identifier in self.categories:
                raise InvalidRequest(["Category id is already taken"])
            category = Category(id=identifier, name=name, slug=slug or slugify(name))
            self.categories[identifier] = category
            return category

    def add_to_group(self, group_name: str, username: str, owner: bool = False) -> GroupUser:
        """Adds a member; fires `group_user` / `user_added_to_group` unless already a member."""
        with self.lock:
            group, user = self.group(group_name), self.user(username)
            if group.automatic:
                raise InvalidRequest([f"{group.name} is an automatic group"])
            if user.id in group.members:
                membership = group.members[user.id]
                membership.owner = membership.owner or owner
                return membership
            membership = GroupUser(id=self._new_id("group_user"), group_id=group.id, user_id=user.id, owner=owner)
            group.members[user.id] = membership
            self.emit("group_user", "user_added_to_group", serializers.group_user_webhook(membership))
            return membership

    def remove_from_group(self, group_name: str, username: str) -> None:
        """Removes a member; fires `group_user` / `user_removed_from_group`."""
        with self.lock:
            group, user = self.group(group_name), self.user(username)
            membership = group.members.pop(user.id, None)
            if membership is None:
                raise NotFound(f"{username} is not a member of {group_name}")
            if user.primary_group_id == group.id:
                user.primary_group_id = None
            self.emit("group_user", "user_removed_from_group", serializers.group_user_webhook(membership))

    # -- posting ----------------------------------------------------------------------------------

    def _check_length(self, errors: list[str], label: str, text: str, minimum: int) -> None:
        if not text.strip():
            errors.append(f"{label} can’t be blank")
        elif minimum and len(text.strip()) < minimum:
            errors.append(f"{label} is too short (minimum is {minimum} characters)")

    def create_post(self, actor: User, *, raw: str | None, topic_id: int | None = None,
                    title: str | None = None, category: int | None = None, archetype: str | None = None,
                    target_recipients: str | None = None, reply_to_post_number: int | None = None,
                    whisper: bool = False) -> Post:
        """A reply (`topic_id`), a new topic (`title`) or a private message, as PostCreator makes them.

        Raises:
            InvalidRequest: with Discourse's messages (blank or short raw, unknown topic, ...).
        """
        with self.lock:
            raw = raw or ""
            errors: list[str] = []
            if topic_id is not None:
                topic = self.topics.get(topic_id)
                if topic is None or not self.can_see_topic(topic, actor):
                    raise InvalidRequest(["Topic not found"])
                if topic.closed and not actor.staff:
                    raise InvalidRequest(["This topic is closed"])
                minimum = (self.config.min_personal_message_post_length
                           if topic.archetype == "private_message" else self.config.min_post_length)
                self._check_length(errors, "Body", raw, minimum)
                if reply_to_post_number is not None and self.post_by_number(topic, reply_to_post_number) is None:
                    reply_to_post_number = None
                if whisper and not actor.staff:
                    errors.append("Only staff can whisper")
                if errors:
                    raise InvalidRequest(errors)
                post = self._add_post(topic, actor, raw, reply_to_post_number)
                if whisper:
                    post.post_type = WHISPER
                self.emit("post", "post_created", serializers.post_webhook(self, post))
                return post
            private = archetype == "private_message"
            self._check_length(errors, "Title", title or "", self.config.min_personal_message_title_length
                               if private else self.config.min_topic_title_length)
            self._check_length(errors, "Body", raw, self.config.min_personal_message_post_length
                               if private else self.config.min_first_post_length)
            allowed: list[int] = [actor.id]
            if private:
                names = [name.strip() for name in (target_recipients or "").split(",") if name.strip()]
                if not names:
                    errors.append("You must choose a valid user.")
                for name in names:
                    if name.lower() in self.users:
                        allowed.append(self.users[name.lower()].id)
                    elif name.lower() in self.groups:
                        allowed.extend(self.group_member_ids(self.groups[name.lower()]))
                    else:
                        errors.append(f"Sorry, there is no user or group named {name}.")
            elif category is not None and category not in self.categories:
                errors.append("Category can’t be blank")
            if errors:
                raise InvalidRequest(errors)
            topic = Topic(id=self._new_id("topic"), title=title or "", slug=slugify(title or ""),
                          category_id=None if private else (category if category is not None
                                                            else min(self.categories)),
                          user_id=actor.id, archetype="private_message" if private else "regular",
                          allowed_user_ids=sorted(set(allowed)) if private else [])
            self.topics[topic.id] = topic
            post = self._add_post(topic, actor, raw, None)
            self.emit("topic", "topic_created", serializers.topic_webhook(self, topic))
            self.emit("post", "post_created", serializers.post_webhook(self, post))
            return post

    def _add_post(self, topic: Topic, actor: User, raw: str, reply_to: int | None) -> Post:
        topic.highest_post_number += 1
        post = Post(id=self._new_id("post"), topic_id=topic.id, post_number=topic.highest_post_number,
                    user_id=actor.id, raw=raw, cooked=cook(raw), reply_to_post_number=reply_to,
                    last_version_at=time.monotonic())
        self.posts[post.id] = post
        topic.post_ids.append(post.id)
        topic.last_posted_at = post.created_at
        topic.last_poster_id = actor.id
        actor.last_posted_at = post.created_at
        return post

    def edit_post(self, actor: User, post_id: int, raw: str | None, edit_reason: str | None = None) -> Post:
        """Revises a post as PostRevisor does; fires `post_edited` (also for the API user's edits).

        Raises:
            NotFound: no such post, or hidden from the actor.
            Forbidden: not the author nor staff, or a locked post edited by non-staff.
            InvalidRequest: blank or too short raw.
        """
        with self.lock:
            post = self.post(post_id)
            if not self.can_see_post(post, actor):
                raise NotFound(f"no post {post_id}")
            if not actor.staff and (actor.id != post.user_id or post.locked or post.user_deleted):
                raise Forbidden("You are not permitted to edit this post.")
            errors: list[str] = []
            topic = self.topics[post.topic_id]
            minimum = (self.config.min_personal_message_post_length if topic.archetype == "private_message"
                       else self.config.min_first_post_length if post.post_number == 1
                       else self.config.min_post_length)
            self._check_length(errors, "Body", raw or "", minimum)
            if errors:
                raise InvalidRequest(errors)
            if raw == post.raw:
                return post
            self._revise(post, actor, raw or "", edit_reason)
            self.emit("post", "post_edited", serializers.post_webhook(self, post))
            return post

    def _revise(self, post: Post, actor: User, raw: str, edit_reason: str | None) -> None:
        now = time.monotonic()
        grace = self.config.editing_grace_period
        ninja = (grace > 0 and actor.id == post.user_id and not edit_reason
                 and now - post.last_version_at <= grace)
        if not ninja:
            post.version += 1
            post.last_version_at = now
        post.raw = raw
        post.cooked = cook(raw)
        post.edit_reason = edit_reason
        post.updated_at = now_iso()

    def set_locked(self, actor: User, post_id: int, locked: bool) -> Post:
        """Locks a post against edits by non-staff (staff only), as PUT /posts/{id}/locked.json."""
        with self.lock:
            post = self.post(post_id)
            if not actor.staff:
                raise Forbidden("You are not permitted to lock posts.")
            post.locked = locked
            return post

    def delete_post(self, actor: User, post_id: int) -> Post:
        """Deletes as PostDestroyer does: staff delete for real, a non-staff author marks for deletion.

        The author's deletion fires `post_edited` (raw becomes the locale text) then
        `post_destroyed` with `deleted_at` null and `user_deleted` true; staff deletion fires
        `post_destroyed` with `deleted_at` and `deleted_by` set.
        """
        with self.lock:
            post = self.post(post_id)
            if post.deleted_at is not None:
                raise NotFound(f"post {post_id} is already deleted")
            if actor.staff:
                post.deleted_at = now_iso()
                post.deleted_by_id = actor.id
                post.updated_at = post.deleted_at
                self.emit("post", "post_destroyed", serializers.post_webhook(self, post))
                return post
            if actor.id != post.user_id or post.user_deleted:
                raise Forbidden("You are not permitted to delete this post.")
            post.raw_before_author_deletion = post.raw
            self._revise(post, actor, self.config.deleted_by_author_text, None)
            post.edit_reason = None
            self.emit("post", "post_edited", serializers.post_webhook(self, post))
            post.user_deleted = True
            self.emit("post", "post_destroyed", serializers.post_webhook(self, post))
            return post

    def recover_post(self, actor: User, post_id: int) -> Post:
        """Reverses a deletion: an author's with `post_edited` then `post_recovered`, staff's with
        `post_recovered`."""
        with self.lock:
            post = self.post(post_id)
            if post.deleted_at is not None:
                if not actor.staff:
                    raise Forbidden("You are not permitted to recover this post.")
                post.deleted_at = None
                post.deleted_by_id = None
                post.updated_at = now_iso()
                self.emit("post", "post_recovered", serializers.post_webhook(self, post))
                return post
            if not post.user_deleted:
                raise InvalidRequest(["This post is not deleted."])
            if not (actor.staff or actor.id == post.user_id):
                raise Forbidden("You are not permitted to recover this post.")
            self._revise(post, actor, post.raw_before_author_deletion or "", None)
            post.raw_before_author_deletion = None
            self.emit("post", "post_edited", serializers.post_webhook(self, post))
            post.user_deleted = False
            self.emit("post", "post_recovered", serializers.post_webhook(self, post))
            return post

    def edit_topic(self, actor: User, topic_id: int, *, title: str | None = None,
                   category: int | None = None, closed: bool | None = None) -> Topic:
        """Changes a topic's title, category or closed status; fires `topic_edited`."""
        with self.lock:
            topic = self.topic(topic_id)
            if not (actor.staff or actor.id == topic.user_id):
                raise Forbidden("You are not permitted to edit this topic.")
            if title is not None:
                errors: list[str] = []
                self._check_length(errors, "Title", title, self.config.min_topic_title_length)
                if errors:
                    raise InvalidRequest(errors)
                topic.title, topic.slug = title, slugify(title)
            if category is not None:
                if category not in self.categories:
                    raise InvalidRequest(["Category can’t be blank"])
                topic.category_id = category
            name = "topic_edited"
            if closed is not None and closed != topic.closed:
                topic.closed = closed
                if title is None and category is None:
                    name = "topic_closed_status_updated"
                small_action = self._add_post(topic, actor, "", None)
                small_action.post_type = SMALL_ACTION
                small_action.action_code = "closed.enabled" if closed else "closed.disabled"
                self.emit("post", "post_created", serializers.post_webhook(self, small_action))
            self.emit("topic", name, serializers.topic_webhook(self, topic))
            return topic
