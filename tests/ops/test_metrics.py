"""`GET /metrics` after a small forum scenario: the figures match what happened, across processes."""

from __future__ import annotations

import re

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from commons_sync.service import ops
from commons_sync.storage import forum_tables as ft


def scrape(forum) -> dict[tuple[str, tuple], float]:
    """Every sample of `/metrics`: (name, sorted labels) → value."""
    answer = requests.get(forum.app.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["X-Request-Id"]
    assert answer.headers["Content-Type"].count("charset") == 1  # Prometheus 3 refuses duplicates
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_after_pledges_refusals_and_a_429(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "40")
    forum.settle()
    forum.pledge("zoe", topic, "20")  # not a member of the round
    forum.pledge("bruno", topic, "1,200")  # ambiguous amount
    forum.settle()
    # The next status-post edit is answered 429 once; the worker waits as told, then sends it.
    forum.admin.fail_next("/posts/", status=429, method="PUT")
    forum.pledge("chloe", topic, "25")
    assert forum.admin.wait_for_webhooks(timeout=30)
    forum.worker.step(flush=True)
    forum.clock.advance(seconds=30)
    forum.settle()
    assert forum.commons(topic)["pledged"] == 65
    assert forum.admin.wait_for_webhooks(timeout=30)  # the bot's own edits are answered (and counted) too

    m = scrape(forum)
    stored = forum.svc.run(lambda uow: uow.repo.conn.execute(
        select(func.count()).select_from(ft.forum_deliveries)).scalar())
    assert m[("commons_sync_webhook_requests_total", (("status", "202"),))] == stored
    assert m[("commons_sync_pledge_posts", (("reason", ""), ("result", "accepted")))] == 2
    assert m[("commons_sync_pledge_posts", (("reason", "not_member"), ("result", "refused")))] == 1
    refused = {labels: value for (name, labels), value in m.items()
               if name == "commons_sync_pledge_posts" and ("result", "refused") in labels}
    assert sum(refused.values()) == 2
    assert m[("commons_sync_outbox_pending", (("kind", "status_post"),))] == 0
    assert m[("commons_sync_outbox_oldest_age_seconds", (("kind", "status_post"),))] == 0
    assert m[("commons_sync_api_rate_limited_total", (("peer", "forum"),))] == 1
    assert m[("commons_sync_api_responses_total", (("peer", "forum"), ("status", "429")))] == 1
    # Every API request the double answered was counted once (the double counts them too).
    assert m[("commons_sync_api_calls_total", (("peer", "forum"),))] == forum.api_stats()["total"]
    # Two pledges changed the status post (alice, chloe; the refused ones did not): each observed once.
    assert m[("commons_sync_sync_latency_seconds_count", ())] == 2
    assert m[("commons_sync_sync_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert m[("commons_sync_sync_latency_seconds_sum", ())] > 0
    [(worker, age)] = [(dict(labels)["worker"], value) for (name, labels), value in m.items()
                       if name == "commons_sync_worker_heartbeat_age_seconds"]
    assert re.fullmatch(r".+/\d+", worker)
    assert age >= 0
    assert m[("commons_sync_database_up", ())] == 1


def test_counters_of_two_processes_add_up(forum):
    """Another process (here: another engine on the same database) adds to the same counters."""
    from commons_sync.storage.database import make_engine

    other = make_engine(forum.database_url)
    try:
        ops.counters(other).inc(ops.WEBHOOK_REQUESTS, {"status": 401}, by=3)
        assert ops.counters(other).flush()
        requests.post(forum.app.url + "/webhooks/discourse", data=b"{}", timeout=10)  # unsigned: 401
        m = scrape(forum)
        assert m[("commons_sync_webhook_requests_total", (("status", "401"),))] == 4
    finally:
        other.dispose()


def test_a_flush_that_fails_keeps_the_increments(tmp_path, forum):
    from commons_sync.storage.database import make_engine

    broken = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite'}")
    recorder = ops.counters(broken)
    recorder.inc(ops.API_REQUESTS, {"peer": "wiki", "status": 200})
    assert recorder.flush() is False
    assert recorder.pending() == {(ops.API_REQUESTS, "peer=wiki,status=200"): 1.0}


def test_metrics_carry_no_secret_and_no_address(forum):
    forum.admin.create_user("dora", name="dora@example.org", groups=["cofinanceurs"])
    topic = forum.commons_topic()
    forum.pledge("dora", topic, "10")
    forum.settle()
    text = requests.get(forum.app.url + "/metrics", timeout=10).text
    assert "@" not in text
    for secret in (forum.forum.api_key, forum.settings.discourse_webhook_secret.get_secret_value()):
        assert secret not in text
