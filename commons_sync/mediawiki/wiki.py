"""The wiki as the service sees it: read pages, save them safely, keep fiches and results up to date.

`Wiki` is a small gateway over mwclient named after what the wiki does. Saving always goes through
`action=edit` with `baserevid` (never `basetimestamp`), so MediaWiki reports every conflict — even
with ourselves — and `createonly` for creations; mwclient's `Page.edit` cannot do that, so the
gateway posts the edit itself with a CSRF token. mwclient's own retry loop is switched off
(`max_retries=0`): the gateway retries within its `patience`, honours `Retry-After` (5xx, 429,
maxlag), and otherwise raises `WikiUnavailable` at once so the worker's outbox backs off.

`sync_fiche`, `sync_results_page` and `install` are the three things the service asks of the wiki.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import mwclient
import mwclient.errors
import requests

from commons_sync.i18n import t
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
    FicheUpdate,
    new_fiche_text,
    replace_results_block,
    update_fiche,
)

log = logging.getLogger(__name__)

USER_AGENT = "commons-sync/0.1 (co-funding of communs; MediaWiki adapter)"
TITLES_PER_QUERY = 50
SESSION_CODES = {"assertuserfailed", "assertbotfailed", "assertnameduserfailed", "badtoken",
                 "notloggedin"}
UNAVAILABLE_CODES = {"readonly", "maxlag", "ratelimited", "internal_api_error_DBConnectionError",
                     "internal_api_error_DBQueryError"}
CONFLICT_CODES = {"editconflict", "missingtitle", "pagedeleted"}


@dataclass(frozen=True)
class PageRevision:
    """A page's current revision: its wikitext and revision id (`exists` False: no such page)."""

    title: str
    text: str
    revid: int | None
    exists: bool


