"""Benchmark: the whole service on PostgreSQL at the scale of a real round (issue 7).

A fresh database is seeded with a round (10,000 members, 2,000 commons, 200,000 pledges by
default), then the real processes run on loopback: the Discourse double (its own process), the
service's web app under gunicorn and `commons-sync worker` processes. The bench measures:

1. ratio: signed pledge webhooks per second against the same server's bare `204` route, with wrk
   (`bench/webhook.py`'s measure and bodies), on this seeded database, in alternated rounds (each
   route's best, every round kept); the webhook path is then profiled under the same load with py-spy;
2. drain: `--burst` pledges stored through the webhook while no worker runs (the ratio phase's
   deliveries are removed first: they measured the receive path only), then the workers started:
   how fast they apply them (the most the pipeline applies), the workers profiled with py-spy;
3. stream: `--stream` more pledges sent at a constant rate (60 % of the drain rate unless
   `--rate`), measuring pledges applied per second end to end, webhook p50/p99, outbox lag (a
   commons' last ledger change → its status post edited at the double) and the outbox backlog,
   API calls per minute seen by the double, RSS of every process, the load average.

Then it checks what must hold: every streamed pledge applied, the ledger equal to its
projections, every status post equal to the ledger, API calls never above the ceiling.

How the round is seeded: the double gets the members (in the round's group) and one topic per
commons through its control API; the round and its commons are created with the service's use
cases; the pledges go through the service's own `handlers.apply_post` use case (the engine's
rules, unchanged) over an in-memory repository, whose final state is then written in bulk
(`MemoryRepository`; `tests/scale/` checks that it writes exactly what the database path writes).
The webhook deliveries those pledges came from are stored too, applied (the inbox keeps them 30
days), so that queries joining the inbox see a real round's size. The outbox rows of the seeded
pledges are then marked done, except the status posts, which real `commons-sync worker --once`
processes create at the double before the measurements.

    apt-get install wrk; .venv/bin/pip install py-spy      # once (without them: no ratio, no profiles)
    .venv/bin/python bench/scale.py --small                      # a quick check (~2 min)
    .venv/bin/python bench/scale.py                              # 1x: 10,000 / 2,000 / 200,000
    .venv/bin/python bench/scale.py --members 20000 --commons 4000 --pledges 400000   # 2x

Results are printed as JSON and written to `--output` (default `bench/results/scale-<date>.json`,
`-<label>` appended when given); `bench/scale.py --table A.json B.json` prints runs side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, func, insert, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from commons_sync.devtools.discourse_double import ControlClient  # noqa: E402
from commons_sync.devtools.served import free_port  # noqa: E402
from commons_sync.service import handlers as h  # noqa: E402
from commons_sync.service import outbox  # noqa: E402
from commons_sync.storage import forum_tables as ft  # noqa: E402
from commons_sync.storage import tables as tb  # noqa: E402
from commons_sync.storage.database import make_engine, upgrade  # noqa: E402
from commons_sync.engine.model import EntryKind  # noqa: E402
from commons_sync.storage.repository import _MAPPERS  # noqa: E402

import webhook as webhook_bench  # noqa: E402  (bench/webhook.py: wrk, constant rate, bodies)

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GROUP = "lieux"
BOT = "commons-bot"
ROUND = "scale"
SEEDED_POSTS = 10_000_000  # post ids of the seeded pledges (the double's own ids stay far below)
RATIO_POSTS = 20_000_000   # the ratio phase's deliveries
STREAM_POSTS = 30_000_000  # the stream's
BURST_EVENTS = 55_000_000  # event ids of the burst's deliveries


# --- the database ----------------------------------------------------------------------------------


def create_database(server_url: str = POSTGRES, prefix: str = "cs_scale") -> str:
    """A new uniquely named database on the server; answers its URL."""
    name = f"{prefix}_{datetime.now(timezone.utc):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


# --- the round -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundPlan:
    """The seeded round: how many members, commons and pledges, and the random seed."""

    members: int
    commons: int
    pledges: int
    seed: int = 2018

    def member_names(self) -> list[str]:
        return [f"lieu-{n:05d}" for n in range(self.members)]

    def round_spec(self) -> h.RoundSpec:
        # As bench/ledger.py: 500 € each, matching 1:1 from a pool, partial funding at 90 %.
        return h.RoundSpec(slug=ROUND, name="Campagne à l'échelle", allocation_cents=50_000, group=GROUP,
                           partial_threshold_pct=90, matching_ratio="1",
                           matching_pool_cents=self.pledges * 500, matching_cap_cents=50_000)

    def goals(self) -> list[int]:
        rng = random.Random(self.seed)
        per_commons = self.pledges / self.commons
        return [int(per_commons * rng.uniform(1_000, 3_000)) for _ in range(self.commons)]  # a third end funded

    def changes(self, topic_ids: list[int]):
        """The seeded pledges, as the worker would hand them to `apply_post`."""
        rng = random.Random(self.seed + 1)
        members = self.member_names()
        for n in range(1, self.pledges + 1):
            yield h.PostChange(post_id=SEEDED_POSTS + n, topic_id=topic_ids[rng.randrange(self.commons)],
                               username=rng.choice(members), kind="snapshot", version=1,
                               amount_cents=rng.randint(1, 40) * 100,
                               post_number=(SEEDED_POSTS + n) % 100_000 + 2,  # as in bench/webhook.py's bodies
                               matching_eligible=n % 3 == 0)


def open_round(svc: h.Service, plan: RoundPlan, topic_ids: list[int]) -> None:
    """The round and its commons, through the service's use cases."""
    h.create_round(svc, plan.round_spec())
    for n, (goal, topic_id) in enumerate(zip(plan.goals(), topic_ids)):
        h.open_commons(svc, h.CommonsSpec(round_slug=ROUND, title=f"Commun numéro {n:05d}", goal_cents=goal,
                                          cap_cents=goal * 2, topic_id=topic_id))


