"""PostgreSQL restarted during load: webhooks answer 503, Discourse delivers again, nothing is lost.

The load test is `bench/faults.py --scenario pg-restart` at a small size, on a private PostgreSQL
cluster (initdb in a temporary folder, its own port, run as the `postgres` user), never the
machine's shared one.
"""

from __future__ import annotations

import os

import pytest

from commons_sync.devtools.fault_harness import PostgresRestart, PrivateCluster
from commons_sync.service import handlers
from tests.forum.harness import ForumHarness

IN_CI = os.environ.get("CI") == "true"
PLEDGE = "Je soutiens ce commun avec plaisir.\n\n/soutien {}"


def test_a_late_older_version_with_a_pledge_line_does_not_override_an_edit_that_removed_it(sqlite_url):
    """An edit that removes the pledge line, delivered before the post's first version (a
    redelivery after a 503 comes late), leaves no pledge: the newest version is the post's state."""
    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        forum.admin.set_webhook_options(reorder_window=1.0)  # the edit arrives before the post
        post = forum.post("alice", topic, PLEDGE.format(50))
        forum.admin.edit_post("alice", post["id"], "Finalement nous attendons la prochaine campagne.")
        forum.settle()
        log = [d for d in forum.admin.webhook_log()["deliveries"] if d["event_type"] == "post"]
        assert [d["event_name"] for d in log[-2:]] == ["post_edited", "post_created"]
        commons = forum.commons(topic)
        assert commons["pledged"] == 0 and commons["cofunder_names"] == []
        assert [(p["amount"], p["state"]) for p in handlers.list_pledges(forum.svc, commons_id=commons["id"])] \
            == [(0, "none")]
        assert forum.balance("alice") == 500  # untouched
        assert handlers.verify_ledger(forum.svc) == []


def test_a_chatter_post_edited_by_a_non_member_writes_no_account(sqlite_url):
    """The edited post without a pledge line is recorded, but it gives nobody an allocation."""
    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        post = forum.post("zoe", topic, "Une question : quand le projet démarre-t-il ?")
        forum.admin.edit_post("zoe", post["id"], "Une question : quand le projet démarrera-t-il ?")
        forum.settle()
        assert forum.balance("zoe") is None
        assert handlers.verify_ledger(forum.svc) == []


@pytest.fixture
def cluster():
    if not PrivateCluster.available():
        message = "a private PostgreSQL cluster needs root, runuser and /usr/lib/postgresql/*/bin"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    private = PrivateCluster().init()
    private.start()
    yield private
    private.destroy()


def test_postgres_restarted_during_load(cluster, tmp_path):
    """Pledges and edits arrive by webhook while PostgreSQL stops for a few seconds and starts again:
    the webhook answers 503 (never 500, never a hang), Discourse's redeliveries are stored, the
    server and both workers carry on without a restart, and the final state is exact without
    reconcile."""
    scenario = PostgresRestart(cluster, commons=5, seed=7, before=3.0, outage=3.0, after=4.0, rate=15.0,
                               workdir=tmp_path / "stack")
    report = scenario.run(settle_timeout=240)
    assert report["problems"] == []
    assert report["deliveries_answered_503"] > 0  # the outage was seen by real deliveries
    assert report["answered_503_then_stored"] == report["deliveries_answered_503"]
    assert report["webhooks"]["never_delivered"] == 0
    assert set(report["probe"]["answers"]) <= {"200", "503"} and "503" in report["probe"]["answers"]
    assert set(report["probe"]["healthz"]) == {"200", "503"}
    assert report["same_processes_throughout"]
    # The workers' failed passes are one line each, not a traceback twice a second.
    assert report["worker_log"]["passes_failed_database_unavailable"] > 0
    assert report["worker_log"]["tracebacks"] == 0
    assert report["posts_differing_after_settling"] == 0
    assert report["status_posts_exact"] == report["commons"] == 5
    assert report["pledges_lost"] == report["pledges_over"] == report["ledger_problems"] == 0


@pytest.mark.parametrize("message", ["FATAL:  the database system is shutting down",
                                     "FATAL:  the database system is starting up",
                                     "connection refused"])
def test_a_database_going_down_or_coming_up_is_unavailable(sqlite_url, message):
    """What PostgreSQL answers while it stops or starts means "unavailable" (503, try again)."""
    from sqlalchemy.exc import OperationalError

    from commons_sync.service.unit_of_work import DatabaseUnavailable, run
    from commons_sync.storage.database import make_engine

    def use_case(_uow):
        raise OperationalError("SELECT 1", {}, Exception(message))

    engine = make_engine(sqlite_url)
    with pytest.raises(DatabaseUnavailable):
        run(engine, use_case)
    engine.dispose()
