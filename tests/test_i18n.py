"""French first, English complete: every message a person reads has its English translation."""

import subprocess
import sys
from io import BytesIO
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from commons_sync.i18n import format_money, t, tn

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "commons_sync/locale/en/LC_MESSAGES/messages.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"t": (2,), "tn": (2, 3), "CommandSyntaxError": (1,), "_": None, "gettext": None, "ngettext": (1, 2)}


def source_messages() -> set[str]:
    found = set()
    method_map = [("commons_sync/**.py", "python"), ("templates/**.j2", "jinja2"), ("templates/**.html", "jinja2")]
    options = {pattern: {"extensions": "jinja2.ext.i18n"} for pattern in ("templates/**.j2", "templates/**.html")}
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_an_english_translation():
    catalog = read_po(PO.open("rb"))
    missing = []
    for message in sorted(source_messages()):
        entry = catalog.get(message)
        text = entry.string if entry else None
        if not text or (isinstance(text, tuple) and not all(text)):
            missing.append(message)
    assert missing == [], "run scripts/i18n.sh and translate: " + repr(missing[:10])


def _hashable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_compiled_catalog_matches_its_source():
    compiled = {_hashable(m.id): _hashable(m.string) for m in read_mo(MO.open("rb")) if m.id}
    source = {_hashable(m.id): _hashable(m.string) for m in read_po(PO.open("rb"))
              if m.id and m.string and not m.fuzzy}
    assert compiled == source, "run scripts/i18n.sh to compile the catalog"


def test_french_is_the_default_and_english_is_translated():
    assert t("fr", "Introuvable : {what} {key}.", what="round", key="x") == "Introuvable : round x."
    assert t("en", "Introuvable : {what} {key}.", what="round", key="x") == "Not found: round x."
    assert [tn("en", "{n} cofinanceur", "{n} cofinanceurs", n) for n in (0, 1, 2)] == [
        "0 cofunders", "1 cofunder", "2 cofunders"]
    assert format_money(134_050, "EUR", "en") == "€1,340.50"
