"""`worker --once`, `reconcile` and `serve` as the command line runs them (settings from the environment)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from commons_sync.cli_forum import reconcile, serve, worker
from commons_sync.service.forum import pending_delivery_count


@pytest.fixture
def env(forum, monkeypatch):
    for name, value in forum.environment(max_rpm=600).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("COMMONS_SYNC_SECRET_KEY", raising=False)
    return forum


def test_worker_once_applies_and_sends_then_exits_0(env):
    forum = env
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "45")
    assert forum.admin.wait_for_webhooks(timeout=30)
    result = CliRunner().invoke(worker, ["--once"])
    assert result.exit_code == 0, result.output
    assert pending_delivery_count(forum.svc) == 0
    assert forum.commons(topic)["pledged"] == 45
    assert "**45 €** collectés" in forum.status_post(topic)["raw"]


def test_reconcile_applies_posts_whose_webhooks_never_came_and_keeps_refusals(env):
    forum = env
    topic = forum.commons_topic()
    forum.admin.set_webhook_options(paused=True)
    forum.pledge("alice", topic, "70")
    refused = forum.pledge("zoe", topic, "20")
    deleted = forum.pledge("bruno", topic, "30")
    result = CliRunner().invoke(reconcile, ["--topic", str(topic)])
    assert result.exit_code == 0, result.output
    forum.worker.run_once()
    assert forum.commons(topic)["cofunder_names"] == ["alice", "bruno"]
    forum.admin.delete_post("claire", deleted["id"])
    result = CliRunner().invoke(reconcile, ["--all"])
    assert result.exit_code == 0, result.output
    forum.worker.run_once()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (70, ["alice"])
    assert len(forum.replies_to(topic, refused["post_number"])) == 1
    forum.admin.set_webhook_options(paused=False)  # the late webhooks change nothing
    forum.settle()
    assert forum.commons(topic)["pledged"] == 70
    assert len(forum.replies_to(topic, refused["post_number"])) == 1


def test_reconcile_needs_a_topic_or_all(env):
    result = CliRunner().invoke(reconcile, [])
    assert result.exit_code != 0
    assert "--topic ID ou --all" in result.output


def test_reconcile_of_a_topic_that_is_not_a_commons_fails_with_one_line(env):
    result = CliRunner().invoke(reconcile, ["--topic", "424242"])
    assert result.exit_code == 1
    assert "le sujet 424242 n'est pas un commun" in result.output


def test_serve_without_secret_key_stops_with_one_line(env):
    result = CliRunner().invoke(serve, [])
    assert result.exit_code == 1
    assert "COMMONS_SYNC_SECRET_KEY" in result.output
