"""The REST client against `responses`: each allowed call's request, each error mapping, the limiter."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from commons_sync.discourse.client import DiscourseClient, ForumUser, GroupMember
from commons_sync.discourse.errors import (
    ApiError,
    CallNotAllowed,
    DiscourseError,
    Forbidden,
    NotFound,
    PostEnqueued,
    PostRejected,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
)

BASE = "https://forum.tiers-lieux.example"
API_KEY = "9f1c2a7e-very-secret-api-key-5b8d"
USERNAME = "cofinancement"


class CountingLimiter:
    """A limiter that lets everything through and counts the requests it was asked about."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self) -> None:
        self.calls += 1


def post_json(post_id=2900, topic_id=318, post_number=13, version=1, raw="Merci !", **extra):
    return {"id": post_id, "topic_id": topic_id, "post_number": post_number, "version": version,
            "username": USERNAME, "user_id": 3, "name": "Cofinancement", "raw": raw,
            "cooked": f"<p>{raw}</p>", "post_type": 1, "deleted_at": None, "user_deleted": False,
            "reply_to_post_number": None, "created_at": "2025-03-24T09:12:40.220Z",
            "updated_at": "2025-03-24T09:12:40.220Z", "admin": True, "staff": True,
            "moderator": False, **extra}


@pytest.fixture
def limiter():
    return CountingLimiter()


@pytest.fixture
def forum(limiter):
    return DiscourseClient(BASE + "/", API_KEY, USERNAME, limiter=limiter, timeout=5)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def only_request(http):
    assert len(http.calls) == 1
    return http.calls[0].request


def assert_authenticated(request):
    assert request.headers["Api-Key"] == API_KEY
    assert request.headers["Api-Username"] == USERNAME
    assert "api_key" not in (request.url or "") and API_KEY not in request.url


def body_of(request):
    return json.loads(request.body)


def query_of(request):
    return parse_qs(urlsplit(request.url).query)


# --- each allowed call ------------------------------------------------------------------------------


def test_create_post_replies_in_topic(forum, http, limiter):
    http.post(f"{BASE}/posts.json", json=post_json(reply_to_post_number=4))
    post = forum.create_post(318, "Merci !", reply_to_post_number=4)
    request = only_request(http)
    assert request.method == "POST" and request.url == f"{BASE}/posts.json"
    assert body_of(request) == {"topic_id": 318, "raw": "Merci !", "reply_to_post_number": 4}
    assert request.headers["Content-Type"] == "application/json"
    assert_authenticated(request)
    assert (post.post_id, post.topic_id, post.reply_to_post_number) == (2900, 318, 4)
    assert limiter.calls == 1


def test_create_post_without_reply_number_sends_none(forum, http):
    http.post(f"{BASE}/posts.json", json=post_json())
    forum.create_post(318, "Statut")
    assert body_of(only_request(http)) == {"topic_id": 318, "raw": "Statut"}


def test_create_topic_in_category(forum, http):
    http.post(f"{BASE}/posts.json", json=post_json(post_id=3001, topic_id=420, post_number=1))
    post = forum.create_topic("Four à pain mutualisé", "Proposition reçue par courriel", 12)
    assert body_of(only_request(http)) == {"title": "Four à pain mutualisé",
                                           "raw": "Proposition reçue par courriel", "category": 12}
    assert (post.topic_id, post.post_number) == (420, 1)


def test_create_private_message_to_recipients(forum, http):
    http.post(f"{BASE}/posts.json",
              json=post_json(post_id=3002, topic_id=421, post_number=1,
                             topic_archetype="private_message"))
    post = forum.create_private_message("Rappel", "Il vous reste 100 €", ["yannick.morel", "claire"])
    assert body_of(only_request(http)) == {
        "title": "Rappel", "raw": "Il vous reste 100 €", "archetype": "private_message",
        "target_recipients": "yannick.morel,claire"}
    assert post.is_private_message


