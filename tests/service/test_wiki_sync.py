"""Fiches and results pages kept true by the service, against the real MediaWiki."""

import itertools

import pytest

from commons_sync.demo import movilab, replay
from commons_sync.mediawiki import fiche
from commons_sync.service import handlers as h
from commons_sync.service import wiki_sync

from .test_service import make_round, pledge

_rounds = itertools.count(1)


@pytest.fixture
def slug(sqlite_service):
    name = f"wiki-{next(_rounds)}"
    make_round(sqlite_service, slug=name, name=f"Test wiki {name}")
    return name


def open_commons(svc, slug, title, goal=100_000, topic_id=None):
    return h.open_commons(svc, h.CommonsSpec(round_slug=slug, title=title, goal_cents=goal,
                                             topic_id=topic_id, referent="claire",
                                             discussion_url=f"https://forum.example.org/t/{topic_id}"))


def test_first_sync_writes_the_fiche_and_a_resync_changes_nothing(sqlite_service, slug, wiki):
    svc = sqlite_service
    c = open_commons(svc, slug, f"Juriste {slug} | « hot line » {{{{x}}}}", topic_id=9001)
    pledge(svc, 1, "la-ruche", 15_050, topic_id=9001)
    assert wiki_sync.sync_commons_fiche(svc, wiki, c.id) is True
    title = h.show_commons(svc, c.id)["wiki_title"]
    values = fiche.read_fiche(wiki.read_page(title).text)
    assert (values["nom"], values["collecte"], values["cofinanceurs"], values["statut"]) == (
        f"Juriste {slug} | « hot line » {{{{x}}}}", "150.5", "1", "en financement")
    revisions = wiki.revision_count(title)
    assert wiki_sync.sync_commons_fiche(svc, wiki, c.id) is False
    assert wiki.revision_count(title) == revisions


def test_a_referent_changed_on_the_wiki_is_taken_into_the_service(sqlite_service, slug, wiki, human):
    svc = sqlite_service
    c = open_commons(svc, slug, f"Conciergerie {slug}", topic_id=9100 + next(_rounds))
    wiki_sync.sync_commons_fiche(svc, wiki, c.id)
    title = h.show_commons(svc, c.id)["wiki_title"]
    page = human.read_page(title)
    human.save_page(title, page.text.replace("| referent = claire", "| referent = Margaux (La Ruche)")
                    + "\nTexte libre écrit par une personne.\n", base_revid=page.revid, summary="référente")
    pledge(svc, 2, "pont", 5_000, topic_id=c.topic_id)
    wiki_sync.sync_commons_fiche(svc, wiki, c.id)
    assert h.show_commons(svc, c.id)["referent"] == "Margaux (La Ruche)"
    text = wiki.read_page(title).text
    assert "| referent = Margaux (La Ruche)" in text and "Texte libre écrit par une personne." in text
    assert fiche.read_fiche(text)["collecte"] == "50"


