"""Fiche and results wikitext, on text fixtures: only our parameters change, user text is inert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commons_sync.mediawiki.fiche import (
    FICHE_PARAMETERS,
    RESULTS_END,
    RESULTS_START,
    dedupe_title,
    escape_wikitext,
    new_fiche_text,
    normalize_typed,
    page_title_for,
    read_fiche,
    replace_results_block,
    results_block,
    unescape_wikitext,
    update_fiche,
)

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.name[: -len(".before.wiki")] for p in FIXTURES.glob("*.before.wiki"))


def load_case(name: str):
    before = (FIXTURES / f"{name}.before.wiki").read_text(encoding="utf-8")
    after = (FIXTURES / f"{name}.after.wiki").read_text(encoding="utf-8")
    spec = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return before, after, spec


@pytest.mark.parametrize("case", CASES)
def test_update_fiche_gives_the_expected_page(case):
    before, after, spec = load_case(case)
    update = update_fiche(before, spec["values"], spec["last_written"])
    assert update.text == after
    assert update.changed is spec["changed"]
    assert update.from_wiki == spec["from_wiki"]


def test_fixture_cases_are_all_there():
    assert {"human_text_around", "editorial_changed_on_wiki", "missing_parameters",
            "no_template", "unchanged", "inline_call"} <= set(CASES)


def test_written_values_make_the_next_update_a_no_op():
    before, _, spec = load_case("editorial_changed_on_wiki")
    first = update_fiche(before, spec["values"], spec["last_written"])
    # The service took the person's values in: they are now its own.
    values = dict(spec["values"], **{k: escape_wikitext(v) for k, v in first.from_wiki.items()})
    second = update_fiche(first.text, values, first.written)
    assert second.changed is False
    assert second.from_wiki == {}
    assert second.text == first.text


def test_service_change_of_an_editorial_field_is_written_when_the_wiki_kept_ours():
    text = new_fiche_text({"nom": "A", "referent": "Camille"})
    update = update_fiche(text, {"referent": "Dominique"}, {"referent": "Camille"})
    assert "| referent = Dominique\n" in update.text
    assert update.from_wiki == {}


def test_editorial_field_cleared_on_the_wiki_is_reported_empty_and_not_refilled():
    text = new_fiche_text({"nom": "A", "organisations": "La Coop"}).replace(
        "| organisations = La Coop\n", "")
    update = update_fiche(text, {"organisations": "La Coop"}, {"organisations": "La Coop"})
    assert update.from_wiki == {"organisations": ""}
    assert "organisations" not in update.text


def test_first_write_on_a_page_a_person_filled_keeps_their_editorial_values():
    text = "{{Fiche commun\n| nom = A\n| referent = Dominique\n}}"
    update = update_fiche(text, {"nom": "A", "referent": "Camille"}, None)
    assert update.from_wiki == {"referent": "Dominique"}
    assert "| referent = Dominique\n" in update.text


def test_new_fiche_has_every_parameter_in_order_and_the_category():
    text = new_fiche_text({"nom": "Fonds", "statut": "idée"})
    names = [line.split("=")[0].strip("| ").strip() for line in text.splitlines()[1:17]]
    assert names == list(FICHE_PARAMETERS)
    assert text.rstrip().endswith("[[Catégorie:Communs]]")
    assert read_fiche(text) == {**{n: "" for n in FICHE_PARAMETERS}, "nom": "Fonds", "statut": "idée"}


@pytest.mark.parametrize("typed, escaped", [
    ("a|b=c", "a&#124;b&#61;c"),
    ("{{PAGENAME}}", "&#123;&#123;PAGENAME&#125;&#125;"),
    ("[[Catégorie:Spam]]", "&#91;&#91;Catégorie:Spam&#93;&#93;"),
    ("~~~~", "&#126;&#126;&#126;~"),
    ("__NOTOC__", "&#95;_NOTOC&#95;_"),
    ("<!-- x -->", "&lt;!-- x --&gt;"),
    ("''gras''", "&#39;'gras&#39;'"),
    ("* un\n# deux", "&#42; un<br /># deux"),
    ("----", "&#45;---"),
    ("AT&T &amp;", "AT&amp;T &amp;amp;"),
    ("  Tiers-lieux d'ici  ", "Tiers-lieux d'ici"),
    ("https://a.org/?x=1|2 b|c", "https://a.org/?x&#61;1<nowiki/>&#124;2 b&#124;c"),
])
def test_escape_wikitext_encodes_markup(typed, escaped):
    assert escape_wikitext(typed) == escaped


@given(st.text())
def test_unescape_inverts_escape(text):
    assert unescape_wikitext(escape_wikitext(text)) == normalize_typed(text)


@given(st.text())
def test_escaped_text_has_no_markup_left(text):
    escaped = escape_wikitext(text).replace("<br />", "").replace("<nowiki/>", "")
    for token in ("|", "{", "}", "[", "]", "<", "~~~", "__", "''", "\n"):
        assert token not in escaped


def test_unescape_reads_what_people_type_on_the_wiki():
    assert unescape_wikitext("Marie <!-- note --><br>Paul &amp; co") == "Marie \nPaul & co"
    assert unescape_wikitext("<nowiki>a|b</nowiki>") == "a|b"
    assert unescape_wikitext("AT&T") == "AT&T"


@pytest.mark.parametrize("title, expected", [
    ("Fonds de soutien", "Fonds de soutien"),
    ("créer un réseau", "Créer un réseau"),
    ("a [b] {c} <d> #e |f", "A b c d e f"),
    ("Catégorie:Spam", "Catégorie - Spam"),
    ("fr:Truc", "Fr - Truc"),
    ("Discussion utilisateur:Bob", "Discussion utilisateur - Bob"),
    ("Amélioration de FabManager : Pouvoir déduire", "Amélioration de FabManager : Pouvoir déduire"),
    (":Accueil", "Accueil"),
    ("  deux   espaces__et_soulignés ", "Deux espaces et soulignés"),
    ("100%25 sûr", "100% 25 sûr"),
    ("signé ~~~~", "Signé ~~"),
    ("../x", "-/x"),
    ("[[]]", "Commun sans titre"),
])
def test_page_title_for_makes_a_main_namespace_title(title, expected):
    assert page_title_for(title) == expected


def test_page_title_for_keeps_titles_under_the_byte_limit():
    title = page_title_for("é" * 400)
    assert len(title.encode("utf-8")) <= 240
    assert title.startswith("É")


def test_dedupe_title_counts_up_like_the_wiki_compares():
    assert dedupe_title("Fonds", set()) == "Fonds"
    assert dedupe_title("Fonds", {"fonds"}) == "Fonds (2)"
    assert dedupe_title("Fonds", {"Fonds", "Fonds (2)"}) == "Fonds (3)"


def movilab_2018_sections():
    """The 2018 results as the caller would give them: sections picked, lines sorted."""
    data = json.loads((FIXTURES / "movilab-2018.json").read_text(encoding="utf-8"))

    def line(item, partial=False):
        return {"page": page_title_for(item["title"]), "name": item["title"],
                "amount_cents": item["raised"] * 100 if "raised" in item else None,
                "currency": "EUR", "cofunders": item.get("cofunders"), "partial": partial}

    def ordered(items):
        return sorted(items, key=lambda i: (-i.get("raised", 0), i["title"]))

    return [
        ("Financé", [line(i) for i in ordered(data["funded"])]),
        ("En cours de financement", [line(i) for i in ordered(data["in_progress"])]),
        ("Idées", [line(i) for i in data["ideas"]]),
    ]


MOVILAB_2018_BLOCK = """\
== Financé ==
* [[Mettre en place un connecteur entre fabmanager et un outil comptable|Mettre en place un connecteur entre fabmanager et un outil comptable]] - 1 800 € - 11 cofinanceurs
* [[Budget animation du réseau tiers lieux national|Budget animation du réseau tiers lieux national]] - 1 340 € - 12 cofinanceurs
* [[Amélioration de FabManager pour la réservation des salles de réunion|Amélioration de FabManager pour la réservation des salles de réunion]] - 1 200 € - 10 cofinanceurs
* [[Améliorer l'espace de documentation collectif et donner accès à chaque lieu à un espace de documentation|Améliorer l'espace de documentation collectif et donner accès à chaque lieu à un espace de documentation]] - 1 000 € - 9 cofinanceurs
* [[Financement d'un Chat dédié au Tiers Lieux|Financement d'un Chat dédié au Tiers Lieux]] - 100 € - 6 cofinanceurs