def test_update_post_sends_raw_and_edit_reason(forum, http):
    http.put(f"{BASE}/posts/2842.json", json={"post": post_json(post_id=2842, version=8, raw="v8")})
    post = forum.update_post(2842, "v8", edit_reason="mise à jour des montants")
    request = only_request(http)
    assert request.method == "PUT"
    assert body_of(request) == {"post": {"raw": "v8", "edit_reason": "mise à jour des montants"}}
    assert_authenticated(request)
    assert (post.post_id, post.version, post.raw) == (2842, 8, "v8")


def test_update_post_without_reason(forum, http):
    http.put(f"{BASE}/posts/2842.json", json={"post": post_json(post_id=2842)})
    forum.update_post(2842, "texte")
    assert body_of(only_request(http)) == {"post": {"raw": "texte"}}


@pytest.mark.parametrize("locked,sent", [(True, "true"), (False, "false")])
def test_lock_post_sends_the_string_discourse_compares(forum, http, locked, sent):
    http.put(f"{BASE}/posts/2842/locked.json", json={"locked": locked})
    assert forum.lock_post(2842, locked=locked) is None
    request = only_request(http)
    assert body_of(request) == {"locked": sent}
    assert_authenticated(request)


def test_get_post(forum, http):
    http.get(f"{BASE}/posts/2841.json", json=post_json(post_id=2841, version=3, raw="/soutien 5"))
    post = forum.get_post(2841)
    request = only_request(http)
    assert request.method == "GET" and request.url == f"{BASE}/posts/2841.json"
    assert_authenticated(request)
    assert (post.post_id, post.version, post.raw) == (2841, 3, "/soutien 5")


def topic_json(stream, posts, archetype="regular"):
    return {"id": 318, "title": "Découpeuse laser", "archetype": archetype, "category_id": 12,
            "created_at": "2025-03-12T09:15:33.201Z", "closed": False, "archived": False,
            "visible": True, "user_id": 57, "posts_count": len(stream),
            "details": {"created_by": {"id": 57, "username": "margaux.lefevre"}},
            "post_stream": {"posts": posts, "stream": stream}}


def test_get_topic_reads_stream_and_first_posts(forum, http):
    http.get(f"{BASE}/t/318.json",
             json=topic_json([10, 11, 12], [post_json(post_id=10, post_number=1)]))
    view = forum.get_topic(318)
    request = only_request(http)
    assert request.url == f"{BASE}/t/318.json"
    assert view.post_ids == (10, 11, 12)
    assert view.topic.title == "Découpeuse laser" and view.topic.username == "margaux.lefevre"
    [first] = view.posts
    assert first.topic_archetype == "regular" and first.category_id == 12


def test_get_topic_with_raw_asks_for_it(forum, http):
    http.get(f"{BASE}/t/318.json", json=topic_json([10], [post_json(post_id=10)]))
    forum.get_topic(318, include_raw=True)
    assert query_of(only_request(http)) == {"include_raw": ["true"]}


def test_get_topic_posts_batches_twenty_ids_per_request(forum, http, limiter):
    ids = list(range(100, 145))
    for start in (0, 20, 40):
        batch = ids[start:start + 20]
        http.get(f"{BASE}/t/318/posts.json",
                 match=[responses.matchers.query_param_matcher(
                     {"post_ids[]": [str(i) for i in batch], "include_raw": "true"})],
                 json={"post_stream": {"posts": [post_json(post_id=i) for i in batch]}})
    posts = forum.get_topic_posts(318, ids)
    assert [post.post_id for post in posts] == ids
    assert len(http.calls) == 3 and limiter.calls == 3


def test_iter_topic_posts_reads_the_stream_then_the_rest(forum, http):
    stream = list(range(1, 26))
    first = [post_json(post_id=i, post_number=i) for i in stream[:20]]
    http.get(f"{BASE}/t/318.json", json=topic_json(stream, first))
    http.get(f"{BASE}/t/318/posts.json",
             match=[responses.matchers.query_param_matcher(
                 {"post_ids[]": [str(i) for i in stream[20:]], "include_raw": "true"})],
             json={"post_stream": {"posts": [post_json(post_id=i, post_number=i)
                                             for i in reversed(stream[20:])]}})
    posts = list(forum.iter_topic_posts(318))
    assert [post.post_id for post in posts] == stream
    assert all(post.category_id == 12 for post in posts)
    assert query_of(http.calls[0].request) == {"include_raw": ["true"]}


