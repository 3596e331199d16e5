"""Peers down: the wiki stopped and the forum answering 500 then 429 while pledges come in.

The end-to-end test runs the Discourse double, gunicorn and `commons-sync worker` as processes
next to the session's MediaWiki (`bench/peers_down.py` is the full-size run). The others pin the
worker's rules that make it hold: a forum that is down or asks to wait is not asked again too
soon (the API ceiling stays for the catching up), a peer that answers again gets its waiting rows
at once, and the shared limiter leaves the forum a margin.
"""

from __future__ import annotations

import re
import time

import pytest

from commons_sync.devtools.peer_faults import GROUP, ServiceStack, latency_summary
from commons_sync.mediawiki import Wiki
from commons_sync.mediawiki.errors import WikiUnavailable
from commons_sync.service import outbox
from commons_sync.service.forum import DatabaseRateLimiter
from commons_sync.service.worker import Worker, backoff_seconds, pending_rows
from commons_sync.storage import tables as tb
from tests.forum.harness import ForumHarness

pytestmark = pytest.mark.mediawiki


# --- the rules ---------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_max():
    assert [backoff_seconds(n) for n in range(1, 5)] == [2, 4, 8, 16]
    assert backoff_seconds(40) == 3600
    assert [backoff_seconds(n, 0.25, 1.0) for n in range(1, 5)] == [0.25, 0.5, 1.0, 1.0]


