"""The money rules, on plain objects: pledges, refusals, versions, matching, close, recurring rounds."""

from datetime import timedelta

import pytest

from commons_sync.engine import events as ev
from commons_sync.engine import rules
from commons_sync.engine.errors import InvalidOperation
from commons_sync.engine.ledger import project
from commons_sync.engine.model import Contribution, EntryKind, PaymentState, PledgeState, Status

from .helpers import NOW, World, make_commons, make_round, matching


def refusal(outcome):
    found = [e for e in outcome.events if isinstance(e, ev.PledgeRefused)]
    return found[0].reason if found else None


def test_pledge_is_accepted_and_counted():
    w = World()
    w.post(1, "ruche", 15_000)
    assert w.commons[1].pledged_cents == 15_000
    assert w.balance("ruche") == 35_000
    assert w.pledges[1].state is PledgeState.LIVE


def test_edit_amends_and_removing_the_line_withdraws():
    w = World()
    w.post(1, "ruche", 15_000, version=1)
    w.post(1, "ruche", 20_000, version=2)
    assert (w.commons[1].pledged_cents, w.balance("ruche")) == (20_000, 30_000)
    w.post(1, "ruche", None, version=3)
    assert (w.commons[1].pledged_cents, w.balance("ruche")) == (0, 50_000)
    assert w.pledges[1].state is PledgeState.NONE


def test_older_version_never_overrides_newer_and_same_version_twice_changes_nothing():
    w = World()
    w.post(1, "ruche", 20_000, version=2)
    assert w.post(1, "ruche", 15_000, version=1).entries == []
    assert w.post(1, "ruche", 20_000, version=2).entries == []
    assert w.commons[1].pledged_cents == 20_000


def test_deletion_withdraws_and_recovery_restores():
    w = World()
    w.post(1, "ruche", 15_000)
    w.destroy(1)
    assert w.commons[1].pledged_cents == 0
    w.recover(1)
    assert w.commons[1].pledged_cents == 15_000


def test_author_deletion_arrives_as_an_edit_then_a_destroy():
    w = World()
    w.post(1, "ruche", 15_000, version=1)
    w.post(1, "ruche", None, version=2)  # raw became "(message supprimé par son auteur)"
    w.destroy(1)
    assert w.commons[1].pledged_cents == 0
    # recovery: the edit back comes first, while the post is still deleted, then the recovery
    w.post(1, "ruche", 15_000, version=3)
    assert w.commons[1].pledged_cents == 0
    w.recover(1)
    assert w.commons[1].pledged_cents == 15_000


def test_recovery_is_refused_when_no_longer_affordable():
    w = World()
    w.post(1, "ruche", 30_000)
    w.destroy(1)
    w.post(2, "ruche", 40_000)
    assert refusal(w.recover(1)) == "over_balance"
    assert w.balance("ruche") == 10_000


@pytest.mark.parametrize("setup, amount, reason", [
    (lambda w: w.__setattr__("members", set()), 1_000, "not_member"),
    (lambda w: setattr(w.round, "closed_at", NOW), 1_000, "round_closed"),
    (lambda w: setattr(w.round, "opens_at", NOW + timedelta(days=1)), 1_000, "round_not_started"),
    (lambda w: None, 60_000, "over_balance"),
    (lambda w: setattr(w.commons[1], "goal_cents", 10_000), 20_000, "over_cap"),
    (lambda w: setattr(w.commons[1], "status", Status.CANCELLED), 1_000, "commons_not_open"),
    (lambda w: setattr(w.commons[1], "first_post_number", 100), 1_000, "before_commons"),
])
def test_refused_pledge_changes_no_balance(setup, amount, reason):
    w = World()
    setup(w)
    outcome = w.post(1, "ruche", amount)
    assert refusal(outcome) == reason
    assert outcome.entries == []
    assert (w.commons[1].pledged_cents, w.account("ruche").pledged_cents) == (0, 0)


def test_unreadable_line_is_refused_with_its_reason():
    w = World()
    assert refusal(w.post(1, "ruche", None, error="amount_ambiguous")) == "amount_ambiguous"
    assert w.pledges[1].refusal == "amount_ambiguous"


def test_refused_edit_keeps_the_previous_amount_and_says_so():
    w = World()
    w.post(1, "ruche", 10_000, version=1)
    outcome = w.post(1, "ruche", 90_000, version=2)
    refused = outcome.events[0]
    assert (refused.reason, refused.kept_cents, refused.balance_cents) == ("over_balance", 10_000, 40_000)
    assert w.commons[1].pledged_cents == 10_000


def test_refusal_stands_until_the_post_changes():
    w = World()
    w.post(1, "ruche", 60_000, version=1)
    w.round.allocation_cents = 100_000
    w.account("ruche").credited_cents = 100_000
    assert w.post(1, "ruche", 60_000, version=1).events == []  # same snapshot: refusal stands
    w.post(1, "ruche", 60_000, version=2)                      # edited: judged anew
    assert w.commons[1].pledged_cents == 60_000


def test_member_who_left_the_group_may_lower_but_not_raise():
    w = World()
    w.post(1, "ruche", 10_000, version=1)
    w.members = set()
    assert refusal(w.post(1, "ruche", 20_000, version=2)) == "not_member"
    w.post(1, "ruche", 5_000, version=3)
    assert w.commons[1].pledged_cents == 5_000


def test_goal_reached_makes_the_commons_funded_at_once_and_without_cap_goal_is_cap():
    w = World(commons=[make_commons(make_round(), goal=20_000)])
    w.post(1, "a", 10_000)
    outcome = w.post(2, "b", 10_000)
    assert w.commons[1].status is Status.FUNDED
    assert any(isinstance(e, ev.CommonsFunded) for e in outcome.events)
    assert refusal(w.post(3, "c", 100)) == "over_cap"


