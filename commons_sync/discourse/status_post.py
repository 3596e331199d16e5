"""The text the service posts on the forum — status post, replies, notices — rendered from Jinja.

Templates live in `templates/discourse/*.md.j2`; they hold the layout and call `_()` / `ngettext()`,
which are `commons_sync.i18n.t` / `tn` bound to the language, so the French text is the message id
and Babel's Jinja extractor (see `babel.cfg`) finds it. Figures are computed here, not in the
templates (money already formatted, percentage, bar, days left).

The status post always ends with `MARKER`, by which the worker finds it again in the topic (a
crash between creating it and recording its id never makes a second one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from commons_sync import texts
from commons_sync.i18n import colon, format_money, t, tn

MARKER = "<!-- commons-sync:statut -->"
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "discourse"
BAR_WIDTH = 10
BAR_FULL, BAR_EMPTY = "▰", "▱"
NO_BALANCE_REASONS = frozenset({"not_member"})


@dataclass(frozen=True)
class StatusFigures:
    """What the status post shows, read from the database at send time (amounts in cents)."""

    title: str
    status: str  # Status value (French name)
    currency: str
    goal_cents: int | None
    cap_cents: int | None
    pledged_cents: int
    contributed_cents: int
    matched_cents: int
    cofunder_names: tuple[str, ...]
    round_name: str
    closes_at: datetime | None = None
    round_closed: bool = False
    referent: str | None = None
    organisations: str | None = None
    next_steps: str | None = None

    @property
    def raised_cents(self) -> int:
        return self.pledged_cents + self.contributed_cents + self.matched_cents

    @property
    def percent(self) -> int:
        return self.raised_cents * 100 // self.goal_cents if self.goal_cents else 0


@dataclass(frozen=True)
class Refusal:
    """A refused pledge, as the outbox row recorded it (see `service.outbox.record`)."""

    reason: str
    currency: str
    balance_cents: int
    kept_cents: int
    params: dict = field(default_factory=dict)


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    """`▰▰▰▱▱▱▱▱▱▱` for 30 %: full cells rounded down, never more than `width`."""
    full = max(0, min(width, percent * width // 100))
    return BAR_FULL * full + BAR_EMPTY * (width - full)


def days_left(closes_at: datetime | None, now: datetime) -> int | None:
    """Whole days until the close, rounded up (None without a closing date; 0 once passed)."""
    if closes_at is None:
        return None
    seconds = (closes_at - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def status_label(status: str, lang: str) -> str:
    """The status in the reader's language (the contract's French names are the message ids)."""
    labels = {
        "idée": t(lang, "idée"),
        "en financement": t(lang, "en financement"),
        "financé": t(lang, "financé"),
        "partiellement financé": t(lang, "partiellement financé"),
        "non financé": t(lang, "non financé"),
        "clos": t(lang, "clos"),
        "annulé": t(lang, "annulé"),
    }
    return labels.get(status, status)


def render_status_post(figures: StatusFigures, lang: str, now: datetime,
                       zone: ZoneInfo | None = None) -> str:
    """The status post's raw Markdown, ending with `MARKER`."""
    money = _money(figures.currency, lang)
    names = list(figures.cofunder_names)
    closes_local = figures.closes_at.astimezone(zone) if figures.closes_at and zone else figures.closes_at
    text = _render("status_post.md.j2", lang,
                   f=figures, money=money, bar=progress_bar(figures.percent),
                   percent=figures.percent, percent_text=_percent(figures.percent, lang),
                   colon=colon(lang), names=names, cofunders=len(names),
                   status=status_label(figures.status, lang),
                   days=None if figures.round_closed else days_left(figures.closes_at, now),
                   closes_on=closes_local.strftime("%d/%m/%Y" if lang == "fr" else "%Y-%m-%d")
                   if closes_local else None,
                   accepting=figures.status in ("en financement", "financé") and not figures.round_closed,
                   room=_room(figures), marker=MARKER)
    return text.strip() + "\n"


def render_refusal_reply(refusal: Refusal, lang: str) -> str:
    """The reply to a refused pledge post: the reason, the remaining balance, what stays in force."""
    sentence = texts.reason(refusal.reason, lang, money_currency=refusal.currency, **refusal.params)
    # A non-member has no envelope in the round: telling them a balance would mislead.
    balance = None if refusal.reason in NO_BALANCE_REASONS else refusal.balance_cents
    return _render("refusal_reply.md.j2", lang, reason=sentence,
                   balance=None if balance is None else format_money(balance, refusal.currency, lang),
                   kept=format_money(refusal.kept_cents, refusal.currency, lang)
                   if refusal.kept_cents else None).strip() + "\n"


def render_command_reply(message: str, lang: str) -> str:
    """The reply to a forum command that could not be carried out (`message` already translated)."""
    return _render("command_reply.md.j2", lang, message=message).strip() + "\n"


def render_funded_notice(figures: StatusFigures, lang: str) -> str:
    """The reply posted once when a commons reaches its goal."""
    names = list(figures.cofunder_names)
    return _render("funded_notice.md.j2", lang, f=figures, money=_money(figures.currency, lang),
                   cofunders=len(names), names=names).strip() + "\n"


def render_round_results(round_name: str, sections: list[tuple[str, list]], currency: str,
                         lang: str) -> str:
    """The results of a closed round, in the sections of CONTRACT §4, for its results topic."""
    titles = {"funded": t(lang, "Financé"), "in_progress": t(lang, "En cours de financement"),
              "unfunded": t(lang, "Non financé"), "ideas": t(lang, "Idées")}
    return _render("round_results.md.j2", lang, round_name=round_name,
                   sections=[(titles[key], lines) for key, lines in sections],
                   money=_money(currency, lang)).strip() + "\n"


def _percent(value: int, lang: str) -> str:
    return f"{value} %" if lang == "fr" else f"{value}%"


def _room(figures: StatusFigures) -> int | None:
    ceiling = figures.cap_cents if figures.cap_cents is not None else figures.goal_cents
    return None if ceiling is None else max(0, ceiling - figures.raised_cents)


def _money(currency: str, lang: str):
    return lambda cents: format_money(cents or 0, currency, lang)


def _render(name: str, lang: str, **context) -> str:
    template = _environment().get_template(name)
    return template.render(
        _=lambda message, **params: t(lang, message, **params),
        ngettext=lambda singular, plural, n, **params: tn(lang, singular, plural, n, **params),
        lang=lang, **context)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined,  # nosec B701: Markdown for Discourse, which sanitises HTML
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                       autoescape=False)
