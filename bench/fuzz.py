"""Fuzz the service's hostile inputs at scale: webhook bodies and headers, pledge texts, wiki text,
MIME messages — never a 5xx, never a crash, never a ledger change from an invalid input.

The targets live in `tests/hostile/fuzz_targets.py` (the test suite runs them with a few hundred
cases each); this runner splits `--cases` between them by weight (`WEIGHTS`: the HTTP target,
the same code as the test-client target plus a socket, gets a small share) and prints, per target,
the cases run, the failures and the time.

    .venv/bin/python bench/fuzz.py --cases 100000
    .venv/bin/python bench/fuzz.py --cases 2000 --targets webhook,mime --seed 1

Exit status 1 when any target failed. Loopback only (the Discourse double and the app's own
server run in this process).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hostile.fuzz_targets import TARGETS, WEIGHTS  # noqa: E402


def shares(total: int, names: list[str]) -> dict[str, int]:
    """`total` cases split between `names` by weight (at least one case each)."""
    weight = sum(WEIGHTS[name] for name in names)
    return {name: max(1, round(total * WEIGHTS[name] / weight)) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="total cases, split between targets")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated target names")
    parser.add_argument("--seed", type=int, default=None, help="derandomize (same cases each run)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    logging.disable(logging.WARNING)  # the app logs each request; the figures are the output here
    started = time.perf_counter()
    results = []
    print(f"{'target':<14}{'asked':>9}{'run':>9}{'failures':>10}{'seconds':>10}{'cases/s':>10}", flush=True)
    for name, asked in shares(args.cases, names).items():
        outcome = TARGETS[name](asked, seed=args.seed)
        rate = outcome.cases / outcome.seconds if outcome.seconds else 0.0
        print(f"{name:<14}{asked:>9}{outcome.cases:>9}{len(outcome.failures):>10}"
              f"{outcome.seconds:>10.1f}{rate:>10.0f}", flush=True)
        for failure in outcome.failures:
            print("  FAILURE " + failure.replace("\n", "\n  "), flush=True)
        results.append({"target": name, "asked": asked, "cases": outcome.cases,
                        "failures": outcome.failures, "seconds": round(outcome.seconds, 1),
                        "notes": {k: ({str(s): n for s, n in v.items()} if isinstance(v, dict) else v)
                                  for k, v in outcome.notes.items()}})
    total = sum(r["cases"] for r in results)
    failed = sum(len(r["failures"]) for r in results)
    elapsed = time.perf_counter() - started
    print(f"{'total':<14}{args.cases:>9}{total:>9}{failed:>10}{elapsed:>10.1f}", flush=True)
    if args.json:
        print(json.dumps({"cases": total, "failures": failed, "seconds": round(elapsed, 1),
                          "python": sys.version.split()[0], "targets": results}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
