"""The worker's outbox: the status post made once, coalesced edits, 429s and failures never dropped."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from commons_sync.service import outbox
from commons_sync.service.forum import DatabaseRateLimiter, pending_delivery_count
from commons_sync.service.worker import ForumSenders, deliver_outbox, pending_rows
from commons_sync.storage import tables as tb

from .harness import ForumHarness


class Interrupted(BaseException):
    """The process dies here (as a KeyboardInterrupt or a kill would)."""


class DiesAfterCreating:
    """The real client, except that the process dies right after the forum created a post."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def create_post(self, *args, **kwargs):
        self.client.create_post(*args, **kwargs)
        raise Interrupted()


def _status_post_id(forum, topic):
    c = tb.commons
    return forum.svc.run(lambda uow: uow.repo.conn.execute(
        select(c.c.status_post_id).where(c.c.topic_id == topic)).scalar())


def test_status_post_is_created_once_when_the_worker_dies_before_recording_it(forum):
    topic = forum.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                     "Proposition : une licence partagée entre les lieux.")["topic_id"]
    forum.post("claire", topic, "Validé par le conseil.\n\n/commun objectif=1340")
    assert forum.admin.wait_for_webhooks(timeout=30)
    forum.worker.applier.apply_pending()
    dying = ForumSenders(forum.svc, DiesAfterCreating(forum.client), forum.forum.api_username)
    with pytest.raises(Interrupted):
        deliver_outbox(forum.svc, dying.senders())
    assert len(forum.status_posts(topic)) == 1
    assert _status_post_id(forum, topic) is None  # never recorded
    forum.clock.advance(minutes=10)  # the dead worker's claim expires
    forum.worker.run_once()
    [status] = forum.status_posts(topic)
    assert _status_post_id(forum, topic) == status["id"]
    assert status["locked"] is True
    forum.pledge("alice", topic, "40")
    forum.settle()
    [status] = forum.status_posts(topic)
    assert "**40 €** collectés" in status["raw"]


def test_a_change_while_sending_sends_the_status_post_again(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "10")
    assert forum.admin.wait_for_webhooks(timeout=30)
    forum.worker.applier.apply_pending()
    senders = ForumSenders(forum.svc, forum.client, forum.forum.api_username).senders()
    real = senders[outbox.STATUS_POST]

    def pledge_meanwhile(payload):
        real(payload)  # shows 10 €
        if not hasattr(pledge_meanwhile, "done"):
            pledge_meanwhile.done = True
            forum.pledge("bruno", topic, "25")
            assert forum.admin.wait_for_webhooks(timeout=30)
            forum.worker.applier.apply_pending()  # coalesced into the row being sent

    senders[outbox.STATUS_POST] = pledge_meanwhile
    first = deliver_outbox(forum.svc, senders)
    assert first.requeued == 1
    second = deliver_outbox(forum.svc, senders)
    assert second.sent >= 1
    assert "**35 €** collectés" in forum.status_post(topic)["raw"]
    assert pending_rows(forum.svc, [outbox.STATUS_POST]) == []


def test_rate_limited_send_waits_as_the_forum_says_and_is_not_dropped(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "10")
    assert forum.admin.wait_for_webhooks(timeout=30)
    forum.worker.applier.apply_pending()
    forum.admin.set_api_ceiling(per_minute=1, reset=True)
    forum.client.get_user("alice")  # uses the forum's one request of the minute
    report = deliver_outbox(forum.svc, forum.worker.senders)
    assert report.failed == 1 and report.sent == 0
    [row] = pending_rows(forum.svc, [outbox.STATUS_POST])
    assert row.last_error.startswith("rate limited")
    assert row.attempts == 0
    forum.clock.advance(seconds=30)
    assert deliver_outbox(forum.svc, forum.worker.senders).attempted == 0  # still waiting
    forum.admin.set_api_ceiling(per_minute=600, reset=True)
    forum.clock.advance(seconds=40)
    assert deliver_outbox(forum.svc, forum.worker.senders).sent == 1
    assert "**10 €** collectés" in forum.status_post(topic)["raw"]


def test_forum_failure_backs_off_and_once_exits_with_the_row_kept(forum):
    topic = forum.commons_topic()
    post = forum.pledge("zoe", topic, "10")  # refused: a reply is due
    forum.admin.fail_next("/posts", count=1, status=502, method="POST")
    forum.settle()  # run_once returns although the reply failed
    [row] = pending_rows(forum.svc, [outbox.REPLY])
    assert row.attempts == 1 and "Unavailable" in row.last_error
    assert forum.replies_to(topic, post["post_number"]) == []
    forum.clock.advance(seconds=5)
    forum.worker.run_once()
    assert len(forum.replies_to(topic, post["post_number"])) == 1
    assert pending_rows(forum.svc, [outbox.REPLY]) == []