@dataclass(frozen=True)
class ParsedPage:
    """A page as readers see it: the HTML of its content and its categories (names, no prefix)."""

    html: str
    categories: list[str]


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class Wiki:
    """A MediaWiki the service edits through a bot password.

    Build it with `Wiki.connect(api_url, username, password)`.

    Args:
        site: a logged-in mwclient Site built with `max_retries=0`.
        patience: seconds the gateway may spend waiting and retrying one call before raising
            `WikiUnavailable`.
        max_lag: the `maxlag` sent with every call (seconds of replication lag we tolerate).
    """

    def __init__(self, site: mwclient.Site, *, patience: float = 10.0, max_lag: int = 5,
                 credentials: tuple[str, str] | None = None) -> None:
        self.site = site
        self.patience = patience
        self.max_lag = max_lag
        self._credentials = credentials
        self._last_response: requests.Response | None = None
        self.request_count = 0
        site.connection.hooks.setdefault("response", []).append(self._record_response)

    def _record_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.request_count += 1
        self._last_response = response

    @classmethod
    def connect(cls, api_url: str, username: str, password: str, *, patience: float = 10.0,
                max_lag: int = 5, timeout: float = 30.0) -> "Wiki":
        """Log in to the wiki whose `api.php` is at `api_url` with a bot password.

        Args:
            api_url: e.g. `https://wiki.example.org/w/api.php`.
            username: `User@botname`.
            password: the bot password's secret.

        Raises:
            WikiUnavailable: the wiki could not be reached within `patience`.
            LoginFailed: the credentials were refused.
            WikiError: `api_url` is not an api.php URL, or the answer was not the API's.
        """
        parts = urlsplit(api_url)
        directory, _, script = parts.path.rpartition("/")
        if parts.scheme not in ("http", "https") or not parts.netloc or not script.startswith("api"):
            raise WikiError(f"not an api.php URL: {api_url!r}")
        ext = script[len("api"):]
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        site = mwclient.Site(
            parts.netloc, path=directory + "/", ext=ext, scheme=parts.scheme, pool=session,
            max_retries=0, retry_timeout=0, connection_options={"timeout": timeout},
            max_lag=max_lag, do_init=False,
        )
        wiki = cls(site, patience=patience, max_lag=max_lag, credentials=(username, password))
        wiki._retrying(site.site_init)
        wiki._login()
        return wiki

    # -- plumbing ---------------------------------------------------------------------------

    def _login(self) -> None:
        if self._credentials is None:
            return
        username, password = self._credentials
        try:
            self._retrying(lambda: self.site.login(username, password))
        except mwclient.errors.LoginError as e:
            raise LoginFailed(f"login as {username!r} refused: {e.args[1:]!r}") from None
        except mwclient.errors.APIError as e:
            raise LoginFailed(f"login as {username!r} refused: {e.code}") from None

    def _retrying(self, call):
        """Run `call`, retrying transient failures within `patience`, else WikiUnavailable."""
        deadline = time.monotonic() + self.patience
        delay = 0.25
        while True:
            try:
                return call()
            except (requests.ConnectionError, requests.Timeout) as e:
                reason, retry_after = f"cannot reach the wiki: {type(e).__name__}", None
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else 0
                if not (status == 429 or 500 <= status < 600):
                    raise WikiError(f"the wiki answered HTTP {status}") from None
                reason, retry_after = f"the wiki answered HTTP {status}", _retry_after(e.response)
            except mwclient.errors.MaximumRetriesExceeded:
                # mwclient gives up at once on a lagged database (X-Database-Lag) or DB errors.
                reason, retry_after = "the wiki asks us to wait (maxlag)", _retry_after(self._last_response)
            except mwclient.errors.APIError as e:
                if e.code not in UNAVAILABLE_CODES:
                    raise
                reason, retry_after = f"the wiki is unavailable: {e.code}", _retry_after(self._last_response)
            except mwclient.errors.InvalidResponse:
                raise WikiError("the answer was not the MediaWiki API's (check the api.php URL)") from None
            wait = retry_after if retry_after is not None else delay
            if time.monotonic() + wait > deadline:
                raise WikiUnavailable(reason, retry_after=retry_after)
            log.info("%s; retrying in %.1f s", reason, wait)
            time.sleep(wait)
            delay = min(delay * 2, 8.0)

    def _api(self, method: str, action: str, **params: Any) -> dict:
        params.setdefault("maxlag", self.max_lag)
        return self._retrying(lambda: self.site.api(action, method, **params))

    def _token(self, force: bool = False) -> str:
        return self._retrying(lambda: self.site.get_token("csrf", force=force))

    # -- what the wiki does -----------------------------------------------------------------

    def read_pages(self, titles: Iterable[str]) -> dict[str, PageRevision]:
        """The current revision of each page, 50 titles per API query.

        Returns a dict keyed by the titles as given (the wiki may normalise them: `_`, first
        letter); a missing page has `exists=False`, `text=""`, `revid=None`.

        Raises:
            InvalidTitle: a title MediaWiki cannot accept.
            WikiUnavailable: the wiki could not be reached within `patience`.
        """
        asked = list(dict.fromkeys(titles))
        result: dict[str, PageRevision] = {}
        for i in range(0, len(asked), TITLES_PER_QUERY):
            batch = asked[i:i + TITLES_PER_QUERY]
            for title in batch:
                if "|" in title or not title.strip():
                    raise InvalidTitle(title)
            pages: dict[str, dict] = {}
            aliases: dict[str, str] = {}
            extra: dict[str, Any] = {}
            while True:
                data = self._api("GET", "query", prop="revisions", rvprop="ids|content",
                                 rvslots="main", titles="|".join(batch), formatversion=2,
                                 **extra)
                query = data.get("query", {})
                for item in query.get("normalized", []):
                    aliases[item["from"]] = item["to"]
                for page in query.get("pages", []):
                    known = pages.setdefault(page["title"], page)
                    if "revisions" in page:
                        known["revisions"] = page["revisions"]
                if "continue" not in data:
                    break
                extra = {k: v for k, v in data["continue"].items()}
            for title in batch:
                page = pages.get(aliases.get(title, title))
                if page is None or page.get("invalid"):
                    raise InvalidTitle(title)
                if page.get("missing") or not page.get("revisions"):
                    result[title] = PageRevision(page["title"], "", None, False)
                    continue
                revision = page["revisions"][0]
                text = revision["slots"]["main"].get("content", "")
                result[title] = PageRevision(page["title"], text, int(revision["revid"]), True)
        return result

    def read_page(self, title: str) -> PageRevision:
        """The current revision of one page (see `read_pages`)."""
        return self.read_pages([title])[title]

    def save_page(self, title: str, text: str, *, base_revid: int | None, summary: str) -> int:
        """Save `text` as a bot edit and return the new revision id.

        `base_revid=None` creates the page (`createonly`); otherwise the edit is based on that
        revision (`baserevid`, `nocreate`) and fails if anyone — ourselves included — saved since.
        Saving the same text as the current revision makes no revision and returns its id.

        Raises:
            EditConflict: the page changed or was deleted since `base_revid`.
            PageExists: creating a page that is already there.
            EditRefused: protection, block, filters.
            WikiUnavailable: the wiki could not be reached within `patience`.
        """
        params: dict[str, Any] = {"title": title, "text": text, "summary": summary, "bot": 1,
                                  "assert": "user", "formatversion": 2}
        if base_revid is None:
            params["createonly"] = 1
        else:
            params["baserevid"] = base_revid
            params["nocreate"] = 1
        for attempt in (1, 2):
            try:
                data = self._api("POST", "edit", token=self._token(force=attempt > 1), **params)
                break
            except mwclient.errors.APIError as e:
                if e.code in SESSION_CODES and attempt == 1:
                    self._login()
                    continue
                if e.code in CONFLICT_CODES:
                    raise EditConflict(title) from None
                if e.code == "articleexists":
                    raise PageExists(title) from None
                if e.code in ("invalidtitle", "badtitle"):
                    raise InvalidTitle(title) from None
                raise EditRefused(title, e.code or "", e.info or "") from None
        edit = data["edit"]
        if edit.get("result") != "Success":
            raise EditRefused(title, str(edit.get("result")), str(edit))
        if "newrevid" in edit:
            return int(edit["newrevid"])
        return int(self.read_page(title).revid or 0)  # "nochange": the text was already there

    def parse(self, title: str) -> ParsedPage:
        """The page's rendered HTML and its categories, as readers see them."""
        data = self._api("GET", "parse", page=title, prop="text|categories",
                         disablelimitreport=1, disableeditsection=1, formatversion=2)
        parse = data["parse"]
        return ParsedPage(parse["text"], [c["category"].replace("_", " ")
                                          for c in parse.get("categories", [])])

    def parse_html(self, title: str) -> str:
        """The page's rendered HTML."""
        return self.parse(title).html

    def purge(self, titles: Iterable[str]) -> None:
        """Re-render pages and refresh their links and categories (jobs do not run on api.php)."""
        titles = list(titles)
        for i in range(0, len(titles), TITLES_PER_QUERY):
            self._api("POST", "purge", titles="|".join(titles[i:i + TITLES_PER_QUERY]),
                      forcelinkupdate=1)

    def pages_using(self, template: str) -> list[str]:
        """Titles of the pages that transclude `template`."""
        titles: list[str] = []
        extra: dict[str, Any] = {}
        while True:
            data = self._api("GET", "query", list="embeddedin", eititle=template, eilimit="max",
                             formatversion=2, **extra)
            titles += [p["title"] for p in data["query"]["embeddedin"]]
            if "continue" not in data:
                return titles
            extra = dict(data["continue"])

    def revision_count(self, title: str) -> int:
        """How many revisions the page has (0 when missing)."""
        count, extra = 0, {}
        while True:
            data = self._api("GET", "query", prop="revisions", titles=title, rvprop="ids",
                             rvlimit="max", formatversion=2, **extra)
            page = data["query"]["pages"][0]
            count += len(page.get("revisions", []))
            if "continue" not in data:
                return count
            extra = dict(data["continue"])


