"""Everything the demo runs, started together and stopped together.

A real local MediaWiki (unless told not to), the Discourse double, the service's web app and its
worker, all on loopback, on an SQLite file of their own. `replay()` plays the 2018 experiment as
forum activity: topics, staff `/commun` lines, and every pledge as a reply whose signed webhook
reaches the service.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

from commons_sync.config import Settings, load_settings
from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble
from commons_sync.devtools.local_mediawiki import LocalMediaWiki
from commons_sync.devtools.local_mediawiki import available as wiki_available
from commons_sync.devtools.served import ServedApp, free_port
from commons_sync.service import handlers
from commons_sync.storage.database import make_engine, upgrade

from . import movilab

ROUND_SLUG = "cobudget-2018"
MEMBERS_GROUP = "tiers-lieux"
STAFF_USER = "animation"
API_CEILING = 6000  # raised for the demo, on both sides, as CONTRACT §2 allows for tests and demos


@dataclass
class DemoTopic:
    title: str
    topic_id: int
    commons_id: int


@dataclass
class DemoStack:
    """Start with `with DemoStack(...) as stack:`; everything stops on exit, even on Ctrl-C."""

    database_path: Path
    lang: str = "fr"
    with_wiki: bool = True
    topics: list[DemoTopic] = field(default_factory=list)

    def __enter__(self) -> "DemoStack":
        self._stoppers: list[Callable[[], None]] = []
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        while self._stoppers:
            try:
                self._stoppers.pop()()
            except Exception:  # noqa: BLE001 - stop everything else even if one part fails
                pass

    # -- start -------------------------------------------------------------------------------------

    def _start(self) -> None:
        from commons_sync.bootstrap import connect_wiki
        from commons_sync.cli_forum import build_worker
        from commons_sync.mediawiki import install
        from commons_sync.web.app import create_app

        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.database_path}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{self.database_path}"
        self.engine = make_engine(database_url)
        upgrade(self.engine)
        self._stoppers.append(self.engine.dispose)

        self.wiki = None
        if self.with_wiki:
            self.wiki = LocalMediaWiki()
            self.wiki.start()
            self._stoppers.append(self.wiki.stop)

        webhook_secret, connect_secret = secrets.token_hex(16), secrets.token_hex(16)
        app_port = free_port()
        self.forum = RunningDouble(DoubleConfig(
            webhook_url=f"http://127.0.0.1:{app_port}/webhooks/discourse", webhook_secret=webhook_secret,
            api_rpm=API_CEILING, sso_secret=connect_secret, instance_url=None))
        self.forum.start()
        self._stoppers.append(self.forum.stop)
        self.admin = self.forum.admin
        category = self.admin.create_category("Communs", slug="communs")

        wiki_settings = {}
        if self.wiki is not None:
            wiki_settings = dict(mediawiki_api_url=self.wiki.api_url, mediawiki_username=self.wiki.bot_username,
                                 mediawiki_password=self.wiki.bot_password)
        self.settings: Settings = load_settings(
            database_url=database_url, language=self.lang, secret_key=secrets.token_hex(32),
            discourse_url=self.forum.url, discourse_api_key=self.forum.api_key,
            discourse_api_username=self.forum.api_username, discourse_webhook_secret=webhook_secret,
            discourse_category=category["id"], discourse_max_rpm=API_CEILING,
            discourse_connect_secret=connect_secret, **wiki_settings)
        self.svc = handlers.Service(self.engine, zone=self.settings.zone)
        if self.wiki is not None:
            install(connect_wiki(self.settings), self.lang)

        self.app = ServedApp(create_app(self.settings, self.svc), port=app_port)
        self._stoppers.append(self.app.stop)
        self.worker = build_worker(self.settings, self.svc)
        self.worker.quiet_seconds = 0.5
        self._stop_worker = threading.Event()

    def run_worker_in_background(self) -> None:
        """Keep the worker going (for people trying the demo by hand) until the stack stops."""
        thread = threading.Thread(target=self.worker.run_forever, kwargs={"stop": self._stop_worker},
                                  daemon=True)
        thread.start()

        def stop() -> None:
            self._stop_worker.set()
            thread.join(timeout=10)

        self._stoppers.append(stop)

    # -- the 2018 experiment ---------------------------------------------------------------------------

    def replay(self, data: dict | None = None, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Play the 2018 round as forum activity, then let the worker apply and publish everything."""
        plan = movilab.plan(data)
        self.admin.create_group(MEMBERS_GROUP)
        for number, member in enumerate(plan.members, start=1):
            self.admin.create_user(member, name=f"Tiers-lieu n°{number}", groups=[MEMBERS_GROUP])
        self.admin.create_user(STAFF_USER, name="Animation du réseau", moderator=True)
        now = self.svc.clock()
        handlers.create_round(self.svc, handlers.RoundSpec(
            slug=ROUND_SLUG, name=plan.round_name, allocation_cents=plan.allocation_cents,
            group=MEMBERS_GROUP, currency=plan.currency, opens_at=now - timedelta(days=1),
            closes_at=now + timedelta(days=plan_days(data) - 1), partial_threshold_pct=90))
        category = self.settings.discourse_category
        for index, planned in enumerate(plan.commons):
            author = plan.members[index % len(plan.members)]
            topic = self.admin.create_topic(author, planned.title,
                                            f"Proposition pour le réseau : {planned.title}.", category)
            if planned.goal_cents is None:
                commons = handlers.open_commons(self.svc, handlers.CommonsSpec(
                    round_slug=ROUND_SLUG, title=planned.title, goal_cents=None, topic_id=topic["topic_id"],
                    first_post_number=1, discussion_url=f"{self.forum.url}/t/{topic['topic_id']}"))
            else:
                self.admin.create_post(STAFF_USER, topic["topic_id"],
                                       "Proposition retenue pour la campagne.\n\n"
                                       f"/commun objectif={planned.goal_cents // 100} campagne={ROUND_SLUG}")
                commons = None
            self.topics.append(DemoTopic(planned.title, topic["topic_id"], commons.id if commons else 0))
            if progress:
                progress("topics", index + 1, len(plan.commons))
        self.settle()
        by_topic = {c["topic_id"]: c["id"] for c in handlers.list_commons(self.svc, ROUND_SLUG)}
        for topic in self.topics:
            topic.commons_id = by_topic[topic.topic_id]
        for number, pledge in enumerate(plan.pledges, start=1):
            topic = self.topics[pledge.commons_index]
            self.admin.create_post(pledge.member, topic.topic_id,
                                   f"Notre lieu soutient ce commun.\n\n/soutien {pledge.amount_cents // 100}")
            if progress:
                progress("pledges", number, len(plan.pledges))
        self.settle()

    def settle(self) -> None:
        """Every webhook delivered, then the worker run until nothing is due."""
        if not self.admin.wait_for_webhooks(timeout=120):
            raise RuntimeError("the forum's webhooks were not all delivered")
        self.worker.run_once()

    # -- where to look ---------------------------------------------------------------------------------

    def wiki_page_url(self, title: str) -> str | None:
        if self.wiki is None:
            return None
        from urllib.parse import quote

        return self.wiki.api_url.rsplit("/", 1)[0] + "/index.php?title=" + quote(title.replace(" ", "_"))


def plan_days(data: dict | None) -> int:
    return (data or movilab.load())["round"]["duration_days"]
