"""A `MailboxStore` kept in a JSON file, so a poller process killed with SIGKILL leaves what it stored.

Run as a module, it polls once and kills its own process right after the step named on the
command line, the way a crash or an out-of-memory kill would stop a worker:

    python -m tests.mail.file_store HOST PORT USER PASSWORD STORE_FILE add_submission
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from commons_sync.mail.messages import ParsedMessage


class FileMailboxStore:
    """Folder states and submissions in one JSON file, written on every change."""

    def __init__(self, path: Path, kill_after: str | None = None):
        self.path = Path(path)
        self.kill_after = kill_after
        if not self.path.exists():
            self._save({"states": {}, "submissions": []})

    def _load(self) -> dict:
        return json.loads(self.path.read_text())

    def _save(self, data: dict) -> None:
        staging = self.path.with_suffix(".tmp")
        staging.write_text(json.dumps(data))
        os.replace(staging, self.path)

    def _step_done(self, step: str) -> None:
        if self.kill_after == step:
            os.kill(os.getpid(), signal.SIGKILL)

    @property
    def submissions(self) -> list[dict]:
        return self._load()["submissions"]

    def get_state(self, folder):
        state = self._load()["states"].get(folder)
        return tuple(state) if state else None

    def set_state(self, folder, uidvalidity, last_uid):
        data = self._load()
        data["states"][folder] = [uidvalidity, last_uid]
        self._save(data)
        self._step_done("set_state")

    def _existing(self, data, message_id, uidvalidity, uid):
        for row in data["submissions"]:
            if (message_id and row["message_id"] == message_id) or (
                    not message_id and not row["message_id"]
                    and (row["uidvalidity"], row["uid"]) == (uidvalidity, uid)):
                return row["reference"]
        return None

    def has_message(self, message_id, uidvalidity, uid):
        return self._existing(self._load(), message_id, uidvalidity, uid) is not None

    def add_submission(self, parsed: ParsedMessage, uidvalidity, uid):
        data = self._load()
        existing = self._existing(data, parsed.message_id, uidvalidity, uid)
        if existing is not None:
            return existing, False
        reference = str(len(data["submissions"]) + 1)
        data["submissions"].append({"reference": reference, "message_id": parsed.message_id,
                                    "uidvalidity": uidvalidity, "uid": uid,
                                    "subject": parsed.subject})
        self._save(data)
        self._step_done("add_submission")
        return reference, True


def main(argv: list[str]) -> None:
    from commons_sync.mail.imap import Mailbox

    host, port, username, password, path, kill_after = argv
    mailbox = Mailbox(host, username, password, port=int(port), ssl=False)
    mailbox.poll(FileMailboxStore(Path(path), kill_after))


if __name__ == "__main__":
    main(sys.argv[1:])
