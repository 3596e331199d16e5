"""The admin REST API the service may call, answered with Discourse's shapes and errors.

As in Discourse's Rails routes, paths work with and without `.json` (pydiscourse omits it).
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, redirect, request

from . import serializers
from .errors import Forbidden, InvalidRequest, NotFound
from .models import User

bp = Blueprint("discourse_double_api", __name__)

INVALID_ACCESS = "You are not permitted to view the requested resource. The API username or key is invalid."
NOT_FOUND = "The requested URL or resource could not be found."


def double():
    """The running double's parts (forum, webhooks, limiter, failures) for this app."""
    return current_app.extensions["discourse_double"]


def error_json(status: int, errors: list[str], error_type: str, extras: dict[str, Any] | None = None) -> Response:
    """Discourse's error body: `{"errors": [...], "error_type": ..., "extras": ...}`."""
    body: dict[str, Any] = {"errors": errors, "error_type": error_type}
    if extras is not None:
        body["extras"] = extras
    response = jsonify(body)
    response.status_code = status
    return response


def not_found_json() -> Response:
    return error_json(404, [NOT_FOUND], "not_found")


def not_found_text() -> Response:
    """The plain-text 404 that GET /t/{id}.json answers (not JSON)."""
    return Response(NOT_FOUND, status=404, mimetype="text/plain")


@bp.before_request
def admit() -> Response | None:
    """Counts the request, applies an injected failure, checks the API key, then the rate limit."""
    parts = double()
    if request.headers.get("Api-Key") is not None:
        parts.limiter.record_attempt()
    rule = parts.failures.take(request.method, request.path)
    if rule is not None:
        if rule.mode == "hang":
            parts.failures.stopping.wait(rule.hang_seconds)
        if rule.status == 429 and rule.retry_after is not None:
            wait = rule.retry_after
            response = error_json(
                429, [f"You’ve performed this action too many times. Please wait {wait:g} seconds before "
                      "trying again."], "rate_limit", {"wait_seconds": wait, "time_left": f"{wait:g} seconds"})
            response.headers["Retry-After"] = f"{wait:g}"
            response.headers["Discourse-Rate-Limit-Error-Code"] = "admin_api_key_rate_limit"
            return response
        return Response("Internal Server Error" if rule.status >= 500 else "Error", status=rule.status,
                        mimetype="text/plain")
    key = request.headers.get("Api-Key", "")
    username = request.headers.get("Api-Username", "")
    user = parts.forum.users.get(username.lower()) if username else None
    if not key or not hmac.compare_digest(key.encode(), parts.config.api_key.encode()) or user is None:
        return error_json(403, [INVALID_ACCESS], "invalid_access")
    wait = parts.limiter.acquire()
    if wait is not None:
        response = error_json(
            429,
            [f"You’ve performed this action too many times. Please wait {wait} seconds before trying again."],
            "rate_limit", {"wait_seconds": wait, "time_left": f"{wait} seconds"})
        response.headers["Retry-After"] = str(wait)
        response.headers["Discourse-Rate-Limit-Error-Code"] = "admin_api_key_rate_limit"
        return response
    g.api_user = user
    return None


def _params() -> dict[str, Any]:
    """Parameters from the query string, a form body or a JSON body, as Rails merges them."""
    merged: dict[str, Any] = {key: value for key, value in request.args.items()}
    merged.update({key: value for key, value in request.form.items()})
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            merged.update(body)
    return merged


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidRequest([f"{name} must be an integer"]) from None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _viewer() -> User:
    return g.api_user


@bp.post("/posts.json")
@bp.post("/posts")
def create_post() -> Response:
    """POST /posts.json: a reply, a topic or a private message; answers the post at the root."""
    params = _params()
    forum = double().forum
    try:
        post = forum.create_post(
            _viewer(), raw=params.get("raw"), topic_id=_int(params.get("topic_id"), "topic_id"),
            title=params.get("title"), category=_int(params.get("category"), "category"),
            archetype=params.get("archetype"),
            target_recipients=params.get("target_recipients") or params.get("target_usernames"),
            reply_to_post_number=_int(params.get("reply_to_post_number"), "reply_to_post_number"))
    except InvalidRequest as error:
        response = jsonify({"action": "create_post", "errors": error.errors})
        response.status_code = 422
        return response
    with forum.lock:
        return jsonify(serializers.post_api(forum, post, _viewer(), kind="create"))


@bp.get("/posts/<int:post_id>.json")
@bp.get("/posts/<int:post_id>")
def show_post(post_id: int) -> Response:
    """GET /posts/{id}.json, with raw."""
    forum = double().forum
    with forum.lock:
        post = forum.posts.get(post_id)
        if post is None or not forum.can_see_post(post, _viewer()):
            return not_found_json()
        return jsonify(serializers.post_api(forum, post, _viewer(), kind="show"))


