"""Amounts typed by people, parsed into integer cents (CONTRACT §1).

Accepted: `50`, `50€`, `50 €`, `50,5`, `50.50`, `1 200` (space, no-break or narrow no-break space as
thousands separator), `1 200,50 €`, `€50`, `EUR 50`. At most two decimals; more than zero. A comma or
dot followed by exactly three digits (`1,200`, `1.200`) is ambiguous: it is refused, not guessed.
"""

from __future__ import annotations

import re

from .errors import AmountError

MAX_CENTS = 10**13  # 100 billion units: above that a typo, not a pledge

_CURRENCY_MARKS = ("€", "eur", "euros", "euro", "$", "usd", "chf", "£", "gbp")
_SPACES = "\u0020\u00a0\u202f\u2009"
# One token, already stripped of currency marks: digits in groups of three separated by a space,
# or plain digits, then an optional decimal part.
_NUMBER = re.compile(r"(?P<int>[0-9]{1,3}(?:[ ][0-9]{3})+|[0-9]+)(?:(?P<sep>[.,])(?P<frac>[0-9]+))?")


def parse_amount(text: str) -> int:
    """Return the amount in cents, or raise `AmountError` with the reason a person can act on."""
    if text is None or not text.strip():
        raise AmountError("amount_empty")
    cleaned = text.strip()
    for space in _SPACES[1:]:
        cleaned = cleaned.replace(space, " ")
    lowered = cleaned.lower()
    for mark in sorted(_CURRENCY_MARKS, key=len, reverse=True):
        if lowered.endswith(mark):
            cleaned, lowered = cleaned[: -len(mark)].rstrip(), lowered[: -len(mark)].rstrip()
            break
        if lowered.startswith(mark):
            cleaned, lowered = cleaned[len(mark):].lstrip(), lowered[len(mark):].lstrip()
            break
    if cleaned.startswith("-"):
        raise AmountError("amount_not_positive", text=text.strip())
    match = _NUMBER.fullmatch(cleaned)
    if not match:
        raise AmountError("amount_malformed", text=text.strip())
    digits = match["int"].replace(" ", "").lstrip("0")
    if len(digits) > len(str(MAX_CENTS)):  # before int(): Python refuses over 4,300 digits
        raise AmountError("amount_too_large", text=text.strip())
    units = int(digits or "0")
    frac = match["frac"] or ""
    if frac and len(frac) == 3 and " " not in match["int"]:
        raise AmountError("amount_ambiguous", text=text.strip())
    if len(frac) > 2:
        raise AmountError("amount_too_many_decimals", text=text.strip())
    cents = units * 100 + int(frac.ljust(2, "0") or 0)
    if cents <= 0:
        raise AmountError("amount_not_positive", text=text.strip())
    if cents > MAX_CENTS:
        raise AmountError("amount_too_large", text=text.strip())
    return cents
