"""Benchmark of the forum side (issue 3's figures).

1. throughput: signed pledge webhooks per second under gunicorn, against the same server's bare
   `204` route in the same run (wrk, from Debian's `wrk` package), in alternated rounds (each
   route's best, every round kept), with the CPU each kind of process spent per request; then p50/p99 latency at half the webhook's maximum
   rate (a constant-rate client).
2. burst: 1,000 pledges in 10 s on one commons through the Discourse double, the service and its
   worker: status-post edits, the API ceiling, final numbers.
3. idle: median time from a pledge post to its status post showing it, one pledge at a time.
4. members (`--only members`): one pledge from each of `--members` distinct members, none seen
   before, at the default API ceiling: how long until all are applied, and the API calls it took
   (each member's membership is the cost that grows with the round).

    apt-get install wrk      # once
    .venv/bin/python bench/webhook.py [--seconds 15] [--database postgresql+psycopg://…/cs_bench]

Every figure states the API ceiling it ran under.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commons_sync.devtools.served import free_port  # noqa: E402

SECRET = "bench-webhook-secret-0123"
WRK_THREADS = 2
# Each wrk thread takes every WRK_THREADS-th line from its own offset: replaying the same lines from
# every thread would make half the deliveries duplicates, which measures the duplicate path instead.
LUA = r"""
local lines = {}
local i = 0
local threads = 0
setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end
init = function(args)
  local n = 0
  local count = tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % count == id then lines[#lines + 1] = line end
    n = n + 1
  end
end
request = function()
  i = i % #lines + 1
  local event, sig, body = lines[i]:match("^(%d+)\t([^\t]+)\t(.*)$")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Discourse-Event-Type"] = "post"
  wrk.headers["X-Discourse-Event"] = "post_created"
  wrk.headers["X-Discourse-Event-Id"] = event
  wrk.headers["X-Discourse-Instance"] = "https://forum.example.org"
  wrk.headers["X-Discourse-Event-Signature"] = sig
  return wrk.format("POST", wrk.path, nil, body)
end
"""


def post_body(post_id: int, topic_id: int, username: str, amount: int) -> bytes:
    post = {
        "id": post_id, "name": username, "username": username, "avatar_template": "", "created_at":
        "2026-11-21T10:00:00.000Z", "cooked": f"<p>/soutien {amount}</p>", "post_number": post_id % 100_000 + 2,
        "post_type": 1, "updated_at": "2026-11-21T10:00:00.000Z", "reply_count": 0,
        "reply_to_post_number": None, "quote_count": 0, "incoming_link_count": 0, "reads": 0,
        "score": 0, "topic_id": topic_id, "topic_slug": "commun", "topic_title": "Commun",
        "category_id": 12, "display_username": username, "primary_group_name": None, "version": 1,
        "user_title": None, "bookmarked": False, "raw": f"Notre lieu soutient ce commun.\n\n/soutien {amount}",
        "moderator": False, "admin": False, "staff": False, "user_id": 1000 + post_id % 1000,
        "hidden": False, "trust_level": 1, "deleted_at": None, "user_deleted": False, "edit_reason": None,
        "wiki": False, "topic_posts_count": 3, "topic_filtered_posts_count": 3, "topic_archetype": "regular",
        "category_slug": "communs",
    }
    return json.dumps({"post": post}, separators=(",", ":")).encode()


def signed(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def wrk(url: str, script: Path, data: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), url, "--", str(data), str(WRK_THREADS)],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    latency = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", out))
    return {"requests_per_second": round(rps, 1), "p50": latency.get("50"), "p99": latency.get("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def cpu_seconds_by_kind() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the server (gunicorn) and PostgreSQL's processes,
    read from /proc, by the finished children (wrk), and the machine's idle seconds: where a
    request's time goes, system-wide."""
    tick = os.sysconf("SC_CLK_TCK")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = {"server": 0.0, "postgresql": 0.0, "wrk": children.ru_utime + children.ru_stime}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        kind = ("server" if "gunicorn" in command else "postgresql" if command.startswith("postgres")
                else None)
        if kind:
            seconds[kind] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    with open("/proc/stat") as file:
        times = [int(value) for value in file.readline().split()[1:]]
    seconds["idle"] = (times[3] + times[4]) / tick  # idle, iowait
    seconds["all"] = sum(times[:8]) / tick
    return seconds


def measured(url: str, script: Path, data: Path, seconds: int, connections: int) -> dict:
    """wrk's figures, with the CPU each kind of process spent per request meanwhile."""
    before = cpu_seconds_by_kind()
    result = wrk(url, script, data, seconds, connections)
    after = cpu_seconds_by_kind()
    requests = max(1.0, result["requests_per_second"] * seconds)
    used = {kind: after[kind] - before[kind] for kind in after}
    result["cpu_us_per_request"] = {kind: round(used[kind] / requests * 1e6)
                                    for kind in ("server", "postgresql", "wrk")}
    result["idle_percent"] = round(100 * used["idle"] / used["all"], 1) if used["all"] else None
    return result


def compare_with_bare_route(base: str, lines: list[str], rounds: int, seconds: int, connections: int,
                            tmp: Path) -> dict:
    """The webhook's throughput against the same server's bare `204` route: a 2 s warm-up of each,
    then `rounds` alternated pairs (bare route, then webhook), each webhook round on deliveries not
    sent before.

    The host's speed drifts, and the bare route's rate swings from run to run: wrk's connections
    fall unevenly on the two processes, and then the route gets one core instead of two. So the
    figure is each route's best round, its capacity (`ratio`), and every pair is kept, with the
    median of their ratios."""
    script = tmp / "deliveries.lua"
    script.write_text(LUA, encoding="utf-8")
    share = len(lines) // (rounds + 1)
    warm = tmp / "deliveries-warm-up.tsv"
    warm.write_text("\n".join(lines[rounds * share:]) + "\n", encoding="utf-8")
    wrk(base + "/_bench/noop", script, warm, 2, connections)
    wrk(base + "/webhooks/discourse", script, warm, 2, connections)
    pairs = []
    for n in range(rounds):
        data = tmp / f"deliveries-{n}.tsv"
        data.write_text("\n".join(lines[n * share:(n + 1) * share]) + "\n", encoding="utf-8")
        bare = measured(base + "/_bench/noop", script, data, seconds, connections)
        hook = measured(base + "/webhooks/discourse", script, data, seconds, connections)
        if hook["requests_per_second"] * seconds > share:
            raise RuntimeError("the webhook ran out of fresh deliveries: give it more lines")
        pairs.append({"bare_204": bare, "webhook": hook,
                      "ratio": round(hook["requests_per_second"] / bare["requests_per_second"], 2)})
    best_bare = max(p["bare_204"]["requests_per_second"] for p in pairs)
    best_hook = max(p["webhook"]["requests_per_second"] for p in pairs)
    return {"rounds": rounds, "seconds_each": seconds, "connections": connections,
            "bare_204": {"requests_per_second": best_bare},
            "webhook": {"requests_per_second": best_hook,
                        "non_2xx": sum(p["webhook"]["non_2xx"] for p in pairs)},
            "ratio": round(best_hook / best_bare, 2),
            "median_pair_ratio": statistics.median(p["ratio"] for p in pairs), "pairs": pairs}


def constant_rate(port: int, path: str, lines: list[str], rate: float, seconds: float) -> dict:
    """Send `rate` requests a second for `seconds`, each on time, and measure their latency."""
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()
    start = time.perf_counter() + 0.5

    def send(n: int) -> None:
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        event, sig, body = lines[n % len(lines)].split("\t", 2)
        headers = {"Content-Type": "application/json", "X-Discourse-Event-Type": "post",
                   "X-Discourse-Event": "post_created", "X-Discourse-Event-Id": event,
                   "X-Discourse-Event-Signature": sig}
        began = time.perf_counter()
        local.conn.request("POST", path, body=body.encode(), headers=headers)
        response = local.conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(total)))
    latencies.sort()
    return {"rate": round(rate, 1), "requests": total, "statuses": statuses,
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)}


