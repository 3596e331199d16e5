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

# Kinds that show a state: a burst of changes waits for a quiet moment and makes one edit.
SETTLING_KINDS = frozenset({STATUS_POST, WIKI_FICHE, WIKI_RESULTS})

# The peer each kind talks to: when a peer answers again after failures, its rows that were
# backing off go at once (the forum's API ceiling still paces them). Reminders and notices are
# left out: they are spread over time on purpose.
PEER_KINDS: dict[str, frozenset[str]] = {
    "forum": frozenset({STATUS_POST, REPLY, FUNDED_NOTICE, ROUND_RESULTS_POST}),
    "wiki": frozenset({WIKI_FICHE, WIKI_RESULTS}),
}


def peer_of(kind: str) -> str | None:
    return next((peer for peer, kinds in PEER_KINDS.items() if kind in kinds), None)



def _commons_rows(commons_id: int, round_id: int) -> list[tuple[str, str, dict]]:
    return [(STATUS_POST, f"{STATUS_POST}:{commons_id}", {"commons_id": commons_id}),
            (WIKI_FICHE, f"{WIKI_FICHE}:{commons_id}", {"commons_id": commons_id}),
            (WIKI_RESULTS, f"{WIKI_RESULTS}:{round_id}", {"round_id": round_id})]


def commons_changed(repo, commons_id: int, round_id: int) -> None:
    """The commons' status post, fiche and its round's results page must follow."""
    repo.enqueue_many(_commons_rows(commons_id, round_id))


def rows_for(events) -> list[tuple[str, str, dict]]:
    """The outbox rows that `events` call for, one per key (the last payload wins)."""
    rows: dict[str, tuple[str, str, dict]] = {}

    def add(kind: str, key: str, payload: dict) -> None:
        rows.pop(key, None)
        rows[key] = (kind, key, payload)

    for event in events:
        if isinstance(event, (ev.FiguresChanged, ev.CommonsOpened, ev.PledgesReleased)):
            for row in _commons_rows(event.commons_id, event.round_id):
                add(*row)
        elif isinstance(event, ev.PledgeRefused) and event.post_id > 0:
            add(REPLY, f"{REPLY}:refused:{event.post_id}:{event.version}", {
                "post_id": event.post_id, "commons_id": event.commons_id, "reason": event.reason,
                "params": {k: v for k, v in event.params.items() if isinstance(v, (int, str))},
                "balance_cents": event.balance_cents, "kept_cents": event.kept_cents,
            })
        elif isinstance(event, ev.CommonsFunded):
            add(FUNDED_NOTICE, f"{FUNDED_NOTICE}:{event.commons_id}", {"commons_id": event.commons_id})
        elif isinstance(event, ev.RoundClosed):
            add(ROUND_RESULTS_POST, f"{ROUND_RESULTS_POST}:{event.round_id}", {"round_id": event.round_id})
            add(WIKI_RESULTS, f"{WIKI_RESULTS}:{event.round_id}", {"round_id": event.round_id})
    return list(rows.values())


def record(repo, events) -> None:
    """Write the outbox rows that `events` call for, in one round trip."""
    repo.enqueue_many(rows_for(events))
