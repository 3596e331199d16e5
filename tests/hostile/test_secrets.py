"""Secrets never leave the process: not in the log (captured at DEBUG during a whole scenario with
the forum, the wiki, IMAP and SMTP set), not in error messages or tracebacks, not in `/metrics`,
`/healthz`, the webhook's answers or the CLI's output.

Each secret is a recognisable random value; the scenario runs the real peers on loopback (the
Discourse double, Debian's MediaWiki, Dovecot, an aiosmtpd sink that offers no AUTH, so the
SMTP password's error path runs too) and peers that do not answer (wiki, IMAP, PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from commons_sync.cli import main
from commons_sync.cli_forum import build_worker
from commons_sync.config import load_settings
from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble
from commons_sync.devtools.local_dovecot import LocalDovecot
from commons_sync.devtools.served import ServedApp, free_port
from commons_sync.devtools.smtp_sink import SmtpSink
from commons_sync.service import handlers
from commons_sync.service.handlers import RoundSpec, Service
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app
from tests.forum.harness import OffsetClock

from .fuzz_targets import sign


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


@pytest.fixture
def secret_values():
    return {name: _secret(name.upper().replace("_", "-")) for name in (
        "secret_key", "discourse_api_key", "discourse_webhook_secret", "discourse_connect_secret",
        "imap_password", "smtp_password", "mediawiki_password", "database_password")}


def _require_dovecot() -> None:
    if LocalDovecot.available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("dovecot (Debian dovecot-imapd) is not installed, or the tests do not run as root")
    pytest.skip("dovecot is not installed, or the tests do not run as root")


def _assert_absent(values, *texts: str) -> None:
    for text in texts:
        for name, value in values.items():
            assert value not in text, f"{name} found in: …{text[max(0, text.find(value) - 200):text.find(value) + 50]}…"


def _proposal() -> bytes:
    return (b"From: Renee Dupre <renee@cretes.example>\r\nTo: propositions@reseau.example\r\n"
            b"Subject: Presse a cidre\r\nMessage-ID: <secret-test@cretes.example>\r\n"
            b"Date: Sat, 21 Nov 2026 10:00:00 +0100\r\n\r\nUne presse a cidre mobile.\r\n")


def test_no_secret_in_logs_errors_or_metrics_during_a_whole_scenario(tmp_path, installed, secret_values,
                                                                    caplog, capfd):
    _require_dovecot()
    values = dict(secret_values, mediawiki_password=installed.bot_password)
    values.pop("database_password")
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'secrets.db'}"
    engine = make_engine(url)
    upgrade(engine)
    svc = Service(engine, OffsetClock())
    handlers.create_round(svc, RoundSpec(slug="printemps", name="Printemps", allocation_cents=50000,
                                         group="cofinanceurs", closes_at=svc.clock() + timedelta(days=30)))
    with LocalDovecot(password=values["imap_password"]) as dovecot, SmtpSink() as sink:
        settings = load_settings(
            database_url=url, secret_key=values["secret_key"], discourse_url="http://127.0.0.1:9",
            discourse_api_key=values["discourse_api_key"], discourse_api_username="commons-bot",
            discourse_webhook_secret=values["discourse_webhook_secret"],
            discourse_connect_secret=values["discourse_connect_secret"], discourse_max_rpm=6000,
            mediawiki_api_url=installed.api_url, mediawiki_username=installed.bot_username,
            mediawiki_password=values["mediawiki_password"],
            imap_host=dovecot.host, imap_port=dovecot.port, imap_username=dovecot.username,
            imap_password=values["imap_password"], imap_ssl=False,
            smtp_host="127.0.0.1", smtp_port=sink.port, smtp_from="propositions@reseau.example",
            smtp_username="intake", smtp_password=values["smtp_password"], smtp_starttls=False)
        app = ServedApp(create_app(settings, svc))
        double = RunningDouble(DoubleConfig(api_key=values["discourse_api_key"], webhook_url=app.url + "/webhooks/discourse",
                                            webhook_secret=values["discourse_webhook_secret"], api_rpm=6000,
                                            sso_secret=values["discourse_connect_secret"], retry_delays=(0.2,)))
        with double:
            settings = settings.model_copy(update={"discourse_url": double.url})
            app.server.app.extensions["commons_sync"]["settings"] = settings
            try:
                _scenario(svc, settings, app, double, dovecot)
                answers = _web_answers(app, settings)
            finally:
                app.stop()
    engine.dispose()
    captured = capfd.readouterr()
    log_text = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    assert "commons_sync" in caplog.text  # the log was captured (the check below can fail)
    _assert_absent(values, log_text, captured.out, captured.err, *answers, repr(settings), str(settings))


def _scenario(svc, settings, app, double, dovecot) -> None:
    admin = double.admin
    admin.create_group("cofinanceurs")
    admin.create_user("alice", name="Alice", groups=["cofinanceurs"])
    admin.create_user("claire", name="Claire", moderator=True)
    topic = admin.create_topic("alice", "Une presse à cidre mobile pour le réseau",
                               "Proposition : une presse partagée entre les lieux du réseau.")
    admin.create_post("claire", topic["topic_id"], "Validé par le conseil.\n\n/commun objectif=1340")
    assert admin.wait_for_webhooks(timeout=30)
    dovecot.deliver(_proposal())
    worker = build_worker(settings, svc)
    worker.quiet_seconds = 0.0
    worker.run_once()
    admin.create_post("alice", topic["topic_id"], "Pour La Ruche, avec plaisir.\n\n/soutien 50")
    assert admin.wait_for_webhooks(timeout=30)
    worker.run_once()
    worker.run_once()
    [commons] = handlers.list_commons(svc)
    assert commons["raised"] == 50  # the scenario really ran: pledge applied
    assert handlers.list_commons(svc)[0]["wiki_title"]
    from commons_sync.service import triage

    assert len(triage.list_submissions(svc)) == 1  # the mailbox was read with the IMAP password


def _web_answers(app, settings) -> list[str]:
    import requests

    session = requests.Session()
    texts = []
    for path in ("/metrics", "/healthz", "/staff/triage"):
        texts.append(session.get(app.url + path, timeout=10).text)
    body = b'{"post": {"id": 1}}'
    for signature in ("sha256=00", sign(body, "guess"), None):
        headers = {"X-Discourse-Event": "post_created", "X-Discourse-Event-Type": "post",
                   "X-Discourse-Event-Id": "1"}
        if signature:
            headers["X-Discourse-Event-Signature"] = signature
        texts.append(session.post(app.url + "/webhooks/discourse", data=body, headers=headers, timeout=10).text)
    login = session.get(app.url + "/staff/login", allow_redirects=False, timeout=10)
    texts.append(login.headers.get("Location", "") + login.text)
    forged = base64.b64encode(urlencode({"nonce": "x", "username": "zoe", "groups": "staff"}).encode()).decode()
    sig = hmac.new(b"guess", forged.encode(), hashlib.sha256).hexdigest()
    texts.append(session.get(app.url + "/staff/sso", params={"sso": forged, "sig": sig}, timeout=10).text)
    return texts


def test_no_secret_when_peers_do_not_answer(tmp_path, forum, secret_values, caplog, capfd):
    """Unreachable wiki, IMAP, SMTP and PostgreSQL: the errors are logged and printed without the
    passwords; the CLI's one-line failures neither."""
    values = secret_values
    caplog.set_level(logging.DEBUG)
    svc, base, _applier, double = forum
    dead = free_port()
    settings = base.model_copy(update={
        "secret_key": values["secret_key"], "mediawiki_api_url": f"http://127.0.0.1:{dead}/w/api.php",
        "mediawiki_username": "Bot@sync", "mediawiki_password": values["mediawiki_password"],
        "imap_host": "127.0.0.1", "imap_port": dead, "imap_username": "intake",
        "imap_password": values["imap_password"], "imap_ssl": False,
        "smtp_host": "127.0.0.1", "smtp_port": dead, "smtp_from": "p@reseau.example",
        "smtp_username": "intake", "smtp_password": values["smtp_password"]})
    settings = load_settings(**{name: (value.get_secret_value() if hasattr(value, "get_secret_value") else value)
                                for name, value in settings.model_dump().items() if value is not None})
    handlers.open_commons(svc, handlers.CommonsSpec(round_slug="printemps", title="Fiche à écrire",
                                                    goal_cents=10000))
    # The worker's pass with IMAP and SMTP down (the wiki's error path runs through the CLI
    # below: an unreachable wiki makes each wiki row wait out the gateway's patience).
    build_worker(settings.model_copy(update={"mediawiki_api_url": None, "mediawiki_username": None,
                                             "mediawiki_password": None}), svc).run_once()
    pg_url = f"postgresql+psycopg://commons:{values['database_password']}@127.0.0.1:{dead}/commons"
    env = {f"COMMONS_SYNC_{name.upper()}": str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
           for name, value in settings.model_dump().items() if value is not None}
    runner = CliRunner()
    outputs = []
    for args, extra in ((["mail", "poll"], {}), (["wiki", "sync", "--all"], {}),
                        (["round", "list"], {"COMMONS_SYNC_DATABASE_URL": pg_url})):
        result = runner.invoke(main, args, env={**env, **extra}, catch_exceptions=True)
        assert result.exit_code != 0, (args, result.output)
        outputs.append(result.output + (result.stderr if hasattr(result, "stderr") else ""))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            outputs.append(repr(result.exception))
    captured = capfd.readouterr()
    assert any(record.levelno >= logging.WARNING for record in caplog.records)  # errors were logged
    _assert_absent(values, caplog.text, captured.out, captured.err, *outputs)
