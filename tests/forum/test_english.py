"""With COMMONS_SYNC_LANGUAGE=en the forum reads English; commands work in both languages."""

from __future__ import annotations

from commons_sync.discourse.status_post import MARKER

from .harness import ForumHarness


def test_english_forum_status_post_and_replies(sqlite_url):
    with ForumHarness(sqlite_url, language="en") as forum:
        forum.people()
        forum.round()
        topic = forum.admin.create_topic("alice", "A shared laser cutter for the network",
                                         "Let us buy one laser cutter together.")["topic_id"]
        forum.post("claire", topic, "Approved by the board.\n\n/commons goal=1340 max=1500")
        forum.settle()
        forum.post("alice", topic, "Count us in, really!\n\n/pledge 30.50")
        refused = forum.post("zoe", topic, "Count us in as well please.\n\n/pledge 10")
        forum.settle()
        assert forum.commons(topic)["pledged"] == 30.5
        raw = forum.status_post(topic)["raw"]
        assert raw.startswith("## Funding status: ")
        assert "**€30.50**" in raw and "**€1,340**" in raw and "€1,500" in raw
        assert "`▱▱▱▱▱▱▱▱▱▱` 2%" in raw
        assert "1 cofunder: alice" in raw
        assert "`/pledge 50`" in raw and "/soutien" not in raw
        assert raw.rstrip().endswith(MARKER)
        [reply] = forum.replies_to(topic, refused["post_number"])
        assert reply.startswith("@zoe ") and "cofinanceurs" in reply  # the group's name, as typed
        assert "Seuls" not in reply


def test_an_english_refusal_names_the_command_as_its_author_wrote_it(sqlite_url):
    with ForumHarness(sqlite_url, language="en") as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        post = forum.post("chloe", topic, "We could ask for quotes.\n\n/next-step ask for three quotes")
        forum.settle()
        assert forum.commons(topic)["next_steps"] is None
        [reply] = forum.replies_to(topic, post["post_number"])
        assert "Only staff and the commons' referent can use /next-step." in reply
