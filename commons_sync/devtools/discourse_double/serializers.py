"""Discourse's JSON shapes: API answers (PostSerializer, TopicViewSerializer, UserSerializer,
group members) and webhook payloads (WebHookPostSerializer, WebHookTopicViewSerializer,
WebHookGroupUserSerializer), with the keys and types real Discourse sends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import Group, GroupUser, Post, Topic, User, fancy_title

if TYPE_CHECKING:
    from .forum import Forum

ACTIONS_SUMMARY = [{"id": 2, "can_act": True}, {"id": 3, "can_act": True}, {"id": 4, "can_act": True},
                   {"id": 8, "can_act": True}, {"id": 6, "can_act": True}, {"id": 7, "can_act": True}]


def avatar_template(forum: Forum, user: User) -> str:
    """Discourse's avatar template of a user (`{size}` is left for the client)."""
    return f"/user_avatar/{forum.host}/{user.username}/{{size}}/{100 + user.id}_2.png"


def basic_user(forum: Forum, user: User) -> dict[str, Any]:
    """BasicUserSerializer: id, username, name, avatar_template."""
    return {"id": user.id, "username": user.username, "name": user.name or "",
            "avatar_template": avatar_template(forum, user)}


def _flair(forum: Forum, user: User) -> dict[str, Any]:
    group = forum.groups_by_id.get(user.primary_group_id) if user.primary_group_id else None
    return {"primary_group_name": group.name if group else None, "flair_name": group.name if group else None,
            "flair_url": None, "flair_bg_color": None, "flair_color": None,
            "flair_group_id": group.id if group else None}


def post_url(topic: Topic, post: Post) -> str:
    return f"/t/{topic.slug}/{topic.id}/{post.post_number}"


def post_api(forum: Forum, post: Post, viewer: User, *, kind: str, include_raw: bool = False) -> dict[str, Any]:
    """One post as the REST API shows it to `viewer`.

    `kind` is `create` (POST /posts.json), `update` (PUT /posts/{id}.json), `show`
    (GET /posts/{id}.json) or `topic` (posts of GET /t/{id}.json and /t/{id}/posts.json).
    As in Discourse, `reply_to_post_number` is an integer, `reply_to_user` comes with a reply,
    `locked` shows only to the author and staff.
    """
    user = forum.users_by_id[post.user_id]
    topic = forum.topics[post.topic_id]
    staff_viewer = viewer.staff
    yours = viewer.id == user.id
    flair = _flair(forum, user)
    data: dict[str, Any] = {
        "id": post.id, "name": user.name, "username": user.username,
        "avatar_template": avatar_template(forum, user), "created_at": post.created_at,
    }
    if kind == "create":
        data["raw"] = post.raw
    data.update({
        "cooked": post.cooked, "post_number": post.post_number, "post_type": post.post_type,
    })
    if kind != "topic":
        data["posts_count"] = forum.topic_posts_count(topic)
    data.update({
        "updated_at": post.updated_at, "reply_count": forum.reply_count(post),
        "reply_to_post_number": post.reply_to_post_number, "quote_count": 0, "incoming_link_count": 0,
        "reads": 1, "readers_count": 0, "score": 0, "yours": yours, "topic_id": topic.id,
        "topic_slug": topic.slug, "display_username": user.name if kind != "topic" else (user.name or ""),
    })
    if kind == "topic":
        data["name"] = user.name or ""
        flair.pop("flair_group_id")
    data.update(flair)
    if kind in ("create", "update"):
        data["badges_granted"] = []
    can_edit = staff_viewer or (yours and not post.locked)
    data.update({
        "version": post.version, "can_edit": can_edit, "can_delete": staff_viewer or yours,
        "can_recover": staff_viewer, "can_see_hidden_post": staff_viewer, "can_wiki": staff_viewer,
    })
    if kind == "topic":
        data["link_counts"] = []
        data["read"] = True
    data.update({"user_title": user.title, "bookmarked": False})
    if kind in ("update", "show") or include_raw:
        data["raw"] = post.raw
    data.update({
        "actions_summary": [dict(item) for item in ACTIONS_SUMMARY], "moderator": user.moderator,
        "admin": user.admin, "staff": user.staff, "user_id": user.id,
    })
    if kind in ("create", "update"):
        data["draft_sequence"] = 0
    data.update({
        "hidden": post.hidden, "trust_level": user.trust_level, "deleted_at": post.deleted_at,
        "user_deleted": post.user_deleted, "edit_reason": post.edit_reason,
        "can_view_edit_history": True, "wiki": post.wiki,
        "reviewable_id": 0 if kind == "topic" else None,
        "reviewable_score_count": 0, "reviewable_score_pending_count": 0,
    })
    if kind != "topic":
        data["post_url"] = post_url(topic, post)
    if kind in ("create", "update"):
        data["post_localizations"] = []
        data["mentioned_users"] = []
    if post.deleted_by_id is not None and staff_viewer and kind == "show":
        data["deleted_by"] = basic_user(forum, forum.users_by_id[post.deleted_by_id])
    if post.action_code:
        data["action_code"] = post.action_code
    if post.locked and (yours or staff_viewer):
        data["locked"] = True
    if post.reply_to_post_number is not None:
        replied = forum.post_by_number(topic, post.reply_to_post_number)
        if replied is not None:
            replied_user = forum.users_by_id[replied.user_id]
            data["reply_to_user"] = {"username": replied_user.username, "name": replied_user.name,
                                     "avatar_template": avatar_template(forum, replied_user)}
    return data


