"""Each recorded delivery, read as the webhook endpoint will read it: one test per fixture."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from commons_sync.discourse.commands import extract_commands
from commons_sync.discourse.errors import MalformedDelivery, UnsupportedEvent
from commons_sync.discourse.events import (
    EVENT_HANDLERS,
    IGNORED_EVENTS,
    Accepted,
    GroupUserChange,
    Ignored,
    PostSnapshot,
    TopicSnapshot,
    classify,
    parse_delivery,
    read_subject,
)
from tests.discourse.webhook_fixtures import BOT_USERNAME, event_from_filename, fixture_names, load


def deliver(name: str):
    headers, body = load(name)
    delivery = parse_delivery(headers, body)
    return delivery, classify(delivery, BOT_USERNAME)


def accepted(name: str) -> Accepted:
    _, result = deliver(name)
    assert isinstance(result, Accepted), result
    return result


def ignored_reason(name: str) -> str:
    _, result = deliver(name)
    assert isinstance(result, Ignored), result
    return result.reason


# --- the deliveries, as they happen on the forum ------------------------------------------------


def test_ping_is_ignored():
    delivery, result = deliver("ping")
    assert (delivery.event_type, delivery.event, delivery.event_id) == ("ping", "ping", 5521)
    assert result == Ignored("ping")


def test_topic_created_is_a_topic_snapshot():
    result = accepted("topic_created")
    assert result.event == "topic_created"
    assert result.topic_id == 318 and result.needs_commons_topic
    assert result.subject == TopicSnapshot(
        topic_id=318, title="Achat mutualisé d'une découpeuse laser pour l'atelier partagé",
        category_id=12, archetype="regular", user_id=57, username="margaux.lefevre",
        created_at=datetime(2025, 3, 12, 9, 15, 33, 201000, tzinfo=timezone.utc),
        closed=False, archived=False, visible=True, deleted_at=None, posts_count=1)


def test_post_created_is_a_post_snapshot_without_command_line():
    result = accepted("post_created")
    post = result.subject
    assert isinstance(post, PostSnapshot)
    assert (post.post_id, post.topic_id, post.post_number, post.version) == (2841, 318, 4, 1)
    assert (post.username, post.user_id, post.name) == ("yannick.morel", 88, "Yannick Morel")
    assert post.raw.startswith("Pour **La Ruche**") and "150 €" in post.raw
    assert post.category_id == 12 and post.topic_archetype == "regular" and post.post_type == 1
    assert not post.is_deleted and not (post.staff or post.admin or post.moderator)
    assert post.created_at == datetime(2025, 3, 18, 14, 7, 22, 418000, tzinfo=timezone.utc)
    # "nous nous engageons à hauteur de 150 €" is prose, not a `/soutien` line
    assert extract_commands(post.raw) == [] and not result.opens_commons


def test_post_created_with_pledge_line_carries_the_pledge():
    post = accepted("post_created__pledge").subject
    assert (post.post_id, post.topic_id, post.reply_to_post_number) == (2851, 318, 1)
    assert [(c.name, c.argument) for c in extract_commands(post.raw)] == [("soutien", "150 €")]


def test_post_created_with_english_pledge_line_carries_the_pledge():
    result = accepted("post_created__pledge_english")
    assert result.subject.username == "hackerspace.lyon"
    assert [(c.name, c.argument) for c in extract_commands(result.subject.raw)] == [("soutien", "75")]


def test_post_edited_is_a_newer_version_of_the_same_post():
    post = accepted("post_edited").subject
    assert (post.post_id, post.version) == (2841, 2)
    assert "200 €" in post.raw
    assert post.updated_at == datetime(2025, 3, 20, 18, 42, 5, 903000, tzinfo=timezone.utc)


def test_post_destroyed_by_moderator_has_deleted_at():
    result = accepted("post_destroyed")
    post = result.subject
    assert result.event == "post_destroyed"
    assert post.post_id == 2846 and post.is_deleted and not post.user_deleted
    assert post.deleted_at == datetime(2025, 3, 21, 10, 2, 48, 598000, tzinfo=timezone.utc)


def test_post_destroyed_by_author_is_user_deleted_without_deleted_at():
    post = accepted("post_destroyed_by_author").subject
    assert post.deleted_at is None and post.user_deleted and post.is_deleted
    assert post.raw == "(message supprimé par son auteur)" and post.version == 3


def test_post_recovered_by_author_restores_the_text_at_a_higher_version():
    result = accepted("post_recovered__by_author")
    post = result.subject
    assert result.event == "post_recovered"
    assert (post.post_id, post.version, post.is_deleted) == (2841, 4, False)
    assert "200 €" in post.raw


def test_post_created_in_private_message_is_ignored():
    assert ignored_reason("post_created__private_message") == "private message"


def test_post_created_as_whisper_is_ignored():
    assert ignored_reason("post_created__whisper") == "whisper"


def test_post_created_as_small_action_is_ignored():
    assert ignored_reason("post_created__small_action") == "small action"


def test_post_edited_by_the_bot_is_ignored():
    assert ignored_reason("post_edited__bot_status") == "the bot's own post"


def test_bot_is_recognised_whatever_the_case_of_its_name():
    headers, body = load("post_edited__bot_status")
    assert classify(parse_delivery(headers, body), "Cofinancement") == Ignored("the bot's own post")
    assert isinstance(classify(parse_delivery(headers, body), "someone-else"), Accepted)


def test_post_created_in_another_category_leaves_the_commons_check_to_the_service():
    result = accepted("post_created__other_category")
    assert (result.topic_id, result.needs_commons_topic, result.opens_commons) == (402, True, False)
    assert result.subject.category_id == 7


def test_post_created_by_staff_with_commun_line_may_open_a_commons():
    result = accepted("post_created__staff_commun")
    assert (result.topic_id, result.opens_commons, result.author_is_staff) == (355, True, True)
    [command] = extract_commands(result.subject.raw)
    assert (command.name, command.argument) == (
        "commun", "objectif=1340 plafond=1500 campagne=printemps-2025")


def test_topic_closed_status_updated_is_read_as_a_topic_edit():
    delivery, result = deliver("topic_closed_status_updated__closed")
    assert delivery.event == "topic_closed_status_updated"
    assert isinstance(result, Accepted) and result.event == "topic_closed_status_updated"
    assert result.subject.closed and result.subject.topic_id == 318
    assert result.subject.posts_count == 12


def test_user_added_to_group_refreshes_membership():
    result = accepted("user_added_to_group__member")
    assert result.subject == GroupUserChange(group_id=41, user_id=88, added=True)
    assert result.event == "user_added_to_group"
    assert (result.topic_id, result.needs_commons_topic) == (None, False)


def test_group_user_added_is_the_same_event_spelled_as_the_admin_ui():
    result = accepted("group_user_added__member")
    assert result.subject == GroupUserChange(group_id=41, user_id=140, added=True)
    assert result.event == "user_added_to_group"


def test_user_removed_from_group_refreshes_membership():
    result = accepted("user_removed_from_group__member")
    assert result.subject == GroupUserChange(group_id=41, user_id=88, added=False)
    assert result.event == "user_removed_from_group"


def test_group_user_removed_is_the_same_event_spelled_as_the_admin_ui():
    result = accepted("group_user_removed__member")
    assert result.subject == GroupUserChange(group_id=41, user_id=140, added=False)
    assert result.event == "user_removed_from_group"


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_names_its_event_and_is_well_formed(name):
    headers, body = load(name)
    delivery = parse_delivery(headers, body)
    assert delivery.event == event_from_filename(name)
    assert delivery.instance == "https://forum.tiers-lieux.example"
    assert int(headers["Content-Length"]) == len(body)
    assert not body.endswith(b"\n")


def test_fixtures_have_distinct_event_ids():
    ids = [parse_delivery(*load(name)).event_id for name in fixture_names()]
    assert len(ids) == len(set(ids))


def test_snapshots_are_frozen_and_hashable():
    delivery, result = deliver("post_created")
    with pytest.raises(AttributeError):
        result.subject.version = 9
    assert len({delivery, parse_delivery(*load("post_created"))}) == 1
    assert len({result.subject, accepted("post_edited").subject}) == 2


# --- dispatch and unknown input --------------------------------------------------------------


def make(event_type: str, event: str, payload, **extra_headers) -> tuple[dict, bytes]:
    headers = {"X-Discourse-Event-Type": event_type, "X-Discourse-Event": event,
               "X-Discourse-Event-Id": "77", **extra_headers}
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return headers, body


def test_headers_are_read_whatever_their_case():
    headers, body = load("post_created")
    lowered = {key.lower(): value for key, value in headers.items()}
    assert parse_delivery(lowered, body) == parse_delivery(headers, body)


def test_unknown_topic_status_names_are_read_as_topic_snapshots():
    _, topic_body = load("topic_created")
    delivery = parse_delivery(*make("topic", "topic_pinned_globally_status_updated",
                                    json.loads(topic_body)))
    assert isinstance(read_subject(delivery), TopicSnapshot)


def test_unknown_post_event_is_unsupported_and_ignored():
    _, post_body = load("post_created")
    delivery = parse_delivery(*make("post", "post_hidden_by_plugin", json.loads(post_body)))
    with pytest.raises(UnsupportedEvent):
        read_subject(delivery)
    assert classify(delivery, BOT_USERNAME).reason.startswith("the Discourse event post/post_hidden")


@pytest.mark.parametrize("event_type,event", [("user", "user_created"), ("like", "post_liked"),
                                              ("category", "category_updated")])
def test_ignored_events_are_ignored(event_type, event):
    assert event in IGNORED_EVENTS
    delivery = parse_delivery(*make(event_type, event, {event_type: {"id": 1}}))
    assert classify(delivery, BOT_USERNAME) == Ignored(f"{event} is not used by the service")
    with pytest.raises(UnsupportedEvent):
        read_subject(delivery)


def test_unknown_keys_are_ignored():
    _, body = load("post_created")
    payload = json.loads(body)
    payload["post"]["reactions"] = [{"id": "heart", "count": 2}]
    payload["post"]["akismet_state"] = "checked"
    payload["plugin_extra"] = True
    post = read_subject(parse_delivery(*make("post", "post_created", payload)))
    assert post.post_id == 2841


def test_private_message_topic_is_ignored():
    _, body = load("topic_created")
    payload = json.loads(body)
    payload["topic"]["archetype"] = "private_message"
    delivery = parse_delivery(*make("topic", "topic_created", payload))
    assert classify(delivery, BOT_USERNAME) == Ignored("private message")


def test_group_user_names_are_kept_when_a_payload_has_them():
    delivery = parse_delivery(*make("group_user", "user_added_to_group", {"group_user": {
        "id": 1, "group_id": 41, "user_id": 88, "group_name": "la-ruche", "username": "yannick"}}))
    assert read_subject(delivery) == GroupUserChange(41, 88, True, "la-ruche", "yannick")


def test_every_handler_key_names_a_known_event_type():
    assert {event_type for event_type, _ in EVENT_HANDLERS} == {"post", "topic", "group_user"}


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe{}", b'"post"'])
def test_body_that_is_not_a_json_object_is_malformed(body):
    with pytest.raises(MalformedDelivery):
        parse_delivery(*make("post", "post_created", body))


@pytest.mark.parametrize("missing", ["X-Discourse-Event", "X-Discourse-Event-Type",
                                     "X-Discourse-Event-Id"])
def test_delivery_without_discourse_header_is_malformed(missing):
    headers, body = load("post_created")
    del headers[missing]
    with pytest.raises(MalformedDelivery, match=missing):
        parse_delivery(headers, body)


@pytest.mark.parametrize("payload,field", [
    ({"topic": {"id": 1}}, "post"),
    ({"post": "hello"}, "post"),
    ({"post": {"id": "2841", "topic_id": 318}}, "id"),
    ({"post": {"id": 2841, "topic_id": 318, "post_number": 4, "username": "a"}}, "version"),
    ({"post": {"id": 1, "topic_id": 3, "post_number": 4, "username": "a", "version": 1,
               "created_at": "yesterday"}}, "created_at"),
    ({"post": {"id": 1, "topic_id": 3, "post_number": 4, "username": "a", "version": 1,
               "staff": "no"}}, "staff"),
])
def test_post_event_without_the_post_shape_is_malformed(payload, field):
    delivery = parse_delivery(*make("post", "post_created", payload))
    with pytest.raises(MalformedDelivery, match=field):
        classify(delivery, BOT_USERNAME)


def test_group_event_without_ids_is_malformed():
    delivery = parse_delivery(*make("group_user", "group_user_removed", {"group_user": {"id": 3}}))
    with pytest.raises(MalformedDelivery, match="group_id"):
        classify(delivery, BOT_USERNAME)
