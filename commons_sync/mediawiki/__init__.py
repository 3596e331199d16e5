"""The wiki adapter: fiche pages and results pages on MediaWiki, edited through a bot password.

`fiche` decides the wikitext (pure), `wiki` reads and saves it (mwclient), `errors` says what
went wrong.
"""

from commons_sync.mediawiki.errors import (
    EditConflict,
    EditRefused,
    InvalidTitle,
    LoginFailed,
    PageExists,
    WikiError,
    WikiUnavailable,
)
from commons_sync.mediawiki.fiche import (
    EDITORIAL,
    FICHE_PARAMETERS,
    RESULTS_END,
    RESULTS_START,
    FicheUpdate,
    dedupe_title,
    escape_wikitext,
    new_fiche_text,
    page_title_for,
    replace_results_block,
    results_block,
    unescape_wikitext,
    update_fiche,
)
from commons_sync.mediawiki.wiki import (
    PageRevision,
    SyncOutcome,
    Wiki,
    install,
    sync_fiche,
    sync_results_page,
)

__all__ = [
    "EDITORIAL", "FICHE_PARAMETERS", "RESULTS_END", "RESULTS_START", "EditConflict",
    "EditRefused", "FicheUpdate", "InvalidTitle", "LoginFailed", "PageExists", "PageRevision",
    "SyncOutcome", "Wiki", "WikiError", "WikiUnavailable", "dedupe_title", "escape_wikitext",
    "install", "new_fiche_text", "page_title_for", "replace_results_block", "results_block",
    "sync_fiche", "sync_results_page", "unescape_wikitext", "update_fiche",
]
