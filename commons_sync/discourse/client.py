"""The forum's REST API, limited to the calls CONTRACT §3 allows, under the service's own rate limit.

`DiscourseClient` wraps pydiscourse's client: its `_get`/`_post`/`_put` helpers build the
requests, and one overridden `_request` sends each of them once, after `limiter.acquire()`, with
the `Api-Key`/`Api-Username` headers (never query-string keys), and maps errors to
`commons_sync.discourse.errors`. pydiscourse's own `_request` sleeps and retries on 429 outside any
shared limit; ours never waits: a 429 raises `RateLimited(wait_seconds)` and the caller (the
outbox) decides when to try again. A call outside the allowed list raises `CallNotAllowed`
without being sent.

Methods are named after Discourse's operations and take its words (`topic_id`, `raw`,
`reply_to_post_number`, `edit_reason`). The API key never appears in an exception, a repr or a log
line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import quote

import requests
from pydiscourse.client import DiscourseClient as PyDiscourseClient

from commons_sync.discourse.errors import (
    ApiError,
    CallNotAllowed,
    Forbidden,
    MalformedDelivery,
    NotFound,
    PostEnqueued,
    PostRejected,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
)
from commons_sync.discourse.events import PostSnapshot, TopicSnapshot, post_snapshot, topic_snapshot

log = logging.getLogger(__name__)

POSTS_PER_REQUEST = 20  # what GET /t/{id}.json returns at once; the batch size of GET /t/{id}/posts.json
MEMBERS_PER_PAGE = 50
ROSTER_PAGE = 1000  # the most GET /groups/{name}/members.json lists at once
DEFAULT_RATE_LIMIT_WAIT = 10.0  # a per-IP 429 may come before Rails, with no JSON and no Retry-After

# CONTRACT §3: the only (method, path) the service may use.
ALLOWED_CALLS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (method, re.compile(pattern)) for method, pattern in (
        ("POST", r"/posts\.json"),
        ("PUT", r"/posts/\d+\.json"),
        ("GET", r"/posts/\d+\.json"),
        ("GET", r"/t/\d+\.json"),
        ("GET", r"/t/\d+/posts\.json"),
        ("GET", r"/u/[^/]+\.json"),
        ("GET", r"/groups/[^/]+/members\.json"),
        ("PUT", r"/posts/\d+/locked\.json"),
    )
)


# --- rate limiting ------------------------------------------------------------------------------


class RateLimiter(Protocol):
    """Something that blocks until one more request to the forum may go."""

    def acquire(self) -> None:
        """Return when a request may be sent (and count it)."""


class LocalRateLimiter:
    """At most `max_per_minute` requests in any 60-second window, for the threads of one process.

    A sliding window of the send times: `acquire()` sleeps until the oldest one leaves the
    window. The database-backed limiter shared by all workers implements the same protocol.
    """

    def __init__(self, max_per_minute: int, *, window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if max_per_minute < 1:
            raise ValueError("max_per_minute must be at least 1")
        self.max_per_minute = max_per_minute
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a request fits in the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window_seconds:
                    self._sent.popleft()
                if len(self._sent) < self.max_per_minute:
                    self._sent.append(now)
                    return
                wait = self._sent[0] + self.window_seconds - now
            self._sleep(max(wait, 0.0))

    def __repr__(self) -> str:
        return f"LocalRateLimiter(max_per_minute={self.max_per_minute})"


# --- what the API answers -----------------------------------------------------------------------


@dataclass(frozen=True)
class TopicView:
    """`GET /t/{id}.json`: the topic, the ids of all its posts in order, and the first posts."""

    topic: TopicSnapshot
    post_ids: tuple[int, ...]
    posts: tuple[PostSnapshot, ...]


@dataclass(frozen=True)
class ForumUser:
    """`GET /u/{username}.json`: who a user is and the groups they belong to."""

    user_id: int
    username: str
    name: str | None
    admin: bool
    moderator: bool
    group_names: frozenset[str]

    @property
    def staff(self) -> bool:
        """Whether Discourse counts the user as staff (admin or moderator)."""
        return self.admin or self.moderator


@dataclass(frozen=True)
class GroupMember:
    """One entry of `GET /groups/{name}/members.json`."""

    user_id: int
    username: str
    name: str | None


# --- the client ---------------------------------------------------------------------------------


class DiscourseClient:
    """The forum seen through the API calls CONTRACT §3 allows.

    Args:
        base_url: the forum, e.g. `https://forum.example.org` (no trailing slash needed).
        api_key: an admin API key (a `str` or pydantic `SecretStr`).
        api_username: the bot user the key acts as.
        limiter: called once before every request.
        timeout: seconds to wait for the forum (connect and read).

    Raises (every method):
        RateLimited: 429; `wait_seconds` from `Retry-After` or `extras.wait_seconds`.
        Unavailable: 5xx, timeout, connection refused or reset.
        NotFound, Forbidden: 404, 403 (their bodies may be plain text).
        PostRejected: 422 on a post created or edited.
        UnexpectedResponse: a redirect or a body that is not the documented JSON.

    Examples:
        >>> forum = DiscourseClient("https://forum.example.org", key, "cofinancement",
        ...                         limiter=LocalRateLimiter(50))
        >>> forum.create_post(318, "Merci !", reply_to_post_number=4).post_number
    """

    def __init__(self, base_url: str, api_key: Any, api_username: str, *,
                 limiter: RateLimiter, timeout: float = 10.0) -> None:
        secret = api_key.get_secret_value() if hasattr(api_key, "get_secret_value") else str(api_key)
        self.base_url = base_url.rstrip("/")
        self.api_username = api_username
        self._api = _Transport(self.base_url, api_username, secret, limiter=limiter, timeout=timeout)

    def __repr__(self) -> str:
        return f"DiscourseClient({self.base_url!r}, api_username={self.api_username!r})"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._api._session.close()

    # POST /posts.json

    def create_post(self, topic_id: int, raw: str,
                    reply_to_post_number: int | None = None) -> PostSnapshot:
        """Post `raw` in topic `topic_id`, as a reply to post `reply_to_post_number` when given."""
        body: dict[str, Any] = {"topic_id": topic_id, "raw": raw}
        if reply_to_post_number is not None:
            body["reply_to_post_number"] = reply_to_post_number
        return self._created(self._api._post("/posts.json", json=True, **body))

    def create_topic(self, title: str, raw: str, category: int) -> PostSnapshot:
        """Open a topic in `category`; returns its first post (whose `topic_id` is the new topic)."""
        return self._created(self._api._post("/posts.json", json=True, title=title, raw=raw,
                                             category=category))

    def create_private_message(self, title: str, raw: str,
                               target_recipients: str | Sequence[str]) -> PostSnapshot:
        """Send a private message to usernames (a list or Discourse's comma-separated text)."""
        recipients = (target_recipients if isinstance(target_recipients, str)
                      else ",".join(target_recipients))
        return self._created(self._api._post("/posts.json", json=True, title=title, raw=raw,
                                             archetype="private_message",
                                             target_recipients=recipients))

    # PUT /posts/{id}.json, PUT /posts/{id}/locked.json

    def update_post(self, post_id: int, raw: str, edit_reason: str | None = None) -> PostSnapshot:
        """Replace the post's raw text; Discourse answers the post with its new `version`."""
        post: dict[str, Any] = {"raw": raw}
        if edit_reason is not None:
            post["edit_reason"] = edit_reason
        answer = self._api._put(f"/posts/{int(post_id)}.json", json=True, post=post)
        return self._post_from("PUT", f"/posts/{int(post_id)}.json",
                               _get_key(answer, "post", "PUT", f"/posts/{int(post_id)}.json"))

    def lock_post(self, post_id: int, locked: bool = True) -> None:
        """Stop (or allow again) edits of the post by non-staff users.

        Discourse locks only when `locked` is the string `"true"`: a JSON boolean would unlock.
        """
        self._api._put(f"/posts/{int(post_id)}/locked.json", json=True,
                       locked="true" if locked else "false")

    # GET /posts/{id}.json, /t/{id}.json, /t/{id}/posts.json

    def get_post(self, post_id: int) -> PostSnapshot:
        """The post's current state, `raw` included."""
        path = f"/posts/{int(post_id)}.json"
        return self._post_from("GET", path, self._api._get(path))

    def get_topic(self, topic_id: int, include_raw: bool = False) -> TopicView:
        """The topic, the ids of all its posts (`post_stream.stream`) and its first posts."""
        path = f"/t/{int(topic_id)}.json"
        answer = self._api._get(path, **({"include_raw": "true"} if include_raw else {}))
        try:
            topic = topic_snapshot(answer)
            post_stream = _get_key(answer, "post_stream", "GET", path)
            stream = _get_key(post_stream, "stream", "GET", path)
            posts = _get_key(post_stream, "posts", "GET", path)
            post_ids = tuple(int(post_id) for post_id in stream)
            snapshots = tuple(_in_topic(post_snapshot(post), topic) for post in posts)
        except (MalformedDelivery, TypeError, ValueError) as exc:
            raise UnexpectedResponse("GET", path, 200, detail=str(exc)) from None
        return TopicView(topic=topic, post_ids=post_ids, posts=snapshots)

    def get_topic_posts(self, topic_id: int, post_ids: Sequence[int],
                        include_raw: bool = True) -> list[PostSnapshot]:
        """The given posts of a topic, asked for `POSTS_PER_REQUEST` ids per request."""
        path = f"/t/{int(topic_id)}/posts.json"
        posts: list[PostSnapshot] = []
        for start in range(0, len(post_ids), POSTS_PER_REQUEST):
            batch = [int(post_id) for post_id in post_ids[start:start + POSTS_PER_REQUEST]]
            params: dict[str, Any] = {"post_ids[]": batch}
            if include_raw:
                params["include_raw"] = "true"
            answer = self._api._get(path, **params)
            try:
                posts.extend(post_snapshot(post)
                             for post in _get_key(_get_key(answer, "post_stream", "GET", path),
                                             "posts", "GET", path))
            except (MalformedDelivery, TypeError) as exc:
                raise UnexpectedResponse("GET", path, 200, detail=str(exc)) from None
        return posts

    def iter_topic_posts(self, topic_id: int) -> Iterator[PostSnapshot]:
        """Every post of the topic in stream order, `raw` included: one topic read, then batches."""
        view = self.get_topic(topic_id, include_raw=True)
        known = {post.post_id: post for post in view.posts}
        missing = [post_id for post_id in view.post_ids if post_id not in known]
        for post in self.get_topic_posts(topic_id, missing, include_raw=True):
            known[post.post_id] = _in_topic(post, view.topic)
        for post_id in view.post_ids:
            if post_id in known:
                yield known[post_id]

    # GET /u/{username}.json, /groups/{name}/members.json

    def get_user(self, username: str) -> ForumUser:
        """The user and the names of their groups (webhook payloads carry no group memberships)."""
        path = f"/u/{quote(username, safe='')}.json"
        answer = self._api._get(path)
        try:
            user = _get_key(answer, "user", "GET", path)
            return ForumUser(
                user_id=int(user["id"]), username=str(user["username"]), name=user.get("name"),
                admin=bool(user.get("admin", False)), moderator=bool(user.get("moderator", False)),
                group_names=frozenset(str(group["name"]) for group in user.get("groups") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse("GET", path, 200, detail=f"bad user: {exc}") from None

    def group_members(self, name: str) -> list[GroupMember]:
        """Every member of the group, reading all pages (`offset`, `limit`, `meta.total`)."""
        return self._members(name, MEMBERS_PER_PAGE)

    def group_roster(self, name: str, at_most: int) -> list[GroupMember] | None:
        """Every member of the group in pages of 1,000 (one call per 1,000 members), or None
        when the group has more than `at_most` (read from the first page)."""
        return self._members(name, ROSTER_PAGE, at_most)

    def _members(self, name: str, page_size: int, at_most: int | None = None) -> list[GroupMember] | None:
        path = f"/groups/{quote(name, safe='')}/members.json"
        members: list[GroupMember] = []
        while True:
            answer = self._api._get(path, offset=len(members), limit=page_size)
            try:
                page = _get_key(answer, "members", "GET", path)
                total = int(_get_key(answer, "meta", "GET", path)["total"])
                if at_most is not None and total > at_most:
                    return None
                members.extend(GroupMember(user_id=int(m["id"]), username=str(m["username"]),
                                           name=m.get("name")) for m in page)
            except (KeyError, TypeError, ValueError) as exc:
                raise UnexpectedResponse("GET", path, 200, detail=f"bad members page: {exc}") from None
            if not page or len(members) >= total:
                return members

    # helpers

    def _created(self, answer: Any) -> PostSnapshot:
        if isinstance(answer, dict) and answer.get("action") == "enqueued":
            pending = answer.get("pending_post") or {}
            raise PostEnqueued("POST", "/posts.json", pending.get("id"))
        return self._post_from("POST", "/posts.json", answer)

    @staticmethod
    def _post_from(method: str, path: str, answer: Any) -> PostSnapshot:
        if not isinstance(answer, dict):
            raise UnexpectedResponse(method, path, 200, detail="expected a post object")
        try:
            return post_snapshot(answer)
        except MalformedDelivery as exc:
            raise UnexpectedResponse(method, path, 200, detail=f"bad post: {exc.reason}") from None


def _get_key(answer: Any, key: str, method: str = "GET", path: str = "") -> Any:
    if not isinstance(answer, dict) or key not in answer:
        raise UnexpectedResponse(method, path, 200, detail=f"answer has no {key!r}")
    return answer[key]


def _in_topic(post: PostSnapshot, topic: TopicSnapshot) -> PostSnapshot:
    """Fill what topic views leave out of each post (archetype, category) from the topic."""
    return replace(post, topic_archetype=post.topic_archetype or topic.archetype,
                   category_id=post.category_id if post.category_id is not None else topic.category_id)


# --- transport: pydiscourse's request building, one attempt per request -------------------------


class _Transport(PyDiscourseClient):
    """pydiscourse's client with `_request` replaced: allowed calls only, limiter, error mapping."""

    def __init__(self, host: str, api_username: str, api_key: str, *, limiter: RateLimiter,
                 timeout: float) -> None:
        super().__init__(host, api_username, api_key, timeout=timeout)
        self._limiter = limiter
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"<discourse transport {self.host} as {self.api_username}>"

    def _request(self, verb, path, params=None, files=None, data=None, json=None,
                 override_request_kwargs=None):
        """Send one request (after `limiter.acquire()`) and return its decoded JSON, or None."""
        path_only = path.split("?", 1)[0]
        if not any(verb == method and pattern.fullmatch(path_only)
                   for method, pattern in ALLOWED_CALLS):
            raise CallNotAllowed(verb, path_only)
        headers = {
            "Api-Key": self.api_key,
            "Api-Username": self.api_username,
            "Accept": "application/json",
            "User-Agent": "commons-sync",
        }
        self._limiter.acquire()
        started = time.monotonic()
        try:
            response = self._session.request(verb, self.host + path, params=params, data=data,
                                             json=json, files=files, headers=headers,
                                             timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            log.warning("discourse %s %s: timed out", verb, path_only)
            raise Unavailable(verb, path_only, 0, detail="timed out") from None
        except requests.RequestException as exc:
            log.warning("discourse %s %s: %s", verb, path_only, type(exc).__name__)
            raise Unavailable(verb, path_only, 0,
                              detail=self._redact(f"{type(exc).__name__}: {exc}")) from None
        log.debug("discourse %s %s -> %s in %.3f s", verb, path_only, response.status_code,
                  time.monotonic() - started)
        return self._decode(verb, path_only, response)

    def _decode(self, verb: str, path: str, response: requests.Response) -> Any:
        status = response.status_code
        body = _json_or_none(response)
        errors = _errors_of(body)
        detail = "" if errors else self._redact(response.text.strip()[:200])
        if status == 429:
            raise RateLimited(verb, path, _wait_seconds(response, body), errors)
        if status >= 500:
            raise Unavailable(verb, path, status, errors, detail)
        if status == 404:
            raise NotFound(verb, path, status, errors, detail)
        if status == 403:
            raise Forbidden(verb, path, status, errors, detail)
        if status == 422:
            raise PostRejected(verb, path, status, errors, detail)
        if status >= 400:
            raise ApiError(verb, path, status, errors, detail)
        if status >= 300:
            raise UnexpectedResponse(verb, path, status,
                                     detail="redirected (wrong URL, or invalid API key?)")
        if not response.content.strip():
            return None
        if body is None:
            raise UnexpectedResponse(verb, path, status, detail="the answer is not JSON")
        if errors:
            raise PostRejected(verb, path, status, errors)
        return body

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "[redacted]") if self.api_key else text


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _errors_of(body: Any) -> list[str]:
    if isinstance(body, Mapping) and isinstance(body.get("errors"), list):
        return [str(error) for error in body["errors"]]
    return []


def _wait_seconds(response: requests.Response, body: Any) -> float:
    """The longest wait the 429 asks for: `Retry-After` (seconds or a date), `extras.wait_seconds`."""
    waits: list[float] = []
    retry_after = response.headers.get("Retry-After", "").strip()
    if retry_after:
        try:
            waits.append(float(retry_after))
        except ValueError:
            try:
                moment = parsedate_to_datetime(retry_after)
                waits.append((moment - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    if isinstance(body, Mapping) and isinstance(body.get("extras"), Mapping):
        wait = body["extras"].get("wait_seconds")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool):
            waits.append(float(wait))
    return max(max(waits), 0.0) if waits else DEFAULT_RATE_LIMIT_WAIT
