"""Page titles for the wiki tests; the real MediaWiki and its clients are in tests/conftest.py."""

from __future__ import annotations

import itertools
import re

import pytest



_counter = itertools.count(1)


@pytest.fixture
def title(request) -> str:
    """A page title no other test uses."""
    name = re.sub(r"[^\w]+", " ", request.node.name)[:60].strip()
    return f"Commun {name} {next(_counter)}"
