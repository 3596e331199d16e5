"""bench/scale.py's code at a tiny size: its fast seeding writes what the database path writes, and
the whole run (double, gunicorn, a worker process, on PostgreSQL) keeps every promise it reports.

No timing is asserted: the figures are the benchmark's (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from commons_sync.service import handlers as h
from commons_sync.storage import tables as tb
from commons_sync.storage.database import make_engine, upgrade

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale  # noqa: E402  (bench/scale.py)

TABLES = (tb.rounds, tb.commons, tb.accounts, tb.pledges, tb.ledger_entries, tb.outbox)


def _seeded(url: str, clock, plan: scale.RoundPlan, *, in_memory: bool) -> tuple[dict, dict]:
    engine = make_engine(url)
    upgrade(engine)
    svc = h.Service(engine, clock)
    topics = [900 + n for n in range(plan.commons)]
    scale.open_round(svc, plan, topics)
    counts = scale.seed_pledges(svc, plan.changes(topics), in_memory=in_memory)
    with engine.connect() as conn:
        state = {table.name: [tuple(row) for row in conn.execute(select(table).order_by(table.c.id))]
                 for table in TABLES}
    assert h.verify_ledger(svc) == []
    engine.dispose()
    return state, counts


def test_fast_seeding_writes_exactly_what_applying_each_pledge_writes(postgres_url, tmp_path, clock):
    # Few members for many pledges: balances and caps run out, so refusals are seeded too.
    plan = scale.RoundPlan(members=20, commons=6, pledges=400, seed=7)
    database_path, counts = _seeded(postgres_url, clock, plan, in_memory=False)
    other = scale.create_database(scale.POSTGRES.rsplit("/", 1)[0] + "/postgres", prefix="cs_test_scale")
    try:
        fast, fast_counts = _seeded(other, clock, plan, in_memory=True)
    finally:
        scale.drop_database(other)
    assert counts["accepted"] > 0 and counts["refused"] > 0
    assert (fast_counts["accepted"], fast_counts["refused"]) == (counts["accepted"], counts["refused"])
    for table in TABLES[:-1]:
        assert fast[table.name] == database_path[table.name], table.name
    # Outbox ids: PostgreSQL spends a sequence value on each upsert that updates instead, so the
    # database path's ids have gaps; the rows themselves, in their order, are the same.
    assert [row[1:] for row in fast["outbox"]] == [row[1:] for row in database_path["outbox"]]


@pytest.mark.timeout(240)
def test_a_tiny_round_under_the_real_processes_keeps_its_promises(postgres_url):
    ceiling = 300  # the service's and the double's: a call over it would be a 429 at the double
    options = scale.Options(scale.RoundPlan(members=50, commons=10, pledges=500), stream=120, burst=50, rate=20,
                            workers=1, ceiling=ceiling, ratio_seconds=0, profile_seconds=0, settle_timeout=90)
    result = scale.run(options, database_url=postgres_url)

    assert result["seed"]["ledger_consistent"] and result["seed"]["status_posts_created"] == 10
    assert result["drain"]["drained"]
    stream, checks = result["stream"], result["checks"]
    assert stream["settled"]
    assert stream["latency"]["statuses"] == {202: 120}
    assert checks["stream_pledges_applied"] == checks["stream_pledges"] == 120
    assert checks["ledger_problems"] == []
    assert checks["status_posts"] == 10 and checks["status_posts_not_equal_to_ledger"] == []
    assert checks["api_max_in_any_60s"] <= ceiling and checks["api_rejected_429"] == 0
    assert stream["outbox_lag"]["commons"] > 0 and stream["outbox_lag"]["negative"] == 0
