"""Structured logs: one JSON object a line, request and delivery ids, never a secret."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from click.testing import CliRunner

from commons_sync import logs
from commons_sync.cli import main
from commons_sync.config import load_settings
from commons_sync.service.handlers import Service
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.web.app import create_app
from tests.forum.harness import SECRET, OffsetClock

API_KEY = "a1b2c3d4" * 8
DB_PASSWORD = "pg-Pa55word-xyz"


@pytest.fixture(autouse=True)
def restore_logging():
    """Each test configures logging its own way; the root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _secret_settings(url: str):
    return load_settings(database_url=url, discourse_url="http://127.0.0.1:9", discourse_api_key=API_KEY,
                         discourse_api_username="commons-bot", discourse_webhook_secret=SECRET,
                         secret_key="session-signing-key-42")


def test_json_lines_have_the_fields_and_no_secret():
    settings = _secret_settings(f"postgresql://commons:{DB_PASSWORD}@127.0.0.1:5432/x")
    stream = io.StringIO()
    logs.configure_logging("json", "INFO", settings=settings, stream=stream)
    log = logging.getLogger("commons_sync.test")
    log.info("calling with Api-Key %s", API_KEY)
    with logs.log_context(delivery_id="webhook:77"):
        try:
            raise RuntimeError(f"connect to postgresql://commons:{DB_PASSWORD}@db failed; hook {SECRET}")
        except RuntimeError:
            log.exception("it failed")
    log.debug("not at INFO")
    first, second = _lines(stream)
    assert set(first) == {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"]) == ("INFO", "commons_sync.test")
    assert first["message"] == "calling with Api-Key [redacted]"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert second["delivery_id"] == "webhook:77"
    assert "RuntimeError" in second["exception"]
    text = stream.getvalue()
    for secret in (API_KEY, DB_PASSWORD, SECRET, "session-signing-key-42"):
        assert secret not in text


def test_text_format_redacts_too_and_shows_the_ids():
    stream = io.StringIO()
    logs.configure_logging("text", "INFO", settings=_secret_settings("sqlite:///x.db"), stream=stream)
    with logs.log_context(request_id="req-1"):
        logging.getLogger("commons_sync.test").warning("secret %s", SECRET)
    assert stream.getvalue().rstrip().endswith(
        "WARNING commons_sync.test [request_id=req-1]: secret [redacted]")


def test_unknown_format_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="COMMONS_SYNC_LOG_FORMAT"):
        logs.configure_logging("xml")


@pytest.fixture
def client(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = _secret_settings(sqlite_url)
    stream = io.StringIO()
    logs.configure_logging("json", "INFO", settings=settings, stream=stream)
    app = create_app(settings, Service(engine, OffsetClock()))
    yield app.test_client(), stream
    engine.dispose()


def test_request_id_is_taken_echoed_and_logged(client):
    client, stream = client
    answer = client.post("/webhooks/discourse", data=b"{}", headers={"X-Request-Id": "edge-7f3a"})
    assert answer.status_code == 401
    assert answer.headers["X-Request-Id"] == "edge-7f3a"
    [line] = [line for line in _lines(stream) if line["logger"] == "commons_sync.web.health"]
    assert line["request_id"] == "edge-7f3a"
    assert line["message"].startswith("POST /webhooks/discourse -> 401")


def test_request_id_is_generated_when_missing_or_unsafe(client):
    client, stream = client
    first = client.post("/webhooks/discourse", data=b"{}")
    second = client.post("/webhooks/discourse", data=b"{}", headers={"X-Request-Id": "bad id\twith spaces"})
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert ids[0] != ids[1]
    assert [line["request_id"] for line in _lines(stream)
            if line["logger"] == "commons_sync.web.health"] == ids


def test_worker_json_log_names_the_outbox_row_and_never_the_key(forum_env):
    forum = forum_env
    topic = forum.commons_topic()
    forum.admin.fail_next("/posts/", status=500, method="PUT")  # the status-post edit fails once
    forum.pledge("alice", topic, "40")
    assert forum.admin.wait_for_webhooks(timeout=30)
    result = CliRunner().invoke(main, ["--log-format", "json", "worker", "--once"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    failed = [line for line in lines if "failed" in line["message"] and line["logger"].endswith("worker")]
    assert failed and re.fullmatch(r"outbox:\d+", failed[0]["delivery_id"])
    assert forum.forum.api_key not in result.stderr
    assert SECRET not in result.stderr
