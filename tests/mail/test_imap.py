"""Polling a real Dovecot: each message becomes one submission and moves to the done folder, whatever happens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from commons_sync.devtools.local_dovecot import LocalDovecot, free_port
from commons_sync.mail.errors import LoginFailed, MailboxCommandFailed, MailboxUnavailable
from commons_sync.mail.imap import Mailbox
from commons_sync.mail.store import MailboxStore, MemoryMailboxStore
from tests.conftest import require_dovecot
from tests.mail.conftest import fixture_bytes
from tests.mail.file_store import FileMailboxStore

ROOT = Path(__file__).resolve().parents[2]
DONE = "Traité"


class Crash(Exception):
    """Stands for the process dying at a given step."""


class CrashingStore(MemoryMailboxStore):
    """A memory store that fails right after the step named in `crash_after` (once)."""

    def __init__(self, crash_after: str):
        super().__init__()
        self.crash_after = crash_after

    def add_submission(self, parsed, uidvalidity, uid):
        result = super().add_submission(parsed, uidvalidity, uid)
        self._maybe_crash("add_submission")
        return result

    def set_state(self, folder, uidvalidity, last_uid):
        super().set_state(folder, uidvalidity, last_uid)
        self._maybe_crash("set_state")

    def _maybe_crash(self, step):
        if self.crash_after == step:
            self.crash_after = None
            raise Crash(step)


def folder_contents(server: LocalDovecot, folder: str) -> list[bytes]:
    """The raw messages of a folder (empty when the folder does not exist)."""
    with server.client() as client:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return []
        return [data[b"BODY[]"] for _uid, data in sorted(client.fetch(uids, ["BODY.PEEK[]"]).items())]


def message_ids(messages: list[bytes]) -> list[str]:
    from commons_sync.mail.messages import parse_message
    return sorted(parse_message(raw).message_id or "" for raw in messages)


def test_memory_store_follows_the_protocol():
    assert isinstance(MemoryMailboxStore(), MailboxStore)
    assert isinstance(FileMailboxStore.__new__(FileMailboxStore), MailboxStore)


def test_poll_makes_one_submission_per_message_and_moves_them(dovecot, mailbox, store):
    for name in ("proposition_multipart_fr", "proposition_html_only", "malformed_broken_multipart"):
        dovecot.deliver(fixture_bytes(name))

    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates, summary.malformed, summary.moved) == (3, 0, 1, 3)
    assert [s.parsed.subject for s in store.submissions] == [
        "Proposition de commun : un four à pain mobile partagé entre les tiers-lieux",
        "Grainothèque partagée",
        "Proposition : atelier vélo",
    ]
    assert [r.reference for r in summary.received] == ["1", "2", "3"]
    assert store.submissions[0].parsed.attachments[0].filename.startswith("Devis équipement")
    malformed = store.submissions[2].parsed
    assert malformed.malformed and malformed.raw == fixture_bytes("malformed_broken_multipart")
    assert folder_contents(dovecot, "INBOX") == []
    assert len(folder_contents(dovecot, DONE)) == 3


def test_polling_twice_gives_no_duplicates(dovecot, mailbox, store):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    mailbox.poll(store)
    dovecot.deliver(fixture_bytes("proposition_html_only"))

    second = mailbox.poll(store)
    third = mailbox.poll(store)

    assert (second.new, second.duplicates) == (1, 0)
    assert (third.new, third.duplicates, third.moved) == (0, 0, 0)
    assert len(store.submissions) == 2


def test_the_same_message_delivered_twice_is_one_submission(dovecot, mailbox, store):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))

    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates, summary.moved) == (1, 1, 2)
    assert len(store.submissions) == 1
    assert len(folder_contents(dovecot, DONE)) == 2  # moved, never deleted


def test_message_is_not_marked_read_before_it_is_stored(dovecot, mailbox):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    store = CrashingStore("add_submission")
    store.has_message = lambda *args: (_ for _ in ()).throw(Crash("before storing"))

    with pytest.raises(Crash):
        mailbox.poll(store)

    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["ALL"])
        assert b"\\Seen" not in client.get_flags([uid])[uid]


def test_crash_between_storing_and_moving_then_poll_again(dovecot, mailbox):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    store = CrashingStore("add_submission")

    with pytest.raises(Crash):
        mailbox.poll(store)
    assert len(store.submissions) == 1
    assert len(folder_contents(dovecot, "INBOX")) == 1  # stored, not moved yet

    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates, summary.moved) == (0, 1, 1)
    assert len(store.submissions) == 1
    assert folder_contents(dovecot, "INBOX") == []
    assert message_ids(folder_contents(dovecot, DONE)) == [
        "<4f1c2a7e-8d3b-4c55-9a61-0b2f3e5d7c10@cretes.example>"]


def test_crash_between_moving_and_saving_the_state_then_poll_again(dovecot, mailbox):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    dovecot.deliver(fixture_bytes("proposition_html_only"))
    store = CrashingStore("set_state")

    with pytest.raises(Crash):
        mailbox.poll(store)
    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates) == (1, 0)
    assert len(store.submissions) == 2
    assert len(folder_contents(dovecot, DONE)) == 2


def test_message_without_message_id_is_deduplicated_by_uid(dovecot, mailbox):
    dovecot.deliver(fixture_bytes("no_message_id"))
    store = CrashingStore("add_submission")

    with pytest.raises(Crash):
        mailbox.poll(store)
    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates, summary.moved) == (0, 1, 1)
    assert len(store.submissions) == 1


def test_poller_killed_after_storing_then_run_again(dovecot, tmp_path):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    state_file = tmp_path / "store.json"

    killed = subprocess.run(
        [sys.executable, "-m", "tests.mail.file_store", dovecot.host, str(dovecot.port),
         dovecot.username, dovecot.password, str(state_file), "add_submission"],
        cwd=ROOT, capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr.decode()
    store = FileMailboxStore(state_file)
    assert len(store.submissions) == 1
    assert len(folder_contents(dovecot, "INBOX")) == 1

    summary = Mailbox(**dovecot.mailbox_kwargs()).poll(store)

    assert (summary.new, summary.duplicates, summary.moved) == (0, 1, 1)
    assert len(store.submissions) == 1
    assert folder_contents(dovecot, "INBOX") == []
    assert len(folder_contents(dovecot, DONE)) == 1


def test_uidvalidity_change_gives_no_duplicates(dovecot, mailbox):
    dovecot.deliver(fixture_bytes("proposition_multipart_fr"))
    dovecot.deliver(fixture_bytes("proposition_html_only"))
    store = CrashingStore("add_submission")
    with pytest.raises(Crash):
        mailbox.poll(store)  # the first is stored and stays in INBOX
    old_uidvalidity = dovecot.uidvalidity()

    dovecot.reset_uidvalidity()
    summary = mailbox.poll(store)

    assert dovecot.uidvalidity() != old_uidvalidity
    assert (summary.new, summary.duplicates, summary.moved) == (1, 1, 2)
    assert sorted(s.parsed.subject for s in store.submissions) == [
        "Grainothèque partagée",
        "Proposition de commun : un four à pain mobile partagé entre les tiers-lieux",
    ]
    assert store.get_state("INBOX")[0] == dovecot.uidvalidity()


def test_after_uidvalidity_change_low_uids_are_read(dovecot, mailbox, store):
    for name in ("proposition_multipart_fr", "proposition_html_only", "list_mail"):
        dovecot.deliver(fixture_bytes(name))
    mailbox.poll(store)
    assert store.get_state("INBOX")[1] >= 3

    dovecot.reset_uidvalidity()
    dovecot.deliver(fixture_bytes("no_message_id"))  # UID 1 in the renumbered folder
    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates) == (1, 0)
    assert store.submissions[-1].parsed.subject == "Proposition sans Message-ID"


def test_done_folder_is_created_when_missing(dovecot, mailbox, store):
    with dovecot.client() as client:
        assert not client.folder_exists(DONE)
    dovecot.deliver(fixture_bytes("proposition_html_only"))

    mailbox.poll(store)

    with dovecot.client() as client:
        assert client.folder_exists(DONE)
        client.select_folder(DONE, readonly=True)
        [uid] = client.search(["ALL"])
        assert b"\\Seen" in client.get_flags([uid])[uid]


def test_empty_mailbox_poll_does_nothing(dovecot, mailbox, store):
    summary = mailbox.poll(store)
    assert (summary.new, summary.duplicates, summary.moved) == (0, 0, 0)
    assert store.submissions == []


@pytest.fixture(scope="module")
def dovecot_without_move():
    require_dovecot()
    with LocalDovecot(capabilities="IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE") as server:
        yield server


def test_server_without_move_gets_copy_delete_expunge(dovecot_without_move, store):
    server = dovecot_without_move
    with server.client() as client:
        assert not client.has_capability("MOVE")
    server.deliver(fixture_bytes("proposition_multipart_fr"))
    server.deliver(fixture_bytes("proposition_html_only"))

    summary = Mailbox(**server.mailbox_kwargs(), done_folder="Archivé").poll(store)

    assert (summary.new, summary.moved) == (2, 2)
    assert folder_contents(server, "INBOX") == []
    assert len(folder_contents(server, "Archivé")) == 2


def test_wrong_password_is_login_failed(dovecot):
    kwargs = dovecot.mailbox_kwargs() | {"password": "wrong"}
    with pytest.raises(LoginFailed) as caught:
        Mailbox(**kwargs).poll(MemoryMailboxStore())
    assert "wrong" not in str(caught.value)


def test_nobody_listening_is_mailbox_unavailable():
    mailbox = Mailbox("127.0.0.1", "intake", "secret", port=free_port(), ssl=False, timeout=5)
    with pytest.raises(MailboxUnavailable):
        mailbox.poll(MemoryMailboxStore())


def test_missing_folder_is_a_command_failure(dovecot, store):
    mailbox = Mailbox(**dovecot.mailbox_kwargs(), folder="Nulle part")
    with pytest.raises(MailboxCommandFailed):
        mailbox.poll(store)


def test_done_folder_must_differ_from_the_folder_read():
    with pytest.raises(ValueError):
        Mailbox("127.0.0.1", "intake", "secret", folder="INBOX", done_folder="INBOX")


class OverlappingStore(MemoryMailboxStore):
    """Another worker stores each message between this poller's check and its insert."""

    def has_message(self, message_id, uidvalidity, uid):
        found = super().has_message(message_id, uidvalidity, uid)
        if not found:
            super().add_submission(self.pending, uidvalidity, uid)  # the other worker's insert
        return found