class _Store:
    """Everything the seeded pledges create or change, kept in memory until written."""

    def __init__(self, round_, commons) -> None:
        self.round = round_
        self.commons_by_id = {c.id: c for c in commons}
        self.commons_by_topic = {c.topic_id: c for c in commons}
        self.loaded = {id(obj): _MAPPERS[type(obj)][2](obj) for obj in [round_, *commons]}
        self.accounts: dict[str, object] = {}
        self.pledges: dict[int, object] = {}
        self.stamps: dict[int, dict] = {}  # id(obj) -> created_at / updated_at
        self.entries: list[tuple[object, datetime]] = []
        self.outbox: dict[str, dict] = {}  # pending rows by key (those already stored have an id)


class MemoryRepository:
    """The few `Repository` methods `handlers.apply_post` uses, over `_Store` (same semantics:
    objects tracked when loaded, changed fields stamped `updated_at` on flush, outbox rows upserted
    by key with `seq` counting the changes coalesced)."""

    def __init__(self, store: _Store, clock) -> None:
        self.store = store
        self.clock = clock
        self._seen: list[tuple[object, dict]] = []

    def _track(self, obj):
        if obj is not None:
            self._seen.append((obj, _MAPPERS[type(obj)][2](obj)))
        return obj

    def pledge_by_post(self, post_id: int):
        return self._track(self.store.pledges.get(post_id))

    def commons(self, commons_id: int):
        return self._track(self.store.commons_by_id.get(commons_id))

    def commons_by_topic(self, topic_id: int):
        return self._track(self.store.commons_by_topic.get(topic_id))

    def round(self, round_id: int, *, lock: bool = False):
        return self._track(self.store.round if self.store.round.id == round_id else None)

    def account(self, round_id: int, username: str):
        account = self.store.accounts.get(username)
        return self._track(account if account is not None and account.round_id == round_id else None)

    def add(self, obj, **extra):
        table = _MAPPERS[type(obj)][0]
        now = self.clock()
        kind = self.store.accounts if table is tb.accounts else self.store.pledges
        if table is tb.accounts:
            kind[obj.username] = obj
        elif table is tb.pledges:
            kind[obj.post_id] = obj
        else:
            raise NotImplementedError(table.name)
        obj.id = len(kind)
        self.store.stamps[id(obj)] = {s: now for s in ("created_at", "updated_at") if s in table.c}
        return self._track(obj)

    def flush(self) -> None:
        for index, (obj, before) in enumerate(self._seen):
            table, _, to_row = _MAPPERS[type(obj)]
            after = to_row(obj)
            if any(before.get(key) != value for key, value in after.items()):
                if "updated_at" in table.c:
                    self.store.stamps.setdefault(id(obj), {})["updated_at"] = self.clock()
                self._seen[index] = (obj, after)

    def append(self, entries) -> None:
        now = self.clock()
        self.store.entries.extend((entry, entry.at or now) for entry in entries)

    def enqueue_many(self, rows) -> None:
        now = self.clock()
        for kind, key, payload in rows:
            body = json.dumps(payload or {}, sort_keys=True)
            row = self.store.outbox.get(key)
            if row is None:
                self.store.outbox[key] = dict(kind=kind, key=key, payload=body, seq=1, created_at=now,
                                              updated_at=now, not_before=now)
            else:
                row.update(payload=body, updated_at=now, seq=row["seq"] + 1)


class _MemoryUnitOfWork:
    def __init__(self, store: _Store, clock) -> None:
        self.repo = MemoryRepository(store, clock)
        self.events: list = []

    def collect(self, events) -> None:
        self.events.extend(events)

    def commit(self) -> None:
        self.repo.flush()
        outbox.record(self.repo, self.events)
        self.events = []


@dataclass
class _MemoryService:
    """A `Service` whose units of work run on the in-memory store (one per use case, as usual)."""

    store: _Store
    clock: Callable[[], datetime]

    def run(self, use_case):
        return use_case(_MemoryUnitOfWork(self.store, self.clock))


def seed_pledges(svc: h.Service, changes, *, in_memory: bool = True) -> dict:
    """Apply `changes` with `handlers.apply_post`: through the database one unit of work each
    (`in_memory=False`, the worker's path), or over the in-memory repository then written in bulk.
    Answers counts and seconds."""
    started = time.perf_counter()
    counts = Counter()
    if not in_memory:
        for change in changes:
            outcome = h.apply_post(svc, change)
            counts["refused" if outcome.refused else "accepted"] += 1
        return {**counts, "seconds": round(time.perf_counter() - started, 1)}
    with svc.engine.connect() as conn:
        from commons_sync.storage.repository import Repository

        repo = Repository(conn, svc.clock)
        round_ = repo.round_by_slug(ROUND)
        store = _Store(round_, repo.commons_of_round(round_.id))
        o = tb.outbox
        for row in conn.execute(select(o.c.id, o.c.kind, o.c.key, o.c.payload, o.c.seq, o.c.created_at,
                                       o.c.updated_at, o.c.not_before).where(o.c.done_at.is_(None))):
            store.outbox[row.key] = dict(row._mapping)
    memory = _MemoryService(store, svc.clock)
    for change in changes:
        outcome = h.apply_post(memory, change)
        counts["refused" if outcome.refused else "accepted"] += 1
    applied = time.perf_counter()
    _write(svc.engine, store)
    return {**counts, "seconds": round(time.perf_counter() - started, 1),
            "apply_seconds": round(applied - started, 1), "write_seconds": round(time.perf_counter() - applied, 1)}