def test_the_shared_limiter_leaves_the_forum_a_margin(sqlite_url):
    """The forum counts a call when it arrives, a little after the limiter counted it: the limiter's
    window is a second longer, so calls sent just as the window frees never make 6 in the forum's 60 s."""
    from commons_sync.storage.database import make_engine, upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    now = [1000.0]

    def sleep(seconds):
        now[0] += seconds

    limiter = DatabaseRateLimiter(engine, 5, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    limiter.acquire()
    assert now[0] == pytest.approx(1061.0)
    engine.dispose()


def test_a_forum_down_or_asking_to_wait_is_not_asked_again_too_soon(sqlite_url):
    with ForumHarness(sqlite_url, max_rpm=600, double_rpm=600) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        worker = forum.worker
        worker.applier.backoff = lambda failures: 0.4 * 2 ** (failures - 1)
        forum.admin.fail_next("/groups/", count=10_000, status=500)
        forum.pledge("alice", topic, "10")
        assert forum.admin.wait_for_webhooks(timeout=30)
        before = forum.api_stats()["total"]
        began = time.monotonic()
        while time.monotonic() - began < 1.0:  # backoffs of 0.4 then 0.8 s: at most two calls in 1 s
            worker.applier.apply_pending()
            time.sleep(0.05)
        assert 1 <= forum.api_stats()["total"] - before <= 2  # one a pass (20) without the backoff
        # A 429 says how long to wait: nothing is asked before that.
        forum.admin.clear_failures()
        forum.admin.fail_next("/groups/", count=10_000, status=429, retry_after=2)
        time.sleep(1.0)
        before = forum.api_stats()["total"]
        began = time.monotonic()
        while time.monotonic() - began < 1.5:
            worker.applier.apply_pending()
            time.sleep(0.05)
        assert forum.api_stats()["total"] - before == 1
        forum.admin.clear_failures()
        # `worker --once` is an operator asking now: it does not wait.
        forum.worker.run_once()
        assert forum.commons(topic)["pledged"] == 10


def test_a_peer_that_answers_again_gets_its_waiting_rows_at_once(sqlite_service):
    """Rows backing off for a long time (1,000 s) go as soon as a probe finds the wiki back."""
    svc = sqlite_service
    wiki_up = [False]
    sent: list[int] = []

    def send_fiche(payload):
        if not wiki_up[0]:
            raise WikiUnavailable("cannot reach the wiki")
        sent.append(payload["commons_id"])

    def enqueue(uow):
        for n in range(4):
            uow.repo.enqueue(outbox.WIKI_FICHE, f"{outbox.WIKI_FICHE}:{n}", {"commons_id": n})
        uow.commit()

    svc.run(enqueue)
    worker = Worker(svc, None, {outbox.WIKI_FICHE: send_fiche}, backoff_base_seconds=1000,
                    probe_seconds=0.0)
    worker.step(flush=True)
    assert sent == [] and len(pending_rows(svc, [outbox.WIKI_FICHE])) == 4
    worker.step(flush=True)  # the probe: one row asked again, still down
    rows = pending_rows(svc, [outbox.WIKI_FICHE])
    assert sorted(row.attempts for row in rows) == [1, 1, 1, 2]
    wiki_up[0] = True
    worker.step(flush=True)  # the probe goes through: the others are released
    worker.step(flush=True)
    # The test's clock never moves: without the probe and the release they would wait 1,000 s.
    assert sorted(sent) == [0, 1, 2, 3] and pending_rows(svc, [outbox.WIKI_FICHE]) == []


def test_a_429_wait_is_not_cut_short_when_the_peer_is_back(sqlite_service):
    """The forum back after a 5xx releases the rows that backed off, not one told to wait by a 429."""
    from commons_sync.discourse.errors import RateLimited, Unavailable

    svc = sqlite_service
    o = tb.outbox

    def enqueue(uow):
        uow.repo.enqueue(outbox.STATUS_POST, "status_post:1", {"commons_id": 1})
        uow.repo.enqueue(outbox.STATUS_POST, "status_post:2", {"commons_id": 2})
        uow.repo.enqueue(outbox.STATUS_POST, "status_post:3", {"commons_id": 3})
        uow.commit()

    svc.run(enqueue)
    calls: list[int] = []

    def send(payload):
        commons_id = payload["commons_id"]
        calls.append(commons_id)
        if commons_id == 1:
            raise RateLimited("PUT", "/posts/1.json", 600)
        if calls.count(commons_id) == 1:
            raise Unavailable("PUT", f"/posts/{commons_id}.json", 502)

    worker = Worker(svc, None, {outbox.STATUS_POST: send}, backoff_base_seconds=1000, probe_seconds=0.0)
    worker.step(flush=True)  # 1: told to wait 600 s; 2 and 3: the forum is down
    worker.step(flush=True)  # a probe (2) goes through: 3 is released, 1 keeps its wait
    worker.step(flush=True)
    assert calls == [1, 2, 3, 2, 3]
    row = svc.run(lambda uow: uow.repo.conn.execute(o.select().where(o.c.key == "status_post:1")).one())
    assert row.done_at is None and row.last_error.startswith("rate limited")
    assert [r.key for r in pending_rows(svc, [outbox.STATUS_POST])] == ["status_post:1"]


def test_a_row_the_forum_refused_keeps_its_own_backoff_and_is_no_probe(sqlite_service):
    """A 403 says nothing about the forum being down: that row is not asked again every probe,
    and its later success does not release other rows."""
    from commons_sync.discourse.errors import Forbidden

    svc = sqlite_service
    o = tb.outbox
    svc.run(lambda uow: (uow.repo.enqueue(outbox.STATUS_POST, "status_post:1", {"commons_id": 1}),
                         uow.commit()))
    calls: list[int] = []

    def send(payload):
        calls.append(payload["commons_id"])
        raise Forbidden("PUT", "/posts/1.json", 403)

    worker = Worker(svc, None, {outbox.STATUS_POST: send}, backoff_base_seconds=1000, probe_seconds=0.0)
    for _ in range(3):
        worker.step(flush=True)
    assert calls == [1]  # not probed again: it waits its own 1,000 s
    row = svc.run(lambda uow: uow.repo.conn.execute(o.select().where(o.c.key == "status_post:1")).one())
    assert row.attempts == 1 and row.last_error.startswith("Forbidden:")


# --- the whole service as processes ----------------------------------------------------------------


def test_peers_down_then_back_nothing_lost_ceiling_kept_webhook_answers(installed, tmp_path):
    """The wiki stopped, the forum answering 500 then 429 for a few seconds (several backoffs of
    0.25 s doubling to 2 s), pledges all along; then everything is caught up and exact."""
    members = [f"lieu-{n}" for n in range(8)]
    bot = Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password)
    with ServiceStack(tmp_path, installed, retry_base=0.25, retry_max=2.0) as stack:
        stack.people(members[:4], outside=members[4:])
        stack.round()
        topics = stack.open_forum_commons(2, prefix=f"Panne {tmp_path.name}")
        commons_of = {c["topic_id"]: c["id"] for c in stack.list_commons()}
        expected = {commons_of[t]: 0 for t in topics}
        count = 0

        def pledge(n: int, member: str) -> None:
            nonlocal count
            topic, amount = topics[n % 2], 1 + n % 5
            stack.pledge_post(member, topic, amount)
            expected[commons_of[topic]] += amount * 100
            count += 1

        for n in range(4):  # half the members pledge first: the group's roster is read
            pledge(n, members[n])
        stack.wait_until(lambda: stack.caught_up() and stack.pledge_count() == 4, 60, "first pledges")
        for member in members[4:]:  # they join after the roster was read: each must be asked about
            stack.admin.add_to_group(GROUP, member)
        assert stack.admin.wait_for_webhooks(timeout=30)
        webhooks_before = len(stack.admin.webhook_log()["deliveries"])
        installed.stop_server()
        try:
            stack.forum_fails(500)
            # Members in the roster first (their pledges are applied, and the status posts and
            # fiches they call for fail and back off), then the members who joined since.
            for n in range(4, 16):
                if n == 12:
                    stack.forum_fails(429, retry_after=1)
                pledge(n, members[(n - 4) % len(members)])
                time.sleep(0.5)
            assert stack.admin.wait_for_webhooks(timeout=30)
            during = stack.webhook_answers(webhooks_before)
            backlog = stack.backlog()
        finally:
            stack.forum_recovers()
            installed.start_server()
        stack.wait_until(lambda: stack.caught_up() and stack.pledge_count() == count, 120, "catching up")
        stats = stack.admin.request_stats()
        # Every pledge's webhook stored at the first attempt during the outage; none answered
        # anything but 2xx afterwards either (the bot's own edits are `200`, ignored).
        assert len(during) == 12 and all(a["status"] == 202 and a["attempt"] == 0 for a in during), during
        assert latency_summary([a["seconds"] for a in during])["count"] == 12
        assert all(200 <= (a["status"] or 0) < 300 for a in stack.webhook_answers(0))
        # Something was waiting when the peers came back, after several failed tries that backed
        # off (deliveries waiting for the forum, status posts and fiches).
        assert backlog["deliveries"] > 0 and backlog["outbox_rows"] > 0 and backlog["max_attempts"] >= 1, backlog
        retries = re.findall(r"delivery \d+ waits|outbox \w+ \d+ failed", stack.worker_log())
        assert len(retries) >= 4, retries
        assert stats["max_in_any_60s"] <= 50 and stats["rejected"] == 0, stats
        assert stack.ledger_problems(expected) == []
        assert stack.status_post_problems() == []
        assert stack.fiche_problems(bot) == []
