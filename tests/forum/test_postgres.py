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
    assert sleeps[0] == pytest.approx(60 + 1 - 1.5)  # the forum's minute and the limiter's 1 s margin
    engine.dispose()


def test_two_workers_at_once_apply_each_delivery_once_and_make_one_status_post(postgres_url):
    import threading

    from commons_sync.cli_forum import build_forum_client, build_worker

    with ForumHarness(postgres_url) as forum:
        forum.people()
        forum.round()
        topic = forum.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                         "Proposition : une licence partagée entre les lieux.")["topic_id"]
        second_client = build_forum_client(forum.settings, forum.svc)
        workers = [forum.worker, build_worker(forum.settings, forum.svc, second_client)]
        for worker in workers:
            worker.quiet_seconds, worker.max_delay_seconds = 0.2, 1.0
        stop = threading.Event()
        threads = [threading.Thread(target=w.run_forever, kwargs={"stop": stop, "poll_seconds": 0.05})
                   for w in workers]
        for thread in threads:
            thread.start()
        try:
            forum.post("claire", topic, "Validé par le conseil.\n\n/commun objectif=1000")
            refused = []
            for index in range(6):
                for member in ("alice", "bruno", "chloe"):
                    forum.pledge(member, topic, "10")
                refused.append(forum.pledge("zoe", topic, str(index + 1)))
            assert forum.admin.wait_for_webhooks(timeout=60)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            second_client.close()
        forum.worker.run_once()
        commons = forum.commons(topic)
        assert (commons["pledged"], commons["cofunders"]) == (180, 3)
        assert len(forum.status_posts(topic)) == 1
        assert "**180 €** collectés" in forum.status_post(topic)["raw"]
        for post in refused:
            assert len(forum.replies_to(topic, post["post_number"])) == 1
