"""The program's mailbox read over IMAP: each new message becomes a submission, then goes to the done folder.

`Mailbox.poll(store)` selects the folder, reads UIDVALIDITY, lists the UIDs above the last one
handled, and for each, one at a time: fetches it with `BODY.PEEK[]` (which does not mark it read),
stores it through the `MailboxStore`, marks it `\\Seen`, moves it to the done folder (created when
missing; `MOVE` when the server advertises it, else `COPY` + `\\Deleted` + `EXPUNGE`), and only then
advances the folder's state. Messages are never deleted, only moved.

A crash between any two steps never makes two submissions of one message nor loses one: a message
stored but not moved is still in the folder at the next poll, where the store recognises it by its
Message-ID (by its UID when it has none), and the poller just moves it. When UIDVALIDITY changes
(the server renumbered the folder), the folder is read again from UID 1 and the Message-IDs keep
the submissions unique.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl as ssl_lib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from imapclient import IMAPClient, SEEN, DELETED
from imapclient.exceptions import IMAPClientError, LoginError

from commons_sync.mail.errors import LoginFailed, MailboxCommandFailed, MailboxUnavailable
from commons_sync.mail.messages import DEFAULT_MAX_ATTACHMENT_BYTES, ParsedMessage, parse_message
from commons_sync.mail.store import MailboxStore

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS = (OSError, socket.timeout, ssl_lib.SSLError, imaplib.IMAP4.abort, EOFError)


@dataclass(frozen=True)
class Received:
    """A message that became a new submission during a poll."""

    reference: str
    uid: int
    parsed: ParsedMessage


@dataclass(frozen=True)
class PollSummary:
    """What one poll did: `new` submissions (of which `malformed`), `duplicates` already stored,
    messages `moved` to the done folder, and the new submissions themselves in `received`."""

    new: int = 0
    duplicates: int = 0
    malformed: int = 0
    moved: int = 0
    received: tuple[Received, ...] = ()


class Mailbox:
    """The program's IMAP mailbox (CONTRACT §2: COMMONS_SYNC_IMAP_*).

    Args:
        host, username, password: the account.
        port: default 993 with `ssl`, else 143.
        ssl: implicit TLS (IMAPS); when False, the connection is upgraded with STARTTLS if the
            server offers it, and stays in plain text only if it does not.
        folder: where new mail arrives; done_folder: where handled mail is moved.
        max_attachment_bytes: larger attachments are stored without their data.
        ssl_context: to trust a private CA; default: the system's, with verification.

    Raises:
        ValueError: `folder` and `done_folder` are the same.
    """

    def __init__(self, host: str, username: str, password: str, *, port: int | None = None,
                 ssl: bool = True, folder: str = "INBOX", done_folder: str = "Traité",
                 max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES, timeout: float = 60.0,
                 ssl_context: ssl_lib.SSLContext | None = None):
        if folder == done_folder:
            # Moving a message into the folder being read would hand it back at every poll.
            raise ValueError(f"the done folder must differ from the folder read ({folder!r})")
        self.host = host
        self.port = port or (993 if ssl else 143)
        self.username = username
        self._password = password
        self.ssl = ssl
        self.folder = folder
        self.done_folder = done_folder
        self.max_attachment_bytes = max_attachment_bytes
        self.timeout = timeout
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"Mailbox({self.username}@{self.host}:{self.port}, folder={self.folder!r})"

    @classmethod
    def from_settings(cls, settings) -> "Mailbox":
        """The mailbox described by `commons_sync.config.Settings` (the imap adapter must be on)."""
        return cls(
            settings.imap_host, settings.imap_username,
            settings.imap_password.get_secret_value(), port=settings.imap_effective_port,
            ssl=settings.imap_ssl, folder=settings.imap_folder,
            done_folder=settings.imap_done_folder,
        )

    # -- the poll ----------------------------------------------------------------------------

    def poll(self, store: MailboxStore) -> PollSummary:
        """Turn every new message of the folder into a submission and move it to the done folder.

        Errors raised by `store` propagate unchanged; what was done before them stays valid and the
        next poll carries on without duplicates.

        Raises:
            MailboxUnavailable: the server cannot be reached or dropped the connection.
            LoginFailed: the server refused the username or password.
            MailboxCommandFailed: the server refused a command (e.g. the folder does not exist).
        """
        new = duplicates = malformed = moved = 0
        received: list[Received] = []
        with self._session() as client:
            self._ensure_folder(client, self.done_folder)
            uidvalidity = self._select(client)
            state = store.get_state(self.folder)
            last_uid = state[1] if state is not None and state[0] == uidvalidity else 0
            if state is not None and state[0] != uidvalidity:
                logger.warning("UIDVALIDITY of %s changed (%s -> %s): reading it again from the start",
                               self.folder, state[0], uidvalidity)
            use_move = self._has_move(client)
            for uid in self._uids_after(client, last_uid):
                raw = self._fetch(client, uid)
                if raw is None:  # expunged by someone else since the search
                    continue
                parsed = parse_message(raw, max_attachment_bytes=self.max_attachment_bytes)
                created = False
                if not store.has_message(parsed.message_id, uidvalidity, uid):
                    reference, created = store.add_submission(parsed, uidvalidity, uid)
                if created:
                    new += 1
                    malformed += parsed.malformed
                    received.append(Received(reference, uid, parsed))
                else:  # stored by an earlier poll that stopped before moving it, or another worker
                    duplicates += 1
                self._move(client, uid, use_move)
                moved += 1
                store.set_state(self.folder, uidvalidity, uid)
        return PollSummary(new, duplicates, malformed, moved, tuple(received))

    # -- IMAP steps ------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[IMAPClient]:
        with self._imap("connect"):
            client = IMAPClient(self.host, port=self.port, ssl=self.ssl,
                                ssl_context=self.ssl_context, timeout=self.timeout)
        try:
            try:
                if not self.ssl:
                    self._starttls_when_offered(client)
                client.login(self.username, self._password)
            except LoginError as exc:
                raise LoginFailed(self.host, self.username, _text(exc)) from None
            except _CONNECTION_ERRORS as exc:
                raise MailboxUnavailable(self.host, self.port, _text(exc)) from None
            except IMAPClientError as exc:
                raise MailboxCommandFailed("login", _text(exc)) from None
            yield client
        finally:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                try:
                    client.shutdown()
                except Exception:  # noqa: BLE001
                    pass

    def _starttls_when_offered(self, client: IMAPClient) -> None:
        """Never send the password in clear when the server offers STARTTLS (certificate verified)."""
        with self._imap("starttls"):
            if b"STARTTLS" in client.capabilities():
                client.starttls(self.ssl_context)

    @contextmanager
    def _imap(self, command: str) -> Iterator[None]:
        """Turn IMAPClient's and the socket's exceptions into this package's errors."""
        try:
            yield
        except _CONNECTION_ERRORS as exc:
            raise MailboxUnavailable(self.host, self.port, _text(exc)) from None
        except IMAPClientError as exc:
            raise MailboxCommandFailed(command, _text(exc)) from None

    def _ensure_folder(self, client: IMAPClient, name: str) -> None:
        with self._imap(f"create {name}"):
            if client.folder_exists(name):
                return
            try:
                client.create_folder(name)
            except IMAPClientError:
                if not client.folder_exists(name):  # created by another worker meanwhile is fine
                    raise
            logger.info("created the IMAP folder %s", name)
            try:
                client.subscribe_folder(name)
            except IMAPClientError:
                pass  # only for mail clients' folder lists

    def _select(self, client: IMAPClient) -> int:
        with self._imap(f"select {self.folder}"):
            response = client.select_folder(self.folder)
        return int(response[b"UIDVALIDITY"])

    def _has_move(self, client: IMAPClient) -> bool:
        with self._imap("capability"):
            return client.has_capability("MOVE")

    def _uids_after(self, client: IMAPClient, last_uid: int) -> list[int]:
        # `UID n:*` always includes the highest UID, even below n: filter here.
        with self._imap("search"):
            found = client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def _fetch(self, client: IMAPClient, uid: int) -> bytes | None:
        with self._imap("fetch"):
            response = client.fetch([uid], ["BODY.PEEK[]"])
        data = response.get(uid, {})
        return data.get(b"BODY[]")

    def _move(self, client: IMAPClient, uid: int, use_move: bool) -> None:
        with self._imap(f"move to {self.done_folder}"):
            client.add_flags([uid], [SEEN])
            if use_move:
                client.move([uid], self.done_folder)
                return
            client.copy([uid], self.done_folder)
            client.add_flags([uid], [DELETED])
            if client.has_capability("UIDPLUS"):
                client.uid_expunge([uid])
            else:
                client.expunge()


def _text(exc: BaseException) -> str:
    if len(exc.args) == 1 and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", errors="replace")
    return str(exc) or type(exc).__name__
