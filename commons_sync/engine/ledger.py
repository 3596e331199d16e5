"""Totals derived from the ledger alone: the reference the stored projections are checked against."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .model import Entry, EntryKind

_CREDITS = (EntryKind.ALLOCATION, EntryKind.GRANT, EntryKind.EXPIRY)
_PLEDGES = (EntryKind.PLEDGE, EntryKind.RELEASE)
_MATCHING = (EntryKind.MATCHING, EntryKind.MATCHING_RELEASE)


@dataclass
class Projection:
    """Sums of the ledger: per member account, per commons, and matching used per round."""

    credited: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    pledged_by_member: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    pledged: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    contributed: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    matched: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    matching_used: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def balance(self, round_id: int, username: str) -> int:
        key = (round_id, username)
        return self.credited[key] - self.pledged_by_member[key]

    def raised(self, commons_id: int) -> int:
        return self.pledged[commons_id] + self.contributed[commons_id] + self.matched[commons_id]


def project(entries: Iterable[Entry]) -> Projection:
    """Recompute every balance and total from the entries."""
    totals = Projection()
    for entry in entries:
        kind = EntryKind(entry.kind)
        if kind in _CREDITS:
            totals.credited[(entry.round_id, entry.username)] += entry.amount_cents
        elif kind in _PLEDGES:
            totals.pledged_by_member[(entry.round_id, entry.username)] += entry.amount_cents
            totals.pledged[entry.commons_id] += entry.amount_cents
        elif kind in _MATCHING:
            totals.matched[entry.commons_id] += entry.amount_cents
            totals.matching_used[entry.round_id] += entry.amount_cents
        elif kind is EntryKind.CONTRIBUTION:
            totals.contributed[entry.commons_id] += entry.amount_cents
    return totals


def cofunders(live_pledges: Iterable[tuple[int, str, int]],
              contributions: Iterable[tuple[int, str | None]]) -> dict[int, set[str]]:
    """Distinct members with a live pledge or a contribution, per commons.

    Args:
        live_pledges: (commons_id, username, amount in force) for each pledge post.
        contributions: (commons_id, username or None) for each contribution.
    """
    names: dict[int, set[str]] = defaultdict(set)
    for commons_id, username, amount in live_pledges:
        if amount > 0:
            names[commons_id].add(username)
    for commons_id, username in contributions:
        if username:
            names[commons_id].add(username)
    return names
