"""Test-control endpoints under `/_double/`: set up the forum, act as its users, break things, look.

No API key is needed; nothing here is rate-limited. Errors answer `{"error": "..."}`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .api import double
from .errors import DoubleError, Forbidden, InvalidRequest, NotFound
from .traffic import FailureRule

bp = Blueprint("discourse_double_control", __name__, url_prefix="/_double")


@bp.errorhandler(DoubleError)
def _double_error(error: DoubleError) -> tuple[Response, int]:
    status = 404 if isinstance(error, NotFound) else 403 if isinstance(error, Forbidden) else 422
    body: dict[str, Any] = {"error": str(error)}
    if isinstance(error, InvalidRequest):
        body["errors"] = error.errors
    return jsonify(body), status


@bp.errorhandler(ValueError)
@bp.errorhandler(KeyError)
@bp.errorhandler(TypeError)
def _bad_request(error: Exception) -> tuple[Response, int]:
    return jsonify({"error": f"{type(error).__name__}: {error}"}), 400


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _actor(body: dict[str, Any]):
    return double().forum.user(body["as"])


def _user_json(user) -> dict[str, Any]:
    forum = double().forum
    return {"id": user.id, "username": user.username, "name": user.name, "email": user.email,
            "admin": user.admin, "moderator": user.moderator, "trust_level": user.trust_level,
            "groups": [group.name for group in forum.groups_of(user)]}


def _post_json(post) -> dict[str, Any]:
    return {"id": post.id, "topic_id": post.topic_id, "post_number": post.post_number,
            "username": double().forum.users_by_id[post.user_id].username, "raw": post.raw,
            "cooked": post.cooked, "version": post.version, "reply_to_post_number": post.reply_to_post_number,
            "deleted_at": post.deleted_at, "user_deleted": post.user_deleted, "locked": post.locked,
            "edit_reason": post.edit_reason, "post_type": post.post_type, "action_code": post.action_code}


@bp.get("/health")
def health() -> Response:
    parts = double()
    return jsonify({"ok": True, "api_username": parts.config.api_username})


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    body = _body()
    user = double().forum.create_user(
        body["username"], name=body.get("name"), email=body.get("email"), admin=bool(body.get("admin")),
        moderator=bool(body.get("moderator")), trust_level=int(body.get("trust_level", 1)),
        groups=body.get("groups", []), primary_group=body.get("primary_group"), title=body.get("title"))
    return jsonify(_user_json(user)), 201


@bp.get("/users/<username>")
def show_user(username: str) -> Response:
    with double().forum.lock:
        return jsonify(_user_json(double().forum.user(username)))


@bp.post("/groups")
def create_group() -> tuple[Response, int]:
    body = _body()
    group = double().forum.create_group(body["name"], body.get("full_name"))
    return jsonify({"id": group.id, "name": group.name}), 201


@bp.post("/categories")
def create_category() -> tuple[Response, int]:
    body = _body()
    category = double().forum.create_category(body["name"], body.get("slug"), body.get("id"))
    return jsonify({"id": category.id, "name": category.name, "slug": category.slug}), 201


@bp.post("/groups/<name>/members")
def add_member(name: str) -> tuple[Response, int]:
    body = _body()
    membership = double().forum.add_to_group(name, body["username"], bool(body.get("owner")))
    return jsonify({"id": membership.id, "group_id": membership.group_id, "user_id": membership.user_id}), 201


@bp.delete("/groups/<name>/members/<username>")
def remove_member(name: str, username: str) -> Response:
    double().forum.remove_from_group(name, username)
    return jsonify({"ok": True})


@bp.post("/topics")
def create_topic() -> tuple[Response, int]:
    """A topic (or private message) created by the user `as`."""
    body = _body()
    forum = double().forum
    post = forum.create_post(_actor(body), raw=body.get("raw"), title=body.get("title"),
                             category=body.get("category"), archetype=body.get("archetype"),
                             target_recipients=body.get("target_recipients"))
    with forum.lock:
        return jsonify({"topic_id": post.topic_id, "post_id": post.id, "post": _post_json(post)}), 201


@bp.put("/topics/<int:topic_id>")
def edit_topic(topic_id: int) -> Response:
    body = _body()
    topic = double().forum.edit_topic(_actor(body), topic_id, title=body.get("title"),
                                      category=body.get("category"), closed=body.get("closed"))
    return jsonify({"id": topic.id, "title": topic.title, "slug": topic.slug, "category_id": topic.category_id,
                    "closed": topic.closed})


@bp.post("/posts")
def create_post() -> tuple[Response, int]:
    """A reply written by the user `as` (a staff whisper with `whisper: true`)."""
    body = _body()
    forum = double().forum
    post = forum.create_post(_actor(body), raw=body.get("raw"), topic_id=int(body["topic_id"]),
                             reply_to_post_number=body.get("reply_to_post_number"),
                             whisper=bool(body.get("whisper")))
    with forum.lock:
        return jsonify(_post_json(post)), 201


@bp.get("/posts/<int:post_id>")
def show_post(post_id: int) -> Response:
    forum = double().forum
    with forum.lock:
        return jsonify(_post_json(forum.post(post_id)))


@bp.put("/posts/<int:post_id>")
def edit_post(post_id: int) -> Response:
    body = _body()
    forum = double().forum
    post = forum.edit_post(_actor(body), post_id, body.get("raw"), body.get("edit_reason"))
    with forum.lock:
        return jsonify(_post_json(post))


@bp.delete("/posts/<int:post_id>")
def delete_post(post_id: int) -> Response:
    """Deleted by `as` (JSON body or query): by its non-staff author, or by staff."""
    body = _body() or dict(request.args)
    forum = double().forum
    post = forum.delete_post(_actor(body), post_id)
    with forum.lock:
        return jsonify(_post_json(post))


@bp.post("/posts/<int:post_id>/recover")
def recover_post(post_id: int) -> Response:
    body = _body()
    forum = double().forum
    post = forum.recover_post(_actor(body), post_id)
    with forum.lock:
        return jsonify(_post_json(post))


@bp.post("/failures")
def add_failure() -> tuple[Response, int]:
    """The next `count` API requests under `path_prefix` answer `status`, or hang first."""
    body = _body()
    rule = FailureRule(path_prefix=body.get("path_prefix", "/"), count=int(body.get("count", 1)),
                       mode=body.get("mode", "error"), status=int(body.get("status", 500)),
                       hang_seconds=float(body.get("hang_seconds", 30.0)), method=body.get("method"),
                       retry_after=None if body.get("retry_after") is None else float(body["retry_after"]))
    double().failures.add(rule)
    return jsonify({"rules": double().failures.rules()}), 201


@bp.get("/failures")
def list_failures() -> Response:
    return jsonify({"rules": double().failures.rules()})


@bp.delete("/failures")
def clear_failures() -> Response:
    double().failures.clear()
    return jsonify({"rules": []})


@bp.put("/rate_limit")
def set_rate_limit() -> Response:
    """Sets the admin-API ceiling (requests per rolling minute); `reset: true` clears the counts."""
    body = _body()
    limiter = double().limiter
    if body.get("reset"):
        limiter.reset()
    if "per_minute" in body:
        limiter.per_minute = int(body["per_minute"])
    return jsonify(limiter.stats())


@bp.get("/requests")
def request_stats() -> Response:
    """API requests counted: per calendar minute, the most in any 60 s, the ones refused with 429."""
    return jsonify(double().limiter.stats())


@bp.get("/webhooks")
def webhook_log() -> Response:
    """Every delivery attempt (with headers, body, status), the events emitted and what is pending."""
    sender = double().webhooks
    with sender._condition:
        return jsonify({"deliveries": list(sender.log), "events": list(sender.events),
                        "pending": len(sender._queue) + sender._in_flight,
                        "options": dict(sender.options.__dict__)})


@bp.put("/webhooks/options")
def webhook_options() -> Response:
    """Sets `duplicates`, `delay`, `reorder_window`, `paused`; also `url`, `secret`, `retry_delays`."""
    body = _body()
    parts = double()
    if "url" in body:
        parts.config.webhook_url = body.pop("url")
    if "secret" in body:
        parts.config.webhook_secret = body.pop("secret")
    if "retry_delays" in body:
        parts.config.retry_delays = tuple(float(delay) for delay in body.pop("retry_delays"))
    if "timeout" in body:
        parts.config.webhook_timeout = float(body.pop("timeout"))
    options = parts.webhooks.set_options(**body)
    return jsonify(dict(options.__dict__))


@bp.post("/webhooks/ping")
def ping_webhook() -> tuple[Response, int]:
    """Sends a `ping` event, like the Ping button of Discourse's webhook admin page."""
    return jsonify({"event_id": double().webhooks.ping()}), 201


@bp.post("/webhooks/wait")
def wait_webhooks() -> tuple[Response, int]:
    """Waits (up to `timeout` seconds, default 10) until every delivery and retry is done."""
    timeout = float(_body().get("timeout", 10))
    idle = double().webhooks.wait_idle(timeout)
    return jsonify({"idle": idle, "pending": double().webhooks.pending()}), 200 if idle else 504