def post_webhook(forum: Forum, post: Post) -> dict[str, Any]:
    """One post as WebHookPostSerializer snapshots it (the keys of the sample deliveries)."""
    user = forum.users_by_id[post.user_id]
    topic = forum.topics[post.topic_id]
    category = forum.categories.get(topic.category_id) if topic.category_id else None
    flair = _flair(forum, user)
    count = forum.topic_posts_count(topic)
    data: dict[str, Any] = {
        "id": post.id, "name": user.name, "username": user.username,
        "avatar_template": avatar_template(forum, user), "created_at": post.created_at,
        "cooked": post.cooked, "post_number": post.post_number, "post_type": post.post_type,
        "posts_count": count, "updated_at": post.updated_at, "reply_count": forum.reply_count(post),
        "reply_to_post_number": post.reply_to_post_number, "quote_count": 0, "incoming_link_count": 0,
        "reads": 1, "score": 0.0, "topic_id": topic.id, "topic_slug": topic.slug,
        "topic_title": topic.title, "category_id": topic.category_id, "display_username": user.name,
        "primary_group_name": flair["primary_group_name"], "flair_name": flair["flair_name"],
        "flair_group_id": flair["flair_group_id"], "version": post.version, "user_title": user.title,
        "bookmarked": False, "raw": post.raw, "moderator": user.moderator, "admin": user.admin,
        "staff": user.staff, "user_id": user.id, "hidden": post.hidden, "trust_level": user.trust_level,
        "deleted_at": post.deleted_at,
    }
    if post.deleted_by_id is not None:
        data["deleted_by"] = basic_user(forum, forum.users_by_id[post.deleted_by_id])
    data.update({
        "user_deleted": post.user_deleted, "edit_reason": post.edit_reason, "wiki": post.wiki,
        "reviewable_id": None, "reviewable_score_count": 0, "reviewable_score_pending_count": 0,
        "post_url": post_url(topic, post), "topic_posts_count": count,
        "topic_filtered_posts_count": count, "topic_archetype": topic.archetype,
        "category_slug": category.slug if category else None,
    })
    if post.action_code:
        data["action_code"] = post.action_code
    return data