@bp.put("/posts/<int:post_id>.json")
@bp.put("/posts/<int:post_id>")
def update_post(post_id: int) -> Response:
    """PUT /posts/{id}.json with `{"post": {"raw", "edit_reason"}}`; answers `{"post": {...}}`."""
    params = _params()
    post_params = params.get("post")
    if not isinstance(post_params, dict):
        post_params = {key[5:-1]: value for key, value in params.items()
                       if key.startswith("post[") and key.endswith("]")}
    if not post_params:
        return error_json(400, ["param is missing or the value is empty: post"], "invalid_parameters")
    forum = double().forum
    try:
        post = forum.edit_post(_viewer(), post_id, post_params.get("raw"), post_params.get("edit_reason"))
    except NotFound:
        return not_found_json()
    except Forbidden:
        return error_json(403, ["You are not permitted to view the requested resource."], "invalid_access")
    except InvalidRequest as error:
        return error_json(422, error.errors, "record_invalid")
    with forum.lock:
        return jsonify({"post": serializers.post_api(forum, post, _viewer(), kind="update")})


@bp.put("/posts/<int:post_id>/locked.json")
@bp.put("/posts/<int:post_id>/locked")
def lock_post(post_id: int) -> Response:
    """PUT /posts/{id}/locked.json `{"locked": true}`: staff lock a post against others' edits."""
    params = _params()
    if "locked" not in params:
        return error_json(400, ["param is missing or the value is empty: locked"], "invalid_parameters")
    try:
        post = double().forum.set_locked(_viewer(), post_id, _truthy(params["locked"]))
    except NotFound:
        return not_found_json()
    except Forbidden:
        return error_json(403, ["You are not permitted to view the requested resource."], "invalid_access")
    return jsonify({"locked": post.locked})


@bp.get("/t/<int:topic_id>.json")
def show_topic(topic_id: int) -> Response:
    """GET /t/{id}.json: about 20 posts with cooked (raw with include_raw=true), all ids in the stream."""
    forum = double().forum
    with forum.lock:
        topic = forum.topics.get(topic_id)
        if topic is None or not forum.can_see_topic(topic, _viewer()):
            return not_found_text()
        include_raw = _truthy(_params().get("include_raw", False))
        return jsonify(serializers.topic_api(forum, topic, _viewer(), include_raw=include_raw))


@bp.get("/t/<slug>/<int:topic_id>.json")
def show_topic_with_slug(slug: str, topic_id: int) -> Response:
    """GET /t/{slug}/{id}.json: a wrong slug answers a 301 to the right one, as Discourse does."""
    forum = double().forum
    with forum.lock:
        topic = forum.topics.get(topic_id)
        if topic is not None and slug != topic.slug and forum.can_see_topic(topic, _viewer()):
            query = ("?" + request.query_string.decode()) if request.query_string else ""
            return redirect(f"/t/{topic.slug}/{topic_id}.json{query}", code=301)
    return show_topic(topic_id)


@bp.get("/t/<int:topic_id>/posts.json")
def topic_posts(topic_id: int) -> Response:
    """GET /t/{id}/posts.json?post_ids[]=...: those posts of the topic."""
    forum = double().forum
    ids = request.args.getlist("post_ids[]") or request.form.getlist("post_ids[]")
    if not ids and request.is_json and isinstance(request.get_json(silent=True), dict):
        ids = request.get_json()["post_ids[]"] if "post_ids[]" in request.get_json() else []
        ids = ids if isinstance(ids, list) else [ids]
    try:
        wanted = {int(value) for value in ids}
    except (TypeError, ValueError):
        return error_json(400, ["post_ids must be integers"], "invalid_parameters")
    with forum.lock:
        topic = forum.topics.get(topic_id)
        if topic is None or not forum.can_see_topic(topic, _viewer()):
            return not_found_text()
        posts = [post for post in forum.visible_posts(topic, _viewer()) if post.id in wanted]
        include_raw = _truthy(_params().get("include_raw", False))
        return jsonify(serializers.topic_posts_api(forum, topic, posts, _viewer(), include_raw=include_raw))


@bp.get("/u/<username>.json")
@bp.get("/users/<username>.json")
def show_user(username: str) -> Response:
    """GET /u/{username}.json, with `user.groups`."""
    forum = double().forum
    with forum.lock:
        user = forum.users.get(username.lower())
        if user is None:
            return not_found_json()
        return jsonify(serializers.user_api(forum, user, _viewer()))


@bp.get("/groups/<name>/members.json")
@bp.get("/groups/<name>/members")
def group_members(name: str) -> Response:
    """GET /groups/{name}/members.json with `limit`/`offset` paging; owners are listed apart."""
    forum = double().forum
    params = _params()
    try:
        limit = _int(params.get("limit"), "limit")
        offset = _int(params.get("offset"), "offset") or 0
    except InvalidRequest as error:
        return error_json(400, error.errors, "invalid_parameters")
    limit = 50 if limit is None else limit
    if limit <= 0 or limit > 1000 or offset < 0:
        return error_json(400, ["Invalid limit or offset"], "invalid_parameters")
    with forum.lock:
        group = forum.groups.get(name.lower())
        if group is None:
            return not_found_json()
        users = sorted((forum.users_by_id[user_id] for user_id in forum.group_member_ids(group)),
                       key=lambda user: user.username.lower())
        owners = [user for user in users if forum.is_owner(group, user)]
        page = users[offset : offset + limit]
        return jsonify({
            "members": [serializers.group_member_api(forum, user, group.members.get(user.id)) for user in page],
            "owners": [serializers.group_member_api(forum, user, group.members.get(user.id)) for user in owners],
            "meta": {"total": len(users), "limit": limit, "offset": offset},
        })
