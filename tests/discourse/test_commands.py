"""Command lines read from real-looking posts: what counts, and what a quote or code hides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commons_sync.discourse.commands import (
    ForumCommand,
    extract_commands,
    has_command,
    parse_commun_arguments,
    parse_referent,
    parse_switch,
)
from commons_sync.discourse.errors import CommandSyntaxError

NBSP, NNBSP = "\u00a0", "\u202f"

# (id, post raw, expected [(name, argument)])
CORPUS = [
    ("plain pledge", "/soutien 50", [("soutien", "50")]),
    ("pledge after a greeting", "Bonjour à tous,\n\n/soutien 150 €\n\nBelle initiative !",
     [("soutien", "150 €")]),
    ("pledge as second line of a paragraph", "Bonjour,\n/soutien 80", [("soutien", "80")]),
    ("english pledge", "Count us in!\n/pledge 75", [("soutien", "75")]),
    ("capitals", "/SOUTIEN 20", [("soutien", "20")]),
    ("mixed case english", "/Pledge 1,200.50", [("soutien", "1,200.50")]),
    ("no-break space kept", f"/soutien 1{NBSP}200 €", [("soutien", f"1{NBSP}200 €")]),
    ("narrow no-break space kept", f"/soutien 1{NNBSP}200,50{NNBSP}€",
     [("soutien", f"1{NNBSP}200,50{NNBSP}€")]),
    ("html entity becomes a no-break space", "/soutien 1&nbsp;200", [("soutien", f"1{NBSP}200")]),
    ("CRLF line endings", "Merci !\r\n/soutien 40\r\n\r\nÀ bientôt\r\n", [("soutien", "40")]),
    ("bold amount is read as shown", "/soutien **150 €**", [("soutien", "150 €")]),
    ("whole line in bold", "**/soutien 60**", [("soutien", "60")]),
    ("trailing spaces hard break", "/soutien 30  \nmerci", [("soutien", "30")]),
    ("pledge without amount", "/soutien", [("soutien", "")]),
    ("two pledges in one post", "/soutien 50\n\n/soutien 20", [("soutien", "50"), ("soutien", "20")]),
    ("pledge in a list item", "Nos engagements :\n\n- /soutien 25\n- merci", [("soutien", "25")]),
    ("pledge in a numbered list", "1. /pledge 10", [("soutien", "10")]),
    ("mid-sentence is not a command", "Je vais faire /soutien 50 demain", []),
    ("prose amount is not a command", "nous nous engageons à hauteur de **150 €**", []),
    ("word glued to the command", "/soutien50", []),
    ("punctuation glued to the command", "/soutien: 50", []),
    ("unknown command", "/sondage 50", []),
    ("path-like text", "/soutien/50 est l'URL", []),
    ("heading is not a paragraph", "# /soutien 50", []),
    ("setext heading", "/soutien 50\n===", []),
    ("markdown quote", "> /soutien 50", []),
    ("markdown quote of someone then own pledge", "> Marie :\n> /soutien 50\n\nMoi aussi :\n\n/soutien 30",
     [("soutien", "30")]),
    ("nested markdown quote", "> > /soutien 50\n> ok", []),
    ("bbcode quote of another pledge",
     '[quote="yannick.morel, post:4, topic:318"]\n/soutien 150\n[/quote]\n\nPareil pour nous !',
     []),
    ("bbcode quote then own pledge",
     '[quote="yannick.morel, post:4, topic:318, full:true"]\n/soutien 150\n[/quote]\n/soutien 20',
     [("soutien", "20")]),
    ("nested bbcode quotes",
     "[quote]\n[quote=\"a, post:2, topic:318\"]\n/soutien 1\n[/quote]\n/soutien 2\n[/quote]\n/pledge 3",
     [("soutien", "3")]),
    ("bbcode quote on one line", "[quote]/soutien 9[/quote]\n/soutien 4", [("soutien", "4")]),
    ("bbcode quote interrupting a paragraph", "Comme disait Marie\n[quote]\n/soutien 9\n[/quote]", []),
    ("bbcode quote in capitals", "[QUOTE]\n/soutien 9\n[/QUOTE]", []),
    ("markdown quote inside bbcode quote", "[quote]\n> /soutien 9\n/soutien 8\n[/quote]", []),
    ("unclosed bbcode quote is shown as text", "[quote]\n/soutien 7", [("soutien", "7")]),
    ("fenced code", "Exemple :\n\n```\n/soutien 50\n```", []),
    ("tilde fence with info", "~~~text\n/soutien 50\n~~~", []),
    ("unclosed fence runs to the end", "```\n/soutien 50\n\nplus rien", []),
    ("indented code", "Exemple :\n\n    /soutien 50\n\nfin", []),
    ("inline code", "`/soutien 50`", []),
    ("inline code then text", "`/soutien` 50", []),
    ("bbcode code block", "[code]\n/soutien 50\n[/code]", []),
    ("html block", "<div>\n/soutien 50\n</div>", []),
    ("html comment", "<!--\n/soutien 50\n-->", []),
    ("table cell", "| qui | quoi |\n| --- | --- |\n| /soutien 50 | x |", []),
    ("escaped markup stays text", "/soutien 50\\*", [("soutien", "50*")]),
    ("code in the argument is kept with its backticks", "/soutien `50`", [("soutien", "`50`")]),
    ("interest in French with accents", "/intéressé La Ruche", [("interesse", "La Ruche")]),
    ("interest without accents", "/interesse", [("interesse", "")]),
    ("interest half accented", "/Interessé Tiers-lieu du Pont", [("interesse", "Tiers-lieu du Pont")]),
    ("interest feminine", "/intéressée La Fabrique", [("interesse", "La Fabrique")]),
    ("interest in English", "/interested Lyon Hackerspace", [("interesse", "Lyon Hackerspace")]),
    ("referent", "/referent @margaux.lefevre", [("referent", "@margaux.lefevre")]),
    ("referent with accent", "/référent @claire", [("referent", "@claire")]),
    ("next step in French", "/prochaine-étape Devis à demander à Rodez",
     [("prochaine-etape", "Devis à demander à Rodez")]),
    ("next step in English", "/next-step Ask for a quote", [("prochaine-etape", "Ask for a quote")]),
    ("cancel", "/annuler projet abandonné", [("annuler", "projet abandonné")]),
    ("cancel in English", "/cancel duplicate", [("annuler", "duplicate")]),
    ("transfer", "/transférer oui", [("transferer", "oui")]),
    ("transfer in English", "/transfer yes", [("transferer", "yes")]),
    ("reminders", "/rappels non", [("rappels", "non")]),
    ("reminders in English", "/reminders off", [("rappels", "off")]),
    ("staff opens a commons", "Validé en conseil.\n\n/commun objectif=1340 plafond=1500 campagne=2026",
     [("commun", "objectif=1340 plafond=1500 campagne=2026")]),
    ("staff opens a commons in English", "/commons goal=1340 max=1500 round=2026",
     [("commun", "goal=1340 max=1500 round=2026")]),
    ("several commands", "/interesse La Ruche\n/rappels non\n\n/soutien 10",
     [("interesse", "La Ruche"), ("rappels", "non"), ("soutien", "10")]),
    ("bbcode quote inside a list item", "- [quote]\n  /soutien 5\n  [/quote]\n- /soutien 6",
     [("soutien", "6")]),
    ("bbcode quote inside a markdown quote", "> [quote]\n> /soutien 5\n> [/quote]", []),
    ("two quotes with blank lines, then own pledge",
     '[quote="x"]\n\n/soutien 1\n\n[/quote]\n\n[quote]\n/soutien 2\n[/quote]\n/soutien 4',
     [("soutien", "4")]),
    ("empty post", "", []),
]


@pytest.mark.parametrize("raw,expected", [(raw, expected) for _, raw, expected in CORPUS],
                         ids=[name for name, _, _ in CORPUS])
def test_command_lines_of_post(raw, expected):
    assert [(c.name, c.argument) for c in extract_commands(raw)] == expected


PIECES = ["/soutien 5", "/pledge 1 200", "[quote]", "[/quote]", "> ", "```", "    ", "`", "**",
          "\n", "\n\n", "\r\n", "- ", "# ", "texte", "é", "\u00a0", "[code]", "[/code]", "<div>"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=30))
def test_any_post_text_gives_well_formed_commands(pieces):
    for command in extract_commands("".join(pieces)):
        assert command.line.startswith("/") and command.name in {
            "soutien", "commun", "interesse", "referent", "prochaine-etape", "annuler",
            "transferer", "rappels"}
        assert "\n" not in command.argument and command.argument == command.argument.strip()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40


def test_command_keeps_the_line_as_shown():
    assert extract_commands("Bonjour\n/Soutien **1 200 €** pour La Ruche") == [
        ForumCommand(name="soutien", argument="1 200 € pour La Ruche",
                     line="/Soutien 1 200 € pour La Ruche")]


def test_has_command_finds_a_commun_line_only_outside_quotes():
    assert has_command("ok\n/commun objectif=100", "commun")
    assert not has_command("[quote]\n/commun objectif=100\n[/quote]", "commun")
    assert not has_command("/soutien 5", "commun")


# --- /commun arguments ---------------------------------------------------------------------------


def test_commun_arguments_in_french():
    assert parse_commun_arguments("objectif=1340 plafond=1500 campagne=printemps-2025") == {
        "objectif": "1340", "plafond": "1500", "campagne": "printemps-2025"}


def test_commun_arguments_in_english_get_french_keys():
    assert parse_commun_arguments("goal=1340 max=1500 round=spring") == {
        "objectif": "1340", "plafond": "1500", "campagne": "spring"}


def test_commun_arguments_in_any_order_and_case():
    assert parse_commun_arguments("Campagne=x OBJECTIF=10") == {"objectif": "10", "campagne": "x"}


def test_commun_amounts_keep_their_spaces_and_currency():
    assert parse_commun_arguments(f"objectif=1 340 € plafond=1{NBSP}500,50 €") == {
        "objectif": "1 340 €", "plafond": f"1{NBSP}500,50 €"}


def test_commun_goal_alone():
    assert parse_commun_arguments("objectif=800") == {"objectif": "800"}


@pytest.mark.parametrize("argument,needle", [
    ("objectif=1340 budget=1500", "budget"),
    ("goal=1340 cap=1500", "cap"),
    ("1340", "1340"),
    ("pour 1340 objectif=1340", "pour 1340"),
    ("objectif=1340 objectif=1500", "deux fois"),
    ("objectif=1340 goal=1500", "deux fois"),
    ("objectif= plafond=3", "pas de valeur"),
    ("plafond=1500", "objectif"),
    ("", "clé=valeur"),
])
def test_commun_arguments_refused_with_a_french_explanation(argument, needle):
    with pytest.raises(CommandSyntaxError) as caught:
        parse_commun_arguments(argument)
    assert needle in caught.value.message("fr")
    assert needle in str(caught.value)


def test_commun_without_goal_allowed_when_not_required():
    assert parse_commun_arguments("", require_goal=False) == {}
    assert parse_commun_arguments("campagne=x", require_goal=False) == {"campagne": "x"}


def test_unknown_commun_key_message_exists_in_english():
    with pytest.raises(CommandSyntaxError) as caught:
        parse_commun_arguments("objectif=1 bidule=2")
    english = caught.value.message("en")
    assert "bidule" in english and english.strip()


# --- switches and referents ------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("oui", True), ("OUI", True), ("on", True), ("yes", True), (" Yes ", True),
    ("non", False), ("off", False), ("no", False), ("NON", False),
])
def test_switch_words(text, expected):
    assert parse_switch(text) is expected


@pytest.mark.parametrize("text", ["", "peut-être", "1", "oui non", "vrai"])
def test_switch_refuses_other_words(text):
    with pytest.raises(CommandSyntaxError, match="oui"):
        parse_switch(text)


@pytest.mark.parametrize("text,expected", [
    ("@margaux.lefevre", "margaux.lefevre"), ("margaux.lefevre", "margaux.lefevre"),
    (" @claire_d ", "claire_d"), ("@Élodie-B", "Élodie-B"),
])
def test_referent_username(text, expected):
    assert parse_referent(text) == expected


@pytest.mark.parametrize("text", ["", "@", "Margaux Lefèvre", "@a @b", "<b>x</b>"])
def test_referent_refuses_what_is_not_one_username(text):
    with pytest.raises(CommandSyntaxError, match="referent"):
        parse_referent(text)
