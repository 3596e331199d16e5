"""The forum texts of a round's life (reminders, thanks, results, cancel notices), rendered from Jinja.

Same set-up as `discourse.status_post`: templates in `templates/discourse/`, `_()` and `ngettext()`
bound to the language, the French text as message id (Babel's Jinja extractor finds them).
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from commons_sync.discourse.status_post import TEMPLATES_DIR
from commons_sync.i18n import format_money, t, tn


def money(currency: str, lang: str):
    """A formatter of cents in `currency` for `lang` ("1 340 €" / "€1,340")."""
    return lambda cents: format_money(cents or 0, currency, lang)


def render(name: str, lang: str, **context) -> str:
    """Render `templates/discourse/<name>` in `lang`, trimmed, with one final newline."""
    template = _environment().get_template(name)
    return template.render(
        _=lambda message, **params: t(lang, message, **params),
        ngettext=lambda singular, plural, n, **params: tn(lang, singular, plural, n, **params),
        lang=lang, **context).strip() + "\n"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined,  # nosec B701: Markdown for Discourse, which sanitises HTML
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                       autoescape=False)
