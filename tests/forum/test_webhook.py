"""`POST /webhooks/discourse` over real HTTP with the recorded deliveries (CONTRACT §3 answers)."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import func, select

from commons_sync.config import load_settings
from commons_sync.discourse.signature import sign
from commons_sync.service import handlers
from commons_sync.service.handlers import CommonsSpec, RoundSpec, Service
from commons_sync.storage import forum_tables as ft
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app
from tests.discourse.webhook_fixtures import BOT_USERNAME, load as load_recorded

from commons_sync.devtools.served import ServedApp

from .harness import OffsetClock

URL = "/webhooks/discourse"
COMMONS_TOPIC = 318
# The recorded deliveries are signed with "test-secret", shorter than the 12 characters the
# settings require (as Discourse does): the same bytes are signed again with a valid secret.
SECRET = b"forum-webhook-secret"


def load(name: str) -> tuple[dict, bytes]:
    headers, body = load_recorded(name)
    headers = dict(headers, **{"X-Discourse-Event-Signature": sign(SECRET, body)})
    return headers, body


def _settings(database_url: str):
    return load_settings(database_url=database_url, discourse_url="http://127.0.0.1:9",
                         discourse_api_key="k" * 32, discourse_api_username=BOT_USERNAME,
                         discourse_webhook_secret=SECRET.decode())


@pytest.fixture
def served(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    svc = Service(engine, OffsetClock())
    handlers.create_round(svc, RoundSpec(slug="printemps-2025", name="Printemps", allocation_cents=50000,
                                         group="cofinanceurs"))
    handlers.open_commons(svc, CommonsSpec(round_slug="printemps-2025", title="Découpeuse laser",
                                           goal_cents=134000, topic_id=COMMONS_TOPIC))
    app = ServedApp(create_app(_settings(sqlite_url), svc))
    app.svc = svc
    yield app
    app.stop()
    engine.dispose()


def _post(served, headers: dict, body: bytes) -> requests.Response:
    return requests.post(served.url + URL, data=body, headers=headers, timeout=10)


def _send(served, name: str) -> requests.Response:
    headers, body = load(name)
    headers = {k: v for k, v in headers.items() if k not in ("Host", "Content-Length", "Connection")}
    return _post(served, headers, body)


def _stored(served) -> list:
    d = ft.forum_deliveries
    return served.svc.run(lambda uow: uow.repo.conn.execute(
        select(d.c.event_id, d.c.event, d.c.post_id, d.c.body).order_by(d.c.id)).all())


@pytest.mark.parametrize("name", [
    "post_created__pledge", "post_created__pledge_english", "post_created", "post_edited",
    "post_destroyed", "post_destroyed_by_author", "post_recovered__by_author",
    "user_added_to_group__member", "group_user_added__member", "user_removed_from_group__member",
    "group_user_removed__member", "topic_closed_status_updated__closed", "topic_created",
])
def test_delivery_about_a_commons_is_stored(served, name):
    answer = _send(served, name)
    assert answer.status_code == 202, answer.text
    headers, body = load(name)
    rows = _stored(served)
    assert [(r.event_id, r.event) for r in rows] == [(int(headers["X-Discourse-Event-Id"]),
                                                       headers["X-Discourse-Event"])]
    assert bytes(rows[0].body) == body  # kept byte for byte


def test_staff_commun_line_in_a_topic_that_is_not_a_commons_is_stored(served):
    assert _send(served, "post_created__staff_commun").status_code == 202
    assert [r.post_id for r in _stored(served)] == [2880]


@pytest.mark.parametrize("name", [
    "ping", "post_created__private_message", "post_created__whisper", "post_created__small_action",
    "post_created__other_category", "post_edited__bot_status",
])
def test_ignored_delivery_is_answered_200_and_not_stored(served, name):
    answer = _send(served, name)
    assert answer.status_code == 200, answer.text
    assert _stored(served) == []


def test_same_event_id_twice_is_stored_once(served):
    assert _send(served, "post_created__pledge").status_code == 202
    assert _send(served, "post_created__pledge").status_code == 202
    assert len(_stored(served)) == 1


def test_missing_signature_is_refused_and_nothing_recorded(served):
    headers, body = load("post_created__pledge")
    del headers["X-Discourse-Event-Signature"]
    assert _post(served, headers, body).status_code == 401
    assert _stored(served) == []


def test_forged_signature_is_refused_and_nothing_recorded(served):
    headers, body = load("post_created__pledge")
    tampered = body.replace(b"/soutien 150", b"/soutien 950")
    assert tampered != body
    assert _post(served, headers, tampered).status_code == 401
    headers["X-Discourse-Event-Signature"] = sign(b"another-secret-xx", body)
    assert _post(served, headers, body).status_code == 401
    assert _stored(served) == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"post": {"id": "x"}}).encode(),
                                  b"\xff\xfe"])
def test_malformed_body_is_answered_400(served, body):
    headers, _ = load("post_created__pledge")
    headers["X-Discourse-Event-Signature"] = sign(SECRET, body)
    assert _post(served, headers, body).status_code == 400
    assert _stored(served) == []


def test_missing_event_header_is_answered_400(served):
    headers, body = load("post_created__pledge")
    del headers["X-Discourse-Event-Id"]
    assert _post(served, headers, body).status_code == 400


def test_body_over_one_mebibyte_is_answered_413(served):
    headers, _ = load("post_created__pledge")
    body = b'{"post": {"raw": "' + b"x" * (1024 * 1024) + b'"}}'
    headers["X-Discourse-Event-Signature"] = sign(SECRET, body)
    assert _post(served, headers, body).status_code == 413
    assert _stored(served) == []


def test_database_unavailable_is_answered_503(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}"
    app = ServedApp(create_app(_settings(url), Service(make_engine(url), OffsetClock())))
    try:
        assert _send(app, "post_created__pledge").status_code == 503
        assert requests.get(app.url + "/healthz", timeout=10).status_code == 503
    finally:
        app.stop()


def test_healthz_answers_ok_with_a_database(served):
    answer = requests.get(served.url + "/healthz", timeout=10)
    assert answer.status_code == 200
    # No worker ran in this test: the service answers, degraded (see tests/ops for the states).
    assert answer.json()["checks"]["database"]["ok"] is True


def test_stored_count_matches_deliveries(served):
    for name in ("post_created__pledge", "post_edited", "ping"):
        _send(served, name)
    d = ft.forum_deliveries
    assert served.svc.run(lambda uow: uow.repo.conn.execute(select(func.count()).select_from(d)).scalar()) == 2


def test_event_id_beyond_64_bits_is_answered_400(served):
    headers, body = load("post_created__pledge")
    headers["X-Discourse-Event-Id"] = str(2**64)
    assert _post(served, headers, body).status_code == 400
    assert _stored(served) == []


def test_first_post_of_a_topic_the_service_created_is_stored_though_it_is_the_bot_s(served):
    post = {"id": 9001, "topic_id": 777, "post_number": 1, "username": BOT_USERNAME, "version": 1,
            "raw": "Proposition reçue par courriel.\n\n<!-- commons-sync:commun:1 -->", "post_type": 1,
            "topic_archetype": "regular"}
    body = json.dumps({"post": post}, separators=(",", ":")).encode()
    headers = {"X-Discourse-Event": "post_created", "X-Discourse-Event-Type": "post",
               "X-Discourse-Event-Id": "4242", "X-Discourse-Event-Signature": sign(SECRET, body),
               "Content-Type": "application/json"}
    assert _post(served, headers, body).status_code == 202
    assert [r.post_id for r in _stored(served)] == [9001]
    other = dict(post, id=9002, post_number=2)  # any other post of the bot stays ignored
    body = json.dumps({"post": other}).encode()
    headers.update({"X-Discourse-Event-Id": "4243", "X-Discourse-Event-Signature": sign(SECRET, body)})
    assert _post(served, headers, body).status_code == 200


def test_metrics_show_pending_deliveries_outbox_and_webhook_answers(served):
    _send(served, "post_created__pledge")
    _send(served, "ping")
    answer = requests.get(served.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    text = answer.text
    assert "commons_sync_webhook_deliveries_pending 1.0" in text
    assert 'commons_sync_webhook_requests_total{status="202"} 1.0' in text
    assert 'commons_sync_webhook_requests_total{status="200"} 1.0' in text
    assert 'commons_sync_outbox_pending{kind="status_post"} 1.0' in text
    assert 'commons_sync_commons{status="en financement"} 1.0' in text
    assert "commons_sync_database_up 1.0" in text


@pytest.mark.postgres
def test_after_postgresql_dropped_its_connections_the_next_webhook_is_stored(postgres_url):
    # The webhook's pool does not ping before each use (one round trip per delivery): a dropped
    # connection fails once, the pool reconnects, and the webhook tries again.
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    upgrade(engine)
    svc = Service(engine, OffsetClock())
    handlers.create_round(svc, RoundSpec(slug="r", name="R", allocation_cents=50000, group="cofinanceurs"))
    handlers.open_commons(svc, CommonsSpec(round_slug="r", title="C", goal_cents=134000, topic_id=COMMONS_TOPIC))
    client = create_app(_settings(postgres_url), svc).test_client()
    headers, body = load("post_created__pledge")
    first = client.post(URL, data=body, headers=headers)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    again = [client.post(URL, data=body, headers=headers).get_json()["message"] for _ in range(2)]
    assert first.status_code == 202 and first.get_json()["message"] == "stored"
    assert again == ["already stored", "already stored"]
    assert [row.event for row in _stored_in(svc)] == ["post_created"]  # once, whatever the answers
    engine.dispose()


def _stored_in(svc) -> list:
    d = ft.forum_deliveries
    return svc.run(lambda uow: uow.repo.conn.execute(select(d.c.event).order_by(d.c.id)).all())
