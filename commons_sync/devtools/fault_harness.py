"""Fault scenarios on real processes: the service killed during a replay, PostgreSQL restarted.

Shared by `bench/faults.py` (full size) and `tests/faults/` (small, seeded). Every part runs as its
own process on loopback: the Discourse double (`python -m commons_sync.devtools.discourse_double`),
the web service under gunicorn (as in production), `commons-sync worker` processes, and optionally
a local MediaWiki (`php -S`). The harness drives the forum through the double's control endpoints
and keeps its own record of every post; the final state expected is computed from the posts the
double holds (the forum is the truth), never from the service's database.

    scenario = KilledProcesses(database_url, commons=20, deliveries=400, kills=3, seed=1)
    report = scenario.run()          # report["ok"], report["problems"], figures
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from commons_sync.devtools.discourse_double import ControlClient
from commons_sync.devtools.discourse_double.webhooks import sign
from commons_sync.devtools.served import free_port, stop_process_group

PYTHON = sys.executable
BIN = Path(sys.executable).parent
SECRET = "fault-harness-webhook-secret"
GROUP = "cofinanceurs"
STAFF = "claire"
ROUND_SLUG = "printemps"
ROUND_NAME = "Campagne de printemps"
ALLOCATION_CENTS = 100_000_000  # 1 M€ each: no pledge is ever refused for its balance
CAP_CENTS = 1_000_000_000  # far above any total: no pledge is ever refused for the cap
API_CEILING = 100_000  # CONTRACT §2: raised on both sides for the replay, loopback only
LANG = "fr"
ZONE = ZoneInfo("Europe/Paris")
PLEDGE_LINE = re.compile(r"^/soutien (\S.*)$", re.MULTILINE)
# Delivery retries of the double (Discourse retries too, over hours): enough to outlast a restart.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# Leases of a worker that dies are waited for; the harness shortens them (the defaults, 120 s and
# 300 s, would make each kill stall the inbox up to 2 minutes).
LEASE_ENV = {"COMMONS_SYNC_WORKER_INBOX_LEASE_SECONDS": "10",
             "COMMONS_SYNC_WORKER_OUTBOX_LEASE_SECONDS": "20"}


class HarnessError(RuntimeError):
    """A part of the stack did not start or the run did not settle within its deadline."""


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(every)


def _answers(url: str, path: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status < 600
    except OSError:
        return False


# --- money written as people type it, read back independently --------------------------------------


def amount_text(cents: int, rng: random.Random) -> str:
    units, rest = divmod(cents, 100)
    if rest:
        return f"{units},{rest:02d}" + rng.choice(["", " €"])
    return str(units) + rng.choice(["", "", "€", " €"])


def amount_cents(text: str) -> int:
    """The cents of an amount `amount_text` wrote (the harness's own reading, not the engine's)."""
    text = text.replace("€", "").strip()
    units, _, rest = text.partition(",")
    return int(units) * 100 + (int(rest.ljust(2, "0")) if rest else 0)


def units_text(cents: int) -> str:
    """A bare number in currency units, `.` as decimal point, as the fiche holds it (CONTRACT §4)."""
    units, rest = divmod(cents, 100)
    return f"{units}.{rest:02d}".rstrip("0").rstrip(".") if rest else str(units)


# --- the stack: double, gunicorn, workers, optional wiki -------------------------------------------


class Stack:
    """The processes of one installation; each may be killed (SIGKILL, its whole group) and restarted."""

    def __init__(self, database_url: str, *, workers: int = 2, wiki=None, workdir: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.worker_count = workers
        self.wiki = wiki
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="commons-sync-faults-"))
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        for old_log in (self.workdir / "logs").glob("*.log"):  # a reused folder: this run's logs only
            old_log.unlink()
        self.extra_env = dict(extra_env or {})
        self.server_port = free_port()
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.double_port = free_port()
        self.double_url = f"http://127.0.0.1:{self.double_port}"
        self.api_key = secrets.token_hex(32)
        self.api_username = "commons-bot"
        self.double: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self.starts = {"server": 0, "worker": 0}
        self.admin: ControlClient | None = None
        self._lock = threading.Lock()

    # environment of the service's processes

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("COMMONS_SYNC_")}
        env.update({
            "COMMONS_SYNC_DATABASE_URL": self.database_url,
            "COMMONS_SYNC_SECRET_KEY": "fault-harness",
            "COMMONS_SYNC_LANGUAGE": LANG,
            "COMMONS_SYNC_TIMEZONE": "Europe/Paris",
            "COMMONS_SYNC_DISCOURSE_URL": self.double_url,
            "COMMONS_SYNC_DISCOURSE_API_KEY": self.api_key,
            "COMMONS_SYNC_DISCOURSE_API_USERNAME": self.api_username,
            "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": SECRET,
            "COMMONS_SYNC_DISCOURSE_MAX_RPM": str(API_CEILING),
            "COMMONS_SYNC_LOG_LEVEL": "WARNING",
            **LEASE_ENV,
        })
        if self.wiki is not None:
            env.update({"COMMONS_SYNC_MEDIAWIKI_API_URL": self.wiki.api_url,
                        "COMMONS_SYNC_MEDIAWIKI_USERNAME": self.wiki.bot_username,
                        "COMMONS_SYNC_MEDIAWIKI_PASSWORD": self.wiki.bot_password})
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")
        try:
            return subprocess.Popen(args, env=self.environment(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    # the double

    def start_double(self) -> None:
        self.double = self._spawn("double", [
            PYTHON, "-m", "commons_sync.devtools.discourse_double", "--port", str(self.double_port),
            "--webhook-url", self.server_url + "/webhooks/discourse", "--webhook-secret", SECRET,
            "--api-rpm", str(API_CEILING), "--api-key", self.api_key, "--api-username", self.api_username])
        wait_for(lambda: _answers(self.double_url, "/_double/health"), 30, "the Discourse double answers")
        self.admin = ControlClient(self.double_url, timeout=120)
        self.admin.set_webhook_options(retry_delays=list(RETRY_DELAYS), timeout=30)

    # the web service

    def start_server(self) -> None:
        with self._lock:
            if self.server is not None and self.server.poll() is None:
                return
            self.starts["server"] += 1
            # The production settings (commons_sync/web/gunicorn_conf.py), on this run's port.
            self.server = self._spawn("server", [
                str(BIN / "gunicorn"), "-c", "python:commons_sync.web.gunicorn_conf",
                "--bind", f"127.0.0.1:{self.server_port}", "--log-level", "warning", "--graceful-timeout", "5",
                "commons_sync.web.app:create_app()"])
        wait_for(lambda: _answers(self.server_url, "/healthz"), 60, "gunicorn answers")

    def kill_server(self) -> None:
        with self._lock:
            stop_process_group(self.server)

    # the workers

    def start_worker(self, index: int) -> None:
        with self._lock:
            current = self.workers[index]
            if current is not None and current.poll() is None:
                return
            self.starts["worker"] += 1
            self.workers[index] = self._spawn(f"worker-{index}", [str(BIN / "commons-sync"), "worker"])

    def kill_worker(self, index: int) -> None:
        with self._lock:
            stop_process_group(self.workers[index])

    def start_all(self) -> None:
        self.start_server()
        for index in range(self.worker_count):
            self.start_worker(index)

    def alive(self) -> dict[str, bool]:
        return {"server": self.server is not None and self.server.poll() is None,
                **{f"worker-{i}": w is not None and w.poll() is None for i, w in enumerate(self.workers)}}

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "commons-sync"), *args], env=self.environment(), cwd=self.workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def stop_service(self) -> None:
        """Stop the workers and the server as systemd would (SIGTERM); the double stays."""
        for index in range(self.worker_count):
            stop_process_group(self.workers[index], signal.SIGTERM)
        stop_process_group(self.server, signal.SIGTERM)

    def stop(self) -> None:
        self.stop_service()
        stop_process_group(self.double, signal.SIGTERM)

    def log_tail(self, name: str, size: int = 3000) -> str:
        try:
            return (self.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return ""


# --- the forum as the harness left it ------------------------------------------------------------


@dataclass
class PostRecord:
    post_id: int
    topic_id: int
    username: str
    raw: str
    staff_deleted: bool = False
    user_deleted: bool = False
    deleted_once: bool = False  # deleted (and maybe recovered) at least once

    @property
    def deleted(self) -> bool:
        return self.staff_deleted or self.user_deleted


@dataclass
class ForumRecord:
    """Every post the harness wrote, as it believes the forum holds it."""

    topics: dict[int, dict] = field(default_factory=dict)  # topic_id -> {"title", "goal"}
    posts: dict[int, PostRecord] = field(default_factory=dict)


def pledge_cents(raw: str) -> int | None:
    """The amount of a post's pledge line as the harness wrote it, None without one."""
    lines = PLEDGE_LINE.findall(raw or "")
    return amount_cents(lines[0]) if len(lines) == 1 else None


