"""Reminders before a round closes: the right members, the right figures, once, opt-out respected."""

from __future__ import annotations

from datetime import timedelta

from commons_sync.service import reminders
from commons_sync.service.reminders import plan_reminders
from tests.forum.harness import GROUP

from .conftest import private_messages, reminder_task


def _two_commons(forum):
    """A (goal 1340, cap 1500) and B (goal 300): B is closer to its goal once alice pledged 100."""
    a = forum.commons_topic(goal="1340", cap="1500")
    b_topic = forum.admin.create_topic("bruno", "Un four à pain partagé",
                                       "Proposition : un four à pain mobile pour les fêtes des lieux.")
    forum.post("claire", b_topic["topic_id"], "Validé par le conseil.\n\n/commun objectif=300")
    forum.settle()
    return a, b_topic["topic_id"]


def test_reminders_reach_members_with_budget_once_with_their_figures_and_respect_opt_out(forum):
    forum.admin.create_user("dan", name="Dan", groups=[GROUP])  # never seen by the service: 500 €
    a, b = _two_commons(forum)
    forum.pledge("alice", b, "100")
    forum.pledge("bruno", a, "500")       # no budget left: no reminder
    optout = forum.post("chloe", a, "Trop de messages pour moi.\n\n/rappels non")
    forum.settle()
    assert ["@chloe C'est noté : vous ne recevrez plus de rappels de campagne. « /rappels oui » les "
            "rétablit."] == [raw.strip() for raw in forum.replies_to(a, optout["post_number"])]
    task = reminder_task(forum)
    assert task() == 0  # 30 days before the close: nothing due

    forum.clock.advance(days=24)  # 6 days left: the 7-day reminder is due
    label, planned = plan_reminders(forum.svc, "printemps", ["alice", "bruno", "chloe", "dan"])
    assert label == "7"
    assert {(p.username, p.balance_cents, p.suggestion.title) for p in planned} == {
        ("alice", 40000, "Mutualiser une licence de comptabilité"),  # alice supports B already
        ("dan", 50000, "Un four à pain partagé"),
    }
    forum.settle()
    forum.clock.advance(minutes=1)  # every spaced message is due
    forum.settle()
    alice = private_messages(forum, "alice")
    assert len(alice) == 1
    title, raw = alice[0]
    assert "Campagne printemps" in title and "400 €" in title
    assert "se termine dans 6 jours" in raw
    assert "Il vous reste **400 €** à promettre" in raw
    assert "« Mutualiser une licence de comptabilité » (500 € sur 1 340 €, il manque 840 €)" in raw
    dan = private_messages(forum, "dan")
    assert len(dan) == 1 and "**500 €**" in dan[0][1]
    assert "« Un four à pain partagé » (100 € sur 300 €, il manque 200 €)" in dan[0][1]
    for nobody in ("bruno", "chloe", "zoe", "claire"):
        assert private_messages(forum, nobody) == []

    # Exactly once: the next passes (and a manual queue of the same reminder) send nothing more.
    forum.settle()
    assert reminders.queue_reminders(forum.svc, "printemps", ["alice", "dan"], max_rpm=600,
                                     reminder="7")[1] == []
    forum.clock.advance(minutes=1)
    forum.settle()
    assert len(private_messages(forum, "alice")) == 1 and len(private_messages(forum, "dan")) == 1

    # chloe opts back in; 1 day left: the 2-day reminder goes to her too, once.
    forum.post("chloe", a, "Finalement je veux bien.\n\n/rappels oui")
    forum.settle()
    forum.clock.advance(days=5)
    forum.settle()
    forum.clock.advance(minutes=1)
    forum.settle()
    chloe = private_messages(forum, "chloe")
    assert len(chloe) == 1 and "se termine dans 1 jour," in chloe[0][1] and "**500 €**" in chloe[0][1]
    assert len(private_messages(forum, "alice")) == 2 and len(private_messages(forum, "dan")) == 2
    assert private_messages(forum, "bruno") == []
    forum.clock.advance(minutes=5)
    forum.settle()
    assert len(private_messages(forum, "alice")) == 2


def test_five_thousand_members_are_spread_under_the_api_ceiling(sqlite_url):
    """5,000 members: the reminders are spaced to half the ceiling, and the double never says 429.

    The ceilings are raised (CONTRACT §2) to 3,000 a minute on both sides so reading the group
    (100 pages) is quick; at the real 50 a minute the same spacing gives 25 messages a minute:
    5,000 members take 200 minutes (3 h 20), computed by `duration_minutes`, not waited for.
    """
    from tests.forum.harness import ForumHarness

    with ForumHarness(sqlite_url, max_rpm=3000, double_rpm=3000) as forum:
        double = forum.forum.double.forum
        group = double.create_group(GROUP)
        from commons_sync.devtools.discourse_double.models import GroupUser, User

        with double.lock:  # seeded directly: 5,000 group_user webhooks are not what is tested
            for index in range(5000):
                user = double._add_user(User(id=double._new_id("user"), username=f"m{index:04d}",
                                             name=None, email=f"m{index}@example.org"))
                group.members[user.id] = GroupUser(id=double._new_id("group_user"), group_id=group.id,
                                                   user_id=user.id)
        forum.round()
        forum.clock.advance(days=29)
        task = reminder_task(forum)
        before = forum.api_stats()["total"]
        assert task() == 5000
        assert forum.api_stats()["total"] - before == 100  # the group, 50 members a page

        from sqlalchemy import select

        from commons_sync.storage import tables as tb

        o = tb.outbox
        times = forum.svc.run(lambda uow: [row.not_before for row in uow.repo.conn.execute(
            select(o.c.not_before).where(o.c.kind == reminders.REMINDER_PM).order_by(o.c.not_before))])
        assert len(times) == 5000
        budget = 3000 // 2
        window = timedelta(seconds=60)
        start = 0
        for end, moment in enumerate(times):  # the most reminders due in any 60 s
            while moment - times[start] >= window:
                start += 1
            assert end - start + 1 <= budget
        assert (times[-1] - times[0]).total_seconds() == (5000 - 1) * reminders.spacing_seconds(3000)
        assert reminders.duration_minutes(5000, 50) == 200.0
        assert task() == 0  # queued once

        forum.clock.advance(seconds=3)  # the first ones are due (25 a second): sent for real
        summary = forum.worker.run_once()
        stats = forum.api_stats()
        assert stats["rejected"] == 0 and stats["max_in_any_60s"] <= 3000
        sent = sum(1 for t in double.topics.values() if t.archetype == "private_message")
        assert 50 <= sent < 1000 and summary.pending >= 5000 - sent  # the rest waits its turn
