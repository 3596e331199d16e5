"""Quick edits that keep the post's version (Discourse's editing grace period) are judged anew."""

from __future__ import annotations

from sqlalchemy import func, select

from commons_sync.service.forum import forget_applied_deliveries
from commons_sync.storage import forum_tables as ft

from .harness import ForumHarness


def test_quick_edits_keeping_the_version_change_the_pledge_and_the_next_step(sqlite_url):
    with ForumHarness(sqlite_url, editing_grace_period=300.0) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        pledge = forum.pledge("alice", topic, "50")
        step = forum.post("claire", topic, "Pour la suite :\n\n/prochaine-etape signer le devis")
        forum.settle()
        forum.admin.edit_post("alice", pledge["id"], "Je soutiens ce commun avec plaisir.\n\n/pledge 65")
        forum.admin.edit_post("claire", step["id"], "Pour la suite :\n\n/next-step commander la licence")
        forum.settle()
        assert forum.admin.post(pledge["id"])["version"] == 1  # a "ninja edit"
        commons = forum.commons(topic)
        assert (commons["pledged"], commons["next_steps"]) == (65, "commander la licence")


def test_applied_deliveries_are_forgotten_after_thirty_days(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "10")
    forum.settle()
    d = ft.forum_deliveries
    count = lambda: forum.svc.run(lambda uow: uow.repo.conn.execute(  # noqa: E731
        select(func.count()).select_from(d)).scalar())
    stored = count()
    assert stored >= 3
    assert forget_applied_deliveries(forum.svc) == 0
    forum.clock.advance(days=31)
    assert forget_applied_deliveries(forum.svc) == stored
    assert count() == 0
    assert forum.commons(topic)["pledged"] == 10
