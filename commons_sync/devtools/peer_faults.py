"""The service as real processes on loopback, with its peers taken down and people editing fiches.

Shared by `bench/peers_down.py`, `bench/human_edits.py` and `tests/faults/`:

- `ServiceStack`: the Discourse double (`python -m commons_sync.devtools.discourse_double`), the
  web service under gunicorn and a `commons-sync worker`, each its own process, on one database,
  next to a `LocalMediaWiki` given by the caller (a test session's, or a bench's own). The forum
  side can be left off (`forum=False`): then only the wiki adapter is on and pledges are applied
  in this process (`apply_pledge`), the worker process keeping the fiches in step.
- `outage`: the wiki's `php -S` stopped, the double answering 500 then 429 to every API call.
- `HumanEditor`: a person with their own wiki account editing fiches (free text, an editorial
  field, a comment next to a figure) and retrying on edit conflicts; it remembers what it wrote.
- checks: `backlog`, `caught_up`, `status_post_problems`, `fiche_problems`, `ledger_problems`.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from commons_sync.devtools.discourse_double.running import ControlClient
from commons_sync.devtools.local_mediawiki import LocalMediaWiki
from commons_sync.devtools.served import free_port, stop_process_group
from commons_sync.mediawiki import Wiki
from commons_sync.mediawiki.errors import EditConflict
from commons_sync.mediawiki.fiche import read_fiche, unescape_wikitext
from commons_sync.service import handlers, outbox
from commons_sync.service.handlers import CommonsSpec, PostChange, RoundSpec, Service
from commons_sync.storage import forum_tables as ft
from commons_sync.storage import tables as tb
from commons_sync.storage.database import make_engine, upgrade

log = logging.getLogger(__name__)

SECRET = "peer-faults-secret-0123"
GROUP = "lieux"
STAFF = "claire"
ZONE = "Europe/Paris"
# Outbox kinds that carry what people read on the forum and the wiki (mail kinds have no sender here).
WATCHED_KINDS = (outbox.STATUS_POST, outbox.WIKI_FICHE, outbox.WIKI_RESULTS, outbox.REPLY,
                 outbox.FUNDED_NOTICE)
BIN = Path(sys.executable).parent


class StackError(RuntimeError):
    """A process of the stack did not start, or died; the message names it and its log's tail."""


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def _wait_http(port: int, path: str, process: subprocess.Popen, name: str, log_path: Path,
               timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise StackError(f"{name} exited ({process.returncode}): {_tail(log_path)}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise StackError(f"{name} did not answer in {timeout:.0f} s: {_tail(log_path)}")
        time.sleep(0.05)


@dataclass
class ServiceStack:
    """Double, gunicorn and worker processes on one database, next to a running local wiki.

    Args:
        workdir: where the database (SQLite by default), the logs and the processes' cwd go.
        wiki: a started `LocalMediaWiki` (the bot and human accounts are its own).
        database_url: another database (PostgreSQL) instead of `workdir/stack.db`.
        forum: start the double, gunicorn and the forum adapter (else the wiki adapter only).
        max_rpm, double_rpm: the service's API ceiling and the double's.
        retry_base, retry_max: `COMMONS_SYNC_RETRY_BASE_SECONDS` / `_MAX_SECONDS` of the worker.
    """

    workdir: Path
    wiki: LocalMediaWiki
    database_url: str | None = None
    forum: bool = True
    max_rpm: int = 50
    double_rpm: int = 60
    retry_base: float = 2.0
    retry_max: float = 3600.0
    web_workers: int = 2
    api_key: str = field(default_factory=lambda: os.urandom(32).hex())
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = self.database_url or f"sqlite:///{self.workdir / 'stack.db'}"
        self.double_port = free_port()
        self.web_port = free_port()
        self.admin = ControlClient(self.double_url)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def double_url(self) -> str:
        return f"http://127.0.0.1:{self.double_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("COMMONS_SYNC_")}
        env.update({
            "COMMONS_SYNC_DATABASE_URL": self.database_url, "COMMONS_SYNC_SECRET_KEY": "stack-secret-key",
            "COMMONS_SYNC_TIMEZONE": ZONE,
            "COMMONS_SYNC_MEDIAWIKI_API_URL": self.wiki.api_url,
            "COMMONS_SYNC_MEDIAWIKI_USERNAME": self.wiki.bot_username,
            "COMMONS_SYNC_MEDIAWIKI_PASSWORD": self.wiki.bot_password,
            "COMMONS_SYNC_RETRY_BASE_SECONDS": str(self.retry_base),
            "COMMONS_SYNC_RETRY_MAX_SECONDS": str(self.retry_max),
            "COMMONS_SYNC_LOG_LEVEL": "INFO",
        })
        if self.forum:
            env.update({
                "COMMONS_SYNC_DISCOURSE_URL": self.double_url, "COMMONS_SYNC_DISCOURSE_API_KEY": self.api_key,
                "COMMONS_SYNC_DISCOURSE_API_USERNAME": "commons-bot",
                "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": SECRET,
                "COMMONS_SYNC_DISCOURSE_MAX_RPM": str(self.max_rpm),
            })
        return env

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as out:
            process = subprocess.Popen(command, cwd=self.workdir, env=self.environment(), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def start(self) -> "ServiceStack":
        self.engine = make_engine(self.database_url)
        upgrade(self.engine)
        self.svc = Service(self.engine, zone=ZoneInfo(ZONE))
        try:
            if self.forum:
                double = self._spawn("double", [
                    sys.executable, "-m", "commons_sync.devtools.discourse_double", "--port", str(self.double_port),
                    "--webhook-url", f"{self.web_url}/webhooks/discourse", "--webhook-secret", SECRET,
                    "--api-rpm", str(self.double_rpm), "--api-key", self.api_key])
                web = self._spawn("web", [
                    str(BIN / "gunicorn"), "-w", str(self.web_workers), "-b", f"127.0.0.1:{self.web_port}",
                    "--log-level", "warning", "commons_sync.web.app:create_app()"])
                _wait_http(self.double_port, "/_double/health", double, "the Discourse double",
                           self.workdir / "double.log")
                _wait_http(self.web_port, "/healthz", web, "gunicorn", self.workdir / "web.log")
            self._spawn("worker", [str(BIN / "commons-sync"), "worker"])
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in ("worker", "web", "double"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            stop_process_group(process, signal.SIGTERM)
        if getattr(self, "engine", None) is not None:
            self.engine.dispose()

    def __enter__(self) -> "ServiceStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} died ({process.returncode}): {_tail(self.workdir / f'{name}.log')}")

    def worker_log(self) -> str:
        return _tail(self.workdir / "worker.log", 10**9)

    # -- set-up -----------------------------------------------------------------------------------

    def round(self, slug: str = "hiver", allocation_cents: int = 10**9) -> None:
        handlers.create_round(self.svc, RoundSpec(
            slug=slug, name=f"Campagne {slug}", allocation_cents=allocation_cents, group=GROUP,
            closes_at=datetime.now(timezone.utc) + timedelta(days=60)))

    def people(self, members: list[str], outside: list[str] = ()) -> None:
        """The round's group, its members, users not in it yet (`outside`), and staff (forum side)."""
        self.admin.create_group(GROUP)
        for name in members:
            self.admin.create_user(name, name=name.capitalize(), groups=[GROUP])
        for name in outside:
            self.admin.create_user(name, name=name.capitalize())
        self.admin.create_user(STAFF, name="Claire Dubois", moderator=True)

    def open_forum_commons(self, count: int, goal: str = "100000", prefix: str = "Commun") -> list[int]:
        """`count` topics made commons by staff's `/commun` line; waits until each is opened.
        `prefix` starts their titles (and their fiches' titles: a wiki shared by tests)."""
        topics = []
        for n in range(count):
            topic = self.admin.create_topic(STAFF, f"{prefix} numéro {n + 1} à cofinancer",
                                            f"Proposition {n + 1} : une ressource partagée par le réseau.")
            self.admin.create_post(STAFF, topic["topic_id"],
                                   f"Le conseil a validé la proposition.\n\n/commun objectif={goal}")
            topics.append(topic["topic_id"])
        self.wait_until(lambda: len(handlers.list_commons(self.svc)) == count, 120, "commons opened")
        return topics

    def open_local_commons(self, count: int, slug: str = "hiver", goal_cents: int = 10_000_000,
                           prefix: str = "Commun édité") -> list[int]:
        """`count` commons opened in this process (no forum), with a referent and next steps."""
        ids = []
        for n in range(count):
            commons = handlers.open_commons(self.svc, CommonsSpec(
                round_slug=slug, title=f"{prefix} numéro {n + 1}", goal_cents=goal_cents,
                topic_id=50_000 + n, referent="Claire", next_steps="Premier échange"))
            ids.append(commons.id)
        return ids

    # -- acting -----------------------------------------------------------------------------------

    def pledge_post(self, user: str, topic_id: int, amount: int) -> dict:
        """A pledge posted on the forum (the double's webhook brings it to the service)."""
        return self.admin.create_post(user, topic_id, f"Notre lieu soutient ce commun.\n\n/soutien {amount}")

    _post_ids = itertools.count(7_000_000)

    def apply_pledge(self, commons_id: int, user: str, amount_cents: int) -> None:
        """A pledge applied as the worker would, in this process (stacks without the forum)."""
        topic_id = handlers.show_commons(self.svc, commons_id)["topic_id"]
        post_id = next(self._post_ids)
        handlers.apply_post(self.svc, PostChange(post_id=post_id, topic_id=topic_id, username=user,
                                                 kind="snapshot", version=1, amount_cents=amount_cents,
                                                 post_number=post_id % 100_000 + 2))

    def wiki_sync_all(self) -> str:
        """`commons-sync wiki sync --all` as an operator runs it; answers its stderr (log lines)."""
        result = subprocess.run([str(BIN / "commons-sync"), "wiki", "sync", "--all"], cwd=self.workdir,
                                env=self.environment(), capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise StackError(f"wiki sync --all failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stderr

    def wait_until(self, condition, timeout: float, what: str, poll: float = 0.2) -> float:
        """Seconds it took for `condition()` to hold; StackError after `timeout`."""
        began = time.monotonic()
        while not condition():
            self.check_alive()
            if time.monotonic() - began > timeout:
                raise StackError(f"{what}: not done after {timeout:.0f} s; backlog {self.backlog()}; "
                                 f"worker log: {_tail(self.workdir / 'worker.log')}")
            time.sleep(poll)
        return time.monotonic() - began

    # -- faults -----------------------------------------------------------------------------------

    def forum_fails(self, status: int, retry_after: float | None = None) -> None:
        """Every admin-API request answers `status` until `forum_recovers()`."""
        self.admin.clear_failures()
        self.admin.fail_next("/", count=10**9, status=status, retry_after=retry_after)

    def forum_recovers(self) -> None:
        self.admin.clear_failures()

    # -- looking ----------------------------------------------------------------------------------

    @property
    def watched_kinds(self) -> tuple[str, ...]:
        """The outbox kinds this stack sends (without the forum, status posts stay queued)."""
        return WATCHED_KINDS if self.forum else (outbox.WIKI_FICHE, outbox.WIKI_RESULTS)

    def list_commons(self) -> list[dict]:
        return handlers.list_commons(self.svc)

    def backlog(self) -> dict:
        """What is waiting: stored deliveries not applied, outbox rows not done (by kind), and the
        most failed attempts of a row (how many times it backed off)."""
        d, o = ft.forum_deliveries, tb.outbox

        def use_case(uow):
            conn = uow.repo.conn
            deliveries = conn.execute(select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar_one()
            rows = conn.execute(select(o.c.kind, func.count(), func.max(o.c.attempts))
                                .where(o.c.done_at.is_(None), o.c.kind.in_(self.watched_kinds))
                                .group_by(o.c.kind)).all()
            return deliveries, rows

        deliveries, rows = self.svc.run(use_case)
        return {"deliveries": deliveries, "outbox": {kind: count for kind, count, _ in rows},
                "outbox_rows": sum(count for _, count, _ in rows),
                "max_attempts": max([attempts or 0 for _, _, attempts in rows], default=0)}

    def caught_up(self) -> bool:
        backlog = self.backlog()
        return backlog["deliveries"] == 0 and backlog["outbox_rows"] == 0

    def pledge_count(self) -> int:
        p = tb.pledges
        return self.svc.run(lambda uow: uow.repo.conn.execute(
            select(func.count()).select_from(p).where(p.c.deleted.is_(False))).scalar_one())

    def webhook_answers(self, since: int = 0) -> list[dict]:
        """The double's delivery attempts from the `since`-th on: status, seconds, attempt."""
        return [{"status": d["status"], "seconds": d.get("seconds"), "attempt": d["attempt"],
                 "error": d["error"]} for d in self.admin.webhook_log()["deliveries"][since:]]

    def ledger_problems(self, expected_raised_cents: dict[int, int]) -> list[str]:
        problems = list(handlers.verify_ledger(self.svc))
        for commons_id, cents in expected_raised_cents.items():
            raised = handlers.show_commons(self.svc, commons_id)["raised"]
            if round(raised * 100) != cents:
                problems.append(f"commons {commons_id}: raised {raised}, expected {cents / 100}")
        return problems

    def status_post_problems(self) -> list[str]:
        """Each commons' status post on the forum against the status post of the final state."""
        from commons_sync.discourse.status_post import render_status_post
        from commons_sync.service.worker import ForumSenders

        senders = ForumSenders(self.svc, None, "commons-bot", "fr", ZoneInfo(ZONE))
        problems = []
        for commons in handlers.list_commons(self.svc):
            topic_id, post_id, figures = senders._status_state(commons["id"])
            if post_id is None:
                problems.append(f"commons {commons['id']}: no status post")
                continue
            raw = self.admin.post(post_id)["raw"].strip()
            expected = render_status_post(figures, "fr", self.svc.clock(), ZoneInfo(ZONE)).strip()
            if raw != expected:
                problems.append(f"commons {commons['id']}: status post {post_id} differs:\n{raw}\n---\n{expected}")
        return problems

    def fiche_problems(self, reader: Wiki) -> list[str]:
        """Each fiche's template parameters on the wiki against the values of the final state."""
        from commons_sync.service.wiki_sync import _fiche_states

        problems = []
        states = _fiche_states(self.svc, None)
        pages = reader.read_pages([state.title for state in states])
        for state in states:
            page = pages[state.title]
            found = read_fiche(page.text) if page.exists else None
            if found is None:
                problems.append(f"fiche {state.title!r}: missing or without the template")
                continue
            for name, value in state.values.items():
                if found.get(name) != unescape_wikitext(value):
                    problems.append(f"fiche {state.title!r}: {name} = {found.get(name)!r}, "
                                    f"expected {unescape_wikitext(value)!r}")
        return problems


def api_stats(stack: ServiceStack) -> dict:
    stats = stack.admin.request_stats()
    return {"total": stats["total"], "max_in_any_60s": stats["max_in_any_60s"],
            "rejected_by_ceiling": stats["rejected"], "per_minute": stats["per_minute"]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))]


def latency_summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0}
    return {"count": len(seconds), "p50_ms": round(statistics.median(seconds) * 1000, 1),
            "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1)}


# --- people editing fiches -----------------------------------------------------------------------


NOTE = "Note de {who} n°{n} : à voir en réunion."
COMMENT = re.compile(r"<!-- relu n°\d+ -->")


@dataclass
class HumanEditor:
    """A person editing fiches with their own account, as the bot keeps them in step.

    Each edit reads the fiche, changes one thing a person owns, and saves on that revision; an edit
    conflict (the bot saved meanwhile) is retried on the fresh revision, as a person would after
    MediaWiki's conflict screen. What was written is remembered for `lost_changes`:

    - `note`: a line of free text appended below the template call (every one must stay);
    - `organisations` / `prochaines_etapes`: an editorial field set to a new value (the last one
      written must be on the page and taken in by the service);
    - `comment`: a comment next to the bot's `collecte` figure (the last one must stay).
    """

    wiki: Wiki
    who: str = "Camille"
    seed: int = 7
    conflicts: int = 0
    edits: int = 0
    notes: dict[str, list[str]] = field(default_factory=dict)
    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def edit(self, title: str, think_seconds: float = 0.0, attempts: int = 20) -> str:
        """One edit of `title` (kind chosen at random); returns the kind. Retries conflicts."""
        self.edits += 1
        n = self.edits
        kind = self._random.choice(("note", "note", "organisations", "prochaines_etapes", "comment"))
        for _ in range(attempts):
            page = self.wiki.read_page(title)
            text = self._changed(page.text, kind, n)
            if think_seconds:
                time.sleep(think_seconds)
            try:
                self.wiki.save_page(title, text, base_revid=page.revid, summary=f"relecture {n}")
            except EditConflict:
                self.conflicts += 1
                continue
            self._remember(title, kind, n)
            return kind
        raise EditConflict(title)

    def _changed(self, text: str, kind: str, n: int) -> str:
        if kind == "note":
            return text.rstrip("\n") + "\n\n" + NOTE.format(who=self.who, n=n) + "\n"
        if kind == "comment":
            text = COMMENT.sub("", text)
            new, count = re.subn(r"(\| collecte = [^\n|}]*?)(\s*\n)", rf"\1 <!-- relu n°{n} -->\2", text, count=1)
            if count != 1:
                raise AssertionError("the fiche has no `| collecte = ` line")
            return new
        value = self._value(kind, n)
        new, count = re.subn(rf"(\| {kind} =)[^\n]*", lambda m: f"{m.group(1)} {value}", text, count=1)
        if count != 1:
            raise AssertionError(f"the fiche has no `| {kind} =` line")
        return new

    @staticmethod
    def _value(kind: str, n: int) -> str:
        return f"La Ruche, Le Bocal n°{n}" if kind == "organisations" else f"Signer le devis (étape {n})"

    def _remember(self, title: str, kind: str, n: int) -> None:
        if kind == "note":
            self.notes.setdefault(title, []).append(NOTE.format(who=self.who, n=n))
        elif kind == "comment":
            self.comments[title] = f"<!-- relu n°{n} -->"
        else:
            self.fields.setdefault(title, {})[kind] = self._value(kind, n)

    def lost_changes(self, reader: Wiki, svc: Service | None = None) -> list[str]:
        """Every change this person made that is not on the page (or, for an editorial field, not
        taken in by the service) now."""
        titles = sorted(set(self.notes) | set(self.fields) | set(self.comments))
        pages = reader.read_pages(titles)
        lost = []
        by_title = {}
        if svc is not None:
            by_title = {c["wiki_title"]: c for c in handlers.list_commons(svc)}
        for title in titles:
            text = pages[title].text
            for note in self.notes.get(title, []):
                if note not in text:
                    lost.append(f"{title!r}: note {note!r} gone")
            if title in self.comments and self.comments[title] not in text:
                lost.append(f"{title!r}: comment {self.comments[title]!r} gone")
            found = read_fiche(text) or {}
            for name, value in self.fields.get(title, {}).items():
                if found.get(name) != value:
                    lost.append(f"{title!r}: {name} = {found.get(name)!r}, the person wrote {value!r}")
                attribute = {"organisations": "organisations", "prochaines_etapes": "next_steps"}[name]
                if title in by_title and by_title[title][attribute] != value:
                    lost.append(f"{title!r}: the service has {attribute} = {by_title[title][attribute]!r}, "
                                f"the person wrote {value!r}")
        return lost

    def changes(self) -> int:
        """How many changes are being checked (notes, plus the last value of each field and comment)."""
        return (sum(len(v) for v in self.notes.values()) + sum(len(v) for v in self.fields.values())
                + len(self.comments))


def human_edits_run(stack: ServiceStack, human: Wiki, reader: Wiki, *, fiches: int, edits: int,
                    pledges_per_second: float, think_seconds: float, sync_all_every: float | None,
                    seed: int = 7, prefix: str = "Commun édité") -> dict:
    """A person makes `edits` edits on `fiches` fiches while pledges keep changing their figures
    (the worker process rewrites them) and, every `sync_all_every` seconds, an operator runs
    `wiki sync --all`. Then the bot syncs once more and everything is checked; answers the figures
    and the problems found (`lost`: human changes gone; `fiches`, `ledger`: the bot's side)."""
    import threading
    from collections import Counter

    stack.round()
    ids = stack.open_local_commons(fiches, prefix=prefix)
    stack.wait_until(stack.caught_up, 300, "the first fiches")
    titles = {c["id"]: c["wiki_title"] for c in stack.list_commons()}
    editor = HumanEditor(human, seed=seed)
    stop = threading.Event()
    expected = {commons_id: 0 for commons_id in ids}
    counts = {"pledges": 0, "sync_all_runs": 0, "sync_all_conflicts": 0}
    failures: list[BaseException] = []

    def bot_side() -> None:
        rnd = random.Random(seed + 1)
        next_sync = time.monotonic() + (sync_all_every or 0)
        try:
            while not stop.is_set():
                commons_id, amount = rnd.choice(ids), rnd.randint(1, 20) * 100
                stack.apply_pledge(commons_id, f"lieu-{rnd.randrange(50)}", amount)
                expected[commons_id] += amount
                counts["pledges"] += 1
                if sync_all_every and time.monotonic() >= next_sync:
                    counts["sync_all_conflicts"] += edit_conflicts_in_log(stack.wiki_sync_all())
                    counts["sync_all_runs"] += 1
                    next_sync = time.monotonic() + sync_all_every
                stop.wait(1 / pledges_per_second)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            failures.append(error)

    thread = threading.Thread(target=bot_side, name="pledges-and-syncs")
    thread.start()
    rnd = random.Random(seed + 2)
    kinds: Counter = Counter()
    began = time.monotonic()
    try:
        for _ in range(edits):
            kinds[editor.edit(titles[rnd.choice(ids)], think_seconds)] += 1
            if failures:
                break
    finally:
        stop.set()
        thread.join()
    if failures:
        raise failures[0]
    editing_seconds = time.monotonic() - began
    stack.wait_until(stack.caught_up, 300, "the worker's last fiche edits")
    # People's last changes are taken in at the bot's next sync of each fiche.
    counts["sync_all_conflicts"] += edit_conflicts_in_log(stack.wiki_sync_all())
    counts["sync_all_runs"] += 1
    stack.wait_until(stack.caught_up, 300, "the status of the last sync")
    revisions = sum(reader.revision_count(title) for title in titles.values())
    return {
        "fiches": fiches, "human_edits": editor.edits, "human_edits_by_kind": dict(kinds),
        "human_changes_checked": editor.changes(), "editing_seconds": round(editing_seconds, 1),
        "human_conflicts_retried": editor.conflicts,
        "bot_conflicts_retried": {"worker": edit_conflicts_in_log(stack.worker_log()),
                                  "wiki_sync_all": counts["sync_all_conflicts"]},
        "pledges": counts["pledges"], "wiki_sync_all_runs": counts["sync_all_runs"],
        "fiche_revisions": revisions, "bot_revisions": revisions - editor.edits,
        "lost": editor.lost_changes(reader, stack.svc),
        "fiches_problems": stack.fiche_problems(reader),
        "ledger_problems": stack.ledger_problems(expected),
    }


def edit_conflicts_in_log(text: str) -> int:
    """Edit conflicts the bot met and retried (its `sync_fiche` logs each)."""
    return text.count("edit conflict on")


def to_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