def expected_state(forum_posts: dict[int, dict], topics: dict[int, dict], bot: str) -> dict[int, dict]:
    """Per commons topic: the live pledge of each post, raised, cofunders, status (the contract's rules:
    a live post's pledge line counts, a deleted one does not; reaching the goal makes it `financé`)."""
    state = {topic_id: {"pledges": {}, "title": info["title"], "goal": info["goal"]}
             for topic_id, info in topics.items()}
    for post in forum_posts.values():
        topic = state.get(post["topic_id"])
        if topic is None or post["username"] == bot or post["post_number"] == 1:
            continue
        live = post["deleted_at"] is None and not post["user_deleted"]
        cents = pledge_cents(post["raw"]) if live else None
        topic["pledges"][post["id"]] = (post["username"], cents or 0)
    for topic in state.values():
        topic["raised"] = sum(cents for _, cents in topic["pledges"].values())
        topic["cofunders"] = sorted({user for user, cents in topic["pledges"].values() if cents})
        topic["status"] = "financé" if topic["raised"] >= topic["goal"] else "en financement"
    return state


# --- the checks ------------------------------------------------------------------------------------


def topic_post_ids(stack: "Stack", topic_id: int) -> list[int]:
    """Every post id of a topic, deleted ones too, from the forum's API as its admin sees it."""
    import requests

    answer = requests.get(f"{stack.double_url}/t/{topic_id}.json", timeout=60,
                          headers={"Api-Key": stack.api_key, "Api-Username": stack.api_username})
    answer.raise_for_status()
    return answer.json()["post_stream"]["stream"]


