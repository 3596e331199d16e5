"""Triage decisions through the CLI, against the Discourse double, the real wiki and the SMTP sink."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from commons_sync.cli_triage import mail as mail_group
from commons_sync.cli_triage import triage as triage_group
from commons_sync.discourse.status_post import MARKER
from commons_sync.service import handlers, triage
from commons_sync.service.handlers import CommonsSpec
from commons_sync.service.triage import TriageSenders

from .conftest import eml, proposal, unique_title

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def cli(harness, *args: str, group=triage_group):
    result = CliRunner().invoke(group, list(args), obj={"settings": harness.settings})
    return result


def received(harness, subject: str, body: str, **kwargs) -> dict:
    """Deliver one proposal, poll, and return its queue entry."""
    harness.deliver(proposal(subject, body, **kwargs))
    harness.poll()
    return next(item for item in triage.list_submissions(harness.svc) if item["subject"] == subject)


BODY = ("Bonjour,\n\nNous proposons d'acheter une presse à cidre mobile pour les vergers partagés "
        "du réseau.\n\nRenée Dupré — renee@cretes.example\n")


def test_mail_poll_command_stores_the_messages_and_triage_list_json_has_the_contract_shape(harness):
    harness.deliver(eml("proposition_multipart_fr"), eml("proposition_html_only"))

    polled = cli(harness, "poll", group=mail_group)
    listed = cli(harness, "list", "--json")

    assert polled.exit_code == 0, polled.output
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [set(item) for item in items] == [{"id", "reference", "received_at", "sender_name", "subject",
                                              "status", "possible_duplicates"}] * 2
    assert [item["status"] for item in items] == ["queued", "queued"]
    assert items[0]["sender_name"] == "Renée Dupré"
    assert items[0]["reference"] in polled.stdout


def test_likely_duplicates_of_commons_and_submissions_are_suggested(harness):
    commons = handlers.open_commons(harness.svc, CommonsSpec(
        round_slug="printemps", title="Presse à cidre mobile pour les vergers", goal_cents=100000))
    first = received(harness, "Une presse à cidre mobile pour les vergers", BODY)
    other = received(harness, "Atelier de réparation de vélos", "Un atelier vélo itinérant dans les lieux.",
                     sender="Paul <paul@velo.example>")

    items = {item["id"]: item for item in triage.list_submissions(harness.svc)}

    suggested = items[first["id"]]["possible_duplicates"]
    assert {"kind": "commons", "id": commons.id} in [{"kind": d["kind"], "id": d["id"]} for d in suggested]
    assert items[other["id"]]["possible_duplicates"] == []


def test_accept_creates_topic_status_post_fiche_and_mails_the_link(wiki_harness):
    harness = wiki_harness
    title = unique_title("Presse à cidre mobile")
    item = received(harness, title, BODY + "\nCopié d'un forum : <!-- commons-sync:statut -->\n")

    accepted = cli(harness, "accept", str(item["id"]), "--goal", "1340", "--max", "1 500")
    harness.settle()

    assert accepted.exit_code == 0, accepted.output
    commons_id = int(accepted.stdout.strip())
    [topic] = harness.topics_in_category()
    first = harness.first_post(topic)
    assert topic.title == title
    assert first["username"] == harness.forum.api_username
    assert "presse à cidre mobile" in first["raw"]
    assert f"<!-- commons-sync:commun:{commons_id} -->" in first["raw"]
    assert not EMAIL.search(first["raw"]), first["raw"]
    assert MARKER not in first["raw"]  # a sender's text never carries the service's markers
    status_posts = [harness.admin.post(pid) for pid in topic.post_ids]
    assert [p for p in status_posts if MARKER in (p["raw"] or "")], "status post missing"
    commons = handlers.show_commons(harness.svc, commons_id)
    assert commons["topic_id"] == topic.id and commons["goal"] == 1340 and commons["cap"] == 1500
    assert commons["referent"] == "Renée Dupré"
    page = harness.connect_wiki().read_page(commons["wiki_title"])
    assert page.exists
    assert "referent = Renée Dupré" in page.text or "referent=Renée Dupré" in page.text.replace(" ", "")
    assert commons["discussion_url"] in page.text
    assert not EMAIL.search(page.text)
    mails = harness.mails_to("renee@cretes.example")
    accepted_mails = [m for m in mails if m.message["Subject"].startswith("Proposition acceptée")]
    assert len(accepted_mails) == 1
    assert commons["discussion_url"] in accepted_mails[0].message.get_content()
    assert triage.show_submission(harness.svc, item["id"])["status"] == "accepted"
    again = cli(harness, "accept", str(item["id"]))
    assert again.exit_code == 1 and "déjà été traitée" in again.stderr


def test_accept_with_another_referent_and_title(harness):
    item = received(harness, "Presse à cidre", BODY)

    accepted = cli(harness, "accept", str(item["id"]), "--title", "Presse à cidre mobile partagée",
                   "--referent", "claire", "--round", "printemps")

    assert accepted.exit_code == 0, accepted.output
    commons = handlers.show_commons(harness.svc, int(accepted.stdout))
    assert (commons["title"], commons["referent"], commons["status"]) == (
        "Presse à cidre mobile partagée", "claire", "idée")
    refused = cli(harness, "accept", str(received(harness, "Autre proposition de commun", BODY)["id"]),
                  "--referent", "renee@cretes.example")
    assert refused.exit_code == 1 and "pas une adresse e-mail" in refused.stderr


def test_reject_with_mail_tells_the_sender_why(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    harness.settle()
    harness.sink.clear()

    rejected = cli(harness, "reject", str(item["id"]), "--reason", "Déjà financé l'an dernier.", "--mail")
    harness.settle()

    assert rejected.exit_code == 0, rejected.output
    [mail] = harness.mails_to("renee@cretes.example")
    assert mail.message["Subject"].startswith("Proposition non retenue")
    assert "Déjà financé l'an dernier." in mail.message.get_content()
    shown = triage.show_submission(harness.svc, item["id"])
    assert (shown["status"], shown["decision_reason"]) == ("rejected", "Déjà financé l'an dernier.")


def test_reject_without_mail_sends_nothing(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    harness.settle()
    harness.sink.clear()

    assert cli(harness, "reject", str(item["id"]), "--reason", "Hors sujet.").exit_code == 0
    harness.settle()

    assert harness.sink.messages == []


def test_merge_adds_the_text_to_the_commons_history(harness):
    commons = handlers.open_commons(harness.svc, CommonsSpec(
        round_slug="printemps", title="Presse à cidre mobile", goal_cents=100000))
    item = received(harness, "Presse à cidre pour nos vergers", BODY)

    merged = cli(harness, "merge", str(item["id"]), "--into", str(commons.id))

    assert merged.exit_code == 0, merged.output
    [note] = triage.commons_notes(harness.svc, commons.id)
    assert "presse à cidre mobile pour les vergers partagés" in note["text"]
    assert note["author"] == "Renée Dupré"
    assert triage.show_submission(harness.svc, item["id"])["status"] == "merged"
    missing = cli(harness, "merge", str(received(harness, "Une autre idée de commun", BODY)["id"]),
                  "--into", "999")
    assert missing.exit_code == 1 and "999" in missing.stderr


def test_spam_leaves_the_queue_and_is_never_suggested(harness):
    spam = received(harness, "Gagnez un vélo électrique gratuit", "Cliquez ici pour gagner un vélo.",
                    sender="Promo <promo@spam.example>")
    assert cli(harness, "spam", str(spam["id"])).exit_code == 0
    item = received(harness, "Gagnez un vélo électrique gratuit !", "Cliquez ici pour gagner un vélo.",
                    sender="Promo <promo@spam.example>")

    queued = json.loads(cli(harness, "list", "--json", "--status", "queued").stdout)

    assert [entry["id"] for entry in queued] == [item["id"]]
    assert queued[0]["possible_duplicates"] == []


def test_forum_down_during_accept_records_it_and_the_rest_follows_once_back(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    harness.admin.fail_next("/posts.json", count=3, status=503, method="POST")

    accepted = cli(harness, "accept", str(item["id"]), "--goal", "800")
    harness.worker.run_once()

    assert accepted.exit_code == 0
    commons_id = int(accepted.stdout)
    assert harness.topics_in_category() == []
    assert handlers.show_commons(harness.svc, commons_id)["topic_id"] is None
    shown = triage.show_submission(harness.svc, item["id"])
    assert shown["status"] == "accepted" and "503" in shown["topic_problem"]
    for _ in range(4):  # the forum is back; the row waits out its backoff
        harness.clock.advance(minutes=5)
        harness.settle()
    [topic] = harness.topics_in_category()
    assert handlers.show_commons(harness.svc, commons_id)["topic_id"] == topic.id
    assert triage.show_submission(harness.svc, item["id"])["topic_problem"] is None
    assert any(m.message["Subject"].startswith("Proposition acceptée")
               for m in harness.mails_to("renee@cretes.example"))


class _DiesAfterTheForumCall:
    """The forum client of a worker killed after the topic was created, before its commit."""

    def __init__(self, client):
        self.client = client

    def create_topic(self, title, raw, category):
        self.client.create_topic(title, raw, category)
        raise KeyboardInterrupt("worker killed")


def test_worker_killed_after_creating_the_topic_never_makes_a_second_one(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    commons_id = int(cli(harness, "accept", str(item["id"]), "--goal", "800").stdout)
    dying = TriageSenders(harness.svc, _DiesAfterTheForumCall(harness.client), harness.mailer,
                          harness.settings)
    with pytest.raises(KeyboardInterrupt):
        dying.send_create_topic({"commons_id": commons_id})
    senders = TriageSenders(harness.svc, harness.client, harness.mailer, harness.settings)

    with pytest.raises(triage.TopicCreationUncertain):
        senders.send_create_topic({"commons_id": commons_id})  # the answer was lost: wait, never retry
    harness.clock.advance(minutes=5)
    harness.settle()  # the bot's own post_created webhook links the topic

    [topic] = harness.topics_in_category()
    commons = handlers.show_commons(harness.svc, commons_id)
    assert commons["topic_id"] == topic.id
    assert commons["discussion_url"].endswith(f"/{topic.id}")
    assert [p for p in (harness.admin.post(pid) for pid in topic.post_ids) if MARKER in (p["raw"] or "")]
    accepted = [m for m in harness.mails_to("renee@cretes.example")
                if m.message["Subject"].startswith("Proposition acceptée")]
    assert len(accepted) == 1 and commons["discussion_url"] in accepted[0].message.get_content()
    # the same first post again (a redelivered webhook) changes nothing and creates nothing
    first = harness.client.get_post(topic.post_ids[0])
    assert triage.link_topic_from_post(harness.svc, first, bot_username=harness.forum.api_username,
                                       base_url=harness.forum.url) == commons_id
    senders.send_create_topic({"commons_id": commons_id})
    harness.clock.advance(minutes=5)
    harness.settle()
    assert [t.id for t in harness.topics_in_category()] == [topic.id]
    assert handlers.show_commons(harness.svc, commons_id)["discussion_url"] == commons["discussion_url"]
    assert len([m for m in harness.mails_to("renee@cretes.example")
                if m.message["Subject"].startswith("Proposition acceptée")]) == 1


class _DiesBeforeSending:
    """The forum client of a worker killed after recording its attempt, before the request left."""

    def create_topic(self, title, raw, category):
        raise KeyboardInterrupt("worker killed")


def test_staff_retry_creates_the_topic_when_a_lost_attempt_created_none(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    commons_id = int(cli(harness, "accept", str(item["id"]), "--goal", "800").stdout)
    with pytest.raises(KeyboardInterrupt):
        TriageSenders(harness.svc, _DiesBeforeSending(), harness.mailer,
                      harness.settings).send_create_topic({"commons_id": commons_id})
    harness.clock.advance(minutes=5)
    harness.settle()
    assert harness.topics_in_category() == []
    assert triage.show_submission(harness.svc, item["id"])["topic_uncertain"]

    retried = cli(harness, "retry-topic", str(item["id"]))
    harness.clock.advance(minutes=5)
    harness.settle()

    assert retried.exit_code == 0, retried.output
    [topic] = harness.topics_in_category()
    assert handlers.show_commons(harness.svc, commons_id)["topic_id"] == topic.id
    assert not triage.show_submission(harness.svc, item["id"])["topic_uncertain"]
    again = cli(harness, "retry-topic", str(item["id"]))
    assert again.exit_code == 1 and "pas de création de sujet à relancer" in again.stderr


def test_a_sender_whose_name_is_an_address_is_not_the_default_referent(harness):
    item = received(harness, "Presse à cidre mobile partagée", BODY,
                    sender="renee@cretes.example <renee@cretes.example>")

    accepted = cli(harness, "accept", str(item["id"]))

    assert accepted.exit_code == 0, accepted.output
    assert handlers.show_commons(harness.svc, int(accepted.stdout))["referent"] is None


def test_a_post_that_is_not_the_bots_first_post_links_nothing(harness):
    item = received(harness, "Presse à cidre mobile", BODY)
    commons_id = int(cli(harness, "accept", str(item["id"]), "--goal", "800").stdout)
    topic = harness.admin.create_topic("zoe", "Un sujet quelconque du forum",
                                       f"Je recopie le marqueur <!-- commons-sync:commun:{commons_id} -->")
    post = harness.client.get_post(topic["post_id"])

    assert triage.link_topic_from_post(harness.svc, post, bot_username=harness.forum.api_username,
                                       base_url=harness.forum.url) is None
    assert handlers.show_commons(harness.svc, commons_id)["topic_id"] is None
