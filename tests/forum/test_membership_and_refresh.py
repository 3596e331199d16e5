"""Group membership read live (and refreshed by group_user events), matching, the daily refresh."""

from __future__ import annotations

from sqlalchemy import select

from commons_sync.storage import forum_tables as ft

from .harness import GROUP, MEMBERS

PLEDGE = "Je soutiens ce commun avec plaisir.\n\n/soutien {}"


def test_joining_the_group_is_seen_at_once_through_the_group_user_event(forum):
    topic = forum.commons_topic()
    post = forum.pledge("zoe", topic, "20")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    m = ft.forum_memberships
    cached = forum.svc.run(lambda uow: uow.repo.conn.execute(
        select(m.c.username).where(m.c.username == "zoe")).first())
    assert cached is not None  # zoe, not in the roster, was asked: her groups are cached 120 s
    forum.admin.add_to_group(GROUP, "zoe")  # the double sends user_added_to_group (ids only)
    forum.settle()
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


class ForumReads:
    """Counts the membership reads the worker's applier sends to the forum."""

    def __init__(self, monkeypatch, forum) -> None:
        self.users: list[str] = []
        self.rosters: list[str] = []
        client = forum.worker.applier.forum
        get_user, group_roster = client.get_user, client.group_roster

        def counted_user(username):
            self.users.append(username)
            return get_user(username)

        def counted_roster(name, at_most):
            self.rosters.append(name)
            return group_roster(name, at_most)

        monkeypatch.setattr(client, "get_user", counted_user)
        monkeypatch.setattr(client, "group_roster", counted_roster)


def test_pledges_of_many_members_cost_one_read_of_the_group(forum, monkeypatch):
    topic = forum.commons_topic()
    reads = ForumReads(monkeypatch, forum)
    for member, amount in zip(MEMBERS, ("10", "20", "30"), strict=True):
        forum.pledge(member, topic, amount)
    forum.pledge("zoe", topic, "5")  # not listed: a roster's "no" is asked again, user by user
    forum.settle()
    assert reads.rosters == [GROUP] and reads.users == ["zoe"]
    commons = forum.commons(topic)
    assert commons["cofunder_names"] == sorted(MEMBERS)
    assert commons["pledged"] == 60


def test_the_group_is_read_again_once_its_roster_is_older_than_two_minutes(forum, monkeypatch):
    topic = forum.commons_topic()
    reads = ForumReads(monkeypatch, forum)
    forum.pledge(MEMBERS[0], topic, "10")
    forum.settle()
    forum.clock.advance(seconds=119)
    forum.pledge(MEMBERS[1], topic, "10")
    forum.settle()
    assert reads.rosters == [GROUP]
    forum.clock.advance(seconds=2)
    forum.pledge(MEMBERS[2], topic, "10")
    forum.settle()
    assert reads.rosters == [GROUP, GROUP] and reads.users == []


def test_members_who_left_since_the_roster_was_read_are_asked_alone(forum, monkeypatch):
    topic = forum.commons_topic()
    forum.pledge(MEMBERS[2], topic, "10")
    forum.settle()  # the roster is read, with alice and bruno
    reads = ForumReads(monkeypatch, forum)
    forum.admin.remove_from_group(GROUP, MEMBERS[0])
    forum.admin.remove_from_group(GROUP, MEMBERS[1])
    forum.settle()
    first = forum.pledge(MEMBERS[0], topic, "25")
    forum.pledge(MEMBERS[1], topic, "25")
    forum.settle()
    assert reads.users == [MEMBERS[0], MEMBERS[1]] and reads.rosters == []
    assert forum.commons(topic)["cofunder_names"] == [MEMBERS[2]]
    assert "Seuls les membres du groupe" in forum.replies_to(topic, first["post_number"])[0]


def test_a_join_whose_event_comes_after_the_pledge_still_counts(forum):
    topic = forum.commons_topic()
    forum.pledge(MEMBERS[0], topic, "10")
    forum.settle()  # the roster is read, without zoe
    forum.admin.set_webhook_options(reorder_window=1.0)
    forum.admin.add_to_group(GROUP, "zoe")  # zoe joins, then pledges: the two events may swap
    forum.pledge("zoe", topic, "25")
    forum.settle()
    assert "zoe" in forum.commons(topic)["cofunder_names"]


def test_a_group_too_large_to_list_is_asked_user_by_user(forum, monkeypatch):
    from commons_sync.service import forum as forum_service

    monkeypatch.setattr(forum_service, "ROSTER_MAX_MEMBERS", 2)  # the group has more members
    topic = forum.commons_topic()
    reads = ForumReads(monkeypatch, forum)
    forum.pledge(MEMBERS[0], topic, "10")
    forum.pledge("zoe", topic, "10")
    forum.settle()
    assert reads.rosters == [GROUP] and reads.users == [MEMBERS[0], "zoe"]
    assert forum.commons(topic)["cofunder_names"] == [MEMBERS[0]]
    r = ft.forum_group_rosters
    assert forum.svc.run(lambda uow: uow.repo.conn.execute(select(r.c.unlisted)).scalar_one()) is True


def test_a_group_whose_members_are_hidden_from_the_bot_is_asked_user_by_user(forum, monkeypatch):
    topic = forum.commons_topic()
    reads = ForumReads(monkeypatch, forum)
    forum.admin.fail_next("/groups/", count=1, status=403)
    forum.pledge(MEMBERS[0], topic, "10")
    forum.settle()
    assert reads.rosters == [GROUP] and reads.users == [MEMBERS[0]]
    assert forum.commons(topic)["cofunder_names"] == [MEMBERS[0]]
