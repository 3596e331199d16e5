"""The gateway and the syncs against a real MediaWiki 1.39 (started once for the folder)."""

from __future__ import annotations

import html as html_module
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from commons_sync.mediawiki import (
    EditConflict,
    InvalidTitle,
    LoginFailed,
    PageExists,
    Wiki,
    WikiError,
    WikiUnavailable,
    escape_wikitext,
    install,
    new_fiche_text,
    sync_fiche,
    sync_results_page,
)
from commons_sync.mediawiki.fiche import RESULTS_END, RESULTS_START, normalize_typed, results_block
from commons_sync.mediawiki.wiki import INSTALLED_PAGES, TEMPLATE_TITLE, installed_text
from tests.mediawiki.test_fiche import MOVILAB_2018_BLOCK, load_case, movilab_2018_sections

pytestmark = pytest.mark.mediawiki

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY = "commons-sync : mise à jour de la fiche"


def fiche_values(**changes: str) -> dict[str, str]:
    values = {
        "nom": escape_wikitext("Budget animation du réseau"), "referent": "Camille",
        "organisations": "La Fabrique", "prochaines_etapes": "Réunion en septembre",
        "espace_discussion": "https://forum.example.org/t/budget/42", "statut": "en financement",
        "objectif": "1340", "plafond": "1500", "collecte": "900", "promesses": "800",
        "apports": "100", "abondement": "0", "pourcentage": "67", "cofinanceurs": "8",
        "campagne": "Cobudget 2018", "mise_a_jour": "2018-06-01",
    }
    values.update(changes)
    return values


class FicheFields(HTMLParser):
    """The text of each `fc-*` cell of the rendered infobox (`<br>` as a newline)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self._append("\n")
            return
        classes = (dict(attrs).get("class") or "").split()
        self._open.append(next((c[3:] for c in classes if c.startswith("fc-")), None))
        if self._open[-1]:
            self.fields.setdefault(self._open[-1], "")

    def handle_endtag(self, tag):
        if tag != "br" and self._open:
            self._open.pop()

    def handle_data(self, data):
        self._append(data)

    def _append(self, text):
        for name in self._open:
            if name:
                self.fields[name] += text


def shown(text: str) -> str:
    """Text as a reader sees it (HTML collapses whitespace)."""
    return " ".join(text.split())


# -- install ---------------------------------------------------------------------------------------


def test_install_again_makes_no_revision(wiki):
    counts = {title: wiki.revision_count(title) for title in INSTALLED_PAGES}
    assert all(counts.values())
    assert install(wiki) == []
    assert {title: wiki.revision_count(title) for title in INSTALLED_PAGES} == counts


def test_install_restores_a_template_someone_broke(wiki, human):
    page = human.read_page(TEMPLATE_TITLE)
    human.save_page(TEMPLATE_TITLE, "cassé", base_revid=page.revid, summary="essai")
    assert install(wiki, "en") == [TEMPLATE_TITLE]
    assert wiki.read_page(TEMPLATE_TITLE).text == installed_text(TEMPLATE_TITLE).rstrip()


# -- fiches ----------------------------------------------------------------------------------------


def test_first_sync_creates_the_fiche_in_the_category(wiki, title):
    outcome = sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    assert outcome.edited is True
    page = wiki.read_page(title)
    assert page.exists and page.revid == outcome.revid
    assert page.text == new_fiche_text(fiche_values()).rstrip()
    parsed = wiki.parse(title)
    assert parsed.categories == ["Communs"]
    fields = FicheFields(parsed.html).fields
    assert shown(fields["nom"]) == "Budget animation du réseau"
    assert shown(fields["objectif"]) == "1 340 €"
    assert shown(fields["pourcentage"]) == "67 %"
    assert 'width:67%' in parsed.html


def test_resync_with_the_same_values_makes_no_edit(wiki, title):
    first = sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    again = sync_fiche(wiki, title, fiche_values(), first.written, SUMMARY)
    assert again.edited is False
    assert again.revid == first.revid
    assert wiki.revision_count(title) == 1


def test_the_edit_is_a_bot_edit_with_our_summary(wiki, title):
    sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    data = wiki.site.get("query", prop="revisions", titles=title, rvprop="comment|user|flags",
                         formatversion=2)
    revision = data["query"]["pages"][0]["revisions"][0]
    assert revision["comment"] == SUMMARY and revision["user"] == "Robot"
    changes = wiki.site.get("query", list="recentchanges", rctitle=title, rcprop="flags",
                            formatversion=2)["query"]["recentchanges"]
    assert changes and changes[0]["bot"] is True


def test_text_people_wrote_around_and_inside_the_call_stays_byte_for_byte(wiki, human, title):
    before, after, spec = load_case("human_text_around")
    human.save_page(title, before, base_revid=None, summary="fiche écrite à la main")
    outcome = sync_fiche(wiki, title, spec["values"], spec["last_written"], SUMMARY)
    assert outcome.edited is True
    assert wiki.read_page(title).text == after.rstrip()
    assert sorted(wiki.parse(title).categories) == ["Communs", "Réseau national"]


def test_editorial_field_a_person_changed_is_taken_in_and_not_overwritten(wiki, human, title):
    first = sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    page = human.read_page(title)
    human.save_page(title, page.text.replace("| referent = Camille", "| referent = Dominique & co"),
                    base_revid=page.revid, summary="nouveau référent")
    outcome = sync_fiche(wiki, title, fiche_values(collecte="1000"), first.written, SUMMARY)
    assert outcome.edited is True
    assert outcome.from_wiki == {"referent": "Dominique & co"}
    text = wiki.read_page(title).text
    assert "| referent = Dominique & co\n" in text and "| collecte = 1000\n" in text
    # The service takes the value in; the next sync changes nothing.
    taken = fiche_values(collecte="1000", referent=escape_wikitext("Dominique & co"))
    assert sync_fiche(wiki, title, taken, outcome.written, SUMMARY).edited is False


class PersonEditsBeforeOurSave:
    """The bot's gateway, with a person saving the same lines between our read and our save."""

    def __init__(self, wiki: Wiki, human: Wiki, edit) -> None:
        self.wiki, self.human, self.edit = wiki, human, edit
        self.conflicts = 0

    def read_page(self, title):
        return self.wiki.read_page(title)

    def save_page(self, title, text, *, base_revid, summary):
        if self.edit is not None:
            page = self.human.read_page(title)
            self.human.save_page(title, self.edit(page.text), base_revid=page.revid,
                                 summary="en même temps")
            self.edit = None
        try:
            return self.wiki.save_page(title, text, base_revid=base_revid, summary=summary)
        except EditConflict:
            self.conflicts += 1
            raise