# -- what the service asks of the wiki ----------------------------------------------------------


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync did: the page's revision now, whether we edited, and what people changed.

    `from_wiki`: editorial parameters a person changed on the wiki (as typed), for the service to
    take in. `written`: the parameters' source as now on the page; pass it as `last_written` next
    time.
    """

    revid: int
    edited: bool
    from_wiki: dict[str, str] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)


def sync_fiche(wiki: Wiki, title: str, values: Mapping[str, str],
               last_written: Mapping[str, str] | None, summary: str, *,
               attempts: int = 5) -> SyncOutcome:
    """Bring the fiche `title` up to date with `values`, editing only if something changes.

    Reads the page, edits the template's parameters in the parse tree (`update_fiche`), saves on
    that revision; on an edit conflict reads the fresh revision and does it again, so neither the
    person's edit nor ours is lost. A missing page is created (`new_fiche_text`).

    Raises:
        EditConflict: still conflicting after `attempts` tries.
        WikiUnavailable, EditRefused, InvalidTitle: from the gateway.
    """
    for _ in range(attempts):
        page = wiki.read_page(title)
        try:
            if not page.exists:
                revid = wiki.save_page(title, new_fiche_text(values), base_revid=None,
                                       summary=summary)
                return SyncOutcome(revid, True, {}, dict(values))
            update: FicheUpdate = update_fiche(page.text, values, last_written)
            if not update.changed:
                return SyncOutcome(page.revid or 0, False, update.from_wiki, update.written)
            revid = wiki.save_page(title, update.text, base_revid=page.revid, summary=summary)
            return SyncOutcome(revid, True, update.from_wiki, update.written)
        except (EditConflict, PageExists):
            log.info("edit conflict on %r; reading the fresh revision", title)
    raise EditConflict(title)


def sync_results_page(wiki: Wiki, title: str, block: str, summary: str, *,
                      attempts: int = 5) -> SyncOutcome:
    """Replace the service's block of a results page (creating the page if needed).

    Only the text between the markers changes; a conflict is retried on the fresh revision.
    """
    for _ in range(attempts):
        page = wiki.read_page(title)
        text = replace_results_block(page.text, block)
        if page.exists and text.rstrip() == page.text.rstrip():
            return SyncOutcome(page.revid or 0, False)
        try:
            revid = wiki.save_page(title, text, base_revid=page.revid if page.exists else None,
                                   summary=summary)
            return SyncOutcome(revid, True)
        except (EditConflict, PageExists):
            log.info("edit conflict on %r; reading the fresh revision", title)
    raise EditConflict(title)


# -- the template, its documentation and the category ------------------------------------------

WIKI_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "wiki"
TEMPLATE_TITLE = "Modèle:Fiche commun"
TEMPLATE_DOC_TITLE = "Modèle:Fiche commun/doc"
CATEGORY_TITLE = "Catégorie:Communs"
INSTALLED_PAGES = {
    TEMPLATE_TITLE: "fiche_commun.wikitext",
    TEMPLATE_DOC_TITLE: "fiche_commun_doc.wikitext",
    CATEGORY_TITLE: "categorie_communs.wikitext",
}


def installed_text(title: str) -> str:
    """The wikitext `install` writes on `title` (from `templates/wiki/`)."""
    return (WIKI_TEMPLATES_DIR / INSTALLED_PAGES[title]).read_text(encoding="utf-8").rstrip() + "\n"


def install(wiki: Wiki, lang: str = "fr") -> list[str]:
    """Create or update `Modèle:Fiche commun`, its documentation and `Catégorie:Communs`.

    Idempotent: a page already holding the current text is not edited. When the template
    changed, the pages using it are purged so their rendering and categories follow (MediaWiki
    runs no jobs from api.php). Returns the titles edited.
    """
    current = wiki.read_pages(INSTALLED_PAGES)
    summary = t(lang, "commons-sync : installation du modèle Fiche commun")
    edited = []
    for title in INSTALLED_PAGES:
        page, text = current[title], installed_text(title)
        if page.exists and page.text.rstrip() == text.rstrip():
            continue
        wiki.save_page(title, text, base_revid=page.revid if page.exists else None,
                       summary=summary)
        edited.append(title)
    if TEMPLATE_TITLE in edited and current[TEMPLATE_TITLE].exists:
        wiki.purge(wiki.pages_using(TEMPLATE_TITLE))
    return edited
