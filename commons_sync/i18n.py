"""The one translation mechanism: gettext catalogs (Babel), French source text, English catalog.

Message ids are the French text, so French needs no catalog and is always complete; English comes
from `locale/en/LC_MESSAGES/messages.po` (compiled to `.mo`). `scripts/i18n.sh` extracts, updates
and compiles; a test fails when a message has no English translation.

Money is formatted here too, with Babel's number formatting (CONTRACT §1: "1 340 €", "1 340,50 €"
in French, "€1,340" in English).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
BABEL_LOCALES = {"fr": "fr_FR", "en": "en_GB"}


@lru_cache(maxsize=None)
def translations(lang: str) -> NullTranslations:
    """The gettext catalog of `lang` (French: the identity)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    if lang == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def t(lang: str, message: str, **params: object) -> str:
    """Translate `message` (French source text) into `lang`, then fill `{name}` fields."""
    text = translations(lang).gettext(message)
    return text.format(**params) if params else text


def tn(lang: str, singular: str, plural: str, n: int, **params: object) -> str:
    """Translate with a plural form chosen by `n` (French: 0 and 1 are singular)."""
    if lang == DEFAULT_LANGUAGE:
        # French is the source text: CLDR's rule (via Babel) says 0 and 1 take the singular.
        text = singular if Locale.parse(BABEL_LOCALES[lang]).plural_form(n) == "one" else plural
    else:
        text = translations(lang).ngettext(singular, plural, n)
    return text.format(n=n, **params)


def colon(lang: str) -> str:
    """French typography puts a space before a colon; English does not."""
    return " :" if lang == "fr" else ":"


def quoted(lang: str, text: object) -> str:
    """A title quoted as each language quotes: « Wiki » in French, “Wiki” in English."""
    return f"« {text} »" if lang == "fr" else f"\u201c{text}\u201d"


def cents_to_units(cents: int) -> Decimal:
    """Integer cents to a Decimal of currency units (1340.5 for 134050)."""
    return (Decimal(cents) / 100).normalize() if cents % 100 else Decimal(cents // 100)


def format_money(cents: int, currency: str = "EUR", lang: str = DEFAULT_LANGUAGE) -> str:
    """`1 340 €` / `1 340,50 €` in French, `€1,340` / `€1,340.50` in English.

    Grouping uses a plain space in French, as the network's published pages do, so the text is the
    same whether it is read on the forum, in a terminal or on the wiki.
    """
    amount = Decimal(cents) / 100
    digits = "#,##0" if cents % 100 == 0 else "#,##0.00"
    if lang == "fr":
        number = format_decimal(amount, format=digits, locale="fr_FR")
        number = number.replace("\u202f", " ").replace("\xa0", " ")
        return f"{number} {_symbol(currency)}"
    return format_currency(amount, currency, format="¤" + digits, locale=BABEL_LOCALES[lang],
                           currency_digits=False)


def format_units(cents: int) -> str:
    """A bare number in currency units with `.` as decimal point (`1340.5`), for the wiki and JSON."""
    return format(cents_to_units(cents), "f")


@lru_cache(maxsize=None)
def _symbol(currency: str) -> str:
    return format_currency(0, currency, format="¤", locale="fr_FR").strip()
