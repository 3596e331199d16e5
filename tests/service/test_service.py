"""Use cases through the service layer, on an SQLite file and on PostgreSQL alike."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from commons_sync.demo import movilab, replay
from commons_sync.engine.errors import InvalidOperation, NotFound
from commons_sync.engine.model import PaymentState
from commons_sync.engine.results import FUNDED, IDEAS, IN_PROGRESS, UNFUNDED
from commons_sync.service import handlers as h
from commons_sync.service.unit_of_work import UnitOfWork
from commons_sync.storage import tables as t


def make_round(service, slug="r2026", **overrides):
    spec = dict(slug=slug, name="Campagne 2026", allocation_cents=50_000, group="lieux")
    spec.update(overrides)
    return h.create_round(service, h.RoundSpec(**spec))


def open_commons(service, topic_id=10, goal=100_000, cap=None, slug="r2026", title="Commun"):
    return h.open_commons(service, h.CommonsSpec(round_slug=slug, title=title, goal_cents=goal,
                                                  cap_cents=cap, topic_id=topic_id))


def pledge(service, post_id, user, amount, topic_id=10, version=1, **kw):
    return h.apply_post(service, h.PostChange(post_id=post_id, topic_id=topic_id, username=user,
                                              kind="snapshot", version=version, amount_cents=amount,
                                              post_number=post_id, **kw))


def count(service, table):
    with service.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


def test_unit_of_work_rolls_back_uncommitted_work_by_default(service):
    make_round(service)
    with UnitOfWork(service.engine) as uow:
        r = uow.repo.round_by_slug("r2026")
        r.name = "changed"
        uow.repo.flush()
    assert h.show_round(service, "r2026")["name"] == "Campagne 2026"


def test_pledge_and_its_outbox_rows_are_committed_together(service):
    make_round(service)
    commons = open_commons(service)
    pledge(service, 101, "ruche", 15_000)
    pledge(service, 102, "pont", 5_000)
    with service.engine.connect() as c:
        rows = c.execute(select(t.outbox.c.key, t.outbox.c.seq).where(t.outbox.c.done_at.is_(None))).all()
    keys = dict(rows)
    # a burst of changes to one commons coalesces into one pending row per side effect
    assert keys[f"status_post:{commons.id}"] == 3 and keys[f"wiki_fiche:{commons.id}"] == 3
    assert len([k for k in keys if k.startswith("status_post")]) == 1


def test_refused_pledge_leaves_the_ledger_untouched_and_queues_one_reply(service):
    make_round(service)
    open_commons(service)
    entries_before = count(service, t.ledger_entries)
    outcome = pledge(service, 101, "ruche", 60_000)
    assert outcome.refused.reason == "over_balance"
    assert count(service, t.ledger_entries) == entries_before + 1  # the member's allocation only
    with service.engine.connect() as c:
        payload = c.execute(select(t.outbox.c.payload).where(t.outbox.c.kind == "reply")).scalar_one()
    assert json.loads(payload)["balance_cents"] == 50_000


def test_show_round_lists_members_with_allocated_pledged_and_balance(service):
    make_round(service)
    open_commons(service)
    pledge(service, 101, "ruche", 15_000)
    h.grant(service, "r2026", "coop", 20_000, reason="grosse coop")
    members = {m["username"]: m for m in h.show_round(service, "r2026")["members"]}
    assert members["ruche"] == {"username": "ruche", "allocated": 500, "pledged": 150, "balance": 350}
    assert members["coop"]["allocated"] == 700


def test_commons_json_has_the_contract_fields(service):
    make_round(service)
    c = open_commons(service)
    pledge(service, 101, "ruche", 15_050)
    h.add_contribution(service, c.id, 5_000, "sur-adhésion", "pont")
    view = h.show_commons(service, c.id)
    for key in ("id", "topic_id", "title", "round", "status", "goal", "cap", "raised", "pledged",
                "contributed", "matched", "cofunders", "cofunder_names"):
        assert key in view
    assert (view["raised"], view["pledged"], view["contributed"], view["cofunders"]) == (200.5, 150.5, 50, 2)
    assert view["cofunder_names"] == ["pont", "ruche"]
    assert h.list_commons(service) == [view]


def test_close_funds_partially_funds_or_releases_with_reversing_entries(service, clock):
    make_round(service, partial_threshold_pct=90, matching_ratio="1", matching_pool_cents=100_000)
    funded = open_commons(service, 10, goal=20_000)
    partial = open_commons(service, 11, goal=20_000)
    unfunded = open_commons(service, 12, goal=20_000)
    h.open_commons(service, h.CommonsSpec(round_slug="r2026", title="Idée", goal_cents=None))
    pledge(service, 1, "a", 10_000, 10, matching_eligible=True)
    pledge(service, 2, "b", 18_000, 11)
    pledge(service, 3, "c", 4_000, 12, matching_eligible=True)
    h.add_contribution(service, unfunded.id, 1_000, "adhésion", "d")
    results = h.close_round(service, "r2026")
    assert [l.title for l in results.sections[FUNDED]] == ["Commun", "Commun"]
    assert [l.partial for l in results.sections[FUNDED]] == [False, True]
    assert results.sections[UNFUNDED][0].raised_cents == 9_000  # as at close, before release
    assert results.sections[UNFUNDED][0].cofunders == 2
    assert [l.title for l in results.sections[IDEAS]] == ["Idée"]
    after = h.show_commons(service, unfunded.id)
    assert (after["status"], after["pledged"], after["matched"], after["contributed"]) == ("non financé", 0, 0, 10)
    members = {m["username"]: m for m in h.show_round(service, "r2026")["members"]}
    assert members["c"]["balance"] == 500
    with service.engine.connect() as c:
        kinds = [r.kind for r in c.execute(select(t.ledger_entries.c.kind).where(t.ledger_entries.c.commons_id == unfunded.id))]
    assert kinds.count("release") == 1 and kinds.count("matching_release") == 1
    assert h.verify_ledger(service) == []
    with pytest.raises(InvalidOperation):
        h.close_round(service, "r2026")
    clock.advance(minutes=1)
    assert pledge(service, 4, "a", 100, 10).refused.reason == "round_closed"


def test_rounds_past_their_date_are_closed_by_the_worker(service, clock):
    make_round(service, closes_at=clock() + timedelta(days=2))
    assert h.close_due_rounds(service) == []
    clock.advance(days=3)
    assert h.close_due_rounds(service) == ["r2026"]
    assert h.show_round(service, "r2026")["status"] == "closed"


def test_payments_are_followed_after_the_promise(service):
    make_round(service)
    c = open_commons(service)
    pledge(service, 101, "ruche", 15_000)
    pledge_id = h.list_pledges(service)[0]["id"]
    assert h.mark_payment(service, "pledge", pledge_id, PaymentState.INVOICED)["payment"] == "invoiced"
    assert h.mark_payment(service, "pledge", pledge_id, PaymentState.PAID)["payment"] == "paid"
    with pytest.raises(InvalidOperation):
        h.mark_payment(service, "pledge", pledge_id, PaymentState.INVOICED)
    contribution_id = h.add_contribution(service, c.id, 1_000, "x")
    h.mark_payment(service, "contribution", contribution_id, PaymentState.PAID)
    with pytest.raises(NotFound):
        h.mark_payment(service, "contribution", 999, PaymentState.PAID)
    states = {r.kind: r.payment for r in h.export_rows(service) if r.kind in ("pledge", "contribution")}
    assert states == {"pledge": "paid", "contribution": "paid"}


def test_bad_input_changes_nothing(service):
    make_round(service)
    before = [count(service, table) for table in (t.rounds, t.commons, t.ledger_entries, t.outbox)]
    for call in (
        lambda: make_round(service),                                       # duplicate slug
        lambda: make_round(service, slug="x", currency="XYZ"),             # unknown currency
        lambda: make_round(service, slug="Bad Slug"),
        lambda: open_commons(service, slug="nope"),                        # unknown round
        lambda: open_commons(service, goal=10_000, cap=5_000),             # cap below goal
        lambda: h.add_contribution(service, 999, 100, "x"),
    ):
        with pytest.raises((InvalidOperation, NotFound)):
            call()
    c = open_commons(service, goal=10_000)
    before[1] += 1
    before[3] += 3
    with pytest.raises(InvalidOperation):
        h.add_contribution(service, c.id, 20_000, "over the cap")
    assert [count(service, table) for table in (t.rounds, t.commons, t.ledger_entries, t.outbox)] == before


def test_the_2018_experiment_replayed_gives_the_published_results(service):
    data = movilab.load()
    replay(service, data)
    results = h.results(service, "cobudget-2018")
    got = {key: {(l.title, l.raised_cents, l.cofunders) for l in lines} for key, lines in results.sections.items()}
    assert got[FUNDED] == {(i["title"], i["raised"] * 100, i["cofunders"]) for i in data["funded"]}
    assert got[IN_PROGRESS] == {(i["title"], i["raised"] * 100, i["cofunders"]) for i in data["in_progress"]}
    assert got[IDEAS] == {(i["title"], None, None) for i in data["ideas"]}
    assert h.verify_ledger(service) == []
    balances = [m["balance"] for m in h.show_round(service, "cobudget-2018")["members"]]
    assert min(balances) >= 0 and len(balances) == 35


def test_usernames_are_one_account_whatever_their_case_or_at_sign(service):
    make_round(service)
    c = open_commons(service)
    for typed in ("Alice", "alice", "@ALICE"):
        h.grant(service, "r2026", typed, 10_000)
    pledge(service, 101, "Alice", 5_000)
    h.add_contribution(service, c.id, 1_000, "adhésion", "@alice")
    members = h.show_round(service, "r2026")["members"]
    assert members == [{"username": "alice", "allocated": 800, "pledged": 50, "balance": 750}]
    assert h.show_commons(service, c.id)["cofunder_names"] == ["alice"]


@pytest.mark.parametrize("call", [
    lambda svc, c: h.add_contribution(svc, c.id, 100, "x", "bob@example.org"),
    lambda svc, c: h.grant(svc, "r2026", "bob@example.org", 100),
    lambda svc, c: h.open_commons(svc, h.CommonsSpec(round_slug="r2026", title="Y", goal_cents=100,
                                                  referent="Jo <jo@example.org>")),
    lambda svc, c: h.open_commons(svc, h.CommonsSpec(round_slug="r2026", title="  ", goal_cents=100)),
])
def test_an_email_address_is_never_taken_as_a_name_and_a_title_is_never_empty(service, call):
    make_round(service)
    c = open_commons(service)
    with pytest.raises(InvalidOperation) as caught:
        call(service, c)
    assert caught.value.code in ("not_a_username", "empty_title")
    assert len(h.list_commons(service)) == 1 and h.show_round(service, "r2026")["members"] == []