def _write(engine, store: _Store) -> None:
    """Write the in-memory state: new rows in the order they were added, changed rows updated."""
    def rows(objects, table):
        to_row = _MAPPERS[type(objects[0])][2] if objects else None
        return [to_row(obj) | store.stamps.get(id(obj), {}) for obj in objects]

    with engine.begin() as conn:
        for table, objects in ((tb.accounts, list(store.accounts.values())),
                               (tb.pledges, list(store.pledges.values()))):
            batch = rows(objects, table)
            for start in range(0, len(batch), 5_000):
                conn.execute(insert(table), batch[start:start + 5_000])
        entries = [dict(at=at, round_id=e.round_id, commons_id=e.commons_id, username=e.username,
                        kind=EntryKind(e.kind).value, amount_cents=e.amount_cents,
                        pledge_post_id=e.pledge_post_id, contribution_id=e.contribution_id, note=e.note)
                   for e, at in store.entries]
        for start in range(0, len(entries), 5_000):
            conn.execute(insert(tb.ledger_entries), entries[start:start + 5_000])
        o = tb.outbox
        stored = [row for row in store.outbox.values() if "id" in row]
        new = [row for row in store.outbox.values() if "id" not in row]
        if stored:
            from sqlalchemy import bindparam

            conn.execute(update(o).where(o.c.id == bindparam("row_id")).values(
                payload=bindparam("payload"), seq=bindparam("seq"), updated_at=bindparam("updated_at")),
                [dict(row_id=r["id"], payload=r["payload"], seq=r["seq"], updated_at=r["updated_at"])
                 for r in stored])
        if new:
            conn.execute(insert(o), new)
        for obj in [store.round, *store.commons_by_id.values()]:
            table, _, to_row = _MAPPERS[type(obj)]
            before, after = store.loaded[id(obj)], to_row(obj)
            changed = {k: v for k, v in after.items() if before.get(k) != v}
            if changed:
                conn.execute(update(table).where(table.c.id == obj.id).values(**changed))


def seed_deliveries(engine, changes, first_event: int = 40_000_000) -> dict:
    """The webhook deliveries the seeded pledges came from, stored and applied, as the inbox holds
    them for 30 days (`forget_applied_deliveries`): queries that join the inbox see a real size."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    batch, count = [], 0
    d = ft.forum_deliveries
    with engine.begin() as conn:
        for n, change in enumerate(changes):
            body = webhook_bench.post_body(change.post_id, change.topic_id, change.username,
                                           change.amount_cents // 100)
            batch.append(dict(event_id=first_event + n, event_type="post", event="post_created", instance=None,
                              body=body, received_at=now, topic_id=change.topic_id, post_id=change.post_id,
                              version=1, opens_commons=False, applied_at=now))
            if len(batch) == 5_000:
                conn.execute(insert(d), batch)
                count, batch = count + len(batch), []
        if batch:
            conn.execute(insert(d), batch)
            count += len(batch)
    return {"deliveries": count, "seconds": round(time.perf_counter() - started, 1)}


def set_seeded_side_effects_done(engine) -> int:
    """Mark the seeded outbox rows done, except the status posts (a worker creates those): the
    seeded pledge posts do not exist at the double, so replies to them cannot be sent."""
    o = tb.outbox
    with engine.begin() as conn:
        return conn.execute(update(o).where(o.c.done_at.is_(None), o.c.kind != outbox.STATUS_POST)
                            .values(done_at=datetime.now(timezone.utc))).rowcount


# --- the processes ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:  # the parent's pid, after the state
            found.append(int(stat.parent.name))
    return found


def wait_http(port: int, path: str = "/", timeout: float = 30.0) -> None:
    import http.client

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} in {timeout} s")


@dataclass
class Stack:
    """The real processes: the double, gunicorn, the workers; their logs in `logs`."""

    database_url: str
    logs: Path
    web_workers: int
    workers: int
    ceiling: int
    double_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: uuid.uuid4().hex * 2)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "COMMONS_SYNC_DATABASE_URL": self.database_url,
                "COMMONS_SYNC_DISCOURSE_URL": f"http://127.0.0.1:{self.double_port}",
                "COMMONS_SYNC_DISCOURSE_API_KEY": self.api_key, "COMMONS_SYNC_DISCOURSE_API_USERNAME": BOT,
                "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": webhook_bench.SECRET,
                "COMMONS_SYNC_DISCOURSE_MAX_RPM": str(self.ceiling), "COMMONS_SYNC_SECRET_KEY": "scale-bench",
                "COMMONS_SYNC_BENCH_ROUTES": "1", "COMMONS_SYNC_LANGUAGE": "fr"}

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        process = subprocess.Popen(argv, env=self.env(), cwd=self.logs, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start_double(self) -> ControlClient:
        self._start("double", [sys.executable, "-m", "commons_sync.devtools.discourse_double",
                               "--port", str(self.double_port), "--api-rpm", str(self.ceiling),
                               "--api-key", self.api_key, "--api-username", BOT])
        wait_http(self.double_port, "/_double/requests")
        return ControlClient(f"http://127.0.0.1:{self.double_port}")

    def start_web(self) -> None:
        # The production settings (commons_sync/web/gunicorn_conf.py), on a free port.
        self._start("gunicorn", [str(Path(sys.executable).parent / "gunicorn"), "-c",
                                 "python:commons_sync.web.gunicorn_conf", "-w", str(self.web_workers),
                                 "-b", f"127.0.0.1:{self.web_port}", "--log-level", "warning",
                                 "commons_sync.web.app:create_app()"])
        wait_http(self.web_port, "/healthz")

    def start_workers(self) -> None:
        for n in range(self.workers):
            self._start(f"worker-{n + 1}", [str(Path(sys.executable).parent / "commons-sync"), "worker"])

    def worker_once(self, processes: int = 2) -> None:
        """`commons-sync worker --once` in `processes` processes at once (rows are claimed one by one)."""
        started = []
        for n in range(processes):
            log = open(self.logs / f"worker-once-{n + 1}.log", "wb")
            started.append(subprocess.Popen([str(Path(sys.executable).parent / "commons-sync"), "worker", "--once"],
                                            env=self.env(), cwd=self.logs, stdout=log, stderr=subprocess.STDOUT))
        for process in started:
            if process.wait() != 0:
                raise RuntimeError(f"worker --once failed: see {self.logs}")

    def pids(self) -> dict[str, int]:
        """Every process of the stack by role (gunicorn's workers included)."""
        found = {}
        for name, process in self.processes.items():
            if process.poll() is not None:
                continue
            found[name if name != "gunicorn" else "gunicorn-master"] = process.pid
            if name == "gunicorn":
                for n, child in enumerate(sorted(children(process.pid))):
                    found[f"gunicorn-worker-{n + 1}"] = child
        return found

    def stop(self, names: list[str] | None = None) -> None:
        for name in list(names or self.processes):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Sampler:
    """Every `every` seconds: RSS of each process, the load average and what `probe` answers."""

    def __init__(self, stack: Stack, probe: Callable[[], dict], every: float = 1.0) -> None:
        self.stack, self.probe, self.every = stack, probe, every
        self.samples: list[dict] = []
        self.peak_rss: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = {"t": round(time.time() - self.started, 1), "load1": os.getloadavg()[0]}
            for role, pid in self.stack.pids().items():
                rss = rss_mb(pid)
                if rss is not None:
                    self.peak_rss[role] = max(self.peak_rss.get(role, 0.0), rss)
            self.peak_rss["bench"] = max(self.peak_rss.get("bench", 0.0), rss_mb(os.getpid()) or 0.0)
            try:
                sample.update(self.probe())
            except Exception as exc:  # noqa: BLE001 - a missed sample is not a failed bench
                sample["error"] = str(exc)
            self.samples.append(sample)
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- profiles --------------------------------------------------------------------------------------


def py_spy(pid: int, seconds: float, output: Path, subprocesses: bool = False) -> subprocess.Popen | None:
    """Start py-spy recording `pid` for `seconds` (raw collapsed stacks), or None if it is missing."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        return None
    argv = [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
            "--format", "raw", "--output", str(output), "--nonblocking"]
    if subprocesses:
        argv.append("--subprocesses")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 12) -> dict:
    """Top frames of a py-spy raw profile: inclusive and self shares of the samples (idle excluded)."""
    if not path.exists():
        return {"error": "no profile"}
    inclusive, own = Counter(), Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        if frames[-1].startswith(("wait (", "select (", "accept (", "_wait_for_tstate_lock", "sleep (",
                                  "poll (", "_worker (concurrent")):
            idle += n
            continue
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {"busy_samples": total, "idle_samples": idle,
            "inclusive_pct": {f: share(c) for f, c in inclusive.most_common(60)
                              if "site-packages" not in f or _interesting(f)},
            "self_pct": {f: share(c) for f, c in own.most_common(top)}}


def _frame(raw: str) -> str:
    # py-spy writes `function (path/to/file.py:line)`: keep the function and the file's tail.
    name, _, where = raw.partition(" (")
    where = where.rstrip(")")
    path = where.split(":")[0]
    parts = Path(path).parts
    if "commons_sync" in parts:
        short = "/".join(parts[parts.index("commons_sync"):])
    elif "site-packages" in parts:
        short = "/".join(parts[parts.index("site-packages") + 1:][:2])
    else:
        short = Path(path).name
    return f"{name} ({short})"


def _interesting(frame: str) -> bool:
    return any(word in frame for word in ("psycopg", "sqlalchemy/engine", "markdown_it", "flask/app",
                                          "werkzeug", "requests/sessions", "json"))


# --- the forum at the double -----------------------------------------------------------------------


def populate_double(control_url: str, plan: RoundPlan, threads: int = 8) -> list[int]:
    """The members (in the round's group) and one topic per commons; answers the topic ids."""
    local = threading.local()

    def client() -> ControlClient:
        if not hasattr(local, "client"):
            local.client = ControlClient(control_url)
        return local.client

    ControlClient(control_url).create_group(GROUP)
    members = plan.member_names()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda name: client().create_user(name, name=name.replace("-", " ").title(),
                                                        groups=[GROUP]), members))
        topics = list(pool.map(lambda n: client().create_topic(
            members[n % len(members)], f"Commun numéro {n:05d} à cofinancer",
            f"Présentation du commun numéro {n}, proposé au réseau des lieux.")["topic_id"],
            range(plan.commons)))
    return topics


