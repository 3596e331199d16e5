"""Forum commands other than pledges: `/commun`, `/interesse`, `/referent`, `/prochaine-etape`."""

from __future__ import annotations

from commons_sync.service import handlers


def _new_topic(forum, title="Un atelier vélo partagé entre lieux"):
    return forum.admin.create_topic("alice", title, "Proposition d'un atelier de réparation vélo.")["topic_id"]


def test_commun_by_a_non_staff_member_is_refused_with_a_reply(forum):
    topic = _new_topic(forum)
    post = forum.post("alice", topic, "J'ouvre moi-même le financement :\n\n/commun objectif=300")
    forum.settle()
    assert all(c["topic_id"] != topic for c in handlers.list_commons(forum.svc))
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "Seuls les membres du groupe « staff » peuvent ouvrir un commun" in reply
    assert forum.status_posts(topic) == []


def test_commun_with_several_open_rounds_is_refused_listing_them(forum):
    forum.round(slug="automne")
    topic = _new_topic(forum)
    post = forum.post("claire", topic, "Validé par le conseil.\n\n/commun objectif=300")
    forum.settle()
    assert all(c["topic_id"] != topic for c in handlers.list_commons(forum.svc))
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "Plusieurs campagnes sont ouvertes" in reply
    assert "printemps (Campagne printemps)" in reply and "automne (Campagne automne)" in reply
    forum.admin.edit_post("claire", post["id"], "Validé par le conseil.\n\n/commons goal=300 round=automne")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["round"], commons["goal"], commons["cap"]) == ("automne", 300, None)
    assert len(forum.status_posts(topic)) == 1


def test_commun_with_a_bad_amount_or_key_is_refused_with_the_reason(forum):
    topic = _new_topic(forum)
    bad_amount = forum.post("claire", topic, "Ouverture du financement.\n\n/commun objectif=1.340")
    bad_key = forum.post("claire", topic, "Ouverture du financement.\n\n/commun but=1340")
    forum.settle()
    assert "ambigu" in forum.replies_to(topic, bad_amount["post_number"])[0]
    assert "Paramètre inconnu « but »" in forum.replies_to(topic, bad_key["post_number"])[0]
    assert all(c["topic_id"] != topic for c in handlers.list_commons(forum.svc))


def test_interesse_referent_and_next_step_update_the_commons_and_status_post(forum):
    topic = forum.commons_topic()
    forum.post("bruno", topic, "Notre lieu est partant pour en profiter.\n\n/interesse La Ruche")
    forum.post("zoe", topic, "Ça nous intéresse aussi beaucoup.\n\n/interested")
    forum.post("claire", topic, "Je désigne la personne référente :\n\n/referent @bruno")
    forum.settle()
    forum.post("bruno", topic, "En tant que référent :\n\n/prochaine-etape demander trois devis")
    forum.settle()
    commons = forum.commons(topic)
    assert commons["organisations"] == "La Ruche, Zoe"
    assert commons["referent"] == "bruno"
    assert commons["next_steps"] == "demander trois devis"
    raw = forum.status_post(topic)["raw"]
    assert "Référent : bruno" in raw
    assert "Intéressés : La Ruche, Zoe" in raw
    assert "Prochaine étape : demander trois devis" in raw


def test_referent_by_someone_else_is_refused_with_a_reply(forum):
    topic = forum.commons_topic()
    post = forum.post("chloe", topic, "Je me propose comme référente :\n\n/referent @chloe")
    forum.settle()
    assert forum.commons(topic)["referent"] is None
    [reply] = forum.replies_to(topic, post["post_number"])
    assert "Seuls l'équipe et le référent du commun peuvent utiliser /referent." in reply


def test_an_older_version_of_a_command_post_does_not_override_a_newer_one(forum):
    topic = forum.commons_topic()
    forum.admin.set_webhook_options(reorder_window=1.0)
    post = forum.post("claire", topic, "Pour la suite :\n\n/prochaine-etape signer le devis")
    forum.admin.edit_post("claire", post["id"], "Pour la suite :\n\n/prochaine-etape commander la licence")
    forum.settle()
    assert forum.commons(topic)["next_steps"] == "commander la licence"
