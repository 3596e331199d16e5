"""Shared fixtures: a controllable clock, and the service on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from commons_sync.devtools.local_dovecot import LocalDovecot
from commons_sync.devtools.local_mediawiki import LocalMediaWiki, available
from commons_sync.devtools.smtp_sink import SmtpSink
from commons_sync.mediawiki import Wiki, install
from commons_sync.service.handlers import Service
from commons_sync.storage.database import make_engine, upgrade

IN_CI = os.environ.get("CI") == "true"
POSTGRES_URL = os.environ.get("COMMONS_SYNC_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _postgres_admin():
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and unreachable: {error}")
        pytest.skip("PostgreSQL unreachable")
    return engine


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    admin = _postgres_admin()
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from commons_sync.bootstrap import _engine

    _engine.cache_clear()
    with admin.connect() as connection:
        connection.execute(text(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'commons-sync.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Run the test once on an SQLite file and once on a fresh PostgreSQL database."""
    return request.getfixturevalue(f"{request.param}_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def service(database_url, clock) -> Service:
    engine = make_engine(database_url)
    upgrade(engine)
    yield Service(engine, clock)
    engine.dispose()


@pytest.fixture
def sqlite_service(sqlite_url, clock) -> Service:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield Service(engine, clock)
    engine.dispose()


# --- a real MediaWiki (Debian's 1.39 on SQLite, served by `php -S`), shared by the session ---------


@pytest.fixture(scope="session")
def local_wiki():
    """One throwaway wiki for the session; missing MediaWiki fails under CI, skips elsewhere."""
    if not available():
        message = "Debian's mediawiki and php are not installed (bash scripts/setup.sh --test)"
        if IN_CI:
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




# --- a real Dovecot and an aiosmtpd sink, shared by the session --------------------------------------


def require_dovecot() -> None:
    """Fail under CI, skip elsewhere, when Dovecot cannot run here."""
    if LocalDovecot.available():
        return
    message = "dovecot (Debian dovecot-imapd) is not installed, or the tests do not run as root"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def dovecot_server():
    """The session's Dovecot (it starts in milliseconds but stops in about a second)."""
    require_dovecot()
    with LocalDovecot() as server:
        yield server


@pytest.fixture
def dovecot(dovecot_server):
    """The session's Dovecot with an empty INBOX and no other folder."""
    dovecot_server.clear()
    return dovecot_server


@pytest.fixture(scope="session")
def sink_server():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sink(sink_server) -> SmtpSink:
    """The session's SMTP sink, emptied."""
    sink_server.clear()
    return sink_server
