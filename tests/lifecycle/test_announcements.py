"""The funded thanks (once, even when the goal is crossed, left and crossed again) and the round's results post."""

from __future__ import annotations

from commons_sync.service import handlers, outbox
from commons_sync.service.lifecycle_forum import FUNDED, LifecycleSenders, announced, wiki_page_url
from commons_sync.service.handlers import RoundSpec


def _bot_posts(forum, topic_id, text):
    return [p["raw"] for p in forum.topic_posts(topic_id)
            if p["username"] == forum.forum.api_username and text in (p["raw"] or "")]


def test_funded_thanks_once_even_when_the_goal_is_crossed_left_and_crossed_again(forum):
    topic = forum.commons_topic(goal="300", cap="600")
    forum.post("claire", topic, "Organisation.\n\n/referent @chloe\n/prochaine-etape signer le devis avec l'éditeur")
    first = forum.pledge("alice", topic, "300")
    forum.settle()
    thanks = _bot_posts(forum, topic, "Objectif atteint")
    assert len(thanks) == 1
    raw = thanks[0]
    assert "« Mutualiser une licence de comptabilité » est financé (300 € sur 300 €)" in raw
    assert "Merci à son cofinanceur : @alice." in raw
    assert "Référent : chloe, qui coordonne la suite." in raw
    assert "Prochaines étapes : signer le devis avec l'éditeur" in raw
    commons_id = forum.commons(topic)["id"]
    assert announced(forum.svc, FUNDED, commons_id)

    forum.admin.edit_post("alice", first["id"], "Je baisse un peu, désolée.\n\n/soutien 100")
    forum.settle()
    assert forum.commons(topic)["status"] == "en financement"
    forum.pledge("bruno", topic, "250")
    forum.settle()
    assert forum.commons(topic)["status"] == "financé"
    assert len(_bot_posts(forum, topic, "Objectif atteint")) == 1


def test_round_results_posted_once_in_the_results_topic_with_links(forum):
    results_topic = forum.admin.create_topic("claire", "Résultats des campagnes de cofinancement",
                                             "Les résultats de chaque campagne seront publiés ici.")["topic_id"]
    handlers.create_round(forum.svc, RoundSpec(slug="ete", name="Été 2026", allocation_cents=50000,
                                               group="cofinanceurs", results_topic_id=results_topic))
    funded = forum.commons_topic(goal="100", cap="200", round_slug="ete")
    other = forum.admin.create_topic("bruno", "Un four à pain partagé",
                                     "Proposition : un four à pain mobile pour les fêtes des lieux.")["topic_id"]
    forum.post("claire", other, "Validé par le conseil.\n\n/commun objectif=300 campagne=ete")
    forum.settle()
    forum.pledge("alice", funded, "120")
    forum.pledge("bruno", other, "40")
    forum.settle()
    # The wiki's address, as COMMONS_SYNC_MEDIAWIKI_API_URL gives it, to link the results page.
    senders = LifecycleSenders(forum.svc, forum.client, "fr", wiki_api_url="https://wiki.example.org/w/api.php")
    forum.worker.senders[outbox.ROUND_RESULTS_POST] = senders.send_round_results
    handlers.close_round(forum.svc, "ete")
    forum.settle()
    posts = _bot_posts(forum, results_topic, "Résultats de la campagne")
    assert len(posts) == 1
    raw = posts[0]
    assert "## Résultats de la campagne « Été 2026 »" in raw
    assert f"### Financé\n\n* [Mutualiser une licence de comptabilité](/t/{funded}) - 120 € - 1 cofinanceur" in raw
    assert f"### Non financé\n\n* [Un four à pain partagé](/t/{other}) - 40 € - 1 cofinanceur" in raw
    assert ("[Cofinancement Été 2026](https://wiki.example.org/w/index.php?title=Cofinancement_%C3%89t%C3%A9_2026)"
            in raw)
    # Queued again (a redelivery, a second worker): still one post.
    round_id = forum.svc.run(lambda uow: uow.repo.round_by_slug("ete").id)
    forum.svc.run(lambda uow: (uow.repo.enqueue(outbox.ROUND_RESULTS_POST, "round_results_post:again",
                                                {"round_id": round_id}), uow.commit()))
    forum.settle()
    assert len(_bot_posts(forum, results_topic, "Résultats de la campagne")) == 1


def test_wiki_page_url_is_built_from_the_api_address():
    assert wiki_page_url("https://wiki.example.org/w/api.php", "Cofinancement 2026") == (
        "https://wiki.example.org/w/index.php?title=Cofinancement_2026")
    assert wiki_page_url(None, "Cofinancement 2026") is None
