"""Pledge posts end to end: the double's webhooks → the service app → the worker → the double."""

from __future__ import annotations

from pydantic import SecretStr

from commons_sync.discourse.status_post import MARKER
from commons_sync.service import handlers


def _pledges(forum, topic_id):
    commons = forum.commons(topic_id)
    return {(p["username"], p["amount"], p["state"]) for p in handlers.list_pledges(forum.svc, commons_id=commons["id"])
            if p["amount"]}


def test_staff_commun_line_opens_the_commons_with_one_locked_status_post(forum):
    topic = forum.commons_topic(goal="1340", cap="1500")
    commons = forum.commons(topic)
    assert (commons["status"], commons["goal"], commons["cap"], commons["round"]) == (
        "en financement", 1340, 1500, "printemps")
    assert commons["title"] == "Mutualiser une licence de comptabilité"
    assert commons["discussion_url"].endswith(f"/t/mutualiser-une-licence-de-comptabilite/{topic}")
    status = forum.status_post(topic)
    assert status["locked"] is True
    assert "0 €** collectés sur un objectif de **1 340 €** (plafond : 1 500 €)" in status["raw"]
    assert "▱▱▱▱▱▱▱▱▱▱` 0 %" in status["raw"]
    assert "Il reste 30 jours" in status["raw"]
    assert "`/soutien 50`" in status["raw"]
    assert status["raw"].rstrip().endswith(MARKER)


def test_post_created_records_pledge_and_status_post_shows_it(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "150 €")
    forum.pledge("bruno", topic, "1 200,50")  # over bruno's 500 €: refused
    forum.pledge("chloe", topic, "50,5")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["raised"], commons["pledged"], commons["cofunders"]) == (200.5, 200.5, 2)
    assert commons["cofunder_names"] == ["alice", "chloe"]
    raw = forum.status_post(topic)["raw"]
    assert "**200,50 €** collectés sur un objectif de **1 340 €**" in raw
    assert "| Promesses | 200,50 € |" in raw
    assert "| Apports | 0 € |" in raw and "| Abondement | 0 € |" in raw
    assert "`▰▱▱▱▱▱▱▱▱▱` 14 %" in raw
    assert "2 cofinanceurs : alice, chloe" in raw
    assert forum.balance("alice") == 350


def test_post_edited_changes_the_amount_then_withdraws_it(forum):
    topic = forum.commons_topic()
    post = forum.pledge("alice", topic, "50")
    forum.settle()
    forum.admin.edit_post("alice", post["id"], "Je soutiens ce commun, un peu plus.\n\n/soutien 80")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 80
    assert "1 cofinanceur : alice" in forum.status_post(topic)["raw"]
    forum.admin.edit_post("alice", post["id"], "Finalement je retire ma promesse, désolée.")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunders"]) == (0, 0)
    assert forum.balance("alice") == 500
    assert "0 cofinanceur" in forum.status_post(topic)["raw"]
    assert forum.replies_to(topic, post["post_number"]) == []


def test_author_deletion_withdraws_and_recovery_restores(forum):
    topic = forum.commons_topic()
    post = forum.pledge("alice", topic, "120")
    forum.settle()
    forum.admin.delete_post("alice", post["id"])
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    assert forum.balance("alice") == 500
    forum.admin.recover_post("alice", post["id"])
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (120, ["alice"])
    assert "**120 €** collectés" in forum.status_post(topic)["raw"]


def test_staff_deletion_withdraws_and_recovery_restores(forum):
    topic = forum.commons_topic()
    post = forum.pledge("bruno", topic, "75")
    forum.settle()
    forum.admin.delete_post("claire", post["id"])
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    assert "0 cofinanceur" in forum.status_post(topic)["raw"]
    forum.admin.recover_post("claire", post["id"])
    forum.settle()
    assert forum.commons(topic)["pledged"] == 75
    assert forum.balance("bruno") == 425


def test_quote_of_another_pledge_has_no_effect(forum):
    topic = forum.commons_topic()
    original = forum.pledge("alice", topic, "60")
    forum.post("bruno", topic, f'[quote="alice, post:{original["post_number"]}, topic:{topic}"]\n'
                               "/soutien 60\n[/quote]\n\nBravo Alice, belle initiative !")
    forum.post("chloe", topic, "> /soutien 60\n\nJe cite Alice, pour mémoire. Et `/soutien 10` aussi.")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (60, ["alice"])
    assert forum.balance("bruno") is None and forum.balance("chloe") is None