def throughput(database: str | None, seconds: int, quiet: bool = True, connections: int = 8,
               rounds: int = 3) -> dict:
    from commons_sync.engine.errors import InvalidOperation
    from commons_sync.service import handlers as h
    from commons_sync.storage.database import make_engine, upgrade

    tmp = Path(tempfile.mkdtemp())
    url = database or f"sqlite:///{tmp}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    svc = h.Service(engine)
    try:
        h.create_round(svc, h.RoundSpec(slug="bench", name="Bench", allocation_cents=10**9, group="lieux"))
        h.open_commons(svc, h.CommonsSpec(round_slug="bench", title="Commun", goal_cents=10**9, topic_id=318))
    except InvalidOperation as error:  # a database kept from an earlier run: its round serves again
        if error.code != "duplicate_slug":
            raise
    # Event ids no earlier run used: a delivery sent again measures the duplicate path instead.
    first_event = 10_000_000 * (int(time.time()) % 100_000)
    engine.dispose()
    per_round = max(20_000, 4_000 * seconds)  # more than the fastest webhook round stores
    lines = []
    for n in range(per_round * (rounds + 1)):  # the last share warms the server up
        body = post_body(10_000_000 + n, 318, f"lieu-{n % 500}", 1 + n % 40)
        lines.append(f"{first_event + n}\t{signed(body)}\t{body.decode()}")
    port = free_port()
    env = {**os.environ, "COMMONS_SYNC_DATABASE_URL": url, "COMMONS_SYNC_BENCH_ROUTES": "1",
           "COMMONS_SYNC_DISCOURSE_URL": "http://127.0.0.1:9", "COMMONS_SYNC_DISCOURSE_API_KEY": "k" * 64,
           "COMMONS_SYNC_DISCOURSE_API_USERNAME": "commons-bot",
           "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": SECRET, "COMMONS_SYNC_SECRET_KEY": "bench"}
    from commons_sync.web import gunicorn_conf

    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "python:commons_sync.web.gunicorn_conf",
                               "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                               "commons_sync.web.app:create_app()"], env=env, cwd=tmp,
                              stderr=subprocess.DEVNULL if quiet else None)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        compared = compare_with_bare_route(base, lines, rounds, seconds, connections, tmp)
        # Fresh deliveries for the latency run (the ones above are stored already: duplicates).
        fresh = []
        for n in range(20_000):
            body = post_body(20_000_000 + n, 318, f"lieu-{n % 500}", 1 + n % 40)
            fresh.append(f"{first_event + 5_000_000 + n}\t{signed(body)}\t{body.decode()}")
        half = constant_rate(port, "/webhooks/discourse", fresh, compared["webhook"]["requests_per_second"] / 2,
                             min(seconds, 10))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"server": f"gunicorn, {gunicorn_conf.workers} processes × {gunicorn_conf.threads} threads "
                      f"({gunicorn_conf.worker_class}, commons_sync/web/gunicorn_conf.py), 2 cores shared with wrk",
            "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS"), "database": url.split(":", 1)[0],
            **compared, "at_half_max_rate": half}


