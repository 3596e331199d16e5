"""Use cases that keep the wiki true: a fiche per commons, a results page per round.

The wiki is called outside any database transaction: the state is read in one unit of work, the
wiki edited, and what came back (the revision, editorial fields a person changed) written in another.
Fiche titles are decided once, stored on the commons (unique), and never change by themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import tzinfo
from typing import Callable, Iterable

from commons_sync.engine.model import Commons, Round, Status
from commons_sync.engine.results import FUNDED, IDEAS, IN_PROGRESS, UNFUNDED
from commons_sync.i18n import format_units, t
from commons_sync.mediawiki import fiche
from commons_sync.mediawiki.errors import EditConflict, PageExists, WikiUnavailable
from commons_sync.mediawiki.wiki import Wiki, sync_fiche, sync_results_page

from . import handlers, outbox
from .handlers import Service

WIKI_SECTIONS = {FUNDED: "Financé", IN_PROGRESS: "En cours de financement", UNFUNDED: "Non financé",
                 IDEAS: "Idées"}
BATCH = 50


def results_title(round_: Round) -> str:
    """The round's results page (CONTRACT §4: `Cofinancement <round name>`)."""
    return fiche.page_title_for(f"Cofinancement {round_.name}")


def fiche_values(commons: Commons, round_: Round, names: list[str], zone: tzinfo) -> dict[str, str]:
    """The template's parameters for a commons: user text escaped, numbers bare (`1340.5`)."""
    bare = lambda cents: "" if cents is None else format_units(cents)  # noqa: E731
    changed = commons.figures_changed_at
    return {
        "nom": fiche.escape_wikitext(commons.title),
        "referent": fiche.escape_wikitext(commons.referent or ""),
        "organisations": fiche.escape_wikitext(commons.organisations or ""),
        "prochaines_etapes": fiche.escape_wikitext(commons.next_steps or ""),
        "espace_discussion": fiche.escape_wikitext(commons.discussion_url or ""),
        "statut": commons.status.value,
        "objectif": bare(commons.goal_cents),
        "plafond": bare(commons.cap_cents),
        "collecte": bare(commons.raised_cents),
        "promesses": bare(commons.pledged_cents),
        "apports": bare(commons.contributed_cents),
        "abondement": bare(commons.matched_cents),
        "pourcentage": str(commons.percent),
        "cofinanceurs": str(len(names)),
        "campagne": fiche.escape_wikitext(round_.name),
        "mise_a_jour": changed.astimezone(zone).date().isoformat() if changed else "",
    }


@dataclass
class FicheState:
    commons_id: int
    title: str
    values: dict[str, str]
    last_written: dict[str, str] | None


def _fiche_states(svc: Service, commons_ids: Iterable[int] | None) -> list[FicheState]:
    """Read what each fiche should say, giving a title to commons that have none yet."""

    def use_case(uow) -> list[FicheState]:
        rounds = {r.id: r for r in uow.repo.rounds()}
        items = (uow.repo.all_commons() if commons_ids is None
                 else [c for c in (uow.repo.commons(i) for i in commons_ids) if c is not None])
        taken = uow.repo.wiki_titles()
        for c in items:
            if c.wiki_title is None:
                c.wiki_title = fiche.dedupe_title(fiche.page_title_for(c.title), taken)
                taken.add(c.wiki_title)
        names = uow.repo.cofunder_names([c.id for c in items])
        states = [FicheState(c.id, c.wiki_title, fiche_values(c, rounds[c.round_id], names.get(c.id, []), svc.zone),
                             uow.repo.wiki_last_written(c.id)) for c in items]
        uow.commit()
        return states

    return svc.run(use_case)


def _keep_off_other_pages(svc: Service, wiki: Wiki, states: list[FicheState]) -> None:
    """A fiche never written yet must not land on a page people wrote for something else.

    When its title is taken on the wiki by a page without our template, the next free title
    (` (2)`, ` (3)`…) is chosen and stored (CONTRACT §4).
    """
    fresh = [s for s in states if s.last_written is None]
    if not fresh:
        return
    existing = {title for title, page in wiki.read_pages([s.title for s in fresh]).items()
                if page.exists and fiche.read_fiche(page.text) is None}
    for state in fresh:
        if state.title not in existing:
            continue
        base, avoid = state.title, set(svc.run(lambda uow: uow.repo.wiki_titles())) | existing
        while True:
            candidate = fiche.dedupe_title(base, avoid)
            page = wiki.read_page(candidate)
            if not page.exists or fiche.read_fiche(page.text) is not None:
                break
            avoid.add(candidate)
        state.title = candidate

        def store(uow, commons_id=state.commons_id, title=candidate) -> None:
            commons = uow.repo.commons(commons_id)
            commons.wiki_title = title
            uow.commit()

        svc.run(store)


def _record(svc: Service, commons_id: int, revid: int, written: dict, from_wiki: dict) -> None:
    """Store what is now on the page, and take in editorial fields a person changed on the wiki."""
    def use_case(uow) -> None:
        commons = uow.repo.commons(commons_id)
        fields = {"referent": "referent", "organisations": "organisations", "prochaines_etapes": "next_steps"}
        changed = False
        for param, attribute in fields.items():
            if param in from_wiki and getattr(commons, attribute) != (from_wiki[param] or None):
                setattr(commons, attribute, from_wiki[param] or None)
                changed = True
        uow.repo.set_wiki_written(commons_id, written, revid)
        if changed:  # the forum's status post shows the wiki's value too
            uow.repo.enqueue(outbox.STATUS_POST, f"{outbox.STATUS_POST}:{commons_id}", {"commons_id": commons_id})
        uow.commit()

    svc.run(use_case)


