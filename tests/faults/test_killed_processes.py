"""Processes killed during a replay; `reconcile` brings back the state the forum shows.

The replay test is `bench/faults.py` at a small size: the Discourse double, the service under
gunicorn and two `commons-sync worker` processes as real processes on a fresh PostgreSQL database,
the server and the workers SIGKILLed at seeded moments, then `reconcile --all` and an exact check
against the state computed from the forum's posts.
"""

from __future__ import annotations

import pytest

from commons_sync.devtools.fault_harness import KilledProcesses
from commons_sync.service import handlers
from commons_sync.service.forum import reconcile_topic
from tests.forum.harness import STAFF, ForumHarness

PLEDGE = "Je soutiens ce commun avec plaisir.\n\n/soutien {}"


def _pledged(forum, topic: int) -> tuple[int, list]:
    commons = forum.commons(topic)
    return commons["pledged"], [(p["username"], p["amount"], p["state"])
                                for p in handlers.list_pledges(forum.svc, commons_id=commons["id"])]


@pytest.mark.parametrize("deleted_by", ["staff", "author"])
def test_reconcile_recovers_a_post_whose_deletion_was_delivered_after_its_recovery(sqlite_url, deleted_by):
    """Deletion and recovery keep the post's version: when the forum delivers them in reverse
    order, the ledger is left withdrawn; reconcile sees the post live and restores the pledge."""
    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        post = forum.post("alice", topic, PLEDGE.format(50))
        forum.settle()
        assert _pledged(forum, topic) == (50, [("alice", 50, "live")])
        forum.admin.set_webhook_options(reorder_window=1.0)  # the events below arrive last first
        actor = STAFF if deleted_by == "staff" else "alice"
        forum.admin.delete_post(actor, post["id"])
        forum.admin.recover_post(actor, post["id"])
        forum.settle()
        assert forum.admin.post(post["id"])["deleted_at"] is None  # the forum shows it live
        assert _pledged(forum, topic) == (0, [("alice", 0, "none")])  # the late deletion won
        reconcile_topic(forum.worker.applier, forum.client, topic)
        assert _pledged(forum, topic) == (50, [("alice", 50, "live")])
        assert handlers.verify_ledger(forum.svc) == []


def test_the_leases_a_worker_takes_are_the_settings(sqlite_url):
    """A worker killed while holding the inbox or an outbox row is waited for as long as its
    lease: the settings decide it (the fault harness shortens them)."""
    from sqlalchemy import select

    from commons_sync.cli_forum import build_worker
    from commons_sync.storage import tables as tb

    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.round()
        settings = forum.settings.model_copy(update={"worker_inbox_lease_seconds": 7.0,
                                                     "worker_outbox_lease_seconds": 11.0})
        worker = build_worker(settings, forum.svc, forum.client)
        taken, claimed = [], []
        apply_pending = worker.applier.apply_pending
        worker.applier.apply_pending = lambda **kw: taken.append(kw["lease_seconds"]) or apply_pending(**kw)
        send_status_post = worker.senders["status_post"]

        def watching(payload):
            o = tb.outbox
            until = forum.svc.run(lambda uow: uow.repo.conn.execute(
                select(o.c.claimed_until).where(o.c.kind == "status_post")).scalar())
            claimed.append((until.replace(tzinfo=None) - forum.clock().replace(tzinfo=None)).total_seconds())
            send_status_post(payload)

        worker.senders["status_post"] = watching
        topic = forum.admin.create_topic("alice", "Un second commun à cofinancer",
                                         "Proposition : une licence partagée entre les lieux.")
        forum.admin.create_post(STAFF, topic["topic_id"], "Validé par le conseil.\n\n/commun objectif=100")
        assert forum.admin.wait_for_webhooks(timeout=30)
        worker.run_once()
        assert set(taken) == {7.0}
        assert claimed and all(9.0 < seconds <= 11.0 for seconds in claimed)
        assert len(forum.status_posts(topic["topic_id"])) == 1


def test_killed_server_and_workers_during_a_replay_end_exact_after_reconcile(postgres_url, installed, tmp_path):
    """20 commons, 400 deliveries (pledges, amending edits, deletions by authors and staff,
    recoveries; duplicated and reordered stretches), the server and a worker SIGKILLed 3 times at
    seeded moments and restarted: after `reconcile --all` and the drain, every pledge, total,
    status post and fiche is what the forum's posts dictate."""
    scenario = KilledProcesses(postgres_url, commons=20, deliveries=400, kills=3, seed=3, wiki=installed,
                               rate=40.0, workdir=tmp_path / "stack")
    report = scenario.run(settle_timeout=300)
    assert report["problems"] == []
    assert report["kills"] == 3 and {k["target"].split("-")[0] for k in report["kill_log"]} == {"server", "worker"}
    assert report["starts"] == {"server": 1 + sum(k["target"] == "server" for k in report["kill_log"]),
                                "worker": 2 + sum(k["target"] != "server" for k in report["kill_log"])}
    assert report["webhooks"]["answers"].get("no answer", 0) > 0  # deliveries did meet a dead server
    assert report["webhooks"]["duplicates"] > 0
    assert report["status_posts_exact"] == report["fiches_exact"] == report["commons"] == 20
    assert report["pledges_lost"] == report["pledges_over"] == report["ledger_problems"] == 0
    assert report["live_pledges"] > 50