def test_get_user_lists_group_names(forum, http):
    http.get(f"{BASE}/u/yannick.morel.json", json={"user": {
        "id": 88, "username": "yannick.morel", "name": "Yannick Morel", "admin": False,
        "moderator": False, "groups": [{"id": 41, "name": "cofinanceurs-2025"},
                                       {"id": 43, "name": "la-ruche"}]}})
    user = forum.get_user("yannick.morel")
    assert_authenticated(only_request(http))
    assert user == ForumUser(88, "yannick.morel", "Yannick Morel", False, False,
                             frozenset({"cofinanceurs-2025", "la-ruche"}))


def test_get_user_escapes_the_username_in_the_path(forum, http):
    http.get(f"{BASE}/u/%C3%A9lodie.json",
             json={"user": {"id": 5, "username": "élodie", "groups": []}})
    assert forum.get_user("élodie").group_names == frozenset()


def test_group_members_reads_every_page(forum, http, limiter):
    everyone = [{"id": i, "username": f"lieu{i}", "name": None} for i in range(120)]
    for offset in (0, 50, 100):
        http.get(f"{BASE}/groups/cofinanceurs-2025/members.json",
                 match=[responses.matchers.query_param_matcher(
                     {"offset": str(offset), "limit": "50"})],
                 json={"members": everyone[offset:offset + 50], "owners": [],
                       "meta": {"total": 120, "limit": 50, "offset": offset}})
    members = forum.group_members("cofinanceurs-2025")
    assert members[0] == GroupMember(0, "lieu0", None)
    assert [m.user_id for m in members] == list(range(120))
    assert limiter.calls == 3


def test_a_roster_is_read_a_thousand_members_a_call(forum, http, limiter):
    everyone = [{"id": i, "username": f"lieu{i}", "name": None} for i in range(2500)]
    for offset in (0, 1000, 2000):
        http.get(f"{BASE}/groups/lieux/members.json",
                 match=[responses.matchers.query_param_matcher({"offset": str(offset), "limit": "1000"})],
                 json={"members": everyone[offset:offset + 1000], "owners": [],
                       "meta": {"total": 2500, "limit": 1000, "offset": offset}})
    roster = forum.group_roster("lieux", at_most=5000)
    assert [m.username for m in roster] == [f"lieu{i}" for i in range(2500)]
    assert limiter.calls == 3


def test_a_roster_over_the_limit_is_not_read_past_its_first_page(forum, http, limiter):
    http.get(f"{BASE}/groups/trust_level_0/members.json",
             json={"members": [{"id": 1, "username": "a", "name": None}], "owners": [],
                   "meta": {"total": 80000, "limit": 1000, "offset": 0}})
    assert forum.group_roster("trust_level_0", at_most=50000) is None
    assert limiter.calls == 1


def test_group_members_stops_on_an_empty_page(forum, http):
    http.get(f"{BASE}/groups/staff/members.json",
             json={"members": [], "owners": [], "meta": {"total": 3, "limit": 50, "offset": 0}})
    assert forum.group_members("staff") == []


def test_limiter_is_called_once_per_request_before_sending(http):
    order = []

    class RecordingLimiter:
        def acquire(self):
            order.append("acquire")

    def answer(request):
        order.append("sent")
        return 200, {"Content-Type": "application/json"}, json.dumps(post_json())

    http.add_callback(responses.GET, f"{BASE}/posts/1.json", callback=answer)
    http.add_callback(responses.POST, f"{BASE}/posts.json", callback=answer)
    forum = DiscourseClient(BASE, API_KEY, USERNAME, limiter=RecordingLimiter())
    forum.get_post(1)
    forum.create_post(318, "x")
    assert order == ["acquire", "sent", "acquire", "sent"]


