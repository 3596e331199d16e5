"""Faults on real processes (issue 7): killed processes during a replay, PostgreSQL restarted.

killed (default): the Discourse double, the service under gunicorn (commons_sync/web/gunicorn_conf.py)
and 2 `commons-sync worker` processes on a fresh PostgreSQL database, a local MediaWiki for the
fiches; N commons, D forum deliveries (pledges, amending edits, deletions by authors and staff,
recoveries; stretches of duplicated and of reordered deliveries), the server and a worker
SIGKILLed at seeded moments and restarted; then everything restarted, `reconcile --all`, the
drain, and an exact check of every pledge, total, status post and fiche against the state the
forum's posts dictate.

pg-restart: the same stack on a private PostgreSQL cluster (initdb in a temporary folder, own
port, run as `postgres`), stopped for a few seconds and started again under load.

    .venv/bin/python bench/faults.py                                   # 200 commons, 10,000 deliveries
    .venv/bin/python bench/faults.py --commons 20 --deliveries 400 --kills 3 --no-wiki
    .venv/bin/python bench/faults.py --scenario pg-restart

The double's API ceiling and COMMONS_SYNC_DISCOURSE_MAX_RPM are raised to 100,000 (CONTRACT §2);
worker leases are shortened to 10 s (inbox) and 20 s (outbox row).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commons_sync.devtools.fault_harness import (  # noqa: E402
    KilledProcesses,
    PostgresRestart,
    PrivateCluster,
    create_database,
    drop_database,
)

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def say(line: str) -> None:
    print(time.strftime("%H:%M:%S"), line, file=sys.stderr, flush=True)


def killed(args) -> dict:
    url = args.database or create_database(SERVER)
    wiki = None
    if not args.no_wiki:
        from commons_sync.devtools.local_mediawiki import LocalMediaWiki

        wiki = LocalMediaWiki(workers=2).start()
    try:
        scenario = KilledProcesses(url, commons=args.commons, deliveries=args.deliveries, kills=args.kills,
                                   drain_kills=args.drain_kills, seed=args.seed, wiki=wiki, rate=args.rate,
                                   progress=say, workdir=Path(args.workdir) if args.workdir else None)
        report = scenario.run(settle_timeout=args.settle_timeout)
    finally:
        if wiki is not None:
            wiki.stop()
    if not args.database and report["ok"] and not args.keep:
        drop_database(url)
    else:
        report["database"] = url
    return report


def pg_restart(args) -> dict:
    cluster = PrivateCluster().init()
    cluster.start()
    try:
        scenario = PostgresRestart(cluster, commons=args.commons, seed=args.seed, before=args.before,
                                   outage=args.outage, after=args.after, rate=args.rate,
                                   restarts=args.restarts, progress=say,
                                   workdir=Path(args.workdir) if args.workdir else None)
        return scenario.run(settle_timeout=args.settle_timeout)
    finally:
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["killed", "pg-restart"], default="killed")
    parser.add_argument("--commons", type=int)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--drain-kills", type=int, default=4,
                        help="killed: workers also SIGKILLed while they work off the backlog after the replay")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="an empty PostgreSQL database (default: a new one on 127.0.0.1:5432)")
    parser.add_argument("--no-wiki", action="store_true", help="no MediaWiki: fiches are not checked")
    parser.add_argument("--rate", type=float, help="forum actions a second (killed: 60, pg-restart: 20)")
    parser.add_argument("--before", type=float, default=10.0, help="pg-restart: seconds of load before the stop")
    parser.add_argument("--outage", type=float, default=5.0, help="pg-restart: seconds PostgreSQL stays down")
    parser.add_argument("--after", type=float, default=15.0, help="pg-restart: seconds of load after the start")
    parser.add_argument("--restarts", type=int, default=2, help="pg-restart: how many stops and starts")
    parser.add_argument("--settle-timeout", type=float, default=1800.0)
    parser.add_argument("--workdir", help="where the processes' logs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the database after a passing run")
    args = parser.parse_args()
    if args.scenario == "killed":
        args.commons = args.commons or 200
        args.rate = args.rate or 60.0
        report = killed(args)
    else:
        args.commons = args.commons or 20
        args.rate = args.rate or 20.0
        report = pg_restart(args)
    problems = report.pop("problems")
    report["problems_count"] = len(problems)
    report["problems_first"] = problems[:20]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