def test_message_stored_by_another_worker_meanwhile_is_a_duplicate(dovecot, mailbox):
    from commons_sync.mail.messages import parse_message
    raw = fixture_bytes("proposition_multipart_fr")
    dovecot.deliver(raw)
    store = OverlappingStore()
    store.pending = parse_message(raw)

    summary = mailbox.poll(store)

    assert (summary.new, summary.duplicates, summary.received) == (0, 1, ())
    assert len(store.submissions) == 1


@pytest.fixture(scope="module")
def dovecot_with_tls():
    require_dovecot()
    with LocalDovecot(tls=True) as server:
        yield server


def test_imaps_with_a_trusted_certificate(dovecot_with_tls, store):
    server = dovecot_with_tls
    server.deliver(fixture_bytes("proposition_html_only"))

    summary = Mailbox(**server.mailbox_kwargs(implicit_tls=True)).poll(store)

    assert summary.new == 1
    assert folder_contents(server, "INBOX") == []


def test_plain_port_is_upgraded_with_starttls(dovecot_with_tls, store):
    server = dovecot_with_tls
    server.deliver(fixture_bytes("proposition_multipart_fr"))

    summary = Mailbox(**server.mailbox_kwargs()).poll(store)

    assert summary.new == 1
    last_login = [line for line in server.log().splitlines() if "Login: user=<intake>" in line][-1]
    assert "TLS" in last_login


def test_untrusted_certificate_is_refused_before_login(dovecot_with_tls, store):
    server = dovecot_with_tls
    for implicit_tls in (False, True):
        kwargs = server.mailbox_kwargs(implicit_tls=implicit_tls) | {"ssl_context": None}
        with pytest.raises(MailboxUnavailable) as caught:
            Mailbox(**kwargs).poll(store)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