def test_pledges_accepted_up_to_the_cap_beyond_the_goal():
    w = World(commons=[make_commons(make_round(), goal=20_000, cap=30_000)])
    w.post(1, "a", 25_000)
    assert w.commons[1].status is Status.FUNDED
    assert refusal(w.post(2, "b", 5_001)) == "over_cap"
    w.post(3, "b", 5_000)
    assert w.commons[1].raised_cents == 30_000


def test_falling_below_the_goal_while_open_returns_to_funding():
    w = World(commons=[make_commons(make_round(), goal=20_000)])
    w.post(1, "a", 20_000)
    w.destroy(1)
    assert w.commons[1].status is Status.FUNDING


def test_matching_follows_ratio_pool_and_per_commons_cap_in_order_of_acceptance():
    r = make_round(matching=matching("1", pool=15_000, cap=12_000))
    w = World(r, [make_commons(r, goal=100_000, commons_id=1), make_commons(r, goal=100_000, commons_id=2)])
    w.eligible = {"a", "b", "c"}
    w.post(1, "a", 10_000, commons_id=1)
    w.post(2, "b", 10_000, commons_id=1)   # commons 1 cap: only 2 000 more
    w.post(3, "c", 10_000, commons_id=2)   # pool: only 3 000 left
    assert [w.pledges[i].matched_cents for i in (1, 2, 3)] == [10_000, 2_000, 3_000]
    assert r.matching_used_cents == 15_000
    w.destroy(1)                           # withdrawing gives its matching back to the pool
    assert r.matching_used_cents == 5_000
    w.post(4, "a", 4_000, commons_id=2)
    assert w.pledges[4].matched_cents == 4_000


def test_matching_only_for_eligible_members_and_never_above_the_cap():
    r = make_round(matching=matching("2", pool=100_000))
    w = World(r, [make_commons(r, goal=30_000)])
    w.eligible = {"a"}
    w.post(1, "b", 5_000)
    assert w.pledges[1].matched_cents == 0
    w.post(2, "a", 10_000)
    assert w.pledges[2].matched_cents == 15_000  # 20 000 wanted, 15 000 of room under the goal
    assert w.commons[1].raised_cents == 30_000


def test_contribution_counts_toward_goal_but_not_above_the_cap():
    r = make_round()
    c = make_commons(r, goal=30_000)
    out = rules.add_contribution(c, r, Contribution(1, 1, 25_000, "sur-adhésion 2026", "ruche"), NOW)
    assert out.entries[0].kind is EntryKind.CONTRIBUTION and c.raised_cents == 25_000
    with pytest.raises(InvalidOperation) as caught:
        rules.add_contribution(c, r, Contribution(1, 1, 6_000, "x"), NOW)
    assert caught.value.code == "contribution_over_cap"


def test_payment_moves_forward_only():
    assert rules.advance_payment(PaymentState.PLEDGED, PaymentState.PAID) is PaymentState.PAID
    with pytest.raises(InvalidOperation):
        rules.advance_payment(PaymentState.PAID, PaymentState.INVOICED)


@pytest.mark.parametrize("raised, status, release", [
    (100_000, Status.FUNDED, False), (90_000, Status.PARTIAL, False), (89_999, Status.UNFUNDED, True),
])
def test_close_decides_funded_partial_or_unfunded(raised, status, release):
    r = make_round(partial_threshold_pct=90)
    c = make_commons(r, goal=100_000, pledged_cents=raised)
    assert rules.decide_closing(r, c) == rules.Closing(1, status, release)


def test_release_reverses_pledge_and_matching():
    r = make_round(matching=matching("1", pool=50_000))
    w = World(r)
    w.eligible = {"a"}
    w.post(1, "a", 10_000)
    w.entries += rules.release_pledge(w.pledges[1], r, w.commons[1], w.account("a"), NOW, "close")
    kinds = [e.kind for e in w.entries[-2:]]
    assert kinds == [EntryKind.RELEASE, EntryKind.MATCHING_RELEASE]
    totals = project(w.entries)
    assert totals.raised(1) == 0 and totals.balance(1, "a") == 50_000 and r.matching_used_cents == 0


@pytest.mark.parametrize("unspent, balance_next_year, expired", [("carry", 15_000, 0), ("expire", 10_000, -5_000)])
def test_yearly_round_credits_each_anniversary_and_carries_or_expires_the_rest(unspent, balance_next_year, expired):
    r = make_round(allocation_cents=10_000, recurring="yearly", unspent=unspent, opens_at=NOW, closes_at=None)
    w = World(r)
    w.post(1, "a", 5_000)
    w.now = NOW + timedelta(days=364)
    assert w.balance("a") == 5_000
    w.now = NOW + timedelta(days=366)
    assert w.balance("a") == balance_next_year
    assert sum(e.amount_cents for e in w.entries if e.kind is EntryKind.EXPIRY) == expired
    assert sum(1 for e in w.entries if e.kind is EntryKind.ALLOCATION) == 2


def test_grant_adds_or_sets_with_a_reason():
    r = make_round()
    w = World(r)
    account = w.account("coop")
    rules.grant(account, r, 20_000, set_to=False, reason="grosse contribution", now=NOW)
    assert account.credited_cents == 70_000
    entries = rules.grant(account, r, 30_000, set_to=True, reason="plafonné", now=NOW)
    assert account.credited_cents == 30_000 and entries[-1].amount_cents == -40_000
    w.post(1, "coop", 25_000)
    with pytest.raises(InvalidOperation):
        rules.grant(account, r, 10_000, set_to=True, reason=None, now=NOW)