def status_posts(control: ControlClient, engine) -> dict[int, dict]:
    """The status post of every commons that has one, as the double stores it."""
    c = tb.commons
    with engine.connect() as conn:
        rows = conn.execute(select(c.c.id, c.c.status_post_id).where(c.c.status_post_id.is_not(None))).all()
    return {row.id: control.post(row.status_post_id) for row in rows}


def expected_status_text(svc: h.Service, commons_id: int) -> str:
    from commons_sync.discourse.status_post import render_status_post
    from commons_sync.service.worker import ForumSenders

    senders = ForumSenders(svc, None, BOT, "fr")
    _topic, _post, figures = senders._status_state(commons_id)
    return render_status_post(figures, "fr", svc.clock(), senders.zone)


# --- the phases ------------------------------------------------------------------------------------


def deliveries(first_post: int, first_event: int, count: int, topics: list[int], members: list[str],
               seed: int) -> list[str]:
    """`count` signed pledge deliveries (bench/webhook.py's body and signature), small amounts."""
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        body = webhook_bench.post_body(first_post + n, rng.choice(topics), rng.choice(members), rng.randint(1, 5))
        lines.append(f"{first_event + n}\t{webhook_bench.signed(body)}\t{body.decode()}")
    return lines


def constant_rate(port: int, path: str, lines: list[str], rate: float) -> dict:
    """Send every line at `rate` a second, each on time, and measure latencies: bench/webhook.py's
    `constant_rate`, except that a keep-alive connection the server closed while idle (gthread
    closes them after 2 s) is opened again instead of failing the run."""
    import http.client

    latencies: list[float] = []
    statuses: Counter = Counter()
    reconnects = [0]
    lock = threading.Lock()
    local = threading.local()
    start = time.perf_counter() + 0.5

    def send(n: int) -> None:
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event, sig, body = lines[n].split("\t", 2)
        headers = {"Content-Type": "application/json", "X-Discourse-Event-Type": "post",
                   "X-Discourse-Event": "post_created", "X-Discourse-Event-Id": event,
                   "X-Discourse-Event-Signature": sig}
        began = time.perf_counter()
        for attempt in range(2):
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                local.conn.request("POST", path, body=body.encode(), headers=headers)
                response = local.conn.getresponse()
                response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                local.conn.close()
                local.conn = None
                with lock:
                    reconnects[0] += 1
                if attempt:
                    raise
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            statuses[response.status] += 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(len(lines))))
    latencies.sort()
    return {"rate": round(rate, 1), "requests": len(lines), "statuses": dict(statuses),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1), "reconnects_after_idle_close": reconnects[0]}


