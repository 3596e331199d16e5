"""`serve`, `worker [--once]` and `reconcile`: thin click wrappers over the web app and the worker.

They are plain `click.command`s; `cli.py` registers them on the `commons-sync` group (whose
context holds the settings). Run alone, they read the settings themselves.
"""

from __future__ import annotations

import logging
import signal
import threading

import click

from commons_sync.cli_common import Failure, service_of, settings_of
from commons_sync.config import Settings
from commons_sync.i18n import t

log = logging.getLogger(__name__)


def _logging(settings: Settings) -> None:
    """Run alone (not through `commons-sync`), a command configures logging itself."""
    from commons_sync import logs

    if not logs.configured():
        logs.configure_logging(settings=settings)


def build_forum_client(settings: Settings, svc):
    """The forum client of this process, under the rate limit shared through the database."""
    from commons_sync.discourse.client import DiscourseClient
    from commons_sync.service.forum import DatabaseRateLimiter

    from commons_sync.service import ops

    limiter = DatabaseRateLimiter(svc.engine, settings.discourse_max_rpm)
    client = DiscourseClient(settings.discourse_url, settings.discourse_api_key,
                             settings.discourse_api_username, limiter=limiter)
    # Answers counted per status (API calls, 429s) into the counters every process shares.
    ops.count_http_calls(getattr(getattr(client, "_api", None), "_session", None), "forum",
                         ops.counters(svc.engine))
    return client


def build_worker(settings: Settings, svc, forum=None):
    """A `Worker` with the adapters that are on; each one that is off is said once in the log."""
    from commons_sync.service import ops
    from commons_sync.service.forum import DeliveryApplier, ForumSettings
    from commons_sync.service.triage import TriageSenders
    from commons_sync.service.worker import ForumSenders, Worker, backoff_seconds

    applier, senders, tasks = None, {}, []
    # A peer found down is asked again at least this often: the inbox's first pending delivery
    # is its own probe, so its wait never grows past it (an empty outbox has nothing to probe with).
    probe_seconds = min(10.0, settings.retry_max_seconds)
    if settings.adapter_on("discourse"):
        forum = forum or build_forum_client(settings, svc)
        applier = DeliveryApplier(svc, forum, ForumSettings.from_settings(settings),
                                  backoff=lambda failures: backoff_seconds(
                                      failures, settings.retry_base_seconds, probe_seconds))
        senders.update(ForumSenders(svc, forum, settings.discourse_api_username, settings.language,
                                    settings.zone).senders())
        # Reminders, cancel notices; the funded thanks and round results, once each (issue 8).
        from commons_sync.service.lifecycle_forum import LifecycleSenders
        from commons_sync.service.reminders import ReminderTask

        senders.update(LifecycleSenders(svc, forum, settings.language, settings.zone,
                                        settings.mediawiki_api_url).senders())
        tasks.append(ReminderTask(svc, forum, settings.discourse_max_rpm))
    else:
        forum = None
        log.warning("forum adapter off (COMMONS_SYNC_DISCOURSE_* unset): webhooks are not applied "
                    "and forum posts stay in the outbox")
    if settings.adapter_on("mediawiki"):
        from commons_sync.bootstrap import connect_wiki
        from commons_sync.service.wiki_sync import WikiSenders

        def wiki():
            # The worker has its own backoff: one call never waits longer than a row would.
            connected = connect_wiki(settings, patience=min(10.0, settings.retry_max_seconds))
            ops.count_http_calls(getattr(getattr(connected, "site", None), "connection", None), "wiki",
                                 ops.counters(svc.engine))
            return connected

        # A wiki found down is left alone for a while, never longer than a row's longest backoff.
        senders.update(WikiSenders(svc, wiki, settings.language,
                                   pause_seconds=min(30.0, settings.retry_max_seconds)).senders())
    else:
        log.warning("wiki adapter off (COMMONS_SYNC_MEDIAWIKI_* unset): fiches stay in the outbox")
    mailer = None
    if settings.adapter_on("smtp"):
        from commons_sync.mail.smtp import Mailer

        mailer = Mailer.from_settings(settings)
    else:
        log.warning("outgoing mail off (COMMONS_SYNC_SMTP_* unset): mails stay in the outbox")
    senders.update(TriageSenders(svc, forum, mailer, settings).senders())
    if settings.adapter_on("imap"):
        tasks.append(_mailbox_task(settings, svc))
    else:
        log.warning("mail intake off (COMMONS_SYNC_IMAP_* unset): the mailbox is not polled")
    # The heartbeat (and the flush of this process's counters) runs at every pass.
    tasks.append(ops.Heartbeat(svc, ops.counters(svc.engine)))
    senders = ops.instrument_senders(svc, senders, ops.counters(svc.engine))
    return Worker(svc, applier, senders, tasks=tasks, zone=settings.zone,
                  backoff_base_seconds=settings.retry_base_seconds,
                  backoff_max_seconds=settings.retry_max_seconds,
                  probe_seconds=probe_seconds,
                  inbox_lease_seconds=settings.worker_inbox_lease_seconds,
                  outbox_lease_seconds=settings.worker_outbox_lease_seconds)


