"""A real MediaWiki for the whole folder (Debian's 1.39 on SQLite, `php -S`), and clients of it."""

from __future__ import annotations

import itertools
import re
import os

import pytest

from commons_sync.devtools.local_mediawiki import LocalMediaWiki, available
from commons_sync.mediawiki import Wiki, install


@pytest.fixture(scope="session")
def local_wiki():
    """One throwaway wiki for the session; missing MediaWiki fails under CI, skips elsewhere."""
    if not available():
        message = "Debian's mediawiki and php are not installed (bash scripts/setup.sh --test)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with LocalMediaWiki() as wiki:
        yield wiki


@pytest.fixture(scope="session")
def installed(local_wiki):
    """The template, its documentation and the category, installed once."""
    bot = Wiki.connect(local_wiki.api_url, local_wiki.bot_username, local_wiki.bot_password)
    install(bot)
    return local_wiki


@pytest.fixture
def wiki(installed) -> Wiki:
    """The service's gateway, logged in as the bot (a new session, request count at zero)."""
    return Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password)


@pytest.fixture
def human(installed) -> Wiki:
    """A person editing the wiki with their own account."""
    return Wiki.connect(installed.api_url, installed.human_username, installed.human_password)


_counter = itertools.count(1)


@pytest.fixture
def title(request) -> str:
    """A page title no other test uses."""
    name = re.sub(r"[^\w]+", " ", request.node.name)[:60].strip()
    return f"Commun {name} {next(_counter)}"
