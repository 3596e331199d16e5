"""Every API answer the double gives validates against the 200 schema of the copied Discourse spec."""

from __future__ import annotations

import hashlib

import requests

from .conftest import SPEC_PATH, assert_valid


def test_spec_is_the_unchanged_copy():
    digest = hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()
    assert digest == "4c0c6b17371cd8b9fb1045afe2e02d6d4c493a68072c0509f8a401d62e8cffbe"


def _api(forum, method, path, username=None, **kwargs):
    return requests.request(method, forum.url + path, headers=forum.api_headers(username), timeout=10, **kwargs)


def test_post_and_topic_answers_validate_against_spec(forum):
    topic = _api(forum, "POST", "/posts.json", json={
        "title": "Un nouveau commun à cofinancer", "raw": "Texte de présentation assez long.",
        "category": forum.category_id})
    assert topic.status_code == 200
    assert_valid("createTopicPostPM", topic.json(), strict=True)
    assert topic.json()["post_number"] == 1

    reply = _api(forum, "POST", "/posts.json", json={
        "topic_id": forum.topic_id, "raw": "Une réponse au premier message du sujet.", "reply_to_post_number": 1})
    assert reply.status_code == 200
    body = reply.json()
    assert_valid("createTopicPostPM", body)
    assert body["topic_id"] == forum.topic_id and body["reply_to_post_number"] == 1
    assert body["reply_to_user"]["username"] == "yannick.morel"

    private = _api(forum, "POST", "/posts.json", json={
        "title": "Message privé", "raw": "Bonjour, un message privé.", "archetype": "private_message",
        "target_recipients": "yannick.morel"})
    assert private.status_code == 200
    assert_valid("createTopicPostPM", private.json(), strict=True)
    private_view = _api(forum, "GET", f"/t/{private.json()['topic_id']}.json")
    assert_valid("getTopic", private_view.json())
    assert private_view.json()["archetype"] == "private_message"
    assert _api(forum, "GET", f"/t/{private.json()['topic_id']}.json", username="claire.moderation").status_code == 404

    update = _api(forum, "PUT", f"/posts/{body['id']}.json",
                  json={"post": {"raw": "Une réponse corrigée au premier message.", "edit_reason": "coquille"}})
    assert update.status_code == 200
    assert_valid("updatePost", update.json())
    assert update.json()["post"]["version"] == 2
    assert update.json()["post"]["edit_reason"] == "coquille"

    shown = _api(forum, "GET", f"/posts/{body['id']}.json")
    assert_valid("getPost", shown.json())
    assert shown.json()["raw"] == "Une réponse corrigée au premier message."

    lock = _api(forum, "PUT", f"/posts/{body['id']}/locked.json", json={"locked": "true"})
    assert_valid("lockPost", lock.json(), strict=True)
    assert lock.json() == {"locked": True}
    assert_valid("getPost", _api(forum, "GET", f"/posts/{body['id']}.json").json())

    view = _api(forum, "GET", f"/t/{forum.topic_id}.json")
    assert_valid("getTopic", view.json())
    assert all("raw" not in post for post in view.json()["post_stream"]["posts"])
    with_raw = _api(forum, "GET", f"/t/{forum.topic_id}.json", params={"include_raw": "true"})
    assert_valid("getTopic", with_raw.json())
    assert with_raw.json()["post_stream"]["posts"][1]["raw"] == "Une réponse corrigée au premier message."

    some = _api(forum, "GET", f"/t/{forum.topic_id}/posts.json",
                params={"post_ids[]": [body["id"]], "include_raw": "true"})
    assert_valid("getSpecificPostsFromTopic", some.json())
    assert [post["id"] for post in some.json()["post_stream"]["posts"]] == [body["id"]]


def test_first_topic_view_of_plain_topic_matches_the_strict_spec(forum):
    view = _api(forum, "GET", f"/t/{forum.topic_id}.json")
    assert_valid("getTopic", view.json(), strict=True)


def test_user_and_group_answers_validate_against_spec(forum):
    user = _api(forum, "GET", "/u/yannick.morel.json")
    assert user.status_code == 200
    assert_valid("getUser", user.json())
    groups = {group["name"] for group in user.json()["user"]["groups"]}
    assert {"la-ruche", "trust_level_0", "trust_level_1", "trust_level_2"} <= groups
    assert "staff" not in groups

    staff = _api(forum, "GET", "/u/claire.moderation.json").json()
    assert {"staff", "moderators"} <= {group["name"] for group in staff["user"]["groups"]}

    members = _api(forum, "GET", "/groups/la-ruche/members.json")
    assert_valid("listGroupMembers", members.json())
    assert [member["username"] for member in members.json()["members"]] == ["yannick.morel"]


def test_posts_of_another_user_validate_when_seen_by_a_non_staff_user(forum):
    view = _api(forum, "GET", f"/t/{forum.topic_id}.json", username="claire.moderation")
    assert_valid("getTopic", view.json())
    member_view = _api(forum, "GET", f"/t/{forum.topic_id}.json", username="yannick.morel")
    assert_valid("getTopic", member_view.json())
    assert member_view.json()["details"]["can_close_topic"] is False
