"""Duplicate, reordered and stale deliveries give the same final state as deliveries in order."""

from __future__ import annotations

import requests
from sqlalchemy import update

from commons_sync.discourse.signature import sign

from commons_sync.service import handlers
from commons_sync.storage import forum_tables as ft

from .harness import SECRET

PLEDGE_TEXT = "Je soutiens ce commun avec plaisir.\n\n/soutien {}"


def _story(forum, topic):
    """Pledges, edits and a deletion in quick succession."""
    alice = forum.post("alice", topic, PLEDGE_TEXT.format(50))
    bruno = forum.post("bruno", topic, PLEDGE_TEXT.format(30))
    chloe = forum.post("chloe", topic, PLEDGE_TEXT.format(100))
    forum.admin.edit_post("alice", alice["id"], PLEDGE_TEXT.format(80))
    forum.admin.delete_post("bruno", bruno["id"])
    forum.admin.edit_post("chloe", chloe["id"], PLEDGE_TEXT.format(60))
    forum.admin.edit_post("alice", alice["id"], PLEDGE_TEXT.format(90))


def _final_state(forum, topic):
    commons = forum.commons(topic)
    pledges = sorted((p["username"], p["amount"], p["state"])
                     for p in handlers.list_pledges(forum.svc, commons_id=commons["id"]))
    return (commons["pledged"], commons["cofunder_names"], pledges,
            forum.balance("alice"), forum.balance("bruno"), forum.balance("chloe"))


EXPECTED = (150, ["alice", "chloe"], [("alice", 90, "live"), ("bruno", 0, "none"), ("chloe", 60, "live")],
            410, 500, 440)


def test_deliveries_in_order_give_the_expected_state(forum):
    topic = forum.commons_topic()
    _story(forum, topic)
    forum.settle()
    assert _final_state(forum, topic) == EXPECTED
    assert "**150 €** collectés" in forum.status_post(topic)["raw"]


def test_duplicated_and_reordered_deliveries_give_the_same_state(forum):
    topic = forum.commons_topic()
    forum.admin.set_webhook_options(duplicates=2, reorder_window=1.0)
    _story(forum, topic)
    forum.settle()
    log = forum.admin.webhook_log()["deliveries"]
    post_ids = [d["event_id"] for d in log if d["event_type"] == "post"]
    assert len(post_ids) > len(set(post_ids))  # duplicates did arrive
    first_copies = [d["event_id"] for d in log if d["event_type"] == "post" and not d["duplicate"]]
    assert first_copies != sorted(first_copies)  # and out of order
    assert _final_state(forum, topic) == EXPECTED
    assert "**150 €** collectés" in forum.status_post(topic)["raw"]
    for line in ("@alice", "@bruno", "@chloe"):
        assert not any(line in raw for raw in
                       (p["raw"] for p in forum.topic_posts(topic) if p["username"] == forum.forum.api_username))


def test_applying_every_stored_delivery_again_changes_nothing(forum):
    topic = forum.commons_topic()
    _story(forum, topic)
    forum.settle()
    posts_before = len(forum.topic_posts(topic))
    d = ft.forum_deliveries

    def unapply(uow):
        uow.repo.conn.execute(update(d).values(applied_at=None))
        uow.commit()

    forum.svc.run(unapply)
    forum.worker.run_once()
    assert _final_state(forum, topic) == EXPECTED
    assert len(forum.topic_posts(topic)) == posts_before  # no reply, no second status post


def test_stale_snapshot_delivered_late_changes_nothing(forum):
    topic = forum.commons_topic()
    forum.admin.set_webhook_options(paused=True)
    post = forum.post("alice", topic, PLEDGE_TEXT.format(50))
    forum.admin.edit_post("alice", post["id"], PLEDGE_TEXT.format(70))
    log = forum.admin.webhook_log()
    first = next(e for e in log["events"] if e["event_name"] == "post_created" and f'"id":{post["id"]},' in e["body"])
    forum.admin.set_webhook_options(paused=False)
    forum.settle()
    assert forum.commons(topic)["pledged"] == 70
    # The version-1 snapshot comes again, as a new delivery with a new event id.
    body = first["body"].encode()
    headers = {"X-Discourse-Event": "post_created", "X-Discourse-Event-Type": "post",
               "X-Discourse-Event-Id": "999999", "Content-Type": "application/json",
               "X-Discourse-Event-Signature": sign(SECRET.encode(), body)}
    answer = requests.post(forum.app.url + "/webhooks/discourse", data=body, headers=headers, timeout=10)
    assert answer.status_code == 202
    forum.worker.run_once()
    assert forum.commons(topic)["pledged"] == 70
    assert forum.balance("alice") == 430


def test_a_worker_whose_inbox_lease_ran_out_stops_its_pass_and_the_new_holder_goes_on(forum):
    topic = forum.commons_topic()
    forum.settle()
    forum.pledge("alice", topic, "100")
    forum.pledge("bruno", topic, "50")
    assert forum.admin.wait_for_webhooks(timeout=30)
    applier = forum.worker.applier
    original = applier.apply_row
    lock = ft.forum_locks

    def slow_apply(row):
        original(row)
        # Meanwhile this worker's lease ran out and another worker took the inbox.
        forum.svc.run(lambda uow: (uow.repo.conn.execute(update(lock).where(lock.c.name == "inbox")
                                                         .values(holder="other-worker")), uow.commit()))

    applier.apply_row = slow_apply
    report = applier.apply_pending()
    applier.apply_row = original

    assert (report.applied, report.busy) == (1, True)
    assert forum.commons(topic)["pledged"] == 100
    forum.svc.run(lambda uow: (uow.repo.conn.execute(update(lock).where(lock.c.name == "inbox")
                                                     .values(holder=None, until=None)), uow.commit()))
    forum.settle()
    assert forum.commons(topic)["pledged"] == 150