def test_several_pledge_lines_are_refused_with_a_reply(forum):
    topic = forum.commons_topic()
    post = forum.post("alice", topic, "Deux lignes pour être sûre :\n\n/soutien 50\n\n/soutien 30")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    [reply] = forum.replies_to(topic, post["post_number"])
    assert reply.startswith("@alice Un message ne peut contenir qu'une seule ligne de promesse.")
    assert "Votre solde restant dans cette campagne : 500 €." in reply


def test_unreadable_amount_is_refused_with_its_reason(forum):
    topic = forum.commons_topic()
    post = forum.pledge("alice", topic, "1,200")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "« 1,200 » est ambigu" in reply


def test_pledge_by_non_member_is_refused_with_a_reply(forum):
    topic = forum.commons_topic()
    post = forum.pledge("zoe", topic, "20")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 0
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "Seuls les membres du groupe « cofinanceurs » peuvent promettre" in reply
    assert "solde" not in reply


def test_pledge_above_balance_is_refused_and_an_edit_keeps_the_previous_amount(forum):
    topic = forum.commons_topic()
    post = forum.pledge("alice", topic, "100")
    forum.settle()
    forum.admin.edit_post("alice", post["id"], "Je soutiens ce commun avec plaisir.\n\n/soutien 600")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 100
    assert forum.balance("alice") == 400
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "La promesse de 600 € dépasse votre solde." in reply
    assert "Votre solde restant dans cette campagne : 400 €." in reply
    assert "Votre promesse précédente de 100 € reste en vigueur." in reply


def test_pledge_above_the_cap_is_refused(forum):
    topic = forum.commons_topic(goal="100", cap="120")
    forum.pledge("alice", topic, "100")
    forum.settle()
    assert forum.commons(topic)["status"] == "financé"
    post = forum.pledge("bruno", topic, "50")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (100, ["alice"])
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "dépasserait le plafond du commun (il reste 20 €)" in reply
    assert "État du financement : financé" in forum.status_post(topic)["raw"]
    notices = [p for p in forum.topic_posts(topic)
               if p["username"] == forum.forum.api_username and "Objectif atteint" in p["raw"]]
    assert len(notices) == 1 and notices[0]["reply_to_post_number"] == 1


def test_pledge_after_the_round_closed_is_refused(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "40")
    forum.settle()
    handlers.close_round(forum.svc, "printemps")
    forum.settle()
    post = forum.pledge("bruno", topic, "40")
    forum.settle()
    assert forum.balance("bruno") in (None, 500)
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "La campagne « Campagne printemps » est close." in reply
    assert "La campagne « Campagne printemps » est close." in forum.status_post(topic)["raw"]


def test_pledge_posted_before_the_commons_opened_is_no_pledge(forum):
    topic = forum.admin.create_topic("alice", "Une imprimante 3D pour le réseau",
                                     "On pourrait partager une imprimante 3D entre les lieux.")["topic_id"]
    early = forum.pledge("bruno", topic, "30")
    forum.admin.create_post("claire", topic, "Validé en conseil, on ouvre.\n\n/commun objectif=500")
    forum.settle()
    late = forum.pledge("chloe", topic, "30")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (30, ["chloe"])
    assert forum.replies_to(topic, late["post_number"]) == []
    assert early["post_number"] < late["post_number"]


def test_recovery_applies_the_post_as_it_is_now_when_its_edit_was_missed(forum):
    topic = forum.commons_topic()
    post = forum.pledge("chloe", topic, "40")
    forum.settle()
    forum.admin.delete_post("claire", post["id"])
    forum.settle()
    # The service is briefly misconfigured: the edit's deliveries and their retries all get 401.
    extension = forum.app.server.app.extensions["commons_sync"]
    good = extension["settings"]
    extension["settings"] = good.model_copy(update={"discourse_webhook_secret": SecretStr("another-secret-xyz")})
    forum.admin.edit_post("claire", post["id"], "Je soutiens ce commun avec plaisir.\n\n/soutien 55")
    assert forum.admin.wait_for_webhooks(timeout=30)
    extension["settings"] = good
    assert [d["status"] for d in forum.admin.webhook_log()["deliveries"][-4:]] == [401] * 4
    forum.admin.recover_post("claire", post["id"])
    forum.settle()
    assert forum.commons(topic)["pledged"] == 55
