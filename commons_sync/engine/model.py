"""The domain: rounds, member accounts, commons, pledges, contributions and ledger entries.

Plain dataclasses, no I/O. Money is integer cents. Totals kept on `Commons`, `MemberAccount` and
`Round` are projections of the ledger (each change appends entries and updates them together, in
`rules`); `ledger.project()` recomputes them from the entries alone, and the tests check both agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction


class Status(str, enum.Enum):
    """A commons' status, with the contract's French names as values."""

    IDEA = "idée"
    FUNDING = "en financement"
    FUNDED = "financé"
    PARTIAL = "partiellement financé"
    UNFUNDED = "non financé"
    DONE = "clos"
    CANCELLED = "annulé"


class EntryKind(str, enum.Enum):
    """What a ledger entry records. Signs: credits and pledges positive, reversals negative."""

    ALLOCATION = "allocation"            # a member is credited the round's allocation (a period)
    GRANT = "grant"                      # staff add to (or set) a member's allocation
    EXPIRY = "expiry"                    # unspent balance expires at a recurring round's anniversary
    PLEDGE = "pledge"                    # a pledge's amount in force changes by `amount`
    MATCHING = "matching"                # the matching attached to a pledge changes by `amount`
    CONTRIBUTION = "contribution"        # money recorded by staff from outside the forum
    RELEASE = "release"                  # reversing entry: a pledge released at close or cancel
    MATCHING_RELEASE = "matching_release"  # reversing entry: its matching back to the pool


class PaymentState(str, enum.Enum):
    """Money followed after the promise: pledged → invoiced → paid."""

    PLEDGED = "pledged"
    INVOICED = "invoiced"
    PAID = "paid"

    def rank(self) -> int:
        return list(PaymentState).index(self)


class PledgeState(str, enum.Enum):
    """Where a pledge post stands."""

    LIVE = "live"            # an amount is in force
    NONE = "none"            # no amount in force (no line, withdrawn, deleted, refused first time)
    RELEASED = "released"    # released at close or cancel; never comes back


@dataclass
class MatchingRule:
    """Each unit pledged by an eligible member triggers `ratio` units from `pool_cents`."""

    ratio: Fraction
    pool_cents: int
    cap_per_commons_cents: int | None = None
    group: str | None = None

    def wanted(self, amount_cents: int) -> int:
        return int(amount_cents * self.ratio)  # floor: matching never rounds money up


@dataclass
class Round:
    """A funding round (campagne)."""

    slug: str
    name: str
    currency: str
    allocation_cents: int
    group: str
    opens_at: datetime
    closes_at: datetime | None = None
    recurring: str | None = None          # None or "yearly"
    unspent: str = "carry"                # "carry" or "expire"
    matching: MatchingRule | None = None
    partial_threshold_pct: int | None = None
    remind_days: tuple[int, ...] = (7, 2)
    results_topic_id: int | None = None
    closed_at: datetime | None = None
    matching_used_cents: int = 0
    id: int | None = None

    def is_open(self, now: datetime) -> bool:
        return (
            self.closed_at is None
            and now >= self.opens_at
            and (self.closes_at is None or now < self.closes_at)
        )

    def status(self, now: datetime) -> str:
        if self.closed_at is not None:
            return "closed"
        if now < self.opens_at:
            return "scheduled"
        if self.closes_at is not None and now >= self.closes_at:
            return "closing"  # past its date; the worker closes it
        return "open"

    def periods_due(self, now: datetime) -> int:
        """How many allocation periods have started by `now` (1 for a one-off round)."""
        if self.recurring != "yearly" or now < self.opens_at:
            return 1
        years = now.year - self.opens_at.year
        if (now.month, now.day, now.time()) < (
            self.opens_at.month, self.opens_at.day, self.opens_at.time()
        ):
            years -= 1
        return years + 1

    @property
    def matching_left_cents(self) -> int:
        return self.matching.pool_cents - self.matching_used_cents if self.matching else 0


@dataclass
class MemberAccount:
    """A member's envelope in one round: credited (allocations + grants − expiries) and pledged."""

    round_id: int
    username: str
    credited_cents: int = 0
    pledged_cents: int = 0
    periods_credited: int = 0
    id: int | None = None

    @property
    def balance_cents(self) -> int:
        return self.credited_cents - self.pledged_cents


@dataclass
class Commons:
    """A resource proposed for co-funding (commun)."""

    round_id: int
    title: str
    goal_cents: int | None
    cap_cents: int | None = None
    status: Status = Status.FUNDING
    topic_id: int | None = None
    first_post_number: int = 0            # pledge posts must come after this post number
    referent: str | None = None
    organisations: str | None = None
    next_steps: str | None = None
    discussion_url: str | None = None
    wiki_title: str | None = None
    pledged_cents: int = 0
    contributed_cents: int = 0
    matched_cents: int = 0
    closed_raised_cents: int | None = None
    closed_cofunders: int | None = None
    figures_changed_at: datetime | None = None
    id: int | None = None

    @property
    def raised_cents(self) -> int:
        return self.pledged_cents + self.contributed_cents + self.matched_cents

    @property
    def ceiling_cents(self) -> int | None:
        """Pledges are accepted up to the cap; without a cap, the goal is the cap."""
        return self.cap_cents if self.cap_cents is not None else self.goal_cents

    @property
    def percent(self) -> int:
        if not self.goal_cents:
            return 0
        return self.raised_cents * 100 // self.goal_cents


@dataclass
class Pledge:
    """A pledge post: keyed by the forum post that made it, judged by its newest version."""

    post_id: int
    round_id: int
    commons_id: int
    username: str
    version: int = 0                      # highest snapshot version applied
    requested_cents: int | None = None    # the amount in that snapshot (None: no pledge line)
    requested_error: str | None = None    # the snapshot's line was unreadable (reason code)
    amount_cents: int = 0                 # the amount in force
    kept_version: int = 0                 # the version whose amount is in force
    matched_cents: int = 0
    deleted: bool = False
    state: PledgeState = PledgeState.NONE
    refusal: str | None = None            # reason code of the standing refusal
    payment: PaymentState = PaymentState.PLEDGED
    post_number: int | None = None
    matching_eligible: bool = False
    id: int | None = None


@dataclass
class Contribution:
    """Money recorded by staff from outside the forum (apport, e.g. a "sur-adhésion")."""

    commons_id: int
    round_id: int
    amount_cents: int
    source: str
    username: str | None = None
    payment: PaymentState = PaymentState.PLEDGED
    created_at: datetime | None = None
    id: int | None = None


@dataclass
class Entry:
    """One append-only ledger line. Every balance, total and cofunder count derives from these."""

    kind: EntryKind
    amount_cents: int
    round_id: int
    commons_id: int | None = None
    username: str | None = None
    pledge_post_id: int | None = None
    contribution_id: int | None = None
    note: str | None = None
    at: datetime | None = None
    id: int | None = None


@dataclass
class Outcome:
    """What a use case decided: the entries to append and the events that follow."""

    entries: list[Entry] = field(default_factory=list)
    events: list[object] = field(default_factory=list)

    def extend(self, other: "Outcome") -> "Outcome":
        self.entries.extend(other.entries)
        self.events.extend(other.events)
        return self
