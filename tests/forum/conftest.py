"""Fixtures of the forum tests: the whole loopback set-up (double, service app, worker)."""

from __future__ import annotations

import pytest

from .harness import ForumHarness


@pytest.fixture
def forum(sqlite_url):
    """Members alice, bruno, chloe (group `cofinanceurs`), zoe (not a member), claire (staff);
    one open round `printemps` (500 € each, closes in 30 days)."""
    with ForumHarness(sqlite_url) as harness:
        harness.people()
        harness.round()
        yield harness
