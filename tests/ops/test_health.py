"""`GET /healthz`: 503 without a database; ok, or degraded by a stale worker or a late outbox."""

from __future__ import annotations

import pytest

from commons_sync.config import load_settings
from commons_sync.service import handlers, ops
from commons_sync.service.handlers import CommonsSpec, RoundSpec, Service
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app
from tests.forum.harness import SECRET, OffsetClock


def _settings(url: str, **extra):
    return load_settings(database_url=url, discourse_url="http://127.0.0.1:9", discourse_api_key="k" * 64,
                         discourse_api_username="commons-bot", discourse_webhook_secret=SECRET, **extra)


@pytest.fixture
def site(database_url):
    """An app on a migrated database (SQLite, then PostgreSQL), its service on a clock the test moves."""
    engine = make_engine(database_url)
    upgrade(engine)
    svc = Service(engine, OffsetClock())
    app = create_app(_settings(database_url), svc)
    yield app.test_client(), svc
    engine.dispose()


def test_database_down_is_503_unavailable(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}"
    app = create_app(_settings(url), Service(make_engine(url), OffsetClock()))
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False


def test_no_worker_ever_seen_is_degraded_but_200(site):
    client, _svc = site
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["ok"] is False
    assert body["problems"] == ["no worker pass seen"]


def test_fresh_heartbeat_is_ok_and_names_the_worker(site):
    client, svc = site
    beat = ops.Heartbeat(svc, ops.counters(svc.engine), host="worker-host", pid=4242)
    beat()
    beat()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok", body
    [worker] = body["checks"]["worker"]["workers"]
    assert (worker["worker"], worker["host"], worker["pid"], worker["passes"]) == ("worker-host/4242", "worker-host",
                                                                                   4242, 2)


def test_stale_heartbeat_is_degraded(site):
    client, svc = site
    ops.Heartbeat(svc, ops.counters(svc.engine), host="worker-host", pid=1)()
    svc.clock.advance(seconds=ops_threshold() + 30)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["ok"] is False
    assert body["problems"][0].startswith("newest worker pass")


def test_old_pending_outbox_row_of_an_adapter_that_is_on_is_degraded(site):
    client, svc = site
    handlers.create_round(svc, RoundSpec(slug="r", name="R", allocation_cents=50000, group="g"))
    handlers.open_commons(svc, CommonsSpec(round_slug="r", title="Licence partagée", goal_cents=100000))
    beat = ops.Heartbeat(svc, ops.counters(svc.engine))
    beat()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"  # the row is fresh
    assert body["checks"]["outbox"]["kinds"]["status_post"]["pending"] == 1
    assert "wiki_fiche" not in body["checks"]["outbox"]["kinds"]  # the wiki adapter is off here
    svc.clock.advance(hours=1)
    beat()  # the worker runs, but the forum side does not move
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["ok"] is True
    assert body["checks"]["outbox"]["ok"] is False
    assert body["problems"] == ["outbox status_post: oldest row 3600 s old"]


def test_thresholds_come_from_the_app_config(site):
    client, svc = site
    ops.Heartbeat(svc, ops.counters(svc.engine))()
    svc.clock.advance(seconds=60)
    assert client.get("/healthz").get_json()["status"] == "ok"
    client.application.config["HEALTH_HEARTBEAT_MAX_AGE"] = 30
    assert client.get("/healthz").get_json()["status"] == "degraded"


def ops_threshold() -> float:
    from commons_sync.web.health import HEARTBEAT_MAX_AGE

    return HEARTBEAT_MAX_AGE


def test_old_heartbeats_are_forgotten(site):
    _client, svc = site
    ops.Heartbeat(svc, ops.counters(svc.engine), host="gone", pid=1)()
    svc.clock.advance(days=8)
    ops.Heartbeat(svc, ops.counters(svc.engine), host="here", pid=2)()
    workers = svc.run(lambda uow: [row.worker_id for row in ops.heartbeats(uow.repo.conn)])
    assert workers == ["here/2"]


def test_counters_add_up_on_this_database(site):
    _client, svc = site
    for _ in range(2):
        recorder = ops.counters(svc.engine)
        recorder.inc(ops.API_REQUESTS, {"peer": "forum", "status": 429})
        recorder.observe_latency(1.5)
        assert recorder.flush()
    found = svc.run(lambda uow: ops.read_counters(uow.repo.conn))
    assert found[ops.API_REQUESTS] == {"peer=forum,status=429": 2.0}
    assert "le=1.0" not in found[ops.SYNC_LATENCY]  # 1.5 s is above that bucket
    assert found[ops.SYNC_LATENCY]["le=2.0"] == 2.0
    assert found[ops.SYNC_LATENCY + "_sum"] == {"": 3.0}