def check_final_state(stack: "Stack", record: ForumRecord, *, closes_at: datetime, wiki=None) -> dict[str, Any]:
    """Compare the service's ledger, status posts and fiches with the state the forum dictates.

    Reads the forum's topics through its API (call it after reading the API figures)."""
    from sqlalchemy import select

    from commons_sync.discourse.status_post import MARKER, StatusFigures, render_status_post
    from commons_sync.service.handlers import Service, verify_ledger
    from commons_sync.storage import tables as tb
    from commons_sync.storage.database import make_engine
    from commons_sync.storage.repository import Repository

    admin, bot = stack.admin, stack.api_username
    problems: list[str] = []
    forum_posts: dict[int, dict] = {}
    status_posts: dict[int, list[dict]] = {}
    for topic_id in record.topics:
        for post_id in topic_post_ids(stack, topic_id):
            post = admin.post(post_id)
            if post["username"] == bot:
                if MARKER in (post["raw"] or "") and post["deleted_at"] is None:
                    status_posts.setdefault(topic_id, []).append(post)
            else:
                forum_posts[post_id] = post
    # The harness's record must be the forum's: else the harness itself is wrong.
    for post_id, mine in record.posts.items():
        theirs = forum_posts.get(post_id)
        if theirs is None:
            problems.append(f"harness: post {post_id} missing from the forum")
        elif ((theirs["deleted_at"] is not None, theirs["user_deleted"]) != (mine.staff_deleted, mine.user_deleted)
              or (not mine.user_deleted and theirs["raw"] != mine.raw)):
            problems.append(f"harness: post {post_id} differs from its record")
    expected = expected_state(forum_posts, record.topics, bot)

    engine = make_engine(stack.database_url)
    try:
        ledger_problems = verify_ledger(Service(engine))
        problems.extend(f"ledger: {p}" for p in ledger_problems)
        with engine.connect() as conn:
            c, p = tb.commons, tb.pledges
            commons_rows = {row.topic_id: row for row in conn.execute(select(c))}
            pledge_rows = {row.post_id: row for row in conn.execute(select(p))}
            names = Repository(conn).cofunder_names()
    finally:
        engine.dispose()
    lost = over = 0
    for want in expected.values():
        for post_id, (_user, cents) in want["pledges"].items():
            got = pledge_rows[post_id].amount_cents if post_id in pledge_rows else 0
            if got != cents:
                lost += got < cents
                over += got > cents
                problems.append(f"post {post_id}: pledge {got} in the ledger, {cents} expected")
    known = {post_id for want in expected.values() for post_id in want["pledges"]}
    for post_id, row in pledge_rows.items():
        if post_id not in known and row.amount_cents:
            over += 1
            problems.append(f"pledge of post {post_id} ({row.amount_cents}) is no post of a commons")
    status_exact = 0
    fiche_titles: dict[int, str | None] = {}
    now = datetime.now(timezone.utc)
    for topic_id, want in expected.items():
        row = commons_rows.get(topic_id)
        if row is None:
            problems.append(f"topic {topic_id}: no commons")
            continue
        got = (row.pledged_cents, row.contributed_cents, row.matched_cents, row.status)
        wanted = (want["raised"], 0, 0, want["status"])
        if got != wanted or names.get(row.id, []) != want["cofunders"]:
            problems.append(f"commons {row.id} (topic {topic_id}): {got}, {len(names.get(row.id, []))} "
                            f"cofunders != expected {wanted}, {len(want['cofunders'])}")
        figures = StatusFigures(
            title=want["title"], status=want["status"], currency="EUR", goal_cents=want["goal"],
            cap_cents=CAP_CENTS, pledged_cents=want["raised"], contributed_cents=0, matched_cents=0,
            cofunder_names=tuple(want["cofunders"]), round_name=ROUND_NAME, closes_at=closes_at)
        text = render_status_post(figures, LANG, now, ZONE).strip()
        posts = status_posts.get(topic_id, [])
        if len(posts) != 1:
            problems.append(f"topic {topic_id}: {len(posts)} status posts")
        elif posts[0]["raw"].strip() != text:
            problems.append(f"topic {topic_id}: status post {posts[0]['id']} does not show the final state")
        else:
            status_exact += 1
        fiche_titles[topic_id] = row.wiki_title
    fiches_exact = _check_fiches(wiki, expected, fiche_titles, problems) if wiki is not None else None
    return {
        "commons": len(expected), "pledge_posts": sum(len(w["pledges"]) for w in expected.values()),
        "live_pledges": sum(1 for w in expected.values() for _, cents in w["pledges"].values() if cents),
        "raised_total_cents": sum(w["raised"] for w in expected.values()),
        "funded": sum(1 for w in expected.values() if w["status"] == "financé"),
        "status_posts_exact": status_exact, "fiches_exact": fiches_exact,
        "pledges_lost": lost, "pledges_over": over, "ledger_problems": len(ledger_problems),
        "problems": problems, "ok": not problems,
    }