def _mailbox_task(settings: Settings, svc, every_seconds: float = 30.0):
    """Poll the mailbox at most every `every_seconds` (and on the first pass)."""
    import time

    from commons_sync.mail.imap import Mailbox
    from commons_sync.service.triage import TriageSettings, poll_mailbox

    last = [None]

    def poll_mail() -> None:
        if last[0] is not None and time.monotonic() - last[0] < every_seconds:
            return
        last[0] = time.monotonic()
        poll_mailbox(svc, Mailbox.from_settings(settings), TriageSettings.from_settings(settings))

    return poll_mail


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Run the web service (development server; production runs `commons_sync.web.app:create_app()`
    under gunicorn)."""
    from commons_sync.web.app import create_app

    settings = settings_of(ctx)
    if settings.secret_key is None:
        raise Failure("COMMONS_SYNC_SECRET_KEY is required by serve")
    _logging(settings)
    app = create_app(settings, service_of(settings))
    # werkzeug's own lines are kept to warnings (the app logs each request with its id): say where.
    log.info("serving on http://%s:%d", host, port)
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


@click.command("worker")
@click.option("--once", is_flag=True, help="Work until the outbox is empty (or only backing off), then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Apply stored deliveries in the order received, send the outbox, close due rounds."""
    settings = settings_of(ctx)
    _logging(settings)
    runner = build_worker(settings, service_of(settings))
    if once:
        summary = runner.run_once()
        click.echo(t(settings.language, "{applied} livraisons appliquées, {sent} envois faits, "
                                        "{pending} en attente.", applied=summary.applied,
                     sent=summary.sent, pending=summary.pending), err=True)
        return
    stop = threading.Event()
    # SIGTERM (systemd, docker stop) ends the loop between two passes, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runner.run_forever(stop)
    except KeyboardInterrupt:
        pass


@click.command("reconcile")
@click.option("--topic", "topic_id", type=int, help="One commons topic.")
@click.option("--all", "all_topics", is_flag=True, help="Every commons topic.")
@click.pass_context
def reconcile(ctx: click.Context, topic_id: int | None, all_topics: bool) -> None:
    """Read commons topics from the forum and apply their posts in post order."""
    from commons_sync.service.forum import (
        DeliveryApplier,
        ForumSettings,
        commons_topics,
        reconcile_topic,
    )

    settings = settings_of(ctx)
    lang = settings.language
    if (topic_id is None) == (not all_topics):
        raise Failure(t(lang, "indiquez --topic ID ou --all"))
    if not settings.adapter_on("discourse"):
        raise Failure(t(lang, "l'adaptateur forum n'est pas configuré (COMMONS_SYNC_DISCOURSE_URL…)"))
    svc = service_of(settings)
    forum = build_forum_client(settings, svc)
    applier = DeliveryApplier(svc, forum, ForumSettings.from_settings(settings))
    topics = commons_topics(svc) if all_topics else [topic_id]
    if topic_id is not None and topic_id not in commons_topics(svc):
        raise Failure(t(lang, "le sujet {topic} n'est pas un commun", topic=topic_id))
    from commons_sync.discourse.errors import DiscourseError

    from rich.console import Console
    from rich.progress import Progress

    # The bar goes to stderr and only on a terminal: stdout keeps one `topic<TAB>posts` line each.
    with Progress(console=Console(stderr=True), transient=True, disable=len(topics) < 2) as progress:
        task = progress.add_task(t(lang, "Sujets relus"), total=len(topics))
        for topic in topics:
            try:
                count = reconcile_topic(applier, forum, topic)
            except DiscourseError as error:
                raise Failure(t(lang, "le forum n'a pas répondu pour le sujet {topic} : {error}",
                                topic=topic, error=error)) from None
            click.echo(f"{topic}\t{count}")
            progress.advance(task)
