"""Fixtures of the mail tests: a real Dovecot and an aiosmtpd sink on loopback, and the .eml fixtures.

One Dovecot serves the whole session (it starts in a few milliseconds but stops in about a
second); each test gets it emptied. Under CI=true a missing Dovecot fails the tests instead of
skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from commons_sync.devtools.local_dovecot import LocalDovecot
from commons_sync.devtools.smtp_sink import SmtpSink
from commons_sync.mail.imap import Mailbox
from commons_sync.mail.store import MemoryMailboxStore

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of `tests/mail/fixtures/<name>.eml`."""
    return (FIXTURES / f"{name}.eml").read_bytes()


def require_dovecot() -> None:
    if LocalDovecot.available():
        return
    message = "dovecot (Debian dovecot-imapd) is not installed, or the tests do not run as root"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def dovecot_server():
    """The session's Dovecot."""
    require_dovecot()
    with LocalDovecot() as server:
        yield server


@pytest.fixture
def dovecot(dovecot_server):
    """The session's Dovecot with an empty INBOX and no other folder."""
    dovecot_server.clear()
    return dovecot_server


@pytest.fixture
def mailbox(dovecot) -> Mailbox:
    return Mailbox(**dovecot.mailbox_kwargs())


@pytest.fixture
def store() -> MemoryMailboxStore:
    return MemoryMailboxStore()


@pytest.fixture(scope="session")
def sink_server():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sink(sink_server) -> SmtpSink:
    sink_server.clear()
    return sink_server