def test_sync_all_reads_fifty_pages_a_query_and_edits_only_what_changed(sqlite_service, slug, wiki):
    svc = sqlite_service
    ids = [open_commons(svc, slug, f"Lot {slug} {n}").id for n in range(60)]
    first = wiki_sync.sync_all_fiches(svc, wiki)
    assert first["edited"] >= 60
    before = wiki.request_count
    again = wiki_sync.sync_all_fiches(svc, wiki)
    assert again["edited"] == 0
    pages = again["pages"]
    assert wiki.request_count - before <= -(-pages // 50)  # at most one read query per 50 pages
    assert len(ids) == 60


def test_the_2018_results_page_has_the_published_lines(sqlite_service, wiki):
    data = movilab.load()
    data["round"]["name"] += f" (test {next(_rounds)})"  # the session's wiki is shared by every test
    replay(sqlite_service, data, slug="cobudget-2018-wiki")
    rid = sqlite_service.run(lambda uow: uow.repo.round_by_slug("cobudget-2018-wiki").id)
    wiki_sync.sync_all_fiches(sqlite_service, wiki)
    assert wiki_sync.sync_round_results(sqlite_service, wiki, rid) is True
    title, _ = wiki_sync.results_block_for(sqlite_service, rid)
    text = wiki.read_page(title).text
    funded = text.split("== Financé ==\n")[1].split("\n\n")[0].splitlines()
    assert funded[:2] == [
        "* [[Mettre en place un connecteur entre fabmanager et un outil comptable|Mettre en place un "
        "connecteur entre fabmanager et un outil comptable]] - 1 800 € - 11 cofinanceurs",
        "* [[Budget animation du réseau tiers lieux national|Budget animation du réseau tiers lieux "
        "national]] - 1 340 € - 12 cofinanceurs",
    ]
    assert len(funded) == len(data["funded"])
    in_progress = text.split("== En cours de financement ==\n")[1].split("\n\n")[0].splitlines()
    assert in_progress[0].endswith("]] - 2 200 € - 11 cofinanceurs")
    assert in_progress[-1].endswith("]] - 0 € - 0 cofinanceur")
    assert len(in_progress) == len(data["in_progress"])
    assert "== Idées ==\n* [[Acheter du foncier agricole|Acheter du foncier agricole]]" in text
    assert wiki_sync.sync_round_results(sqlite_service, wiki, rid) is False


def test_wiki_stopped_in_a_burst_then_back_every_fiche_ends_exact(sqlite_service, slug, installed, clock):
    from commons_sync.mediawiki import Wiki
    from commons_sync.service.worker import deliver_outbox, pending_rows

    svc = sqlite_service
    attempts = []

    def connect():
        attempts.append(1)
        return Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password, patience=1.0)

    wiki_senders = wiki_sync.WikiSenders(svc, connect)
    senders = wiki_senders.senders()
    topics = [9500 + next(_rounds) * 10 + n for n in range(4)]
    ids = [open_commons(svc, slug, f"Panne {slug} {n}", topic_id=topic).id for n, topic in enumerate(topics)]
    deliver_outbox(svc, senders)
    installed.stop_server()
    try:
        for n, topic in enumerate(topics):
            pledge(svc, 70_000 + topic, f"lieu-{n}", (n + 1) * 1_000, topic_id=topic)
        wiki_senders = wiki_sync.WikiSenders(svc, connect)  # a worker that starts while the wiki is down
        senders = wiki_senders.senders()
        attempts.clear()
        report = deliver_outbox(svc, senders)
        assert report.sent == 0 and report.failed == 5  # four fiches and the results page
        assert len(attempts) == 1  # a wiki found down is not asked again by every row of the pass
        assert pending_rows(svc, senders)  # nothing dropped
    finally:
        installed.start_server()
    wiki_senders.pause_seconds = 0
    wiki_senders._down_until = 0.0  # the pause is over (it counts real seconds, not the test clock)
    clock.advance(hours=2)  # past every backoff
    while deliver_outbox(svc, senders).attempted:
        pass
    assert pending_rows(svc, senders) == []
    wiki = Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password)
    for n, commons_id in enumerate(ids):
        title = h.show_commons(svc, commons_id)["wiki_title"]
        values = fiche.read_fiche(wiki.read_page(title).text)
        assert (values["collecte"], values["cofinanceurs"]) == (str((n + 1) * 10), "1")


def test_a_page_people_wrote_for_something_else_is_never_taken_over(sqlite_service, slug, wiki, human):
    svc = sqlite_service
    title = f"Alpha {slug}"
    text = "Alpha est une boulangerie de Rodez.\n\n[[Catégorie:Boulangeries]]\n"
    human.save_page(title, text, base_revid=None, summary="article")
    c = open_commons(svc, slug, title)
    wiki_sync.sync_commons_fiche(svc, wiki, c.id)
    assert wiki.read_page(title).text.rstrip() == text.rstrip()
    assert h.show_commons(svc, c.id)["wiki_title"] == f"{title} (2)"
    assert fiche.read_fiche(wiki.read_page(f"{title} (2)").text)["nom"] == title


def test_a_chosen_wiki_title_stays_in_the_main_namespace_and_unique(sqlite_service, slug):
    from commons_sync.engine.errors import InvalidOperation

    c = h.open_commons(sqlite_service, h.CommonsSpec(round_slug=slug, title="X", goal_cents=100,
                                                     wiki_title="Modèle:Fiche commun"))
    assert ":" not in h.show_commons(sqlite_service, c.id)["wiki_title"]
    with pytest.raises(InvalidOperation) as caught:
        h.open_commons(sqlite_service, h.CommonsSpec(round_slug=slug, title="Y", goal_cents=100,
                                                     wiki_title="Modèle:Fiche commun"))
    assert caught.value.code == "duplicate_wiki_title"
