"""Fixtures of the observability tests: the forum side on loopback, and a small app on SQLite."""

from __future__ import annotations

import pytest

from tests.forum.harness import ForumHarness


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
    for name, value in forum.environment(max_rpm=600).items():
        monkeypatch.setenv(name, value)
    for name in ("COMMONS_SYNC_SECRET_KEY", "COMMONS_SYNC_DISCOURSE_CATEGORY", "COMMONS_SYNC_LOG_FORMAT",
                 "COMMONS_SYNC_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(forum.database_url.removeprefix("sqlite:///").rsplit("/", 1)[0])  # no stray .env
    return forum