def topic_webhook(forum: Forum, topic: Topic) -> dict[str, Any]:
    """One topic as WebHookTopicViewSerializer snapshots it (no post stream, no raw)."""
    creator = forum.users_by_id[topic.user_id]
    last = forum.users_by_id.get(topic.last_poster_id or topic.user_id, creator)
    count = forum.topic_posts_count(topic)
    return {
        "tags": [], "tags_descriptions": {}, "id": topic.id, "title": topic.title,
        "fancy_title": fancy_title(topic.title), "posts_count": count, "created_at": topic.created_at,
        "views": 0, "reply_count": max(count - 1, 0), "like_count": 0,
        "last_posted_at": topic.last_posted_at, "visible": topic.visible, "closed": topic.closed,
        "archived": topic.archived, "archetype": topic.archetype, "slug": topic.slug,
        "category_id": topic.category_id, "word_count": forum.word_count(topic),
        "deleted_at": topic.deleted_at, "user_id": topic.user_id, "featured_link": None,
        "pinned_globally": False, "pinned_at": None, "pinned_until": None, "unpinned": None,
        "pinned": False, "highest_post_number": topic.highest_post_number, "deleted_by": None,
        "has_deleted": forum.has_deleted(topic), "bookmarked": False,
        "participant_count": len(forum.participants(topic)), "thumbnails": None,
        "created_by": basic_user(forum, creator), "last_poster": basic_user(forum, last),
    }


def group_user_webhook(membership: GroupUser) -> dict[str, Any]:
    """One membership as WebHookGroupUserSerializer snapshots it."""
    return {"group_id": membership.group_id, "user_id": membership.user_id, "notification_level": 3,
            "owner": membership.owner, "id": membership.id, "created_at": membership.created_at}


def topic_api(forum: Forum, topic: Topic, viewer: User, *, include_raw: bool = False,
              chunk_size: int = 20) -> dict[str, Any]:
    """GET /t/{id}.json: the topic, its first `chunk_size` posts and the ids of all its posts."""
    posts = forum.visible_posts(topic, viewer)
    creator = forum.users_by_id[topic.user_id]
    last = forum.users_by_id.get(topic.last_poster_id or topic.user_id, creator)
    staff = viewer.staff
    participants = []
    for user, post_count in forum.participants(topic):
        flair = _flair(forum, user)
        participants.append({
            **basic_user(forum, user), "post_count": post_count, **flair,
            "admin": user.admin, "moderator": user.moderator, "trust_level": user.trust_level,
        })
    count = forum.topic_posts_count(topic)
    return {
        "post_stream": {
            "posts": [post_api(forum, post, viewer, kind="topic", include_raw=include_raw)
                      for post in posts[:chunk_size]],
            "stream": [post.id for post in posts],
        },
        "timeline_lookup": [[1, 0]], "suggested_topics": [], "tags": [], "tags_descriptions": {},
        "id": topic.id, "title": topic.title, "fancy_title": fancy_title(topic.title),
        "posts_count": count, "created_at": topic.created_at, "views": 1,
        "reply_count": max(count - 1, 0), "like_count": 0, "last_posted_at": topic.last_posted_at,
        "visible": topic.visible, "closed": topic.closed, "archived": topic.archived,
        "has_summary": False, "archetype": topic.archetype, "slug": topic.slug,
        "category_id": topic.category_id,
        "word_count": forum.word_count(topic), "deleted_at": topic.deleted_at, "user_id": topic.user_id,
        "featured_link": None, "pinned_globally": False, "pinned_at": None, "pinned_until": None,
        "image_url": None, "slow_mode_seconds": 0, "draft": None, "draft_key": f"topic_{topic.id}",
        "draft_sequence": 0, "unpinned": None, "pinned": False, "current_post_number": 1,
        "highest_post_number": topic.highest_post_number, "deleted_by": None,
        "has_deleted": forum.has_deleted(topic), "actions_summary": [
            {"id": 4, "count": 0, "hidden": False, "can_act": True},
            {"id": 8, "count": 0, "hidden": False, "can_act": True},
            {"id": 7, "count": 0, "hidden": False, "can_act": True},
        ],
        "chunk_size": chunk_size, "bookmarked": False, "bookmarks": [], "topic_timer": None,
        "message_bus_last_id": 0, "participant_count": len(participants), "show_read_indicator": False,
        "thumbnails": None, "slow_mode_enabled_until": None,
        "details": {
            "can_edit": staff or viewer.id == topic.user_id, "notification_level": 1,
            "can_move_posts": staff, "can_delete": staff, "can_remove_allowed_users": staff,
            "can_create_post": True, "can_reply_as_new_topic": True, "can_invite_to": staff,
            "can_invite_via_email": staff, "can_flag_topic": True, "can_convert_topic": staff,
            "can_review_topic": staff, "can_close_topic": staff, "can_archive_topic": staff,
            "can_split_merge_topic": staff, "can_edit_staff_notes": staff,
            "can_toggle_topic_visibility": staff, "can_pin_unpin_topic": staff,
            "can_moderate_category": staff, "can_remove_self_id": viewer.id,
            "participants": participants, "created_by": basic_user(forum, creator),
            "last_poster": basic_user(forum, last),
        },
    }