def sync_commons_fiche(svc: Service, wiki: Wiki, commons_id: int, lang: str = "fr") -> bool:
    """Bring one commons' fiche up to date; True when the wiki was edited."""
    states = _fiche_states(svc, [commons_id])
    if not states:
        return False
    _keep_off_other_pages(svc, wiki, states)
    state = states[0]
    outcome = sync_fiche(wiki, state.title, state.values, state.last_written,
                         t(lang, "commons-sync : mise à jour de la fiche"))
    _record(svc, commons_id, outcome.revid, outcome.written, outcome.from_wiki)
    return outcome.edited


def sync_all_fiches(svc: Service, wiki: Wiki, lang: str = "fr",
                    progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Re-sync every fiche, reading pages 50 titles per query and editing only those that change."""
    states = _fiche_states(svc, None)
    _keep_off_other_pages(svc, wiki, states)
    summary = t(lang, "commons-sync : mise à jour de la fiche")
    counts = {"pages": len(states), "edited": 0}
    for start in range(0, len(states), BATCH):
        batch = states[start:start + BATCH]
        pages = wiki.read_pages([s.title for s in batch])
        for state in batch:
            page = pages.get(state.title)
            try:
                if page is None or not page.exists:
                    revid = wiki.save_page(state.title, fiche.new_fiche_text(state.values), base_revid=None,
                                           summary=summary)
                    edited, written, from_wiki = True, dict(state.values), {}
                else:
                    update = fiche.update_fiche(page.text, state.values, state.last_written)
                    revid, edited = page.revid, update.changed
                    if update.changed:
                        revid = wiki.save_page(state.title, update.text, base_revid=page.revid, summary=summary)
                    written, from_wiki = update.written, update.from_wiki
            except (EditConflict, PageExists):  # someone edited meanwhile: the careful path
                outcome = sync_fiche(wiki, state.title, state.values, state.last_written, summary)
                revid, edited, written, from_wiki = outcome.revid, outcome.edited, outcome.written, outcome.from_wiki
            counts["edited"] += int(edited)
            if edited or from_wiki or state.last_written != written:
                _record(svc, state.commons_id, revid, written, from_wiki)
            if progress:
                progress(1)
    return counts


def results_block_for(svc: Service, round_id: int) -> tuple[str, str]:
    """The results page's title and the service's block for the round (CONTRACT §4)."""

    def use_case(uow):
        round_ = uow.repo.round(round_id)
        results = handlers._results(uow, round_)
        titles = {c.id: c.wiki_title for c in uow.repo.commons_of_round(round_id)}
        return round_, results, titles

    round_, results, titles = svc.run(use_case)
    sections = []
    for key, lines in results.nonempty():
        sections.append((WIKI_SECTIONS[key], [{
            "page": titles.get(line.commons_id) or fiche.page_title_for(line.title), "name": line.title,
            "amount_cents": line.raised_cents, "currency": round_.currency, "cofunders": line.cofunders,
            "partial": line.status is Status.PARTIAL} for line in lines]))
    return results_title(round_), fiche.results_block(sections)


def sync_round_results(svc: Service, wiki: Wiki, round_id: int, lang: str = "fr") -> bool:
    title, block = results_block_for(svc, round_id)
    return sync_results_page(wiki, title, block, t(lang, "commons-sync : résultats de la campagne")).edited


class WikiSenders:
    """Sends the wiki's outbox kinds (`wiki_fiche`, `wiki_results`) through one logged-in gateway.

    The gateway is opened on first use and dropped after a failure, so a wiki that was down is
    logged into again when it is back; the worker keeps the row and backs off meanwhile.
    """

    def __init__(self, svc: Service, connect: Callable[[], Wiki], lang: str = "fr",
                 pause_seconds: float = 30.0) -> None:
        self.svc, self._connect, self.lang = svc, connect, lang
        self.pause_seconds = pause_seconds
        self._wiki: Wiki | None = None
        self._down_until = 0.0

    def senders(self) -> dict[str, Callable[[dict], object]]:
        return {outbox.WIKI_FICHE: self.send_fiche, outbox.WIKI_RESULTS: self.send_results}

    def _with_wiki(self, action):
        # A wiki found down is not asked again for a while: the other rows of the pass fail at
        # once and back off, instead of each waiting out the gateway's own patience.
        started = time.monotonic()
        if started < self._down_until:
            raise WikiUnavailable("the wiki was unreachable moments ago")
        try:
            if self._wiki is None:
                self._wiki = self._connect()
            return action(self._wiki)
        except WikiUnavailable:
            self._wiki = None
            # Counted from when this try began, so the worker's next probe of the wiki really asks;
            # at least the rest of this pass, however long the failed try took.
            self._down_until = max(started + self.pause_seconds, time.monotonic() + 1.0)
            raise
        except Exception:
            self._wiki = None
            raise

    def send_fiche(self, payload: dict) -> None:
        self._with_wiki(lambda wiki: sync_commons_fiche(self.svc, wiki, payload["commons_id"], self.lang))

    def send_results(self, payload: dict) -> None:
        self._with_wiki(lambda wiki: sync_round_results(self.svc, wiki, payload["round_id"], self.lang))