def test_edit_conflict_with_a_person_is_retried_and_keeps_both_sides(wiki, human, title):
    first = sync_fiche(wiki, title, fiche_values(), None, SUMMARY)

    def person(text):
        return (text.replace("| collecte = 900", "| collecte = 900 <!-- vérifié -->")
                .replace("| referent = Camille", "| referent = Dominique") + "\n\nNotes de réunion.")

    racing = PersonEditsBeforeOurSave(wiki, human, person)
    outcome = sync_fiche(racing, title, fiche_values(collecte="1340"), first.written, SUMMARY)
    assert racing.conflicts == 1
    assert outcome.edited is True and outcome.from_wiki == {"referent": "Dominique"}
    text = wiki.read_page(title).text
    assert "| collecte = 1340 <!-- vérifié -->\n" in text
    assert "| referent = Dominique\n" in text
    assert text.endswith("\n\nNotes de réunion.")
    assert wiki.revision_count(title) == 3


def test_save_on_an_old_revision_conflicts_even_with_ourselves(wiki, title):
    revid = wiki.save_page(title, "un", base_revid=None, summary="s")
    wiki.save_page(title, "deux", base_revid=revid, summary="s")
    with pytest.raises(EditConflict):
        wiki.save_page(title, "trois", base_revid=revid, summary="s")
    with pytest.raises(PageExists):
        wiki.save_page(title, "quatre", base_revid=None, summary="s")
    assert wiki.read_page(title).text == "deux"


HOSTILE = json.loads((FIXTURES / "hostile_strings.json").read_text(encoding="utf-8"))


def test_hostile_text_renders_as_typed_and_breaks_nothing(wiki, title):
    assert len(HOSTILE) == 50
    for i in range(len(HOSTILE)):
        nom, referent, etapes = (HOSTILE[(i + k) % len(HOSTILE)] for k in range(3))
        page_title = f"{title} {i}"
        values = fiche_values(nom=escape_wikitext(nom), referent=escape_wikitext(referent),
                              prochaines_etapes=escape_wikitext(etapes))
        outcome = sync_fiche(wiki, page_title, values, None, SUMMARY)
        assert outcome.edited is True
        parsed = wiki.parse(page_title)
        assert parsed.categories == ["Communs"], (i, nom, referent, etapes)
        fields = FicheFields(parsed.html).fields
        assert set(fields) >= {"nom", "statut", "progression", "objectif", "plafond",
                               "collecte", "promesses", "apports", "abondement",
                               "cofinanceurs", "campagne", "referent", "organisations",
                               "prochaines-etapes", "espace-discussion", "mise-a-jour"}
        for field, typed in (("nom", nom), ("referent", referent), ("prochaines-etapes", etapes)):
            assert shown(fields[field]) == shown(normalize_typed(typed)), (field, typed)
        assert shown(fields["campagne"]) == "Cobudget 2018"
        assert shown(fields["collecte"]) == "900 €"
        assert "<script" not in parsed.html and "mw-headline" not in parsed.html
        assert sync_fiche(wiki, page_title, values, outcome.written, SUMMARY).edited is False