def test_kinds_of_adapters_that_are_off_stay_pending_and_are_not_counted(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "10")
    forum.admin.wait_for_webhooks(timeout=30)
    summary = forum.worker.run_once()
    assert summary.pending == 0
    wiki = pending_rows(forum.svc, [outbox.WIKI_FICHE, outbox.WIKI_RESULTS])
    assert {row.kind for row in wiki} == {outbox.WIKI_FICHE, outbox.WIKI_RESULTS}


def test_forum_unavailable_leaves_deliveries_for_later_in_order(forum):
    topic = forum.commons_topic()
    forum.admin.fail_next("/groups/", count=1, status=503)  # the round group's roster
    forum.pledge("alice", topic, "10")
    forum.pledge("bruno", topic, "20")
    forum.settle()
    assert pending_delivery_count(forum.svc) == 2  # the first could not be judged; nothing skipped
    assert forum.commons(topic)["pledged"] == 0
    forum.worker.run_once()
    assert pending_delivery_count(forum.svc) == 0
    assert forum.commons(topic)["pledged"] == 30


def test_database_rate_limiter_is_shared_by_every_limiter_on_the_database(sqlite_url):
    from commons_sync.storage.database import make_engine, upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    now = [1000.0]
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    workers = [DatabaseRateLimiter(engine, 5, clock=lambda: now[0], sleep=sleep) for _ in range(2)]
    sent: list[float] = []
    for index in range(12):
        workers[index % 2].acquire()
        sent.append(now[0])
        now[0] += 1.0
    for start in sent:
        assert sum(1 for moment in sent if start <= moment < start + 60) <= 5
    assert len(sleeps) == 2  # the 6th and the 11th waited for the window
    engine.dispose()


def test_burst_of_pledges_makes_few_status_edits_under_the_api_ceiling(sqlite_url):
    ceiling = 30
    members = [f"membre{index:02d}" for index in range(10)]
    with ForumHarness(sqlite_url, max_rpm=ceiling, double_rpm=ceiling) as forum:
        forum.people(members=members, others=())
        forum.round()
        topic = forum.admin.create_topic(members[0], "Une découpeuse laser partagée",
                                         "Proposition d'achat commun d'une découpeuse laser.")["topic_id"]
        forum.post("claire", topic, "Validé par le conseil.\n\n/commun objectif=1000")
        forum.settle()
        stop = threading.Event()
        loop = threading.Thread(target=forum.worker.run_forever, kwargs={"stop": stop, "poll_seconds": 0.1})
        loop.start()
        try:
            for round_number in range(10):
                for member in members:
                    forum.pledge(member, topic, "5")
            assert forum.admin.wait_for_webhooks(timeout=60)
        finally:
            stop.set()
            loop.join(timeout=60)
        forum.worker.run_once()
        stats = forum.api_stats()
        assert stats["rejected"] == 0
        assert stats["max_in_any_60s"] <= ceiling
        assert all(count <= ceiling for count in stats["per_minute"].values())
        commons = forum.commons(topic)
        assert (commons["pledged"], commons["cofunders"]) == (500, 10)
        status = forum.status_post(topic)
        assert "**500 €** collectés" in status["raw"] and "10 cofinanceurs" in status["raw"]
        edits = status["version"] - 1
        assert 1 <= edits <= 20  # 100 pledges, a handful of edits


def test_status_post_is_created_once_when_the_worker_process_is_killed_before_recording_it(forum, tmp_path):
    """A real `worker --once` process killed while it locks the post it has just created."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .harness import SECRET

    topic = forum.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                     "Proposition : une licence partagée entre les lieux.")["topic_id"]
    forum.post("claire", topic, "Validé par le conseil.\n\n/commun objectif=1340")
    assert forum.admin.wait_for_webhooks(timeout=30)
    forum.admin.fail_next("/posts/", method="PUT", mode="hang", hang_seconds=60)  # the lock call hangs
    env = dict(os.environ, COMMONS_SYNC_DATABASE_URL=forum.database_url,
               COMMONS_SYNC_DISCOURSE_URL=forum.forum.url, COMMONS_SYNC_DISCOURSE_API_KEY=forum.forum.api_key,
               COMMONS_SYNC_DISCOURSE_API_USERNAME=forum.forum.api_username,
               COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET=SECRET, COMMONS_SYNC_DISCOURSE_MAX_RPM="600")
    script = "from commons_sync.cli_forum import worker; worker(['--once'])"
    process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not forum.status_posts(topic) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(forum.status_posts(topic)) == 1
        time.sleep(0.2)
        assert process.poll() is None  # still waiting for the lock answer
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    forum.admin.clear_failures()
    assert _status_post_id(forum, topic) is None
    forum.clock.advance(minutes=10)  # the killed worker's claims expire
    forum.worker.run_once()
    [status] = forum.status_posts(topic)
    assert _status_post_id(forum, topic) == status["id"]
    assert status["locked"] is True
