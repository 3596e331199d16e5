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
