"""Invariants of the engine over random sequences of operations (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from commons_sync.engine import rules
from commons_sync.engine.ledger import project
from commons_sync.engine.model import Contribution, PledgeState

from .helpers import NOW, World, make_commons, make_round, matching

MEMBERS = ["a", "b", "c", "d"]

op = st.one_of(
    st.tuples(st.just("post"), st.integers(1, 12), st.sampled_from(MEMBERS), st.integers(1, 4),
              st.one_of(st.none(), st.integers(1, 40_000)), st.integers(1, 3)),
    st.tuples(st.just("destroy"), st.integers(1, 12)),
    st.tuples(st.just("recover"), st.integers(1, 12)),
    st.tuples(st.just("contribute"), st.integers(1, 3), st.integers(1, 20_000), st.sampled_from(MEMBERS + [None])),
    st.tuples(st.just("leave"), st.sampled_from(MEMBERS)),
    st.tuples(st.just("close")),
)


def build_world(pool, cap_per_commons, threshold):
    r = make_round(allocation_cents=30_000, partial_threshold_pct=threshold,
                   matching=matching("1/2", pool=pool, cap=cap_per_commons))
    commons = [make_commons(r, goal=40_000, commons_id=1), make_commons(r, goal=25_000, cap=50_000, commons_id=2),
               make_commons(r, goal=10_000, commons_id=3)]
    w = World(r, commons)
    w.members = set(MEMBERS)
    w.eligible = {"a", "b"}
    return w


def apply(w: World, operation) -> None:
    kind = operation[0]
    if kind == "post":
        _, post_id, user, version, amount, commons_id = operation
        existing = w.pledges.get(post_id)
        if existing is not None:  # a post keeps its author and topic
            user, commons_id = existing.username, existing.commons_id
        w.post(post_id, user, amount, version=version, commons_id=commons_id)
    elif kind in ("destroy", "recover") and operation[1] in w.pledges:
        getattr(w, kind)(operation[1])
    elif kind == "contribute":
        _, commons_id, amount, user = operation
        try:
            out = rules.add_contribution(w.commons[commons_id], w.round,
                                         Contribution(commons_id, 1, amount, "apport", user), NOW)
            w.entries += out.entries
        except rules.InvalidOperation:
            pass
    elif kind == "leave":
        w.members.discard(operation[1])
    elif kind == "close" and w.round.closed_at is None:
        for c in w.commons.values():
            decision = rules.decide_closing(w.round, c)
            c.status = decision.status
            if decision.release:
                for p in w.pledges.values():
                    if p.commons_id == c.id:
                        w.entries += rules.release_pledge(p, w.round, c, w.accounts.get(p.username), NOW, "close")
        w.round.closed_at = NOW


def check_invariants(w: World) -> None:
    totals = project(w.entries)
    pool = w.round.matching
    assert 0 <= w.round.matching_used_cents <= pool.pool_cents
    assert totals.matching_used[w.round.id] == w.round.matching_used_cents
    for username, account in w.accounts.items():
        assert account.balance_cents >= 0, username
        assert totals.balance(w.round.id, username) == account.balance_cents
    for c in w.commons.values():
        assert c.raised_cents <= c.ceiling_cents
        assert c.matched_cents <= pool.cap_per_commons_cents
        assert (totals.pledged[c.id], totals.contributed[c.id], totals.matched[c.id]) == (
            c.pledged_cents, c.contributed_cents, c.matched_cents)
        live = [p for p in w.pledges.values() if p.commons_id == c.id and p.state is PledgeState.LIVE]
        assert sum(p.amount_cents for p in live) == c.pledged_cents
        assert sum(p.matched_cents for p in live) == c.matched_cents


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60), st.integers(0, 40_000), st.integers(1_000, 30_000), st.sampled_from([None, 50, 90]))
def test_random_operations_keep_every_invariant(operations, pool, cap_per_commons, threshold):
    w = build_world(pool, cap_per_commons, threshold)
    for operation in operations:
        apply(w, operation)
        check_invariants(w)


versions = st.lists(st.tuples(st.integers(1, 6), st.one_of(st.none(), st.integers(1, 60_000))),
                    min_size=1, max_size=8, unique_by=lambda v: v[0])


@settings(max_examples=300, deadline=None)
@given(versions, st.randoms(use_true_random=False), st.integers(0, 3))
def test_a_post_ends_the_same_whatever_the_order_or_duplication_of_its_versions(snapshots, random, dupes):
    def final_state(sequence):
        w = build_world(10_000, 5_000, None)
        for version, amount in sequence:
            w.post(1, "a", amount, version=version)
        p = w.pledges[1]
        return p.amount_cents, p.matched_cents, p.version, w.commons[1].raised_cents, w.balance("a")

    in_order = sorted(snapshots)
    shuffled = list(snapshots) + [random.choice(snapshots) for _ in range(dupes)]
    random.shuffle(shuffled)
    assert final_state(shuffled) == final_state(in_order)
