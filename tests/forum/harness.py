"""A whole forum side on loopback: the Discourse double, the service's web app, a worker.

The double sends its signed webhooks to the service app (served by werkzeug in a thread); the
worker applies them and talks back to the double through the real `DiscourseClient`, under the
rate limit shared through the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import requests

from commons_sync.cli_forum import build_forum_client, build_worker
from commons_sync.config import load_settings
from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble
from commons_sync.devtools.served import ServedApp
from commons_sync.discourse.status_post import MARKER
from commons_sync.service import handlers
from commons_sync.service.handlers import RoundSpec, Service
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app

SECRET = "forum-test-secret-0123"
GROUP = "cofinanceurs"
STAFF = "claire"
MEMBERS = ("alice", "bruno", "chloe")


class OffsetClock:
    """Real time plus an offset the test can move forward (UTC)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta) -> None:
        self.offset += timedelta(**delta)


class ForumHarness:
    """Everything one scenario needs, started in `__enter__` and stopped in `__exit__`."""

    def __init__(self, database_url: str, *, max_rpm: int = 600, double_rpm: int = 600,
                 language: str = "fr", **double_options) -> None:
        self.language = language
        self.database_url = database_url
        self.double_options = double_options
        self.max_rpm = max_rpm
        self.double_rpm = double_rpm
        self.clock = OffsetClock()

    def __enter__(self) -> "ForumHarness":
        self.engine = make_engine(self.database_url)
        upgrade(self.engine)
        self.svc = Service(self.engine, self.clock)
        self.settings = load_settings(
            database_url=self.database_url, discourse_url="http://127.0.0.1:9",
            discourse_api_key="x" * 64, discourse_api_username="commons-bot",
            discourse_webhook_secret=SECRET, discourse_max_rpm=self.max_rpm,
            language=self.language)
        self.app = ServedApp(create_app(self.settings, self.svc))
        self.forum = RunningDouble(DoubleConfig(webhook_url=self.app.url + "/webhooks/discourse",
                                                webhook_secret=SECRET, api_rpm=self.double_rpm,
                                                retry_delays=(0.2, 0.5, 1.0), **self.double_options))
        self.forum.start()
        self.settings = self.settings.model_copy(update={
            "discourse_url": self.forum.url, "discourse_api_key": self.forum.api_key,
            "discourse_api_username": self.forum.api_username})
        self.app.server.app.extensions["commons_sync"]["settings"] = self.settings
        self.admin = self.forum.admin
        self.client = build_forum_client(self.settings, self.svc)
        self.worker = build_worker(self.settings, self.svc, self.client)
        self.worker.quiet_seconds = 0.5
        self.worker.max_delay_seconds = 3.0
        self.worker.refresh_every_seconds = 0.0  # the daily refresh is checked at every pass
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.forum.stop()
        self.app.stop()
        self.engine.dispose()

    def environment(self, max_rpm: int = 600) -> dict[str, str]:
        """The COMMONS_SYNC_* variables a command of the forum side reads to reach this stack."""
        return {
            "COMMONS_SYNC_DATABASE_URL": self.database_url,
            "COMMONS_SYNC_DISCOURSE_URL": self.forum.url,
            "COMMONS_SYNC_DISCOURSE_API_KEY": self.forum.api_key,
            "COMMONS_SYNC_DISCOURSE_API_USERNAME": self.forum.api_username,
            "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": SECRET,
            "COMMONS_SYNC_DISCOURSE_MAX_RPM": str(max_rpm),
        }

    # -- set-up ----------------------------------------------------------------------------------

    def people(self, members=MEMBERS, others=("zoe",)) -> None:
        self.admin.create_group(GROUP)
        for name in members:
            self.admin.create_user(name, name=name.capitalize(), groups=[GROUP])
        for name in others:
            self.admin.create_user(name, name=name.capitalize())
        self.admin.create_user(STAFF, name="Claire Dubois", moderator=True)

    def round(self, slug: str = "printemps", allocation: int = 50000, **extra) -> None:
        spec = RoundSpec(slug=slug, name=f"Campagne {slug}", allocation_cents=allocation, group=GROUP,
                         closes_at=self.clock() + timedelta(days=30), **extra)
        handlers.create_round(self.svc, spec)

    def commons_topic(self, goal: str = "1340", cap: str | None = "1500", round_slug: str | None = None) -> int:
        """A topic opened by a member, made a commons by staff's `/commun` line; returns its id."""
        topic = self.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                        "Proposition : une licence partagée entre les lieux du réseau.")
        line = f"/commun objectif={goal}" + (f" plafond={cap}" if cap else "")
        if round_slug:
            line += f" campagne={round_slug}"
        self.admin.create_post(STAFF, topic["topic_id"], "Le conseil a validé la proposition.\n\n" + line)
        self.settle()
        return topic["topic_id"]

    # -- acting -----------------------------------------------------------------------------------

    def post(self, user: str, topic_id: int, raw: str) -> dict:
        return self.admin.create_post(user, topic_id, raw)

    def pledge(self, user: str, topic_id: int, amount: str) -> dict:
        return self.post(user, topic_id, f"Je soutiens ce commun avec plaisir.\n\n/soutien {amount}")

    def settle(self) -> None:
        """Every webhook delivered, then the worker run until nothing is due."""
        assert self.admin.wait_for_webhooks(timeout=30)
        self.worker.run_once()

    # -- looking ----------------------------------------------------------------------------------

    def commons(self, topic_id: int) -> dict:
        commons = next(c for c in handlers.list_commons(self.svc) if c["topic_id"] == topic_id)
        return handlers.show_commons(self.svc, commons["id"])

    def topic_posts(self, topic_id: int) -> list[dict]:
        """Every post of the topic as the forum stores it (control API: not counted as API traffic)."""
        ids = self.forum.double.forum.topics[topic_id].post_ids
        return [self.admin.post(post_id) for post_id in ids]

    def status_posts(self, topic_id: int) -> list[dict]:
        return [p for p in self.topic_posts(topic_id)
                if p["username"] == self.forum.api_username and MARKER in (p["raw"] or "")]

    def status_post(self, topic_id: int) -> dict:
        posts = self.status_posts(topic_id)
        assert len(posts) == 1, posts
        return posts[0]

    def replies_to(self, topic_id: int, post_number: int) -> list[str]:
        return [p["raw"] for p in self.topic_posts(topic_id)
                if p["username"] == self.forum.api_username and p["reply_to_post_number"] == post_number]

    def balance(self, username: str, slug: str = "printemps") -> float:
        members = {m["username"]: m for m in handlers.show_round(self.svc, slug)["members"]}
        return members[username]["balance"] if username in members else None

    def api_stats(self) -> dict:
        return self.admin.request_stats()


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)