def _check_fiches(wiki, expected: dict, titles: dict, problems: list[str]) -> int:
    from commons_sync.mediawiki import Wiki
    from commons_sync.mediawiki.fiche import read_fiche

    bot = Wiki.connect(wiki.api_url, wiki.bot_username, wiki.bot_password)
    wanted_titles = [title for title in titles.values() if title]
    pages = bot.read_pages(wanted_titles) if wanted_titles else {}
    exact = 0
    for topic_id, want in expected.items():
        title = titles.get(topic_id)
        page = pages.get(title) if title else None
        if page is None or not page.exists:
            problems.append(f"topic {topic_id}: no fiche ({title!r})")
            continue
        values = read_fiche(page.text) or {}
        raised = want["raised"]
        wanted = {"statut": want["status"], "objectif": units_text(want["goal"]),
                  "plafond": units_text(CAP_CENTS), "collecte": units_text(raised),
                  "promesses": units_text(raised), "apports": "0", "abondement": "0",
                  "pourcentage": str(raised * 100 // want["goal"]),
                  "cofinanceurs": str(len(want["cofunders"])), "campagne": ROUND_NAME, "nom": want["title"]}
        differs = {key: (values.get(key), value) for key, value in wanted.items() if values.get(key) != value}
        if differs:
            problems.append(f"fiche {title!r}: {differs}")
        else:
            exact += 1
    return exact


# --- scenario 1: processes killed during a replay ------------------------------------------------


class KilledProcesses:
    """Replay deliveries while SIGKILLing the server and workers; then reconcile and check exactly.

    Args:
        database_url: an empty PostgreSQL database (the schema is created here).
        commons, deliveries, kills, seed: the size of the run.
        wiki: a started `LocalMediaWiki` (fiches are checked), or None.
        rate: forum actions a second the harness aims at.
        workers: how many `commons-sync worker` processes.
        deletions: whether posts are deleted and recovered too (their deliveries carry no version).
        drain_kills: workers also SIGKILLed this many times while they work off the backlog.
        progress: called with one line of text now and then (None: quiet).
        workdir: where the processes run and write their logs (`logs/`); a temporary folder if None.
    """

    def __init__(self, database_url: str, *, commons: int = 200, deliveries: int = 10_000, kills: int = 10,
                 seed: int = 1, wiki=None, rate: float = 60.0, workers: int = 2, deletions: bool = True,
                 drain_kills: int = 0, progress: Callable[[str], None] | None = None, workdir: Path | None = None) -> None:
        self.database_url = database_url
        self.commons = commons
        self.deliveries = deliveries
        self.kills = kills
        self.seed = seed
        self.wiki = wiki
        self.rate = rate
        self.deletions = deletions
        self.drain_kills = drain_kills
        self.progress = progress or (lambda line: None)
        self.stack = Stack(database_url, workers=workers, wiki=wiki, workdir=workdir)
        self.rng = random.Random(seed)
        self.record = ForumRecord()
        self.usernames = [f"lieu{n:03d}" for n in range(1, max(10, min(150, commons)) + 1)]
        self.closes_at = (datetime.now(timezone.utc) + timedelta(days=30, hours=12)).replace(microsecond=0)
        self.events = 0
        self.kill_log: list[dict] = []
        self._restarts: list[threading.Thread] = []

    # set-up

    def _setup(self) -> None:
        from commons_sync.service import handlers
        from commons_sync.service.handlers import CommonsSpec, RoundSpec, Service
        from commons_sync.storage.database import make_engine, upgrade

        if self.wiki is not None:
            from commons_sync.mediawiki import Wiki, install

            install(Wiki.connect(self.wiki.api_url, self.wiki.bot_username, self.wiki.bot_password))
        engine = make_engine(self.database_url)
        upgrade(engine)
        svc = Service(engine)
        handlers.create_round(svc, RoundSpec(slug=ROUND_SLUG, name=ROUND_NAME, allocation_cents=ALLOCATION_CENTS,
                                             group=GROUP, closes_at=self.closes_at))
        stack = self.stack
        stack.start_double()
        stack.start_server()
        admin = stack.admin
        admin.create_group(GROUP)
        for name in self.usernames:
            admin.create_user(name, name=name.capitalize(), groups=[GROUP])
        admin.create_user(STAFF, name="Claire Dubois", moderator=True)
        for n in range(self.commons):
            title = f"Commun numéro {n + 1:03d} : outil partagé"
            topic = admin.create_topic(self.rng.choice(self.usernames), title,
                                       "Proposition : un outil partagé entre les lieux du réseau.")
            goal = self.rng.randrange(500, 6000) * 100  # about half the commons end funded
            self.record.topics[topic["topic_id"]] = {"title": title, "goal": goal}
            handlers.open_commons(svc, CommonsSpec(
                round_slug=ROUND_SLUG, title=title, goal_cents=goal, cap_cents=CAP_CENTS,
                topic_id=topic["topic_id"], first_post_number=1,
                discussion_url=f"{stack.double_url}/t/{topic['topic_id']}"))
        engine.dispose()
        for index in range(stack.worker_count):
            stack.start_worker(index)

    # the replay

    def _act(self) -> int:
        """One forum action chosen at random; returns how many webhook events it makes."""
        rng, admin, record = self.rng, self.stack.admin, self.record
        live = [p for p in record.posts.values() if not p.deleted]
        deleted = [p for p in record.posts.values() if p.deleted]
        roll = rng.random()
        if roll < 0.50 or len(live) < 5:
            topic_id = rng.choice(list(record.topics))
            user = rng.choice(self.usernames)
            if rng.random() < 0.05:
                raw = rng.choice(["Une question : quand le projet démarre-t-il ?",
                                  "Merci pour cette proposition, nous en parlons en réunion."])
            else:
                raw = self._pledge_text(rng.randrange(1, 300) * 100 + rng.choice([0, 0, 0, 50, 25]))
            post = admin.create_post(user, topic_id, raw)
            record.posts[post["id"]] = PostRecord(post["id"], topic_id, user, raw)
            return 1
        if roll < 0.78 or not self.deletions:
            post = rng.choice(live)
            if rng.random() < 0.2:
                raw = "Nous réfléchissons encore : promesse retirée pour le moment."
            else:
                raw = self._pledge_text(rng.randrange(1, 300) * 100 + rng.choice([0, 0, 50]))
            if raw == post.raw:
                raw += "\n\nMerci !"
            admin.edit_post(post.username, post.post_id, raw)
            post.raw = raw
            return 1
        if roll < 0.90:
            post = rng.choice(live)
            if rng.random() < 0.7:
                admin.delete_post(post.username, post.post_id)
                post.user_deleted = post.deleted_once = True
                return 2
            admin.delete_post(STAFF, post.post_id)
            post.staff_deleted = post.deleted_once = True
            return 1
        if deleted:
            post = rng.choice(deleted)
            if post.staff_deleted:
                admin.recover_post(STAFF, post.post_id)
                post.staff_deleted = False
                return 1
            admin.recover_post(post.username, post.post_id)
            post.user_deleted = False
            return 2
        return 0

    def _pledge_text(self, cents: int) -> str:
        opening = self.rng.choice(["Nous soutenons ce commun.", "Notre lieu participe volontiers.",
                                   "Bonne idée, nous suivons."])
        return f"{opening}\n\n/soutien {amount_text(cents, self.rng)}"

    def _kill(self, number: int) -> None:
        stack = self.stack
        for thread in self._restarts:  # every kill kills a running process
            thread.join(timeout=120)
        if number % 2 == self.kill_parity:
            target = "server"
            stack.kill_server()
            restart = lambda: stack.start_server()  # noqa: E731
        else:
            index = self.rng.randrange(stack.worker_count)
            target = f"worker-{index}"
            stack.kill_worker(index)
            restart = lambda: stack.start_worker(index)  # noqa: E731
        down = self.rng.uniform(0.2, 2.0)
        self.kill_log.append({"at_event": self.events, "target": target, "down_seconds": round(down, 2)})
        self.progress(f"kill {number + 1}/{self.kills}: {target} at event {self.events}")

        def later() -> None:
            time.sleep(down)
            restart()

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        self._restarts.append(thread)

    def _kill_while_draining(self) -> None:
        """Workers SIGKILLed at seeded moments while they work off what the replay left them."""
        rng = random.Random(self.seed * 7919 + 1)
        stack = self.stack
        for number in range(self.drain_kills):
            time.sleep(rng.uniform(3.0, 15.0))
            if self._settled():
                return
            index = rng.randrange(stack.worker_count)
            down = rng.uniform(0.2, 2.0)
            stack.kill_worker(index)
            self.kill_log.append({"during": "drain", "target": f"worker-{index}", "down_seconds": round(down, 2)})
            self.progress(f"drain kill {number + 1}/{self.drain_kills}: worker-{index}")
            time.sleep(down)
            stack.start_worker(index)

    def _misbehave(self, phase: str) -> None:
        """The double sends duplicates (same event id) or reorders deliveries for a while."""
        options = {"normal": {"duplicates": 0, "reorder_window": 0.0},
                   "duplicates": {"duplicates": 1, "reorder_window": 0.0},
                   "reorder": {"duplicates": 0, "reorder_window": 0.5}}[phase]
        self.stack.admin.set_webhook_options(**options)

    def replay(self) -> None:
        rng = self.rng
        self.kill_parity = rng.randrange(2)
        kill_at = sorted(rng.sample(range(int(self.deliveries * 0.05), int(self.deliveries * 0.95)), self.kills)) \
            if self.kills else []
        phases = ["normal", "duplicates", "reorder"]
        phase_every = max(50, self.deliveries // 20)
        next_phase = phase_every
        started = time.monotonic()
        actions = 0
        kills_done = 0
        last_report = time.monotonic()
        while self.events < self.deliveries:
            while kills_done < len(kill_at) and self.events >= kill_at[kills_done]:
                self._kill(kills_done)
                kills_done += 1
            if self.events >= next_phase:
                self._misbehave(rng.choice(phases))
                next_phase += phase_every
            self.events += self._act()
            actions += 1
            due = started + actions / self.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                self.progress(f"{self.events}/{self.deliveries} deliveries, {actions} actions, "
                              f"{time.monotonic() - started:.0f} s")
        self._misbehave("normal")
        self.actions = actions

    # settling

    def _settled(self) -> bool:
        from sqlalchemy import create_engine, func, select

        from commons_sync.storage import forum_tables as ft
        from commons_sync.storage import tables as tb

        d, o = ft.forum_deliveries, tb.outbox
        # Rows of an adapter that is off (the wiki with --no-wiki, mail) stay by design.
        skipped = ["mail", "create_topic"] + (["wiki_fiche", "wiki_results"] if self.wiki is None else [])
        engine = create_engine(_sqlalchemy_url(self.database_url))
        try:
            with engine.connect() as conn:
                unapplied = conn.execute(select(func.count()).select_from(d)
                                         .where(d.c.applied_at.is_(None))).scalar()
                pending = conn.execute(select(func.count()).select_from(o)
                                       .where(o.c.done_at.is_(None), o.c.kind.not_in(skipped))).scalar()
        finally:
            engine.dispose()
        return unapplied == 0 and pending == 0

    def settle(self, timeout: float) -> None:
        stack = self.stack
        for thread in self._restarts:
            thread.join(timeout=120)
        stack.start_all()  # whatever is down comes back
        if not stack.admin.wait_for_webhooks(timeout=timeout):
            raise HarnessError("the double's webhooks did not all go out")
        wait_for(self._settled, timeout, "deliveries applied and outbox empty", every=1.0)

    def run(self, settle_timeout: float = 900) -> dict[str, Any]:
        """Set up, replay with kills, restart everything, reconcile, drain, check; the figures."""
        began = time.monotonic()
        try:
            self._setup()
            self.progress(f"set up {self.commons} commons in {time.monotonic() - began:.0f} s")
            replay_began = time.monotonic()
            self.replay()
            replay_seconds = time.monotonic() - replay_began
            self.progress(f"replayed {self.events} deliveries in {replay_seconds:.0f} s; settling")
            draining = threading.Thread(target=self._kill_while_draining, daemon=True)
            draining.start()
            self.settle(settle_timeout)
            draining.join(timeout=120)
            self.settle(settle_timeout)  # a worker killed at the end may have left a lease
            settled_seconds = time.monotonic() - replay_began
            before_reconcile = ledger_mismatches(self.database_url, self.record)
            self.progress(f"settled; {len(before_reconcile)} posts differ from the forum before reconcile")
            reconcile = self.stack.cli("reconcile", "--all")
            if reconcile.returncode != 0:
                raise HarnessError(f"reconcile --all failed: {reconcile.stderr[-2000:]}")
            self.progress("reconciled; draining")
            self.settle(settle_timeout)
            total_seconds = time.monotonic() - began
            self.stack.stop_service()
            webhooks = webhook_figures(self.stack.admin.webhook_log())
            api = self.stack.admin.request_stats()
            report = check_final_state(self.stack, self.record, closes_at=self.closes_at, wiki=self.wiki)
        finally:
            self.stack.stop()
        return {
            "scenario": "killed-processes", "seed": self.seed, "commons": self.commons,
            "deliveries": self.events, "forum_actions": self.actions, "kills": len(self.kill_log),
            "kill_log": self.kill_log, "starts": self.stack.starts, "webhooks": webhooks,
            "replay_seconds": round(replay_seconds, 1), "settled_after_replay_began_seconds": round(settled_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "api": {"ceiling": api["ceiling"], "total": api["total"], "max_in_any_60s": api["max_in_any_60s"],
                    "rejected_429": api["rejected"]},
            "reconcile_topics": len(reconcile.stdout.splitlines()),
            "posts_differing_before_reconcile": len(before_reconcile),
            "of_which_deleted_or_recovered_once": sum(self.record.posts[i].deleted_once for i in before_reconcile),
            **report,
        }


def ledger_mismatches(database_url: str, record: ForumRecord) -> list[int]:
    """Posts whose pledge in the ledger is not what the harness's record of the forum says."""
    from sqlalchemy import create_engine, text

    engine = create_engine(_sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT post_id, amount_cents FROM pledges")).all())
    finally:
        engine.dispose()
    return [post.post_id for post in record.posts.values()
            if stored.get(post.post_id, 0) != (0 if post.deleted else pledge_cents(post.raw) or 0)]


def webhook_figures(log: dict) -> dict[str, Any]:
    """What the double's deliveries met: answers by status, connection errors, retries, events."""
    statuses: dict[str, int] = {}
    for attempt in log["deliveries"]:
        key = str(attempt["status"]) if attempt["status"] is not None else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
    delivered = {a["retry_of"] or a["event_id"] for a in log["deliveries"] if a["delivered"]}
    originals = {a["event_id"] for a in log["deliveries"] if not a["retry_of"]}
    return {"events": len(log["events"]), "attempts": len(log["deliveries"]), "answers": statuses,
            "retries": sum(1 for a in log["deliveries"] if a["retry_of"]),
            "duplicates": sum(1 for a in log["deliveries"] if a["duplicate"]),
            "never_delivered": len(originals - delivered)}


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


# --- databases -------------------------------------------------------------------------------------


def create_database(server_url: str, prefix: str = "cs_faults") -> str:
    """A new, uniquely named database on the PostgreSQL server of `server_url`; its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(_sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(_sqlalchemy_url(server_url)).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": parsed.database})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
    finally:
        admin.dispose()


# --- scenario 2: PostgreSQL restarted during load -----------------------------------------------------


class PrivateCluster:
    """A PostgreSQL cluster of its own (initdb in a temporary folder, its own port), run as the
    `postgres` user: restarting it touches nobody else's databases."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            raise HarnessError("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)")
        self.bin = found[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="commons-sync-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")

    @staticmethod
    def available() -> bool:
        return bool(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))) and shutil.which("runuser") is not None \
            and os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *args], cwd=self.dir, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise HarnessError(f"{Path(args[0]).name} failed: {(result.stdout + result.stderr)[-1500:]}")

    def init(self) -> "PrivateCluster":
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--locale", "C.UTF-8", "--no-sync")
        return self

    def start(self) -> None:
        # fsync off: a throwaway cluster on a shared machine; a fast shutdown still writes everything.
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except HarnessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Probe:
    """Signed webhooks sent straight to the server while PostgreSQL goes away and comes back."""

    url: str
    timeout: float = 30.0
    results: list[tuple[float, int | str, float]] = field(default_factory=list)  # (at, status, seconds)
    health: list[tuple[float, int | str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _post(self, n: int) -> int | str:
        import requests

        body = json.dumps({"post": {
            "id": 90_000_000 + n, "topic_id": 99_999_999, "post_number": 2, "username": "lieu001",
            "raw": "Une question sans rapport avec un commun.", "version": 1, "post_type": 1,
            "created_at": "2026-11-22T00:00:00.000Z", "updated_at": "2026-11-22T00:00:00.000Z",
            "topic_slug": "autre", "topic_title": "Un autre sujet", "user_id": 5, "deleted_at": None,
            "user_deleted": False, "hidden": False, "staff": False, "admin": False, "moderator": False,
            "reply_to_post_number": None, "topic_archetype": "regular", "category_id": 5}},
            separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Discourse-Event-Type": "post",
                   "X-Discourse-Event": "post_created", "X-Discourse-Event-Id": str(80_000_000 + n),
                   "X-Discourse-Event-Signature": sign(SECRET, body)}
        try:
            return requests.post(self.url + "/webhooks/discourse", data=body, headers=headers,
                                 timeout=self.timeout).status_code
        except requests.Timeout:
            return "timeout"
        except requests.RequestException as error:
            return type(error).__name__

    def _healthz(self) -> int | str:
        import requests

        try:
            return requests.get(self.url + "/healthz", timeout=self.timeout).status_code
        except requests.RequestException as error:
            return type(error).__name__

    def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            began = time.monotonic()
            status = self._post(n)
            self.results.append((began, status, time.monotonic() - began))
            self.health.append((time.monotonic(), self._healthz()))
            n += 1
            self._stop.wait(0.1)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True, name="webhook-probe")
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


class PostgresRestart(KilledProcesses):
    """Pledges and edits delivered by the double while the private PostgreSQL cluster is stopped
    and started again; nothing is restarted but PostgreSQL, and no reconcile runs.

    Args:
        cluster: a started `PrivateCluster`.
        before, outage, after: seconds of load before the stop, with the database down, after the start.
    """

    def __init__(self, cluster: PrivateCluster, *, commons: int = 10, seed: int = 1, before: float = 5.0,
                 outage: float = 4.0, after: float = 8.0, rate: float = 20.0, restarts: int = 1,
                 progress: Callable[[str], None] | None = None, workdir: Path | None = None) -> None:
        self.cluster = cluster
        url = create_database(cluster.url)
        super().__init__(url, commons=commons, deliveries=10**9, kills=0, seed=seed, rate=rate,
                         deletions=False, progress=progress, workdir=workdir)
        self.before, self.outage, self.after, self.restarts = before, outage, after, restarts
        self.outages: list[tuple[float, float]] = []

    def _load_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.events += self._act()
            self.actions += 1
            time.sleep(1 / self.rate)

    def replay(self) -> None:
        self.actions = 0
        self.probe = Probe(self.stack.server_url)
        thread = self.probe.start()
        try:
            self._load_for(self.before)
            for number in range(self.restarts):
                stopped = time.monotonic()
                self.progress(f"stopping PostgreSQL ({number + 1}/{self.restarts})")
                self.cluster.stop("fast")
                self._load_for(self.outage)
                self.cluster.start()
                self.outages.append((stopped, time.monotonic()))
                self.progress("PostgreSQL started again")
                self._load_for(self.after)
        finally:
            self.probe.stop()
            thread.join(timeout=60)

    def run(self, settle_timeout: float = 300) -> dict[str, Any]:
        began = time.monotonic()
        try:
            self._setup()
            pids = {"server": self.stack.server.pid, "workers": [w.pid for w in self.stack.workers]}
            self.replay()
            recovered_began = time.monotonic()
            if not self.stack.admin.wait_for_webhooks(timeout=settle_timeout):
                raise HarnessError("the double's webhooks did not all go out")
            wait_for(self._settled, settle_timeout, "deliveries applied and outbox empty", every=0.5)
            settled_seconds = time.monotonic() - recovered_began
            alive = self.stack.alive()
            same_processes = (self.stack.starts == {"server": 1, "worker": self.stack.worker_count}
                              and all(alive.values())
                              and [w.pid for w in self.stack.workers] == pids["workers"]
                              and self.stack.server.pid == pids["server"])
            before_check = ledger_mismatches(self.database_url, self.record)
            self.stack.stop_service()
            log = self.stack.admin.webhook_log()
            webhooks = webhook_figures(log)
            report = check_final_state(self.stack, self.record, closes_at=self.closes_at)
            server_log = self.stack.log_tail("server", 200_000)
            worker_logs = "".join(self.stack.log_tail(f"worker-{i}", 2_000_000)
                                  for i in range(self.stack.worker_count))
        finally:
            self.stack.stop()
            try:
                drop_database(self.database_url)
            except Exception:  # noqa: BLE001 - the cluster goes away anyway
                pass
        answered_503 = {a["retry_of"] or a["event_id"] for a in log["deliveries"] if a["status"] == 503}
        delivered = {a["retry_of"] or a["event_id"] for a in log["deliveries"] if a["delivered"]}
        probe = self.probe.results
        during = [r for r in probe if any(start - 1 <= r[0] <= end + 1 for start, end in self.outages)]
        statuses: dict[str, int] = {}
        for _, status, _ in probe:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        health: dict[str, int] = {}
        for _, status in self.probe.health:
            health[str(status)] = health.get(str(status), 0) + 1
        last_outage_end = self.outages[-1][1] if self.outages else began
        after = [r for r in probe if r[0] > last_outage_end]
        first_ok_after = next((r[0] - last_outage_end for r in after if r[1] == 200), None)
        result = {
            "scenario": "pg-restart", "seed": self.seed, "commons": self.commons, "restarts": self.restarts,
            "outage_seconds": [round(end - start, 1) for start, end in self.outages],
            "forum_actions": self.actions, "deliveries": self.events, "webhooks": webhooks,
            "deliveries_answered_503": len(answered_503),
            "answered_503_then_stored": len(answered_503 & delivered),
            "probe": {"requests": len(probe), "answers": statuses,
                      "max_seconds": round(max((r[2] for r in probe), default=0), 2),
                      "max_seconds_during_outage": round(max((r[2] for r in during), default=0), 2),
                      "first_200_after_start_seconds": round(first_ok_after, 2) if first_ok_after is not None else None,
                      "healthz": health},
            "server_500s_in_log": server_log.count(" 500 ") + server_log.count("Exception on /"),
            "worker_log": {"passes_failed_database_unavailable": worker_logs.count("the database is unavailable"),
                           "tracebacks": worker_logs.count("Traceback (most recent call last)")},
            "same_processes_throughout": same_processes, "alive": alive,
            "posts_differing_after_settling": len(before_check),
            "settled_seconds": round(settled_seconds, 1), "total_seconds": round(time.monotonic() - began, 1),
            **report,
        }
        bad_answers = {status: count for status, count in statuses.items() if status not in ("200", "503")}
        if bad_answers:
            result["problems"].append(f"probe answers other than 200 and 503: {bad_answers}")
        if webhooks["never_delivered"]:
            result["problems"].append(f"{webhooks['never_delivered']} deliveries never delivered")
        if not same_processes:
            result["problems"].append(f"a process had to be restarted or died: {alive}")
        if result["server_500s_in_log"]:
            result["problems"].append("the server logged 500s or exceptions")
        result["ok"] = not result["problems"]
        return result
