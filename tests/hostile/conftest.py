"""Fixtures of the hostile-input tests: the service with the forum double, and a staff login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from pydantic import SecretStr

from commons_sync.mail.messages import parse_message
from commons_sync.service.triage import SqlMailboxStore
from commons_sync.web.app import create_app

from . import fuzz_targets

CONNECT_SECRET = "hostile-connect-secret-4567"
STAFF_GROUP = "staff"


@pytest.fixture
def forum(tmp_path):
    """(svc, settings, applier, double): SQLite, one open round, a commons on topic 318, the double."""
    with fuzz_targets.forum_service(tmp_path, allocation_cents=50000) as parts:
        yield parts


@pytest.fixture
def staff_app(forum):
    """The web app with the staff pages on (secret key, DiscourseConnect) and one queued submission."""
    svc, settings, _applier, _double = forum
    settings = settings.model_copy(update={"discourse_connect_secret": SecretStr(CONNECT_SECRET)})
    app = create_app(settings, svc)
    app.config["TESTING"] = True
    raw = (b"From: Renee <renee@cretes.example>\r\nTo: p@reseau.example\r\nSubject: Presse a cidre\r\n"
           b"Message-ID: <p1@cretes.example>\r\n\r\nUne presse a cidre mobile.\r\n")
    SqlMailboxStore(svc).add_submission(parse_message(raw), 1, 1)
    return app


def forum_answer(nonce: str, *, username: str = "claire", groups: str = STAFF_GROUP,
                 secret: str = CONNECT_SECRET) -> dict:
    """The signed query the forum's DiscourseConnect provider sends back to `/staff/sso`."""
    payload = base64.b64encode(urlencode({"nonce": nonce, "username": username, "name": username.title(),
                                          "groups": groups, "external_id": "7"}).encode()).decode()
    return {"sso": payload, "sig": hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()}


def start_login(client, next_path: str = "/staff/triage") -> str:
    """GET /staff/login; returns the nonce the service put in the signed request to the forum."""
    answer = client.get("/staff/login", query_string={"next": next_path})
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    payload = query["sso"][0]
    return parse_qs(base64.b64decode(payload).decode())["nonce"][0]


def log_in(client, username: str = "claire", groups: str = STAFF_GROUP):
    nonce = start_login(client)
    return client.get("/staff/sso", query_string=forum_answer(nonce, username=username, groups=groups))


def csrf_token(client, path: str = "/staff/triage/1") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert found, page[:500]
    return found.group(1)
