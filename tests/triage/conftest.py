"""Fixtures of the triage tests: a real Dovecot, an aiosmtpd sink, the Discourse double, the real wiki.

`TriageHarness` runs the service's web app (with the staff pages), the Discourse double (with its
DiscourseConnect provider) and a worker with the forum, wiki and triage senders, all on loopback.
Under CI=true a missing Dovecot or MediaWiki fails the tests instead of skipping them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commons_sync.cli_forum import build_forum_client, build_worker
from commons_sync.config import load_settings
from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble
from commons_sync.devtools.local_dovecot import LocalDovecot
from commons_sync.devtools.smtp_sink import SmtpSink
from commons_sync.mail.imap import Mailbox
from commons_sync.mail.smtp import Mailer
from commons_sync.mediawiki import Wiki
from commons_sync.service import handlers, triage
from commons_sync.service.handlers import RoundSpec, Service
from commons_sync.service.triage import TriageSenders
from commons_sync.service.wiki_sync import WikiSenders
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app
from commons_sync.devtools.served import ServedApp
from tests.forum.harness import OffsetClock

FIXTURES = Path(__file__).resolve().parents[1] / "mail" / "fixtures"
WEBHOOK_SECRET = "triage-test-secret-0123"
CONNECT_SECRET = "triage-connect-secret-4567"
STAFF_GROUP = "equipe"
PROGRAM_ADDRESS = "propositions@reseau.example"


def eml(name: str) -> bytes:
    """The raw bytes of the mail tests' fixture `<name>.eml` (never reformatted)."""
    return (FIXTURES / f"{name}.eml").read_bytes()


class TriageHarness:
    """The whole set-up of one scenario, started in `__enter__`, stopped in `__exit__`."""

    def __init__(self, database_url: str, dovecot: LocalDovecot, sink: SmtpSink, wiki=None) -> None:
        self.database_url = database_url
        self.dovecot = dovecot
        self.sink = sink
        self.local_wiki = wiki
        self.clock = OffsetClock()

    def __enter__(self) -> "TriageHarness":
        self.engine = make_engine(self.database_url)
        upgrade(self.engine)
        self.svc = Service(self.engine, self.clock, zone=ZoneInfo("Europe/Paris"))
        wiki_settings = {}
        if self.local_wiki is not None:
            wiki_settings = dict(mediawiki_api_url=self.local_wiki.api_url,
                                 mediawiki_username=self.local_wiki.bot_username,
                                 mediawiki_password=self.local_wiki.bot_password)
        self.settings = load_settings(
            database_url=self.database_url, language="fr", secret_key="triage-tests-secret-key-0123456789",
            discourse_url="http://127.0.0.1:9", discourse_api_key="x" * 64,
            discourse_api_username="commons-bot", discourse_webhook_secret=WEBHOOK_SECRET,
            discourse_max_rpm=600, discourse_connect_secret=CONNECT_SECRET,
            discourse_staff_group=STAFF_GROUP,
            imap_host=self.dovecot.host, imap_port=self.dovecot.port, imap_username=self.dovecot.username,
            imap_password=self.dovecot.password, imap_ssl=False,
            smtp_host="127.0.0.1", smtp_port=self.sink.port, smtp_from=PROGRAM_ADDRESS, smtp_starttls=False,
            **wiki_settings)
        self.app = ServedApp(create_app(self.settings, self.svc))
        self.forum = RunningDouble(DoubleConfig(
            webhook_url=self.app.url + "/webhooks/discourse", webhook_secret=WEBHOOK_SECRET,
            api_rpm=600, sso_secret=CONNECT_SECRET, retry_delays=(0.2, 0.5)))
        self.forum.start()
        self.admin = self.forum.admin
        self.category = self.admin.create_category("Communs proposés", slug="communs")["id"]
        self.settings = self.settings.model_copy(update={
            "discourse_url": self.forum.url, "discourse_api_key": self.forum.api_key,
            "discourse_api_username": self.forum.api_username, "discourse_category": self.category})
        self.app.server.app.extensions["commons_sync"]["settings"] = self.settings
        self.client = build_forum_client(self.settings, self.svc)
        self.worker = build_worker(self.settings, self.svc, self.client)
        self.mailer = Mailer.from_settings(self.settings)
        self.worker.senders.update(TriageSenders(self.svc, self.client, self.mailer, self.settings).senders())
        if self.local_wiki is not None:
            self.worker.senders.update(WikiSenders(self.svc, self.connect_wiki).senders())
        self.mailbox = Mailbox(**self.dovecot.mailbox_kwargs())
        self.admin.create_group(STAFF_GROUP)
        self.admin.create_user("claire", name="Claire Dubois", groups=[STAFF_GROUP])
        self.admin.create_user("zoe", name="Zoé Martin")
        handlers.create_round(self.svc, RoundSpec(slug="printemps", name="Campagne de printemps",
                                                  allocation_cents=50000, group="cofinanceurs"))
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.forum.stop()
        self.app.stop()
        self.engine.dispose()

    def connect_wiki(self) -> Wiki:
        return Wiki.connect(self.local_wiki.api_url, self.local_wiki.bot_username,
                            self.local_wiki.bot_password)

    # -- acting ----------------------------------------------------------------------------------

    def deliver(self, *raws: bytes) -> None:
        for raw in raws:
            self.dovecot.deliver(raw)

    def poll(self):
        return triage.poll_mailbox(self.svc, self.mailbox, triage.TriageSettings.from_settings(self.settings))

    def settle(self):
        """The worker run until nothing is due, then every webhook delivered and applied."""
        summary = self.worker.run_once()
        assert self.admin.wait_for_webhooks(timeout=30)
        self.worker.run_once()
        return summary

    # -- looking ---------------------------------------------------------------------------------

    def topics_in_category(self) -> list:
        forum = self.forum.double.forum
        return [topic for topic in forum.topics.values() if topic.category_id == self.category]

    def first_post(self, topic) -> dict:
        return self.admin.post(topic.post_ids[0])

    def mails_to(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]


def unique_title(base: str) -> str:
    """A title no other test in the session uses (the wiki is shared by the session)."""
    return f"{base} {uuid.uuid4().hex[:6]}"


def proposal(subject: str, body: str, *, sender: str = "Renée Dupré <renee@cretes.example>",
             message_id: str | None = None, extra_headers: str = "") -> bytes:
    """A plain French proposal as a mail client sends it (UTF-8, quoted-printable subject)."""
    from email.message import EmailMessage
    from email.policy import default
    from email.utils import make_msgid

    message = EmailMessage(policy=default)
    message["From"] = sender
    message["To"] = PROGRAM_ADDRESS
    message["Subject"] = subject
    message["Date"] = "Sat, 21 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = message_id or make_msgid(domain="cretes.example")
    for line in filter(None, extra_headers.splitlines()):
        name, _, value = line.partition(":")
        message[name.strip()] = value.strip()
    message.set_content(body)
    return message.as_bytes()


@pytest.fixture
def harness(sqlite_url, dovecot, sink):
    with TriageHarness(sqlite_url, dovecot, sink) as running:
        yield running


@pytest.fixture
def wiki_harness(sqlite_url, dovecot, sink, installed):
    with TriageHarness(sqlite_url, dovecot, sink, installed) as running:
        yield running
