"""Run the double on a free loopback port for a test, and drive it through its control endpoints."""

from __future__ import annotations

import threading
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import Double, create_double
from .config import DoubleConfig
from .errors import ControlError, StartError


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the access log lines (tests stay readable)."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's name
        return None


class ControlClient:
    """Calls the `/_double/` test-control endpoints; each method answers the decoded JSON.

    Raises:
        ControlError: the double answered an error (`status`, `body`).
    """

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/") + "/_double"
        self.timeout = timeout
        self.session = requests.Session()

    def _call(self, method: str, path: str, json: Any = None, params: Any = None,
              timeout: float | None = None, ok: tuple[int, ...] = ()) -> Any:
        response = self.session.request(method, self.base_url + path, json=json, params=params,
                                        timeout=timeout or self.timeout)
        if response.status_code >= 400 and response.status_code not in ok:
            raise ControlError(response.status_code, response.text)
        return response.json()

    # forum set-up
    def create_user(self, username: str, *, name: str | None = None, email: str | None = None,
                    admin: bool = False, moderator: bool = False, trust_level: int = 1,
                    groups: list[str] | None = None, primary_group: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/users", {"username": username, "name": name, "email": email,
                                             "admin": admin, "moderator": moderator, "trust_level": trust_level,
                                             "groups": groups or [], "primary_group": primary_group})

    def user(self, username: str) -> dict[str, Any]:
        return self._call("GET", f"/users/{username}")

    def create_group(self, name: str, full_name: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/groups", {"name": name, "full_name": full_name})

    def create_category(self, name: str, slug: str | None = None, category_id: int | None = None) -> dict[str, Any]:
        return self._call("POST", "/categories", {"name": name, "slug": slug, "id": category_id})

    def add_to_group(self, group: str, username: str, owner: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/groups/{group}/members", {"username": username, "owner": owner})

    def remove_from_group(self, group: str, username: str) -> dict[str, Any]:
        return self._call("DELETE", f"/groups/{group}/members/{username}")

    # acting as a user
    def create_topic(self, as_user: str, title: str, raw: str, category: int | None = None, *,
                     archetype: str | None = None, target_recipients: str | None = None) -> dict[str, Any]:
        """Answers `{"topic_id", "post_id", "post"}`."""
        return self._call("POST", "/topics", {"as": as_user, "title": title, "raw": raw, "category": category,
                                              "archetype": archetype, "target_recipients": target_recipients})

    def edit_topic(self, as_user: str, topic_id: int, *, title: str | None = None,
                   category: int | None = None, closed: bool | None = None) -> dict[str, Any]:
        return self._call("PUT", f"/topics/{topic_id}", {"as": as_user, "title": title, "category": category,
                                                         "closed": closed})

    def create_post(self, as_user: str, topic_id: int, raw: str, reply_to_post_number: int | None = None,
                    *, whisper: bool = False) -> dict[str, Any]:
        return self._call("POST", "/posts", {"as": as_user, "topic_id": topic_id, "raw": raw,
                                             "reply_to_post_number": reply_to_post_number, "whisper": whisper})

    def post(self, post_id: int) -> dict[str, Any]:
        """The post as stored, deleted or not (raw, version, deleted_at, user_deleted, locked)."""
        return self._call("GET", f"/posts/{post_id}")

    def edit_post(self, as_user: str, post_id: int, raw: str, edit_reason: str | None = None) -> dict[str, Any]:
        return self._call("PUT", f"/posts/{post_id}", {"as": as_user, "raw": raw, "edit_reason": edit_reason})

    def delete_post(self, as_user: str, post_id: int) -> dict[str, Any]:
        """Deleted by its non-staff author (marked, text replaced) or by staff (deleted_at set)."""
        return self._call("DELETE", f"/posts/{post_id}", {"as": as_user})

    def recover_post(self, as_user: str, post_id: int) -> dict[str, Any]:
        return self._call("POST", f"/posts/{post_id}/recover", {"as": as_user})

    # misbehaviour and observation
    def fail_next(self, path_prefix: str = "/", count: int = 1, *, mode: str = "error", status: int = 500,
                  hang_seconds: float = 30.0, method: str | None = None,
                  retry_after: float | None = None) -> dict[str, Any]:
        return self._call("POST", "/failures", {"path_prefix": path_prefix, "count": count, "mode": mode,
                                                "status": status, "hang_seconds": hang_seconds, "method": method,
                                                "retry_after": retry_after})

    def failures(self) -> list[dict[str, Any]]:
        """The failure rules not used up yet."""
        return self._call("GET", "/failures")["rules"]

    def clear_failures(self) -> dict[str, Any]:
        return self._call("DELETE", "/failures")

    def set_api_ceiling(self, per_minute: int | None = None, reset: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"reset": reset}
        if per_minute is not None:
            body["per_minute"] = per_minute
        return self._call("PUT", "/rate_limit", body)

    def request_stats(self) -> dict[str, Any]:
        """`{"ceiling", "total", "max_in_any_60s", "rejected", "per_minute": {minute: count}}`."""
        return self._call("GET", "/requests")

    def webhook_log(self) -> dict[str, Any]:
        """`{"deliveries": [...], "events": [...], "pending", "options"}`."""
        return self._call("GET", "/webhooks")

    def set_webhook_options(self, **options: Any) -> dict[str, Any]:
        return self._call("PUT", "/webhooks/options", options)

    def ping(self) -> int:
        """Sends a `ping` webhook event; answers its event id."""
        return self._call("POST", "/webhooks/ping")["event_id"]

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """True once every delivery (and retry) is done; False if `timeout` passed first."""
        answer = self._call("POST", "/webhooks/wait", {"timeout": timeout}, timeout=timeout + 10, ok=(504,))
        return bool(answer["idle"])


class RunningDouble:
    """A Discourse double served by a background thread on a free 127.0.0.1 port.

    Examples:
        with RunningDouble(DoubleConfig(webhook_url=url, webhook_secret="s" * 16)) as forum:
            forum.admin.create_user("alice", groups=["la-ruche"])
            requests.get(forum.url + "/u/alice.json", headers=forum.api_headers())
    """

    def __init__(self, config: DoubleConfig | None = None, host: str = "127.0.0.1"):
        self.config = config or DoubleConfig()
        self.host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.admin: ControlClient
        self.double: Double

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def api_username(self) -> str:
        return self.config.api_username

    def api_headers(self, username: str | None = None) -> dict[str, str]:
        """The `Api-Key` / `Api-Username` headers (the configured API user by default)."""
        return {"Api-Key": self.config.api_key, "Api-Username": username or self.config.api_username}

    def start(self) -> RunningDouble:
        app = create_double(self.config)
        self.double = app.extensions["discourse_double"]
        try:
            self._server = make_server(self.host, 0, app, threaded=True, request_handler=_QuietHandler)
        except OSError as error:
            self.double.close()
            raise StartError(f"cannot listen on {self.host}: {error}") from error
        self.url = f"http://{self.host}:{self._server.server_port}"
        if not self.config.instance_url:
            self.config.instance_url = self.url
        self.admin = ControlClient(self.url)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="discourse-double-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and delivering; nothing of the double keeps running."""
        if self._server is None:
            return
        self.double.close()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> RunningDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
