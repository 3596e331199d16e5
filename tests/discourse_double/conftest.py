"""Fixtures for the Discourse double's tests: a running double, a webhook receiver, the spec."""

from __future__ import annotations

import copy
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble

HERE = Path(__file__).parent
SPEC_PATH = HERE / "spec" / "openapi.json"
SAMPLES = HERE / "samples"
WEBHOOK_SECRET = "a-webhook-secret-of-32-characters"
SSO_SECRET = "a-discourse-connect-secret"


class Receiver:
    """A real HTTP server that records webhook deliveries and answers them with chosen statuses."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    receiver.deliveries.append({"headers": dict(self.headers.items()), "body": body,
                                                "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/discourse"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def events(self) -> list[tuple[str, str]]:
        return [(item["headers"]["X-Discourse-Event-Type"], item["headers"]["X-Discourse-Event"])
                for item in self.deliveries]

    def payloads(self, event_name: str) -> list[dict[str, Any]]:
        return [json.loads(item["body"]) for item in self.deliveries
                if item["headers"]["X-Discourse-Event"] == event_name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def double(receiver):
    """A running double wired to the receiver, with fast retries and a DiscourseConnect secret."""
    config = DoubleConfig(webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, retry_delays=(0.05, 0.05),
                          sso_secret=SSO_SECRET, webhook_timeout=5)
    with RunningDouble(config) as running:
        yield running


@pytest.fixture
def forum(double):
    """The double with a small network: a group, a member, a staff user, a category, a topic."""
    admin = double.admin
    admin.create_group("la-ruche", full_name="La Ruche")
    admin.create_user("yannick.morel", name="Yannick Morel", groups=["la-ruche"], primary_group="la-ruche",
                      trust_level=2)
    admin.create_user("claire.moderation", name="Claire Dubois", moderator=True)
    category = admin.create_category("Ressources partagées", slug="ressources-partagees")
    created = admin.create_topic("yannick.morel", "Achat mutualisé d'une découpeuse laser",
                                 "Présentation du projet de découpeuse laser partagée.", category["id"])
    double.topic_id = created["topic_id"]
    double.category_id = category["id"]
    return double


# -- the API spec ------------------------------------------------------------------------------

SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))

# Where real Discourse answers more than the spec's 200 schemas allow (they were generated from
# single request-spec examples). Each is read from discourse/discourse app/serializers:
# - post_serializer.rb: `reply_to_post_number` is the integer column (the spec only saw null);
#   `reply_to_user` comes with a reply; `locked` shows a locked post to its author and staff;
#   `raw` is added by `include_raw=true` to the posts of a topic.
# - user_serializer.rb: `featured_topic` is null when the user featured none.
# - groups_controller.rb#members: `last_posted_at` is null for a member who never posted.
# - topic_view_serializer.rb: a private message has no category (`category_id` null).
POST_EXTRAS = {"raw": {"type": "string"}, "locked": {"type": "boolean"},
               "reply_to_user": {"type": "object", "required": ["username"]}}


def _widen_posts(node: Any) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict) and "post_number" in properties and "cooked" in properties:
            properties["reply_to_post_number"] = {"type": ["integer", "string", "null"]}
            for key, schema in POST_EXTRAS.items():
                properties.setdefault(key, schema)
        for value in node.values():
            _widen_posts(value)
    elif isinstance(node, list):
        for value in node:
            _widen_posts(value)


def _operation(spec: dict[str, Any], operation_id: str) -> tuple[str, str]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return path, method
    raise KeyError(operation_id)


def _pointer(*parts: str) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(quote(part, safe="~") for part in escaped)


def _with_gaps(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    _widen_posts(spec)
    user = spec["paths"]["/u/{username}.json"]["get"]["responses"]["200"]["content"]["application/json"]
    user["schema"]["properties"]["user"]["properties"]["featured_topic"]["type"] = ["object", "null"]
    topic = spec["paths"]["/t/{id}.json"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    topic["properties"]["category_id"] = {"type": ["integer", "null"]}
    members = spec["paths"]["/groups/{name}/members.json"]["get"]["responses"]["200"]["content"]
    for key in ("members", "owners"):
        members["application/json"]["schema"]["properties"][key]["items"]["properties"]["last_posted_at"] = {
            "type": ["string", "null"]}
    return spec


SPEC_WITH_GAPS = _with_gaps(SPEC)


def response_validator(operation_id: str, strict: bool = False):
    """A JSON Schema 2020-12 validator for the 200 answer of an operation, `$ref`s resolved
    against the whole document (strict: the spec exactly as copied, without the gaps above)."""
    spec = SPEC if strict else SPEC_WITH_GAPS
    path, method = _operation(spec, operation_id)
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": _pointer("paths", path, method, "responses", "200", "content", "application/json", "schema"),
            "paths": spec["paths"], "components": spec.get("components", {})}
    return jsonschema_rs.Draft202012Validator(root)


def assert_valid(operation_id: str, body: Any, strict: bool = False) -> None:
    errors = [f"{error.instance_path}: {error.message}"
              for error in response_validator(operation_id, strict).iter_errors(body)]
    assert not errors, f"{operation_id}: " + "; ".join(errors[:10])
