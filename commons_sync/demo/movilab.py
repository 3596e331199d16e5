"""The network's first experiment (Cobudget, May–July 2018) as a replayable plan.

35 lieux received 500 € each; the published results give each proposal's amount and number of
cofunders. The plan splits each amount among that many distinct lieux, always picking those with
the most budget left, so the replay reproduces the published figures exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).with_name("movilab-2018.json")


@dataclass(frozen=True)
class PlannedCommons:
    title: str
    goal_cents: int | None
    raised_cents: int
    cofunders: int
    funded: bool


@dataclass(frozen=True)
class PlannedPledge:
    commons_index: int
    member: str
    amount_cents: int


@dataclass(frozen=True)
class Plan:
    round_name: str
    currency: str
    allocation_cents: int
    members: list[str]
    commons: list[PlannedCommons]
    pledges: list[PlannedPledge]


def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def goal_for_unfinished(raised_cents: int) -> int:
    """Goals were not published for unfinished proposals: half again what they raised, in hundreds."""
    wanted = max(raised_cents * 3 // 2, raised_cents + 10_000, 50_000)
    return -(-wanted // 10_000) * 10_000


def plan(data: dict | None = None) -> Plan:
    data = data or load()
    round_info = data["round"]
    allocation = round_info["allocation_per_member"] * 100
    members = [f"lieu-{n:02d}" for n in range(1, round_info["members"] + 1)]
    commons: list[PlannedCommons] = []
    for item in data["funded"]:
        raised = item["raised"] * 100
        commons.append(PlannedCommons(item["title"], raised, raised, item["cofunders"], True))
    for item in data["in_progress"]:
        raised = item["raised"] * 100
        commons.append(PlannedCommons(item["title"], goal_for_unfinished(raised), raised,
                                      item["cofunders"], False))
    for item in data["ideas"]:
        commons.append(PlannedCommons(item["title"], None, 0, 0, False))

    balance = {m: allocation for m in members}
    pledges: list[PlannedPledge] = []
    for index, c in enumerate(commons):
        if not c.cofunders:
            continue
        base, extra = divmod(c.raised_cents // 100, c.cofunders)
        chosen = sorted(members, key=lambda m: (-balance[m], m))[: c.cofunders]
        for position, member in enumerate(chosen):
            amount = (base + (1 if position < extra else 0)) * 100
            if amount > balance[member]:
                raise ValueError(f"the 2018 figures do not fit the envelopes ({c.title})")
            balance[member] -= amount
            pledges.append(PlannedPledge(index, member, amount))
    # Interleave the pledges across commons, as they came in over the month.
    order = sorted(range(len(pledges)), key=lambda i: (i % 7, i))
    pledges = [pledges[i] for i in order]
    return Plan(data["round"]["name"], round_info["currency"], allocation, members, commons, pledges)
