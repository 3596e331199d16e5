"""Group membership read live (and refreshed by group_user events), matching, the daily refresh."""

from __future__ import annotations

from sqlalchemy import select

from commons_sync.storage import forum_tables as ft

from .harness import GROUP

PLEDGE = "Je soutiens ce commun avec plaisir.\n\n/soutien {}"


def test_joining_the_group_is_seen_at_once_through_the_group_user_event(forum):
    topic = forum.commons_topic()
    post = forum.pledge("zoe", topic, "20")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    forum.admin.add_to_group(GROUP, "zoe")  # the double sends user_added_to_group (ids only)
    forum.settle()
    m = ft.forum_memberships
    cached = forum.svc.run(lambda uow: uow.repo.conn.execute(
        select(m.c.username).where(m.c.username == "zoe")).first())
    assert cached is None  # dropped by the event, well before its time to live
    forum.admin.edit_post("zoe", post["id"], PLEDGE.format(25))
    forum.settle()
    assert forum.commons(topic)["cofunder_names"] == ["zoe"]


def test_leaving_the_group_keeps_pledges_and_refuses_new_ones(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "40")
    forum.settle()
    forum.admin.remove_from_group(GROUP, "alice")
    forum.settle()
    later = forum.pledge("alice", topic, "10")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (40, ["alice"])
    assert "Seuls les membres du groupe" in forum.replies_to(topic, later["post_number"])[0]


def test_matching_follows_the_round_matching_group(sqlite_url):
    from .harness import ForumHarness

    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.admin.create_group("tiers-lieux")
        forum.admin.add_to_group("tiers-lieux", "alice")
        forum.round(matching_ratio="1", matching_pool_cents=100000, matching_group="tiers-lieux")
        topic = forum.commons_topic(goal="1000", cap=None)
        forum.pledge("alice", topic, "100")  # matched 1 for 1
        forum.pledge("bruno", topic, "50")  # not in the matching group
        forum.settle()
        commons = forum.commons(topic)
        assert (commons["pledged"], commons["matched"], commons["raised"]) == (150, 100, 250)
        raw = forum.status_post(topic)["raw"]
        assert "| Abondement | 100 € |" in raw and "**250 €** collectés" in raw


def test_status_post_is_edited_again_the_next_day_for_the_days_left(forum):
    topic = forum.commons_topic()
    assert "Il reste 30 jours" in forum.status_post(topic)["raw"]
    version = forum.status_post(topic)["version"]
    forum.worker.run_once()
    assert forum.status_post(topic)["version"] == version  # nothing new the same day
    forum.clock.advance(days=1)
    forum.worker.run_once()
    status = forum.status_post(topic)
    assert status["version"] == version + 1
    assert "Il reste 29 jours" in status["raw"]