== En cours de financement ==
* [[Juriste dédié et spécialisé "hot line"|Juriste dédié et spécialisé "hot line"]] - 2 200 € - 11 cofinanceurs
* [[Créer un réseau de tiers lieux (partage de ressources et de savoir)|Créer un réseau de tiers lieux (partage de ressources et de savoir)]] - 645 € - 5 cofinanceurs
* [[Aller parler avec les canadiens du GCUC|Aller parler avec les canadiens du GCUC]] - 540 € - 4 cofinanceurs
* [[Créer une foncière régionale des tiers lieux dans les Hauts de France|Créer une foncière régionale des tiers lieux dans les Hauts de France]] - 400 € - 4 cofinanceurs
* [[Reconnaissance et structuration filière métiers des tiers-lieux|Reconnaissance et structuration filière métiers des tiers-lieux]] - 330 € - 5 cofinanceurs
* [[Fonds de soutien|Fonds de soutien]] - 200 € - 3 cofinanceurs
* [[Créer une structure de préfiguration de tiers-lieux sur les hauts de France|Créer une structure de préfiguration de tiers-lieux sur les hauts de France]] - 100 € - 1 cofinanceur
* [[Financement d'un forum (Question et réponses) dédié aux tiers lieux|Financement d'un forum (Question et réponses) dédié aux tiers lieux]] - 30 € - 1 cofinanceur
* [[Amélioration de FabManager : Pouvoir déduire des tickets au clic sans passer par l'agenda|Amélioration de FabManager : Pouvoir déduire des tickets au clic sans passer par l'agenda]] - 0 € - 0 cofinanceur

