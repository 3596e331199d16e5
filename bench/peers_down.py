"""Peers down (issue 7): the wiki stopped and the forum answering 500 then 429, pledges coming in.

The Discourse double, the web service (gunicorn) and `commons-sync worker` run as processes, next
to a local MediaWiki (`php -S`). Commons are opened and pledged on, then the wiki's server is
stopped and every forum API call answers 500, then 429 (with `Retry-After`), long enough for the
worker's retries to back off several times, while members keep pledging (the double's webhooks
still reach the service). Then both peers come back. Measured: the webhook's answers during the
outage (all 2xx? p50/p99 as the double saw them), the backlog when the peers come back, the time
to catch up, the API calls per minute the double counted (never above the ceiling: asserted), and
afterwards every status post and fiche against the final ledger state.

    .venv/bin/python bench/peers_down.py                       # 60 commons, 80 members; 240 s outage
                                                               # (150 s of 500, 90 s of 429 with Retry-After 30)
    .venv/bin/python bench/peers_down.py --error-seconds 20 --throttle-seconds 10 --commons 3   # quick look

Prints one JSON object; exits non-zero if a check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commons_sync.devtools.local_mediawiki import LocalMediaWiki  # noqa: E402
from commons_sync.devtools.peer_faults import (  # noqa: E402
    ServiceStack,
    api_stats,
    latency_summary,
)
from commons_sync.mediawiki import Wiki, install  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commons", type=int, default=60)
    parser.add_argument("--members", type=int, default=80)
    parser.add_argument("--error-seconds", type=float, default=150.0, help="forum answering 500")
    parser.add_argument("--throttle-seconds", type=float, default=90.0, help="then answering 429")
    parser.add_argument("--retry-after", type=float, default=30.0, help="the 429's Retry-After")
    parser.add_argument("--pledges-per-second", type=float, default=2.0)
    parser.add_argument("--warm", type=int, default=10, help="members pledging right before the outage")
    parser.add_argument("--max-rpm", type=int, default=50, help="the service's ceiling (the double keeps 60)")
    parser.add_argument("--retry-base", type=float, default=2.0)
    parser.add_argument("--database", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/cs_peers")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="peers-down-"))
    try:
        result = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["failed_checks"]:
        sys.exit(1)


def run(args, workdir: Path) -> dict:
    members = [f"lieu-{n}" for n in range(args.members)]
    with LocalMediaWiki(workers=2) as local, ServiceStack(
            workdir, local, database_url=args.database, max_rpm=args.max_rpm, double_rpm=60,
            retry_base=args.retry_base) as stack:
        bot = Wiki.connect(local.api_url, local.bot_username, local.bot_password)
        install(bot)
        stack.people(members)
        stack.round()
        topics = stack.open_forum_commons(args.commons)
        commons_of_topic = {c["topic_id"]: c["id"] for c in stack.list_commons()}
        expected = {commons_of_topic[t]: 0 for t in topics}
        counts = {"posted": 0}
        pledge_lock = threading.Lock()

        def pledge_as(n: int, member: str) -> None:
            topic = topics[n % len(topics)]
            amount = 1 + n % 7
            stack.pledge_post(member, topic, amount)
            with pledge_lock:
                expected[commons_of_topic[topic]] += amount * 100
                counts["posted"] += 1

        def pledge(n: int) -> None:
            pledge_as(n, members[n % len(members)])

        def next_count() -> int:
            return counts["posted"]

        # Before: half the members pledge once (the group's roster is read then).
        for n in range(args.members // 2):
            pledge(n)
        stack.wait_until(lambda: stack.caught_up() and stack.pledge_count() == args.members // 2, 1800,
                         "the first pledges")
        # Right before the outage, a few members pledge again and the worker applies their pledges
        # (their memberships are then fresh in the cache): the status posts and fiches they call
        # for are still queued when the peers go down, and fail.
        warm = members[:args.warm]
        for n, member in enumerate(warm):
            pledge_as(n, member)
        stack.wait_until(lambda: stack.backlog()["deliveries"] == 0 and stack.pledge_count() == next_count(), 600,
                         "the warm-up pledges applied")
        webhooks_before = len(stack.admin.webhook_log()["deliveries"])
        before_outage = counts["posted"]
        stats_samples: list[tuple[float, int]] = []

        def sample_stats() -> None:
            stats_samples.append((time.monotonic(), stack.admin.request_stats()["total"]))

        # The outage: the wiki stopped, the forum answering 500, then 429; pledges keep coming.
        began = time.monotonic()
        local.stop_server()
        stack.forum_fails(500)
        phase_changed = False
        n = 0  # the warm members first: their pledges make outbox rows that fail
        end = began + args.error_seconds + args.throttle_seconds
        while time.monotonic() < end:
            if not phase_changed and time.monotonic() >= began + args.error_seconds:
                stack.forum_fails(429, retry_after=args.retry_after)
                phase_changed = True
            # The warm members first (applied at once: their rows fail), then the others (their
            # deliveries wait for the forum: the roster read before the outage is older than
            # 120 s by then, and before 5cb7970 each member was asked alone).
            if n < len(warm):
                pledge_as(n, warm[n])
            else:
                pledge(n)
            n += 1
            if n % 10 == 0:
                sample_stats()
                stack.check_alive()
            time.sleep(1 / args.pledges_per_second)
        assert stack.admin.wait_for_webhooks(timeout=60)
        outage_answers = stack.webhook_answers(webhooks_before)
        backlog = stack.backlog()
        stats_at_recovery = stack.admin.request_stats()["total"]
        window_start = time.monotonic() - 60
        calls_in_last_minute = stats_at_recovery - min(
            (total for moment, total in stats_samples if moment >= window_start), default=stats_at_recovery)
        # The peers come back.
        recovered = time.monotonic()
        stack.forum_recovers()
        local.start_server()
        total_pledges = counts["posted"]
        caught_up_after = stack.wait_until(
            lambda: stack.caught_up() and stack.pledge_count() == total_pledges, 3600, "catching up", poll=0.1)
        calls_after = stack.admin.request_stats()["total"] - stats_at_recovery
        time.sleep(2)  # nothing more should come: the counts below are final
        stats = api_stats(stack)
        problems = {
            "ledger": stack.ledger_problems(expected),
            "status_posts": stack.status_post_problems(),
            "fiches": stack.fiche_problems(bot),
        }
        non_2xx = [a for a in outage_answers if a["status"] is None or not 200 <= a["status"] < 300]
        free_slots = max(0, args.max_rpm - calls_in_last_minute)
        theoretical = max(0, calls_after - free_slots) * 60 / args.max_rpm
        failed = [name for name, found in problems.items() if found]
        if non_2xx:
            failed.append("webhook answers not 2xx")
        if stats["max_in_any_60s"] > args.max_rpm:
            failed.append("API ceiling passed")
        if stats["rejected_by_ceiling"]:
            failed.append("429 from the double's own ceiling")
        conflicts = stack.worker_log().count("edit conflict on")
        return {
            "date": time.strftime("%Y-%m-%d"), "database": stack.database_url.split(":", 1)[0],
            "commons": args.commons, "members": args.members, "pledges": total_pledges,
            "ceiling": {"service_max_rpm": args.max_rpm, "double": 60},
            "outage": {"seconds": round(recovered - began, 1), "forum_500_seconds": args.error_seconds,
                       "forum_429_seconds": args.throttle_seconds, "retry_after": args.retry_after,
                       "wiki_stopped_seconds": round(recovered - began, 1),
                       "pledges_during": total_pledges - before_outage},
            "webhook_during_outage": {"answers": len(outage_answers), "non_2xx": len(non_2xx),
                                      "statuses": sorted({a["status"] for a in outage_answers}, key=str),
                                      "redelivered": sum(1 for a in outage_answers if a["attempt"]),
                                      **latency_summary([a["seconds"] for a in outage_answers if a["seconds"]])},
            "backlog_at_recovery": backlog,
            "api_calls_in_the_minute_before_recovery": calls_in_last_minute,
            "catch_up": {"seconds": round(caught_up_after, 1), "api_calls": calls_after,
                         "theoretical_minimum_seconds": round(theoretical, 1),
                         "how": "(calls after recovery - free slots in the window) / ceiling"},
            "api": stats, "wiki_edit_conflicts_retried": conflicts,
            "problems": problems, "failed_checks": failed,
        }


if __name__ == "__main__":
    main()
