"""Fixtures of the mail tests: a real Dovecot and an aiosmtpd sink on loopback, and the .eml fixtures.

The Dovecot and the sink (`dovecot`, `sink`) come from tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from commons_sync.mail.imap import Mailbox
from commons_sync.mail.store import MemoryMailboxStore

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of `tests/mail/fixtures/<name>.eml`."""
    return (FIXTURES / f"{name}.eml").read_bytes()


@pytest.fixture
def mailbox(dovecot) -> Mailbox:
    return Mailbox(**dovecot.mailbox_kwargs())


@pytest.fixture
def store() -> MemoryMailboxStore:
    return MemoryMailboxStore()