def topic_posts_api(forum: Forum, topic: Topic, posts: list[Post], viewer: User, *,
                    include_raw: bool) -> dict[str, Any]:
    """GET /t/{id}/posts.json: the asked posts of a topic."""
    return {"post_stream": {"posts": [post_api(forum, post, viewer, kind="topic", include_raw=include_raw)
                                      for post in posts]},
            "id": topic.id}


def _group_api(forum: Forum, group: Group, user: User) -> dict[str, Any]:
    return {
        "id": group.id, "automatic": group.automatic, "name": group.name,
        "display_name": group.name, "user_count": len(forum.group_member_ids(group)),
        "mentionable_level": 0, "messageable_level": 0, "visibility_level": 0,
        "primary_group": user.primary_group_id == group.id, "title": None, "grant_trust_level": None,
        "incoming_email": None, "has_messages": False, "flair_url": None, "flair_bg_color": None,
        "flair_color": None, "bio_raw": None, "bio_cooked": None, "bio_excerpt": None,
        "public_admission": False, "public_exit": False, "allow_membership_requests": False,
        "full_name": group.full_name, "default_notification_level": 3, "membership_request_template": None,
        "members_visibility_level": 0, "can_see_members": True, "can_admin_group": False,
        "publish_read_state": False,
    }