def pending(forum) -> bool:
    from commons_sync.service.forum import pending_delivery_count
    from commons_sync.service.worker import pending_rows

    return bool(pending_delivery_count(forum.svc) or pending_rows(forum.svc, forum.worker.senders))


API_CEILING = {"service": 50, "double": 60}  # the service's default; the double keeps Discourse's 60


@contextmanager
def one_commons_at_the_default_ceiling(members: list[str], goal: str):
    """The tests' loopback stack (SQLite, the Discourse double) with `members` in the round's group
    (the first opens the topic) and one commons; yields the harness and the topic."""
    sys.path.insert(0, str(ROOT / "tests"))
    from forum.harness import ForumHarness

    tmp = Path(tempfile.mkdtemp())
    try:
        with ForumHarness(f"sqlite:///{tmp}/forum.db", max_rpm=API_CEILING["service"],
                          double_rpm=API_CEILING["double"]) as forum:
            forum.people(members=members, others=())
            forum.round(allocation=1_000_000)
            topic = forum.commons_topic(goal=goal, cap=None)
            forum.worker.quiet_seconds, forum.worker.max_delay_seconds = 1.0, 10.0
            yield forum, topic
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def worker_running(forum):
    """The harness's worker in a thread, as `commons-sync worker` runs it, for the block's length."""
    stop = threading.Event()
    thread = threading.Thread(target=forum.worker.run_forever, kwargs={"stop": stop, "poll_seconds": 0.2})
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def wait_until_raised(forum, topic: int, expected: int, minutes: int) -> None:
    """Until the commons shows `expected` raised and nothing waits to be applied or sent."""
    deadline = time.time() + 60 * minutes
    while forum.commons(topic)["raised"] != expected or pending(forum):
        if time.time() > deadline:
            raise RuntimeError(f"the pledges were not all applied and sent in {minutes} minutes")
        time.sleep(0.5)


