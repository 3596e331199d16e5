"""Amounts typed by people (CONTRACT §1) and amounts shown to them."""

import pytest

from commons_sync.engine.errors import AmountError
from commons_sync.engine.money import parse_amount
from commons_sync.i18n import format_money, format_units


@pytest.mark.parametrize("text, cents", [
    ("50", 5000), ("50€", 5000), ("50 €", 5000), ("50,5", 5050), ("50.50", 5050),
    ("1 200", 120000), ("1\u00a0200", 120000), ("1\u202f200", 120000), ("1 200,50 €", 120050),
    ("€50", 5000), ("0,01", 1), ("12 345 678", 1234567800), ("  75 EUR ", 7500),
])
def test_accepted_amounts(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text, code", [
    ("1,200", "amount_ambiguous"), ("1.200", "amount_ambiguous"), ("50,555", "amount_ambiguous"),
    ("1 200,505", "amount_too_many_decimals"), ("0", "amount_not_positive"),
    ("0,00", "amount_not_positive"), ("-5", "amount_not_positive"), ("", "amount_empty"),
    ("cinquante", "amount_malformed"), ("1 2000", "amount_malformed"), ("50 50", "amount_malformed"),
    ("5e3", "amount_malformed"), ("\u0665\u0660", "amount_malformed"), ("\uff15\uff10", "amount_malformed"), ("99999999999999", "amount_too_large"),
])
def test_refused_amounts_say_why(text, code):
    with pytest.raises(AmountError) as caught:
        parse_amount(text)
    assert caught.value.code == code


@pytest.mark.parametrize("cents, lang, shown", [
    (134000, "fr", "1 340 €"), (134050, "fr", "1 340,50 €"), (5, "fr", "0,05 €"),
    (134000, "en", "€1,340"), (134050, "en", "€1,340.50"),
])
def test_money_is_shown_french_style_or_english_style(cents, lang, shown):
    assert format_money(cents, "EUR", lang) == shown


def test_bare_units_for_the_wiki_and_json():
    assert [format_units(c) for c in (134050, 134000, 1)] == ["1340.5", "1340", "0.01"]