def test_secret_str_api_key_is_unwrapped(http, limiter):
    from pydantic import SecretStr

    http.get(f"{BASE}/posts/1.json", json=post_json(post_id=1))
    DiscourseClient(BASE, SecretStr(API_KEY), USERNAME, limiter=limiter).get_post(1)
    assert only_request(http).headers["Api-Key"] == API_KEY


# --- error mapping ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_rate_limited(forum, http, limiter):
    http.get(f"{BASE}/posts/1.json", status=429, headers={"Retry-After": "37"},
             json={"errors": ["You’ve performed this action too many times."],
                   "error_type": "rate_limit", "extras": {"wait_seconds": 37}})
    with pytest.raises(RateLimited) as caught:
        forum.get_post(1)
    assert caught.value.wait_seconds == 37 and caught.value.status == 429
    assert len(http.calls) == 1 and limiter.calls == 1  # no wait, no retry


def test_429_without_retry_after_uses_wait_seconds(forum, http):
    http.post(f"{BASE}/posts.json", status=429,
              json={"errors": ["slow down"], "error_type": "rate_limit",
                    "extras": {"wait_seconds": 12}})
    with pytest.raises(RateLimited) as caught:
        forum.create_post(318, "x")
    assert caught.value.wait_seconds == 12


def test_429_takes_the_longer_of_both_waits(forum, http):
    http.get(f"{BASE}/posts/1.json", status=429, headers={"Retry-After": "5"},
             json={"errors": [], "extras": {"wait_seconds": 30}})
    with pytest.raises(RateLimited) as caught:
        forum.get_post(1)
    assert caught.value.wait_seconds == 30


def test_429_per_ip_without_json_has_a_default_wait(forum, http):
    http.get(f"{BASE}/posts/1.json", status=429, body="Slow down, too many requests",
             content_type="text/plain")
    with pytest.raises(RateLimited) as caught:
        forum.get_post(1)
    assert caught.value.wait_seconds == 10


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(forum, http, status):
    http.get(f"{BASE}/posts/1.json", status=status,
             json={"errors": ["read only"], "error_type": "read_only"})
    with pytest.raises(Unavailable) as caught:
        forum.get_post(1)
    assert caught.value.status == status


