"""Four processes pledging 2,000 times at once for the same members and commons."""

import multiprocessing
import random

import pytest
from sqlalchemy import func, select

from commons_sync.service import handlers as h
from commons_sync.storage import tables as t
from commons_sync.storage.database import make_engine, upgrade

PROCESSES = 4
PLEDGES_EACH = 500
MEMBERS = [f"lieu-{n}" for n in range(6)]
TOPICS = [10, 11, 12]


def _pledger(url: str, worker: int, start, results) -> None:
    svc = h.Service(make_engine(url))
    rng = random.Random(worker)
    start.wait()
    accepted = refused = 0
    for i in range(PLEDGES_EACH):
        post_id = worker * 100_000 + i
        outcome = h.apply_post(svc, h.PostChange(
            post_id=post_id, topic_id=rng.choice(TOPICS), username=rng.choice(MEMBERS), kind="snapshot",
            version=1, amount_cents=rng.randint(1, 40) * 100, post_number=i + 2,
            matching_eligible=rng.random() < 0.5))
        if outcome.refused:
            refused += 1
        else:
            accepted += 1
        if i % 5 == 0:  # some pledges are withdrawn, freeing balance and matching for others
            h.apply_post(svc, h.PostChange(post_id=post_id, topic_id=0, username="", kind="destroyed"))
    results.put((accepted, refused))


@pytest.mark.slow
def test_concurrent_pledges_never_overspend_nor_pass_a_cap(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    svc = h.Service(engine)
    h.create_round(svc, h.RoundSpec(slug="race", name="Race", allocation_cents=20_000, group="g",
                                    matching_ratio="1", matching_pool_cents=15_000,
                                    matching_cap_cents=8_000))
    for topic in TOPICS:
        h.open_commons(svc, h.CommonsSpec(round_slug="race", title=f"C{topic}", goal_cents=30_000,
                                          cap_cents=40_000, topic_id=topic))
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=_pledger, args=(database_url, n, start, results)) for n in range(PROCESSES)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sum(a + r for a, r in outcomes) == PROCESSES * PLEDGES_EACH
    assert all(r > 0 for _, r in outcomes)  # the limits were really reached under contention
    released = [p for p in h.list_pledges(svc, "race") if p["post_id"] % 5 == 0]
    assert released and all(p["amount"] == 0 for p in released)  # deletions really withdrew

    assert h.verify_ledger(svc) == []  # no balance below zero, no cap passed, totals = ledger
    commons = h.list_commons(svc, "race")
    assert all(c["raised"] <= 400 for c in commons)
    assert all(c["matched"] <= 80 for c in commons)
    with engine.connect() as c:
        live = dict(c.execute(select(t.pledges.c.commons_id, func.sum(t.pledges.c.amount_cents))
                              .where(t.pledges.c.state == "live").group_by(t.pledges.c.commons_id)).all())
        used = c.execute(select(t.rounds.c.matching_used_cents)).scalar_one()
    assert {c["id"]: round(c["pledged"] * 100) for c in commons} == {c["id"]: live.get(c["id"], 0) for c in commons}
    assert used <= 15_000
    members = h.show_round(svc, "race")["members"]
    assert all(m["balance"] >= 0 for m in members)
    engine.dispose()
