"""Small builders for engine tests: a round, a commons, accounts and pledge contexts in memory."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction

from commons_sync.engine import rules
from commons_sync.engine.model import Commons, MatchingRule, MemberAccount, Pledge, Round, Status

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def make_round(**overrides) -> Round:
    values = dict(id=1, slug="r", name="Round", currency="EUR", allocation_cents=50_000,
                  group="lieux", opens_at=NOW - timedelta(days=1), closes_at=NOW + timedelta(days=30))
    values.update(overrides)
    return Round(**values)


def matching(ratio="1", pool=100_000, cap=None, group=None) -> MatchingRule:
    return MatchingRule(Fraction(ratio), pool, cap, group)


def make_commons(round_: Round, goal=100_000, cap=None, commons_id=1, **overrides) -> Commons:
    values = dict(id=commons_id, round_id=round_.id, title=f"Commun {commons_id}", goal_cents=goal,
                  cap_cents=cap, status=Status.FUNDING if goal else Status.IDEA, topic_id=100 + commons_id)
    values.update(overrides)
    return Commons(**values)


class World:
    """One round with commons and members, applying post changes through the engine's rules."""

    def __init__(self, round_: Round | None = None, commons: list[Commons] | None = None, now=NOW):
        self.round = round_ or make_round()
        self.commons = {c.id: c for c in (commons or [make_commons(self.round)])}
        self.accounts: dict[str, MemberAccount] = {}
        self.pledges: dict[int, Pledge] = {}
        self.entries = []
        self.events = []
        self.now = now
        self.members: set[str] | None = None  # None: everybody is a member
        self.eligible: set[str] = set()

    def account(self, username: str) -> MemberAccount:
        if username not in self.accounts:
            self.accounts[username] = MemberAccount(self.round.id, username)
        account = self.accounts[username]
        self.entries += rules.credit_due(account, self.round, self.now)
        return account

    def context(self, post_id: int, username: str, commons_id: int = 1) -> rules.PledgeContext:
        pledge = self.pledges.setdefault(
            post_id, Pledge(post_id, self.round.id, commons_id, username, post_number=post_id + 10))
        return rules.PledgeContext(self.round, self.commons[pledge.commons_id], self.account(pledge.username),
                                   pledge, self.now,
                                   is_member=self.members is None or pledge.username in self.members,
                                   matching_eligible=pledge.username in self.eligible)

    def _keep(self, outcome):
        self.entries += outcome.entries
        self.events += outcome.events
        return outcome

    def post(self, post_id, username, amount, version=1, commons_id=1, error=None, deleted=False):
        ctx = self.context(post_id, username, commons_id)
        return self._keep(rules.apply_snapshot(ctx, rules.Snapshot(version, amount, error, deleted)))

    def destroy(self, post_id):
        pledge = self.pledges[post_id]
        return self._keep(rules.apply_destroyed(self.context(post_id, pledge.username)))

    def recover(self, post_id):
        pledge = self.pledges[post_id]
        return self._keep(rules.apply_recovered(self.context(post_id, pledge.username)))

    def balance(self, username: str) -> int:
        return self.account(username).balance_cents