def test_timeout_is_unavailable(forum, http):
    http.get(f"{BASE}/posts/1.json", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(Unavailable, match="timed out"):
        forum.get_post(1)


def test_connection_error_is_unavailable(forum, http):
    http.get(f"{BASE}/posts/1.json", body=requests.ConnectionError("connection refused"))
    with pytest.raises(Unavailable) as caught:
        forum.get_post(1)
    assert caught.value.status == 0 and "ConnectionError" in str(caught.value)


def test_422_is_post_rejected_with_discourse_errors(forum, http):
    http.post(f"{BASE}/posts.json", status=422,
              json={"action": "create_post", "errors": ["Body is too similar to what you recently posted"]})
    with pytest.raises(PostRejected) as caught:
        forum.create_post(318, "Merci !")
    assert caught.value.errors == ("Body is too similar to what you recently posted",)


def test_enqueued_post_is_reported(forum, http):
    http.post(f"{BASE}/posts.json", json={"action": "enqueued", "pending_post": {"id": 77}})
    with pytest.raises(PostEnqueued) as caught:
        forum.create_post(318, "x")
    assert caught.value.pending_post_id == 77


def test_404_with_plain_text_body_is_not_found(forum, http):
    http.get(f"{BASE}/t/999.json", status=404, body="The requested URL or resource could not be found.",
             content_type="text/plain")
    with pytest.raises(NotFound) as caught:
        forum.get_topic(999)
    assert "could not be found" in str(caught.value) and caught.value.path == "/t/999.json"


def test_404_with_json_body_is_not_found(forum, http):
    http.get(f"{BASE}/u/nobody.json", status=404,
             json={"errors": ["The requested URL or resource could not be found."],
                   "error_type": "not_found"})
    with pytest.raises(NotFound):
        forum.get_user("nobody")


def test_403_is_forbidden(forum, http):
    http.put(f"{BASE}/posts/5.json", status=403, body="You are not permitted to view the requested resource.",
             content_type="text/plain")
    with pytest.raises(Forbidden):
        forum.update_post(5, "x")


def test_other_client_error_is_an_api_error(forum, http):
    http.post(f"{BASE}/posts.json", status=400, json={"errors": ["param is missing or the value is empty: raw"]})
    with pytest.raises(ApiError) as caught:
        forum.create_post(318, "")
    assert caught.value.status == 400 and type(caught.value) is ApiError


def test_redirect_is_unexpected(forum, http):
    http.get(f"{BASE}/t/318.json", status=301, headers={"Location": f"{BASE}/t/slug/318.json"})
    with pytest.raises(UnexpectedResponse, match="redirect"):
        forum.get_topic(318)


def test_html_answer_is_unexpected(forum, http):
    http.get(f"{BASE}/posts/1.json", body="<html>login</html>", content_type="text/html")
    with pytest.raises(UnexpectedResponse, match="not JSON"):
        forum.get_post(1)


def test_answer_without_the_documented_keys_is_unexpected(forum, http):
    http.get(f"{BASE}/posts/1.json", json={"id": 1})
    with pytest.raises(UnexpectedResponse, match="bad post"):
        forum.get_post(1)


def test_every_api_error_is_a_discourse_error():
    for error in (RateLimited, Unavailable, PostRejected, NotFound, Forbidden, UnexpectedResponse,
                  PostEnqueued, CallNotAllowed):
        assert issubclass(error, DiscourseError)


# --- only the allowed calls, and no secret anywhere ---------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/posts/5.json"), ("GET", "/admin/users/1.json"), ("POST", "/posts"),
    ("PUT", "/t/318/status"), ("GET", "/t/slug/318.json"), ("GET", "/users/bob.json"),
])
def test_calls_outside_the_contract_are_never_sent(forum, http, limiter, method, path):
    http.assert_all_requests_are_fired = False
    with pytest.raises(CallNotAllowed):
        forum._api._request(method, path)
    assert len(http.calls) == 0 and limiter.calls == 0


def test_inherited_pydiscourse_calls_are_refused(forum, http):
    http.assert_all_requests_are_fired = False
    with pytest.raises(CallNotAllowed):
        forum._api.delete_topic(318)
    with pytest.raises(CallNotAllowed):
        forum._api.user("bob")  # /users/bob.json: not the allowed /u/ path
    assert len(http.calls) == 0


@pytest.mark.parametrize("status,body", [
    (404, f"nothing for key {API_KEY}"), (500, f"crash with {API_KEY}"), (422, "no"),
])
def test_api_key_never_appears_in_errors(forum, http, status, body):
    http.put(f"{BASE}/posts/5.json", status=status, body=body, content_type="text/plain")
    with pytest.raises(DiscourseError) as caught:
        forum.update_post(5, "x")
    error = caught.value
    for text in (str(error), repr(error), repr(error.args), repr(vars(error))):
        assert API_KEY not in text
    assert error.__cause__ is None and API_KEY not in str(error.__context__)


def test_api_key_never_appears_in_connection_errors(forum, http):
    http.get(f"{BASE}/posts/1.json", body=requests.ConnectionError(f"refused ({API_KEY})"))
    with pytest.raises(Unavailable) as caught:
        forum.get_post(1)
    assert API_KEY not in str(caught.value) and caught.value.__cause__ is None


def test_api_key_never_appears_in_reprs(forum):
    assert API_KEY not in repr(forum) and API_KEY not in repr(forum._api)
    assert USERNAME in repr(forum)


def test_api_key_never_appears_in_logs(forum, http, caplog):
    caplog.set_level("DEBUG")
    http.get(f"{BASE}/posts/1.json", json=post_json(post_id=1))
    http.get(f"{BASE}/posts/2.json", body=requests.ConnectionError("down"))
    forum.get_post(1)
    with pytest.raises(Unavailable):
        forum.get_post(2)
    assert "/posts/1.json" in caplog.text
    assert API_KEY not in caplog.text
