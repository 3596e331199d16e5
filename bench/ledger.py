"""Benchmark: a round of 10,000 members, 2,000 commons and 200,000 pledges through the service layer.

Measures pledges per second (each one a full unit of work: lock, rules, ledger entries, outbox),
the time to close the round and produce its results, and the peak memory of the process.

    .venv/bin/python bench/ledger.py --database sqlite:////tmp/bench.db
    .venv/bin/python bench/ledger.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/ledger.py --pledges 2000 --members 200 --commons 40   # the CI-sized run

Results are printed as JSON (one object) so they can be pasted into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from commons_sync.service import handlers as h  # noqa: E402
from commons_sync.storage.database import make_engine, upgrade  # noqa: E402


def fresh_database(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return url
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
        c.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="sqlite:////tmp/commons-sync-bench.db")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--commons", type=int, default=2_000)
    parser.add_argument("--pledges", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2018)
    args = parser.parse_args()

    engine = make_engine(fresh_database(args.database))
    upgrade(engine)
    svc = h.Service(engine)
    rng = random.Random(args.seed)
    h.create_round(svc, h.RoundSpec(slug="bench", name="Bench", allocation_cents=50_000, group="lieux",
                                    partial_threshold_pct=90, matching_ratio="1",
                                    matching_pool_cents=args.pledges * 500, matching_cap_cents=50_000))
    per_commons = args.pledges / args.commons
    for n in range(args.commons):
        goal = int(per_commons * rng.uniform(1_000, 3_000))  # about a third end funded
        h.open_commons(svc, h.CommonsSpec(round_slug="bench", title=f"Commun {n}", goal_cents=goal,
                                          cap_cents=goal * 2, topic_id=10_000 + n))
    members = [f"lieu-{n:05d}" for n in range(args.members)]

    accepted = refused = 0
    started = time.perf_counter()
    for post_id in range(1, args.pledges + 1):
        outcome = h.apply_post(svc, h.PostChange(
            post_id=post_id, topic_id=10_000 + rng.randrange(args.commons), username=rng.choice(members),
            kind="snapshot", version=1, amount_cents=rng.randint(1, 40) * 100, post_number=post_id + 1,
            matching_eligible=post_id % 3 == 0))
        if outcome.refused:
            refused += 1
        else:
            accepted += 1
    ingest = time.perf_counter() - started

    started = time.perf_counter()
    results = h.close_round(svc, "bench")
    close_seconds = time.perf_counter() - started
    problems = h.verify_ledger(svc)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "database": engine.dialect.name, "members": args.members, "commons": args.commons,
        "pledges": args.pledges, "accepted": accepted, "refused": refused,
        "pledges_per_second": round(args.pledges / ingest, 1), "ingest_seconds": round(ingest, 1),
        "close_and_results_seconds": round(close_seconds, 2),
        "sections": {k: len(v) for k, v in results.sections.items()},
        "peak_memory_mb": round(peak_mb, 1), "ledger_consistent": problems == [],
    }, indent=2))
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