def burst_and_idle(pledges: int, seconds: float, idle_samples: int) -> dict:
    from commons_sync.discourse.status_post import MARKER

    members = ["alice"] + [f"lieu-{n}" for n in range(1, 20)]  # the harness opens topics as alice
    with one_commons_at_the_default_ceiling(members, goal="5000") as (forum, topic):
        with worker_running(forum):
            # Warm the membership cache, then the idle figure: one pledge at a time.
            idle = []
            for n in range(idle_samples):
                before = forum.status_post(topic)["version"] if forum.status_posts(topic) else 0
                began = time.perf_counter()
                forum.pledge(members[n % len(members)], topic, "1")
                while True:
                    posts = forum.status_posts(topic)
                    if posts and posts[0]["version"] > before:
                        break
                    time.sleep(0.02)
                idle.append(time.perf_counter() - began)
            version_before = forum.status_post(topic)["version"]
            raised_before = forum.commons(topic)["raised"]
            began = time.perf_counter()
            for n in range(pledges):
                forum.pledge(members[n % len(members)], topic, "1")
                delay = began + (n + 1) * seconds / pledges - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            posted = time.perf_counter() - began
            expected = raised_before + pledges
            wait_until_raised(forum, topic, expected, minutes=10)
            time.sleep(3)
            status = forum.status_post(topic)
            settled = time.perf_counter() - began
        stats = forum.api_stats()
        raised = forum.commons(topic)["raised"]
    return {
        "api_ceiling": API_CEILING,
        "idle": {"samples": idle_samples, "median_seconds": round(statistics.median(idle), 2),
                 "max_seconds": round(max(idle), 2)},
        "burst": {"pledges": pledges, "posted_in_seconds": round(posted, 1),
                  "status_post_edits": status["version"] - version_before,
                  "settled_after_seconds": round(settled, 1), "raised": raised, "expected": expected,
                  "exact": raised == expected and f"{expected:,}".replace(",", " ") in status["raw"].replace("\u202f", " ")
                  and MARKER in status["raw"],
                  "max_api_requests_in_any_60s": stats["max_in_any_60s"], "rejected_429": stats["rejected"]},
    }


def distinct_members(count: int) -> dict:
    members = ["alice"] + [f"lieu-{n}" for n in range(1, count)]  # the harness opens topics as alice
    with one_commons_at_the_default_ceiling(members, goal="100000") as (forum, topic):
        calls_before = forum.api_stats()["total"]
        raised_before = forum.commons(topic)["raised"]
        with worker_running(forum):
            began = time.perf_counter()
            for member in members:
                forum.pledge(member, topic, "1")
            expected = raised_before + count
            wait_until_raised(forum, topic, expected, minutes=30)
            applied = time.perf_counter() - began
        stats = forum.api_stats()
        commons = forum.commons(topic)
    return {"api_ceiling": API_CEILING, "members": count,
            "all_applied_after_seconds": round(applied, 1), "api_calls": stats["total"] - calls_before,
            "max_api_requests_in_any_60s": stats["max_in_any_60s"], "rejected_429": stats["rejected"],
            "cofunders": len(commons["cofunder_names"]), "exact": commons["raised"] == expected}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--database")
    parser.add_argument("--pledges", type=int, default=1_000)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--idle-samples", type=int, default=15)
    parser.add_argument("--only", choices=["throughput", "burst", "members"])
    parser.add_argument("--members", type=int, default=200, help="distinct members, for --only members")
    parser.add_argument("--connections", type=int, default=8, help="wrk's connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternated pairs (bare route, webhook)")
    args = parser.parse_args()
    if shutil.which("wrk") is None and args.only in (None, "throughput"):
        sys.exit("bench/webhook.py needs wrk: apt-get install wrk")
    result = {}
    if args.only in (None, "throughput"):
        result["throughput"] = throughput(args.database, args.seconds, connections=args.connections,
                                          rounds=args.rounds)
    if args.only in (None, "burst"):
        result.update(burst_and_idle(args.pledges, args.burst_seconds, args.idle_samples))
    if args.only in (None, "members"):
        result["members"] = distinct_members(args.members)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
