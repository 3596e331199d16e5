"""The admin API behaves as Discourse does: auth, errors, locking, paging, the topic view's chunks."""

from __future__ import annotations

import requests
from pydiscourse import DiscourseClient

from .conftest import assert_valid


def _api(forum, method, path, username=None, **kwargs):
    return requests.request(method, forum.url + path, headers=forum.api_headers(username), timeout=10, **kwargs)


def test_missing_or_wrong_api_key_is_refused_with_invalid_access(forum):
    for headers in ({}, {"Api-Key": "wrong", "Api-Username": forum.api_username},
                    {"Api-Key": forum.api_key, "Api-Username": "nobody"}):
        response = requests.get(f"{forum.url}/posts/2001.json", headers=headers, timeout=10)
        assert response.status_code == 403
        assert response.json()["error_type"] == "invalid_access"
        assert response.json()["errors"]


def test_create_post_with_empty_raw_is_refused_with_create_post_action(forum):
    response = _api(forum, "POST", "/posts.json", json={"topic_id": forum.topic_id, "raw": ""})
    assert response.status_code == 422
    assert response.json()["action"] == "create_post"
    assert response.json()["errors"] == ["Body can’t be blank"]


def test_reply_to_unknown_topic_is_refused(forum):
    response = _api(forum, "POST", "/posts.json", json={"topic_id": 999999, "raw": "Une réponse assez longue."})
    assert response.status_code == 422
    assert response.json() == {"action": "create_post", "errors": ["Topic not found"]}


def test_short_pledge_post_is_refused_like_discourse_min_post_length(forum):
    response = _api(forum, "POST", "/posts.json", json={"topic_id": forum.topic_id, "raw": "/soutien 50"})
    assert response.status_code == 422
    assert "minimum is 20 characters" in response.json()["errors"][0]


def test_form_encoded_requests_work_like_json(forum):
    response = requests.post(f"{forum.url}/posts.json", headers=forum.api_headers(), timeout=10,
                             data={"topic_id": str(forum.topic_id), "raw": "Réponse envoyée en formulaire.",
                                   "reply_to_post_number": "1"})
    assert response.status_code == 200
    assert response.json()["reply_to_post_number"] == 1


def test_unknown_topic_answers_plain_text_404(forum):
    response = _api(forum, "GET", "/t/999999.json")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert not response.text.startswith("{")


def test_unknown_post_answers_json_not_found(forum):
    response = _api(forum, "GET", "/posts/999999.json")
    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"


def test_topic_view_has_twenty_posts_and_every_id_in_the_stream(forum):
    for number in range(24):
        forum.admin.create_post("yannick.morel", forum.topic_id, f"Réponse numéro {number} dans le sujet.")
    view = _api(forum, "GET", f"/t/{forum.topic_id}.json").json()
    assert len(view["post_stream"]["posts"]) == 20
    assert len(view["post_stream"]["stream"]) == 25
    last_ids = view["post_stream"]["stream"][20:]
    rest = _api(forum, "GET", f"/t/{forum.topic_id}/posts.json",
                params={"post_ids[]": last_ids, "include_raw": "true"}).json()
    assert [post["id"] for post in rest["post_stream"]["posts"]] == last_ids
    assert rest["post_stream"]["posts"][-1]["raw"] == "Réponse numéro 23 dans le sujet."


def test_locked_post_cannot_be_edited_by_its_non_staff_author(forum):
    post = forum.admin.create_post("yannick.morel", forum.topic_id, "Mon message que je pourrai modifier.")
    assert _api(forum, "PUT", f"/posts/{post['id']}/locked.json", username="yannick.morel",
                json={"locked": True}).status_code == 403
    assert _api(forum, "PUT", f"/posts/{post['id']}/locked.json", json={"locked": True}).json() == {"locked": True}
    refused = _api(forum, "PUT", f"/posts/{post['id']}.json", username="yannick.morel",
                   json={"post": {"raw": "Je tente de modifier mon message verrouillé."}})
    assert refused.status_code == 403
    assert refused.json()["error_type"] == "invalid_access"
    by_staff = _api(forum, "PUT", f"/posts/{post['id']}.json",
                    json={"post": {"raw": "Le personnel peut modifier ce message."}})
    assert by_staff.status_code == 200
    assert by_staff.json()["post"]["locked"] is True
    assert forum.admin.post(post["id"])["raw"] == "Le personnel peut modifier ce message."


def test_edit_without_change_keeps_the_version(forum):
    post = forum.admin.create_post("yannick.morel", forum.topic_id, "Un message qui ne changera pas.")
    again = _api(forum, "PUT", f"/posts/{post['id']}.json", json={"post": {"raw": "Un message qui ne changera pas."}})
    assert again.json()["post"]["version"] == 1


def test_group_members_are_paged_with_owners_apart(forum):
    admin = forum.admin
    admin.create_group("le-pont")
    for name in ("dora", "alice", "eve", "bob", "carol"):
        admin.create_user(name, name=name.title(), groups=["le-pont"])
    admin.add_to_group("le-pont", "carol", owner=True)
    page = _api(forum, "GET", "/groups/le-pont/members.json", params={"limit": 2, "offset": 2}).json()
    assert_valid("listGroupMembers", page)
    assert [member["username"] for member in page["members"]] == ["carol", "dora"]
    assert [owner["username"] for owner in page["owners"]] == ["carol"]
    assert page["meta"] == {"total": 5, "limit": 2, "offset": 2}
    assert _api(forum, "GET", "/groups/nope/members.json").status_code == 404


def test_staff_group_lists_admins_and_moderators(forum):
    members = _api(forum, "GET", "/groups/staff/members.json").json()
    assert {member["username"] for member in members["members"]} == {"commons-bot", "claire.moderation"}


def test_wrong_slug_redirects_to_the_right_one(forum):
    response = _api(forum, "GET", f"/t/wrong-slug/{forum.topic_id}.json", allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"].endswith(f"/t/achat-mutualise-dune-decoupeuse-laser/{forum.topic_id}.json")


def test_pydiscourse_client_talks_to_the_double(forum):
    client = DiscourseClient(forum.url, api_username=forum.api_username, api_key=forum.api_key, timeout=10)
    created = client.create_post("Réponse publiée par pydiscourse.", topic_id=forum.topic_id)
    assert created["topic_id"] == forum.topic_id
    updated = client.update_post(created["id"], "Réponse modifiée par pydiscourse.", edit_reason="test")
    assert updated["post"]["version"] == 2
    assert client.post_by_id(created["id"])["raw"] == "Réponse modifiée par pydiscourse."
    posts = client.posts(forum.topic_id, post_ids=[created["id"]])
    assert posts["post_stream"]["posts"][0]["id"] == created["id"]
    assert client.user("yannick.morel")["username"] == "yannick.morel"


def test_concurrent_replies_get_distinct_post_numbers_and_one_event_each(forum, receiver):
    from concurrent.futures import ThreadPoolExecutor

    forum.admin.set_api_ceiling(1000, reset=True)

    def reply(number):
        return _api(forum, "POST", "/posts.json",
                    json={"topic_id": forum.topic_id, "raw": f"Réponse concurrente numéro {number}."}).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(reply, range(40)))
    numbers = sorted(post["post_number"] for post in created)
    assert numbers == list(range(2, 42))
    view = _api(forum, "GET", f"/t/{forum.topic_id}.json").json()
    assert len(view["post_stream"]["stream"]) == 41
    assert forum.admin.wait_for_webhooks(20)
    assert len(receiver.payloads("post_created")) == 41
