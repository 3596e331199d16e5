"""Fixtures of the lifecycle tests: the forum harness (double + app + worker on loopback)."""

from __future__ import annotations

import pytest

from commons_sync.service.reminders import ReminderTask
from tests.forum.harness import ForumHarness


@pytest.fixture
def forum(sqlite_url):
    """Members alice, bruno, chloe (group `cofinanceurs`), zoe (not a member), claire (staff);
    one open round `printemps` (500 € each, closes in 30 days)."""
    with ForumHarness(sqlite_url) as harness:
        harness.people()
        harness.round()
        yield harness


def reminder_task(harness) -> ReminderTask:
    """The worker's reminder task, made to check at every pass."""
    task = next(task for task in harness.worker.tasks if isinstance(task, ReminderTask))
    task.every_seconds = 0.0
    return task


def private_messages(harness, username: str) -> list[tuple[str, str]]:
    """(title, text) of each private message the user received from the bot."""
    forum = harness.forum.double.forum
    user = forum.users[username.lower()]
    bot = forum.users[harness.forum.api_username.lower()]
    found = []
    for topic in forum.topics.values():
        if topic.archetype == "private_message" and user.id in topic.allowed_user_ids and topic.user_id == bot.id:
            found.append((topic.title, forum.posts[topic.post_ids[0]].raw))
    return found


@pytest.fixture
def pg_forum(postgres_url):
    """The same set-up on a fresh PostgreSQL database."""
    with ForumHarness(postgres_url) as harness:
        harness.people()
        harness.round()
        yield harness