== Idées ==
* [[Acheter du foncier agricole|Acheter du foncier agricole]]"""


def test_results_block_renders_the_2018_results_line_by_line():
    assert results_block(movilab_2018_sections()).splitlines() == MOVILAB_2018_BLOCK.splitlines()


def test_results_line_marks_partial_funding_and_escapes_names():
    block = results_block([("Financé", [
        {"page": "Fonds", "name": "Fonds | ]] [[Catégorie:X]]", "amount_cents": 134050,
         "currency": "EUR", "cofunders": 1, "partial": True},
    ])])
    assert block == ("== Financé ==\n* [[Fonds|Fonds &#124; &#93;&#93; &#91;&#91;Catégorie:X&#93;&#93;]]"
                     " - 1 340,50 € - 1 cofinanceur (partiel)")


def test_replace_results_block_changes_only_between_the_markers():
    page = f"Intro écrite à la main.\n\n{RESULTS_START}\nancien\n{RESULTS_END}\n\n== Commentaires ==\nMerci !"
    new = replace_results_block(page, "== Idées ==\n* [[A|A]]")
    assert new == (f"Intro écrite à la main.\n\n{RESULTS_START}\n== Idées ==\n* [[A|A]]\n{RESULTS_END}"
                   "\n\n== Commentaires ==\nMerci !")
    assert replace_results_block(new, "== Idées ==\n* [[A|A]]") == new


def test_replace_results_block_appends_when_the_markers_are_missing():
    assert replace_results_block("Texte.\n", "B") == f"Texte.\n\n{RESULTS_START}\nB\n{RESULTS_END}\n"
    assert replace_results_block("", "B") == f"{RESULTS_START}\nB\n{RESULTS_END}\n"
    lone = f"Texte.\n{RESULTS_START}\nà garder"
    assert replace_results_block(lone, "B").startswith(lone)


def test_call_wrapped_in_html_or_a_table_is_edited_in_place():
    text = '<div class="boite">\n{{Fiche commun|nom=A|statut=idée}}\n</div>\n{|\n| {{Fiche commun|nom=B}}\n|}'
    update = update_fiche(text, {"statut": "financé"}, None)
    assert update.text == text.replace("statut=idée", "statut=financé", 1)
