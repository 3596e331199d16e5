"""Fixtures of the observability tests: the forum side on loopback, and a small app on SQLite."""

from __future__ import annotations

import pytest

from tests.forum.harness import SECRET, ForumHarness


@pytest.fixture
def forum(sqlite_url):
    """As in tests/forum: members alice, bruno, chloe, zoe (not a member), claire (staff); round `printemps`."""
    with ForumHarness(sqlite_url) as harness:
        harness.people()
        harness.round()
        yield harness


@pytest.fixture
def forum_env(forum, monkeypatch):
    """The environment a command of the forum side reads (the double's URL and key)."""
    values = {
        "COMMONS_SYNC_DATABASE_URL": forum.database_url,
        "COMMONS_SYNC_DISCOURSE_URL": forum.forum.url,
        "COMMONS_SYNC_DISCOURSE_API_KEY": forum.forum.api_key,
        "COMMONS_SYNC_DISCOURSE_API_USERNAME": forum.forum.api_username,
        "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": SECRET,
        "COMMONS_SYNC_DISCOURSE_MAX_RPM": "600",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("COMMONS_SYNC_SECRET_KEY", "COMMONS_SYNC_DISCOURSE_CATEGORY", "COMMONS_SYNC_LOG_FORMAT",
                 "COMMONS_SYNC_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(forum.database_url.removeprefix("sqlite:///").rsplit("/", 1)[0])  # no stray .env
    return forum
