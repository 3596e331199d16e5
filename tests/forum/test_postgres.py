"""The main forum scenario once on PostgreSQL (row locks and the shared limiter's FOR UPDATE)."""

from __future__ import annotations

import pytest

from commons_sync.service.forum import DatabaseRateLimiter

from .harness import ForumHarness

pytestmark = pytest.mark.postgres


def test_main_scenario_on_postgresql(postgres_url):
    with ForumHarness(postgres_url) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic(goal="1340", cap="1500")
        alice = forum.pledge("alice", topic, "150")
        forum.pledge("bruno", topic, "200")
        refused = forum.pledge("zoe", topic, "10")
        forum.settle()
        forum.admin.edit_post("alice", alice["id"], "Je soutiens ce commun, un peu plus.\n\n/soutien 250")
        forum.admin.set_webhook_options(duplicates=1, reorder_window=0.5)
        over = forum.pledge("chloe", topic, "900")
        forum.settle()
        commons = forum.commons(topic)
        assert (commons["pledged"], commons["cofunder_names"]) == (450, ["alice", "bruno"])
        assert "Seuls les membres du groupe" in forum.replies_to(topic, refused["post_number"])[0]
        assert "La promesse de 900 € dépasse votre solde." in forum.replies_to(topic, over["post_number"])[0]
        [status] = forum.status_posts(topic)
        assert "**450 €** collectés sur un objectif de **1 340 €** (plafond : 1 500 €)" in status["raw"]
        assert "2 cofinanceurs : alice, bruno" in status["raw"]
        assert "`▰▰▰▱▱▱▱▱▱▱` 33 %" in status["raw"]


def test_database_rate_limiter_on_postgresql(postgres_url):
    from commons_sync.storage.database import make_engine, upgrade

    engine = make_engine(postgres_url)
    upgrade(engine)
    now = [50.0]
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    limiters = [DatabaseRateLimiter(engine, 3, clock=lambda: now[0], sleep=sleep) for _ in range(3)]
    for index in range(7):
        limiters[index % 3].acquire()
        now[0] += 0.5
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(60 - 1.5)
    engine.dispose()