def commit_ms(engine) -> float:
    """How long one durable commit takes now (a transaction given an id, so its commit is flushed
    to disk): the pipeline commits several times per pledge, so this sets its pace."""
    with engine.connect() as conn:
        conn.execute(text("SELECT txid_current()"))
        began = time.perf_counter()
        conn.commit()
        return (time.perf_counter() - began) * 1000


def _spread(values: list[float]) -> dict:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {}
    return {"p50": round(statistics.median(values), 1), "p90": round(values[int((len(values) - 1) * 0.9)], 1),
            "samples": len(values)}


def commits_so_far(engine) -> int:
    """Transactions committed in this database (PostgreSQL's statistics, flushed within a second)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                            ).scalar_one()


def pending_deliveries(engine) -> int:
    d = ft.forum_deliveries
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar_one()


def outbox_backlog(engine) -> dict:
    o = tb.outbox
    with engine.connect() as conn:
        rows = conn.execute(select(o.c.kind, func.count()).where(o.c.done_at.is_(None)).group_by(o.c.kind)).all()
    return {kind: n for kind, n in rows}


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def ratio_phase(stack: Stack, lines: list[str], rounds: int, seconds: int, profile_seconds: int,
                tmp: Path) -> dict:
    """The bare route and the webhook in alternated rounds (same server, same run), then the
    webhook profiled; the profiled run gets the lines no round used."""
    base = f"http://127.0.0.1:{stack.web_port}"
    profiled_lines = lines[len(lines) * (rounds + 1) // (rounds + 2):]
    result = webhook_bench.compare_with_bare_route(base, lines[:len(lines) - len(profiled_lines)], rounds,
                                                   seconds, 8, tmp)
    if profile_seconds:
        rest, script = tmp / "ratio-profiled.tsv", tmp / "deliveries.lua"
        rest.write_text("\n".join(profiled_lines) + "\n", encoding="utf-8")
        output = tmp / "profile-webhook.txt"
        spy = py_spy(stack.processes["gunicorn"].pid, profile_seconds + 1, output, subprocesses=True)
        profiled = webhook_bench.wrk(base + "/webhooks/discourse", script, rest, profile_seconds, 8)
        if spy is not None:
            spy.wait(timeout=120)
        result["webhook_under_profiler"] = profiled
        result["profile"] = summarize_profile(output)
    return result


def drain_phase(stack: Stack, engine, profile_seconds: int, tmp: Path, timeout: float,
                first_event: int = BURST_EVENTS) -> dict:
    """Start the workers on the stored backlog; measure how fast they apply it."""
    backlog = pending_deliveries(engine)
    time.sleep(1.5)
    commits_before = commits_so_far(engine)
    started = time.time()
    stack.start_workers()
    spies = []
    if profile_seconds:
        time.sleep(2)
        for name in [n for n in stack.processes if n.startswith("worker-")]:
            output = tmp / f"profile-{name}.txt"
            spies.append((name, output, py_spy(stack.processes[name].pid, profile_seconds, output)))
    samples, commit_times = [], []
    done = wait_until(lambda: commit_times.append(commit_ms(engine)) or samples.append(
        (time.time() - started, pending_deliveries(engine))) or samples[-1][1] == 0, timeout, every=1.0)
    seconds = time.time() - started
    time.sleep(1.5)
    # Every commit of the database meanwhile (the workers', the samples' and the probes' own) per pledge.
    commits = commits_so_far(engine) - commits_before - 2 * len(samples)
    profiles = {}
    for name, output, spy in spies:
        if spy is not None:
            spy.wait(timeout=120)
        profiles[name] = summarize_profile(output)
    d = ft.forum_deliveries
    with engine.connect() as conn:
        # The burst's deliveries only (the seeded inbox was applied long before).
        first, last = conn.execute(select(func.min(d.c.applied_at), func.max(d.c.applied_at))
                                   .where(d.c.applied_at.is_not(None), d.c.event_id >= first_event,
                                          d.c.event_id < first_event + 5_000_000)).one()
    applied_seconds = (last - first).total_seconds() if first and last else seconds
    return {"backlog": backlog, "drained": done, "seconds": round(seconds, 1),
            "applied_per_second": round(backlog / max(applied_seconds, 0.001), 1),
            "durable_commit_ms": _spread(commit_times), "load_average_1min": os.getloadavg()[0],
            "commits_per_pledge": round(commits / max(backlog, 1), 1),
            "profiles": profiles, "pending_over_time": [(round(t, 1), n) for t, n in samples[::5]]}


def stream_phase(stack: Stack, engine, control: ControlClient, lines: list[str], rate: float,
                 settle_timeout: float) -> dict:
    control.set_api_ceiling(stack.ceiling, reset=True)
    d, o = ft.forum_deliveries, tb.outbox
    first_event = int(lines[0].split("\t", 1)[0])

    def probe() -> dict:
        with engine.connect() as conn:
            applied = conn.execute(select(func.count()).select_from(d).where(
                d.c.event_id >= first_event, d.c.applied_at.is_not(None))).scalar_one()
            pending = conn.execute(select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar_one()
            status = conn.execute(select(func.count()).select_from(o).where(
                o.c.done_at.is_(None), o.c.kind == outbox.STATUS_POST)).scalar_one()
        return {"applied": applied, "pending_deliveries": pending, "pending_status_posts": status,
                "commit_ms": commit_ms(engine)}

    started = datetime.now(timezone.utc)
    with Sampler(stack, probe) as sampler:
        latency = constant_rate(stack.web_port, "/webhooks/discourse", lines, rate)
        sent_at = time.time()
        settled = wait_until(lambda: (sampler.samples and sampler.samples[-1].get("applied") == len(lines)
                                      and sampler.samples[-1].get("pending_status_posts") == 0), settle_timeout)
        time.sleep(2)
        settle_seconds = time.time() - sent_at
    with engine.connect() as conn:
        first_received, last_applied = conn.execute(
            select(func.min(d.c.received_at), func.max(d.c.applied_at)).where(d.c.event_id >= first_event)).one()
    span = (last_applied - first_received).total_seconds() if last_applied else float("nan")
    stats = control.request_stats()
    minutes = sorted(stats["per_minute"].items())
    loads = [s["load1"] for s in sampler.samples]
    return {
        "pledges": len(lines), "rate_sent": round(rate, 1), "started": started.isoformat(timespec="seconds"),
        "latency": latency, "settled": settled, "settle_seconds_after_last_sent": round(settle_seconds, 1),
        "applied_per_second": round(len(lines) / span, 1), "end_to_end_seconds": round(span, 1),
        "api": {"ceiling": stats["ceiling"], "total": stats["total"], "max_in_any_60s": stats["max_in_any_60s"],
                "rejected_429": stats["rejected"], "per_minute": [n for _m, n in minutes]},
        "backlog": {"max_pending_deliveries": max((s.get("pending_deliveries", 0) for s in sampler.samples), default=0),
                    "max_pending_status_posts": max((s.get("pending_status_posts", 0) for s in sampler.samples),
                                                    default=0),
                    "over_time": [{k: s.get(k) for k in ("t", "pending_deliveries", "pending_status_posts")}
                                  for s in sampler.samples[::10]]},
        "peak_rss_mb": {k: round(v, 1) for k, v in sorted(sampler.peak_rss.items())},
        "durable_commit_ms": _spread([s_.get("commit_ms") for s_ in sampler.samples]),
        "load_average_1min": {"mean": round(statistics.mean(loads), 2) if loads else None,
                              "max": round(max(loads), 2) if loads else None},
        "since": started,
    }


def outbox_lag(engine, double_url: str, api_headers: dict, since: datetime) -> dict:
    """Per commons changed since `since`: its last ledger entry → its status post's last edit
    (read through the double's API: its control endpoints do not show `updated_at`)."""
    import requests

    # The last ledger entry of each commons is the last change its status post must show (a refused
    # pledge changes its pledge row but not the commons' figures).
    e, c = tb.ledger_entries, tb.commons
    with engine.connect() as conn:
        rows = conn.execute(select(c.c.id, c.c.status_post_id, func.max(e.c.at))
                            .select_from(e.join(c, c.c.id == e.c.commons_id))
                            .where(e.c.at >= since).group_by(c.c.id, c.c.status_post_id)).all()
    lags = []
    session = requests.Session()
    for _id, post_id, changed in rows:
        if post_id is None:
            continue
        post = session.get(f"{double_url}/posts/{post_id}.json", headers=api_headers, timeout=10).json()
        edited = datetime.fromisoformat(post["updated_at"].replace("Z", "+00:00"))
        lags.append((edited - changed).total_seconds())
    lags.sort()
    if not lags:
        return {"commons": 0}
    return {"commons": len(lags), "p50_seconds": round(statistics.median(lags), 2),
            "p99_seconds": round(lags[max(0, int(len(lags) * 0.99) - 1)], 2), "max_seconds": round(lags[-1], 2),
            "negative": sum(1 for lag in lags if lag < 0)}


def checks(svc: h.Service, control: ControlClient, stream_posts: list[int], ceiling: int) -> dict:
    """What must hold after the run (the smoke test asserts these)."""
    p = tb.pledges
    with svc.engine.connect() as conn:
        recorded = set(conn.execute(select(p.c.post_id).where(p.c.post_id.in_(stream_posts))).scalars())
        states = Counter(conn.execute(select(p.c.state).where(p.c.post_id.in_(stream_posts))).scalars())
    problems = h.verify_ledger(svc)
    posts = status_posts(control, svc.engine)
    commons_ids = [row["id"] for row in h.list_commons(svc)]
    mismatched = [cid for cid in commons_ids
                  if cid not in posts or (posts[cid]["raw"] or "").strip() != expected_status_text(svc, cid).strip()]
    stats = control.request_stats()
    return {"stream_pledges_applied": len(recorded), "stream_pledges": len(stream_posts),
            "stream_states": dict(states), "ledger_problems": problems[:10],
            "status_posts": len(posts), "status_posts_not_equal_to_ledger": mismatched[:20],
            "status_posts_not_equal_count": len(mismatched),
            "api_max_in_any_60s": stats["max_in_any_60s"], "api_ceiling": ceiling,
            "api_rejected_429": stats["rejected"]}


@dataclass
class Options:
    plan: RoundPlan
    stream: int
    burst: int
    rate: float | None = None
    web_workers: int | None = None  # None: commons_sync/web/gunicorn_conf.py's
    workers: int = 1
    ceiling: int = 20_000
    ratio_seconds: int = 10
    profile_seconds: int = 8
    stream_seconds: float = 300.0  # the stream is cut to rate x this, to keep a run bounded
    settle_timeout: float = 300.0
    keep_database: bool = False
    seed_inbox: bool = True
    ratio_rounds: int = 3


def code_version() -> dict:
    """The commit measured, and how many tracked files differed from it (a shared checkout)."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_tracked_files": len(git("status", "--short", "--untracked-files=no").splitlines())}


def forget_deliveries(engine, first_event: int, last_event: int) -> int:
    """Remove the ratio phase's stored deliveries: they measured the receive path only, and applying
    thousands of them would make the run long without telling more than the burst does."""
    d = ft.forum_deliveries
    with engine.begin() as conn:
        return conn.execute(d.delete().where(d.c.event_id.between(first_event, last_event),
                                             d.c.applied_at.is_(None))).rowcount


def run(options: Options, database_url: str | None = None) -> dict:
    """The whole bench; answers its figures (and the checks)."""
    from commons_sync.web import gunicorn_conf

    plan = options.plan
    url = database_url or create_database()
    tmp = Path(tempfile.mkdtemp(prefix="cs-scale-"))
    engine = make_engine(url)
    upgrade(engine)
    svc = h.Service(engine)
    web_workers = options.web_workers or gunicorn_conf.workers
    stack = Stack(url, tmp, web_workers, options.workers, options.ceiling)
    result: dict = {"plan": {"members": plan.members, "commons": plan.commons, "pledges": plan.pledges,
                             "stream": options.stream, "burst": options.burst},
                    "processes": {"gunicorn": f"{web_workers} processes x {gunicorn_conf.threads} threads "
                                              f"({gunicorn_conf.worker_class}, commons_sync/web/gunicorn_conf.py)",
                                  "worker_processes": options.workers, "discourse_double": 1, "postgresql": "15"},
                    "api_ceiling": {"service": options.ceiling, "double": options.ceiling},
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
                    "code": code_version()}
    try:
        began = time.perf_counter()
        control = stack.start_double()
        topics = populate_double(f"http://127.0.0.1:{stack.double_port}", plan)
        double_seconds = time.perf_counter() - began
        began = time.perf_counter()
        open_round(svc, plan, topics)
        seeded = seed_pledges(svc, plan.changes(topics))
        if options.seed_inbox:
            seeded["inbox"] = seed_deliveries(engine, plan.changes(topics))
        marked = set_seeded_side_effects_done(engine)
        problems = h.verify_ledger(svc)
        seeded.update(round_and_commons_plus_pledges_seconds=round(time.perf_counter() - began, 1),
                      double_users_and_topics_seconds=round(double_seconds, 1),
                      other_side_effects_marked_done=marked, ledger_consistent=problems == [])
        if problems:
            raise RuntimeError(f"the seeded ledger is not consistent: {problems[:3]}")
        began = time.perf_counter()
        stack.worker_once()  # the status posts of every commons, created at the double (2 processes)
        seeded["status_posts_created_seconds"] = round(time.perf_counter() - began, 1)
        seeded["status_posts_created"] = len(status_posts(control, engine))
        result["seed"] = seeded
        print(f"seeded: {json.dumps(seeded)}", file=sys.stderr, flush=True)

        members = plan.member_names()
        stack.start_web()
        if shutil.which("wrk") and options.ratio_seconds:
            # Per round (and for the profiled run), more deliveries than the fastest webhook stores.
            per_round = 4_000 * max(options.ratio_seconds, options.profile_seconds)
            ratio_lines = deliveries(RATIO_POSTS, 50_000_000, per_round * (options.ratio_rounds + 2),
                                     topics, members, plan.seed + 2)
            result["ratio"] = ratio_phase(stack, ratio_lines, options.ratio_rounds, options.ratio_seconds,
                                          options.profile_seconds, tmp)
            result["ratio"]["deliveries_removed_after"] = forget_deliveries(engine, 50_000_000, 59_999_999)
            print(f"ratio: {result['ratio']['ratio']}", file=sys.stderr, flush=True)
        else:
            result["ratio"] = {"skipped": "wrk missing or --ratio-seconds 0"}

        # The drain: a burst stored through the webhook while no worker runs, then the workers.
        burst = deliveries(RATIO_POSTS + 5_000_000, BURST_EVENTS, options.burst, topics, members, plan.seed + 4)
        result["burst_receive"] = constant_rate(stack.web_port, "/webhooks/discourse", burst, 200)
        result["drain"] = drain_phase(stack, engine, options.profile_seconds, tmp, options.settle_timeout * 2)
        print(f"drain: {result['drain']['applied_per_second']}/s", file=sys.stderr, flush=True)
        wait_until(lambda: outbox_backlog(engine).get(outbox.STATUS_POST, 0) == 0, options.settle_timeout)

        rate = options.rate or max(5.0, 0.6 * result["drain"]["applied_per_second"])
        count = min(options.stream, max(50, int(rate * options.stream_seconds)))
        stream_lines = deliveries(STREAM_POSTS, 60_000_000, count, topics, members, plan.seed + 3)
        stream = stream_phase(stack, engine, control, stream_lines, rate, options.settle_timeout)
        since = stream.pop("since")
        result["stream"] = stream
        print(f"stream: {stream['applied_per_second']}/s", file=sys.stderr, flush=True)
        stack.stop([n for n in list(stack.processes) if n.startswith("worker-")])
        result["checks"] = checks(svc, control, [STREAM_POSTS + n for n in range(count)], options.ceiling)
        # After the checks: these reads go through the double's API (counted there).
        stream["outbox_lag"] = outbox_lag(engine, f"http://127.0.0.1:{stack.double_port}",
                                          {"Api-Key": stack.api_key, "Api-Username": BOT}, since)
        result["logs"] = str(tmp)
        result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result["code_at_end"] = code_version()  # others commit meanwhile in a shared checkout
        return result
    finally:
        stack.stop()
        engine.dispose()
        if not options.keep_database and database_url is None:
            drop_database(url)


def table(paths: list[str]) -> str:
    """The figures of several runs side by side (markdown), the last column their growth."""
    runs = [json.loads(Path(path).read_text()) for path in paths]

    def row(name, get, unit=""):
        values = []
        for r in runs:
            try:
                values.append(get(r))
            except (KeyError, TypeError, IndexError):
                values.append(None)
        cells = [f"{v:,}{unit}" if isinstance(v, (int, float)) else str(v) for v in values]
        growth = ""
        if len(values) > 1 and all(isinstance(v, (int, float)) for v in (values[0], values[-1])) and values[0]:
            growth = f"× {values[-1] / values[0]:.2f}"
        return f"| {name} | " + " | ".join(cells) + f" | {growth} |"

    per_minute = lambda r: max(r["stream"]["api"]["per_minute"] or [0])  # noqa: E731
    rss = lambda role: (lambda r: max(v for k, v in r["stream"]["peak_rss_mb"].items() if k.startswith(role)))  # noqa: E731
    lines = ["| figure | " + " | ".join(f"{r['plan']['members']:,} / {r['plan']['commons']:,} / {r['plan']['pledges']:,}"
                                       for r in runs) + " | growth |",
             "| --- |" + " --- |" * (len(runs) + 1),
             row("seed: pledges through `apply_post` in memory, then written (s)", lambda r: r["seed"]["seconds"]),
             row("seed: status posts created by 2 `worker --once` (s)", lambda r: r["seed"]["status_posts_created_seconds"]),
             row("webhook, signed pledges stored (requests/s, wrk)", lambda r: r["ratio"]["webhook"]["requests_per_second"]),
             row("bare `204` route, same server (requests/s, wrk)", lambda r: r["ratio"]["bare_204"]["requests_per_second"]),
             row("ratio webhook / bare route (goal ≥ 0.5)", lambda r: r["ratio"]["ratio"]),
             row("drain: pledges applied per second (backlog, 1 worker)", lambda r: r["drain"]["applied_per_second"]),
             row("database commits per applied pledge", lambda r: r["drain"]["commits_per_pledge"]),
             row("stream: rate sent (pledges/s)", lambda r: r["stream"]["rate_sent"]),
             row("stream: pledges applied per second, end to end", lambda r: r["stream"]["applied_per_second"]),
             row("stream: pledges sent", lambda r: r["stream"]["pledges"]),
             row("webhook latency p50 (ms)", lambda r: r["stream"]["latency"]["p50_ms"]),
             row("webhook latency p99 (ms)", lambda r: r["stream"]["latency"]["p99_ms"]),
             row("outbox lag p50: last ledger entry → status post edited (s)", lambda r: r["stream"]["outbox_lag"]["p50_seconds"]),
             row("outbox lag p99 (s)", lambda r: r["stream"]["outbox_lag"]["p99_seconds"]),
             row("backlog: most deliveries waiting", lambda r: r["stream"]["backlog"]["max_pending_deliveries"]),
             row("backlog: most status posts waiting", lambda r: r["stream"]["backlog"]["max_pending_status_posts"]),
             row("API calls in the busiest minute (double)", per_minute),
             row("API calls in any 60 s, most (ceiling)", lambda r: f"{r['stream']['api']['max_in_any_60s']:,} ({r['stream']['api']['ceiling']:,})"),
             row("peak RSS, a gunicorn process (MB)", rss("gunicorn-worker")),
             row("peak RSS, the worker (MB)", rss("worker-")),
             row("peak RSS, the Discourse double (MB)", rss("double")),
             row("load average (1 min) during the stream, mean", lambda r: r["stream"]["load_average_1min"]["mean"]),
             row("checks: streamed pledges applied / sent", lambda r: f"{r['checks']['stream_pledges_applied']} / {r['checks']['stream_pledges']}"),
             row("checks: ledger problems, status posts not equal to the ledger",
                 lambda r: f"{len(r['checks']['ledger_problems'])}, {r['checks']['status_posts_not_equal_count']}")]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--table"]:
        print(table(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--commons", type=int, default=2_000)
    parser.add_argument("--pledges", type=int, default=200_000)
    parser.add_argument("--stream", type=int, default=6_000, help="pledges sent at a constant rate (at most)")
    parser.add_argument("--stream-seconds", type=float, default=300.0,
                        help="the stream is cut to rate x this many seconds, to keep a run bounded")
    parser.add_argument("--burst", type=int, default=1_500, help="pledges stored before the workers start")
    parser.add_argument("--rate", type=float, help="stream rate (default: 60 %% of the drain rate: the stream competes with the webhook for the cores)")
    parser.add_argument("--web-workers", type=int, help="gunicorn processes (default: gunicorn_conf.py's)")
    parser.add_argument("--workers", type=int, default=1,
                        help="`commons-sync worker` processes (one applies at a time, the inbox lease; a "
                             "second sends the outbox meanwhile: docs/BENCHMARKS.md compares 1 and 2)")
    parser.add_argument("--ceiling", type=int, default=20_000,
                        help="API requests per minute, the service's and the double's (CONTRACT §2)")
    parser.add_argument("--ratio-seconds", type=int, default=10)
    parser.add_argument("--ratio-rounds", type=int, default=3, help="alternated pairs (bare route, webhook)")
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument("--small", action="store_true",
                        help="500 members / 100 commons / 10,000 pledges, burst 300, stream 600")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--label", default="")
    parser.add_argument("--output", help="default bench/results/scale-<date>[-label].json")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--no-seed-inbox", action="store_true", help="seed no deliveries (an empty inbox)")
    args = parser.parse_args()
    if args.small:
        args.members, args.commons, args.pledges, args.burst, args.stream = 500, 100, 10_000, 300, 600
        args.ratio_seconds, args.profile_seconds = min(args.ratio_seconds, 5), min(args.profile_seconds, 5)
        args.stream_seconds = min(args.stream_seconds, 60)
    options = Options(RoundPlan(args.members, args.commons, args.pledges, args.seed), args.stream, args.burst,
                      args.rate, args.web_workers, args.workers, args.ceiling, args.ratio_seconds,
                      args.profile_seconds, args.stream_seconds, keep_database=args.keep_database,
                      seed_inbox=not args.no_seed_inbox, ratio_rounds=args.ratio_rounds)
    result = run(options)
    result["command"] = "python " + " ".join(sys.argv)
    text_out = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    print(text_out)
    label = f"-{args.label}" if args.label else ""
    output = Path(args.output or ROOT / "bench/results" / f"scale-{datetime.now(timezone.utc):%Y-%m-%d}{label}.json")
    output.write_text(text_out + "\n", encoding="utf-8")
    print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
