"""Domain events → outbox rows, in the unit of work's transaction.

Each side effect has a key; effects that show state (a status post, a fiche, a results page) use
one key per commons or round, so a burst of changes coalesces into one pending row and the worker
shows the state at send time. Replies to a post are keyed by post and version: sent once each.
"""

from __future__ import annotations

from commons_sync.engine import events as ev

STATUS_POST = "status_post"
WIKI_FICHE = "wiki_fiche"
WIKI_RESULTS = "wiki_results"
REPLY = "reply"
FUNDED_NOTICE = "funded_notice"
ROUND_RESULTS_POST = "round_results_post"

# Which adapter delivers each kind; the worker skips the kinds of adapters that are off.
ADAPTER_OF = {
    STATUS_POST: "discourse",
    REPLY: "discourse",
    FUNDED_NOTICE: "discourse",
    ROUND_RESULTS_POST: "discourse",
    WIKI_FICHE: "mediawiki",
    WIKI_RESULTS: "mediawiki",
}


def commons_changed(repo, commons_id: int, round_id: int) -> None:
    repo.enqueue(STATUS_POST, f"{STATUS_POST}:{commons_id}", {"commons_id": commons_id})
    repo.enqueue(WIKI_FICHE, f"{WIKI_FICHE}:{commons_id}", {"commons_id": commons_id})
    repo.enqueue(WIKI_RESULTS, f"{WIKI_RESULTS}:{round_id}", {"round_id": round_id})


def record(repo, events) -> None:
    """Write the outbox rows that `events` call for."""
    for event in events:
        if isinstance(event, (ev.FiguresChanged, ev.CommonsOpened, ev.PledgesReleased)):
            commons_changed(repo, event.commons_id, event.round_id)
        elif isinstance(event, ev.PledgeRefused) and event.post_id > 0:
            repo.enqueue(REPLY, f"{REPLY}:refused:{event.post_id}:{event.version}", {
                "post_id": event.post_id, "commons_id": event.commons_id, "reason": event.reason,
                "params": {k: v for k, v in event.params.items() if isinstance(v, (int, str))},
                "balance_cents": event.balance_cents, "kept_cents": event.kept_cents,
            })
        elif isinstance(event, ev.CommonsFunded):
            repo.enqueue(FUNDED_NOTICE, f"{FUNDED_NOTICE}:{event.commons_id}", {"commons_id": event.commons_id})
        elif isinstance(event, ev.RoundClosed):
            repo.enqueue(ROUND_RESULTS_POST, f"{ROUND_RESULTS_POST}:{event.round_id}", {"round_id": event.round_id})
            repo.enqueue(WIKI_RESULTS, f"{WIKI_RESULTS}:{event.round_id}", {"round_id": event.round_id})