def user_api(forum: Forum, user: User, viewer: User) -> dict[str, Any]:
    """GET /u/{username}.json, with `user.groups` (automatic groups included, as in Discourse)."""
    groups = forum.groups_of(user)
    flair = _flair(forum, user)
    staff = viewer.staff
    schedule: dict[str, Any] = {"enabled": False}
    for day in range(7):
        schedule[f"day_{day}_start_time"] = 480
        schedule[f"day_{day}_end_time"] = 1020
    posts = [post for post in forum.posts.values() if post.user_id == user.id and post.deleted_at is None]
    topics = [topic for topic in forum.topics.values() if topic.user_id == user.id]
    return {
        "user_badges": [],
        "user": {
            "id": user.id, "username": user.username, "name": user.name or "",
            "avatar_template": avatar_template(forum, user), "last_posted_at": user.last_posted_at,
            "last_seen_at": user.created_at, "created_at": user.created_at, "ignored": False,
            "muted": False, "can_ignore_user": False, "can_mute_user": False,
            "can_send_private_messages": True, "can_send_private_message_to_user": True,
            "trust_level": user.trust_level, "moderator": user.moderator, "admin": user.admin,
            "title": user.title, "badge_count": 0, "custom_fields": {}, "time_read": 0,
            "recent_time_read": 0, "primary_group_id": user.primary_group_id,
            "primary_group_name": flair["primary_group_name"], "flair_group_id": flair["flair_group_id"],
            "flair_name": flair["flair_name"], "flair_url": None, "flair_bg_color": None,
            "flair_color": None, "featured_topic": None, "staged": False, "can_edit": staff,
            "can_edit_username": staff, "can_edit_email": staff, "can_edit_name": staff,
            "uploaded_avatar_id": None, "has_title_badges": False, "pending_count": 0,
            "profile_view_count": 0, "second_factor_enabled": False, "can_upload_profile_header": True,
            "can_upload_user_card_background": True, "post_count": len(posts), "topic_count": len(topics),
            "can_be_deleted": staff and not posts, "can_delete_all_posts": staff, "locale": None,
            "muted_category_ids": [], "regular_category_ids": [], "watched_tags": [],
            "watching_first_post_tags": [], "tracked_tags": [], "muted_tags": [],
            "tracked_category_ids": [], "watched_category_ids": [], "watched_first_post_category_ids": [],
            "system_avatar_upload_id": None,
            "system_avatar_template": f"/letter_avatar_proxy/v4/letter/{user.username[0]}/5daacb/{{size}}.png",
            "muted_usernames": [], "ignored_usernames": [], "allowed_pm_usernames": [],
            "mailing_list_posts_per_day": 0, "can_change_bio": True, "can_change_location": True,
            "can_change_website": True, "can_change_tracking_preferences": True, "user_api_keys": None,
            "user_auth_tokens": [], "user_notification_schedule": schedule,
            "use_logo_small_as_avatar": False, "featured_user_badge_ids": [], "invited_by": None,
            "groups": [_group_api(forum, group, user) for group in groups],
            "group_users": [{"group_id": group.id, "user_id": user.id, "notification_level": 3,
                             "owner": forum.is_owner(group, user)} for group in groups],
            "user_option": _user_option(user),
        },
    }


def _user_option(user: User) -> dict[str, Any]:
    return {
        "user_id": user.id, "mailing_list_mode": False, "mailing_list_mode_frequency": 1,
        "email_digests": True, "email_level": 1, "email_messages_level": 0,
        "external_links_in_new_tab": False, "bookmark_auto_delete_preference": 3,
        "color_scheme_id": None, "dark_scheme_id": None, "dynamic_favicon": False,
        "enable_quoting": True, "enable_smart_lists": True, "enable_markdown_monospace_font": False,
        "digest_after_minutes": 10080, "automatically_unpin_topics": True,
        "auto_track_topics_after_msecs": 240000, "notification_level_when_replying": 2,
        "new_topic_duration_minutes": 2880, "email_previous_replies": 2, "email_in_reply_to": False,
        "like_notification_frequency": 1, "notify_on_linked_posts": True, "push_notification_level": "0",
        "enable_upcoming_change_available_notifications": False, "include_tl0_in_digests": False,
        "theme_ids": [], "theme_key_seq": 0, "allow_private_messages": True,
        "enable_allowed_pm_users": False, "homepage_id": None, "hide_profile_and_presence": False,
        "hide_profile": False, "hide_presence": False, "text_size": "normal", "text_size_seq": 0,
        "title_count_mode": "notifications", "timezone": "Europe/Paris", "skip_new_user_tips": False,
        "default_calendar": "none_selected", "oldest_search_log_date": None,
        "sidebar_link_to_filtered_list": False, "sidebar_show_count_of_new_items": False,
        "watched_precedence_over_muted": False, "seen_popups": None, "topics_unread_when_closed": True,
        "composition_mode": 1, "interface_color_mode": 1, "automatically_translate": False,
        "understood_languages": [], "show_original_content": False, "send_shortcut": "cmd_enter",
    }


def group_member_api(forum: Forum, user: User, membership: GroupUser | None) -> dict[str, Any]:
    """One row of GET /groups/{name}/members.json."""
    return {
        "id": user.id, "username": user.username, "name": user.name,
        "avatar_template": avatar_template(forum, user), "title": user.title,
        "last_posted_at": user.last_posted_at, "last_seen_at": user.created_at,
        "added_at": membership.created_at if membership else user.created_at, "timezone": "Europe/Paris",
    }