# -- results page ----------------------------------------------------------------------------------


def test_results_page_shows_the_2018_results_and_keeps_people_text(wiki, human):
    title = "Cofinancement Expérimentation Cobudget 2018"
    human.save_page(title, "Résultats de la première expérimentation.\n\n== Bilan ==\nÀ discuter.",
                    base_revid=None, summary="intro")
    block = results_block(movilab_2018_sections())
    first = sync_results_page(wiki, title, block, "commons-sync : résultats")
    assert first.edited is True
    text = wiki.read_page(title).text
    assert text == ("Résultats de la première expérimentation.\n\n== Bilan ==\nÀ discuter.\n\n"
                    f"{RESULTS_START}\n{MOVILAB_2018_BLOCK}\n{RESULTS_END}")
    again = sync_results_page(wiki, title, block, "commons-sync : résultats")
    assert again.edited is False and wiki.revision_count(title) == 2
    html = wiki.parse_html(title)
    assert "1&#160;340 € - 12 cofinanceurs" in html or "1 340 € - 12 cofinanceurs" in html
    linked = re.findall(r'<li><a href="[^"]*" class="new" title="([^"]*) \(page inexistante\)">', html)
    assert [html_module.unescape(t) for t in linked] == [
        line["page"] for _, lines in movilab_2018_sections() for line in lines]


# -- reads, outages, login -------------------------------------------------------------------------


def test_reading_120_pages_takes_at_most_3_queries(wiki, title):
    existing = [f"{title} {i}" for i in range(0, 120, 6)]
    for i, page_title in enumerate(existing):
        wiki.save_page(page_title, f"page {i}", base_revid=None, summary="s")
    titles = [f"{title} {i}" for i in range(120)]
    before = wiki.request_count
    pages = wiki.read_pages(titles)
    assert wiki.request_count - before <= 3
    assert list(pages) == titles
    assert [t for t, p in pages.items() if p.exists] == existing
    assert pages[existing[3]].text == "page 3" and pages[existing[3]].revid
    assert pages[titles[1]].revid is None and pages[titles[1]].text == ""


def test_titles_the_wiki_normalises_are_found_under_the_title_asked(wiki, title):
    wiki.save_page(title, "x", base_revid=None, summary="s")
    asked = title.replace(" ", "_")
    assert wiki.read_pages([asked])[asked].exists


def test_stopped_wiki_is_unavailable_then_the_sync_goes_through(installed, title):
    wiki = Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password,
                        patience=0.5)
    installed.stop_server()
    try:
        with pytest.raises(WikiUnavailable):
            sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
        with pytest.raises(WikiUnavailable):
            Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password,
                         patience=0)
    finally:
        installed.start_server()
    outcome = sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    assert outcome.edited is True and wiki.read_page(title).exists


def test_wrong_bot_password_is_refused(installed):
    with pytest.raises(LoginFailed):
        Wiki.connect(installed.api_url, installed.bot_username, "0" * 32)


def test_fiches_follow_a_reinstalled_template_without_waiting_for_jobs(wiki, human, title):
    sync_fiche(wiki, title, fiche_values(), None, SUMMARY)
    page = human.read_page(TEMPLATE_TITLE)
    human.save_page(TEMPLATE_TITLE, "cassé", base_revid=page.revid, summary="essai")
    wiki.purge([title])
    assert "fc-statut" not in wiki.parse_html(title)
    assert install(wiki) == [TEMPLATE_TITLE]
    assert "fc-statut" in wiki.parse_html(title)


def test_titles_the_wiki_refuses_are_reported(wiki):
    with pytest.raises(InvalidTitle):
        wiki.read_pages(["Fonds", "a<b"])


def test_connect_wants_an_api_php_url():
    with pytest.raises(WikiError):
        Wiki.connect("http://127.0.0.1:9/index.php", "Robot@x", "0" * 32)
