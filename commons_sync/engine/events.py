"""What happened, in the past tense: the service turns these into outbox rows in the same commit."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """Base of every domain event."""


@dataclass(frozen=True)
class CommonsOpened(Event):
    commons_id: int
    round_id: int


@dataclass(frozen=True)
class FiguresChanged(Event):
    """A commons' raised amount, cofunders or status changed: the status post, fiche and results follow."""

    commons_id: int
    round_id: int


@dataclass(frozen=True)
class CommonsFunded(Event):
    """The commons' raised amount crossed its goal upwards."""

    commons_id: int
    round_id: int


@dataclass(frozen=True)
class PledgeAccepted(Event):
    post_id: int
    commons_id: int
    username: str
    amount_cents: int
    previous_cents: int


@dataclass(frozen=True)
class PledgeWithdrawn(Event):
    post_id: int
    commons_id: int
    username: str
    previous_cents: int


@dataclass(frozen=True)
class PledgeRefused(Event):
    """A pledge or its change was refused; the author is told why and what stays in force."""

    post_id: int
    commons_id: int
    username: str
    reason: str
    balance_cents: int
    kept_cents: int
    version: int = 0
    params: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ContributionRecorded(Event):
    contribution_id: int | None
    commons_id: int
    amount_cents: int


@dataclass(frozen=True)
class PledgesReleased(Event):
    """Pledges of a commons were released by reversing entries (close below threshold, or cancel)."""

    commons_id: int
    round_id: int


@dataclass(frozen=True)
class RoundClosed(Event):
    round_id: int
