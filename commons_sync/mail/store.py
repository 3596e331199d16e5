"""What the mailbox poller needs from storage, as a small protocol, and an in-memory version for tests.

The poller (`commons_sync.mail.imap.Mailbox.poll`) stores each message, then moves it to the done
folder, then advances the folder's state. A crash may stop it between any two of these steps, so
the next poll can meet a message it already stored: the store recognises it and the poller only
moves it. The rules a store must follow:

- `add_submission` is idempotent: the same Message-ID (or, for a message without one, the same
  `(uidvalidity, uid)`) gives back `(reference of the submission already stored, False)` and
  creates nothing; a new submission gives `(its reference, True)`. With several workers, back this
  with a unique constraint, not with a read first: the `created` flag then tells the one poller
  that really stored the message, and only that one reports it (and acknowledges it).
- `has_message` answers True exactly when `add_submission` would create nothing (it lets the
  poller skip parsing work and count duplicates; `add_submission` stays the authority).
- `get_state`/`set_state` keep, per folder, the UIDVALIDITY and the highest UID handled. They are
  an optimisation (the done folder already holds what was handled): losing them costs a re-read,
  never a duplicate.

The real store is SQL, in `commons_sync.storage`; whoever writes it can also enqueue the
acknowledgement in the same transaction as the submission, so a crash cannot lose or double it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from commons_sync.mail.messages import ParsedMessage


@runtime_checkable
class MailboxStore(Protocol):
    """Storage behind the poller: folder state and idempotent submissions (see the module doc)."""

    def get_state(self, folder: str) -> tuple[int, int] | None:
        """`(uidvalidity, last_uid)` saved for the folder, or None before the first poll."""

    def set_state(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        """Save that every message of the folder up to `last_uid` under `uidvalidity` is handled."""

    def has_message(self, message_id: str | None, uidvalidity: int, uid: int) -> bool:
        """Whether this message is already a submission: by Message-ID, or by UID when it has none."""

    def add_submission(self, parsed: ParsedMessage, uidvalidity: int, uid: int) -> tuple[str, bool]:
        """Store the message as a new submission: `(reference, created)`; idempotent (see above)."""


@dataclass(frozen=True)
class StoredSubmission:
    """One submission kept by `MemoryMailboxStore`."""

    reference: str
    parsed: ParsedMessage
    uidvalidity: int
    uid: int


class MemoryMailboxStore:
    """A `MailboxStore` in memory, for tests and the demo; references are "1", "2", …"""

    def __init__(self) -> None:
        self.states: dict[str, tuple[int, int]] = {}
        self.submissions: list[StoredSubmission] = []
        self._by_message_id: dict[str, str] = {}
        self._by_uid: dict[tuple[int, int], str] = {}

    def get_state(self, folder: str) -> tuple[int, int] | None:
        return self.states.get(folder)

    def set_state(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self.states[folder] = (uidvalidity, last_uid)

    def has_message(self, message_id: str | None, uidvalidity: int, uid: int) -> bool:
        return self._existing(message_id, uidvalidity, uid) is not None

    def add_submission(self, parsed: ParsedMessage, uidvalidity: int, uid: int) -> tuple[str, bool]:
        existing = self._existing(parsed.message_id, uidvalidity, uid)
        if existing is not None:
            return existing, False
        reference = str(len(self.submissions) + 1)
        self.submissions.append(StoredSubmission(reference, parsed, uidvalidity, uid))
        if parsed.message_id:
            self._by_message_id[parsed.message_id] = reference
        else:
            self._by_uid[(uidvalidity, uid)] = reference
        return reference, True

    def _existing(self, message_id: str | None, uidvalidity: int, uid: int) -> str | None:
        if message_id:
            return self._by_message_id.get(message_id)
        return self._by_uid.get((uidvalidity, uid))
