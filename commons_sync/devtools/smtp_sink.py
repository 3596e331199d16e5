"""An SMTP server on loopback that keeps what it receives, so tests and the demo can read sent mail.

It is aiosmtpd's `Controller` on a port chosen beforehand (aiosmtpd's readiness probe does not
work with port 0). Every message is kept with its envelope and parsed with the standard library.

Example::

    with SmtpSink() as sink:
        Mailer("127.0.0.1", sink.port, "bot@example.org", starttls=False).send(message)
        assert sink.messages[0].message["Subject"] == "..."
"""

from __future__ import annotations

import email
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller

from commons_sync.devtools.local_dovecot import free_port


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the sink received it: envelope, raw bytes and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage


class _Collector:
    """The aiosmtpd handler: append each DATA to the sink's list and answer 250."""

    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        received = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=default_policy),
        )
        with self.sink._lock:
            self.sink.messages.append(received)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts every message and keeps it in `messages`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> "SmtpSink":
        """Listen on a free port; return once the server answers."""
        self.port = free_port()
        self._controller = Controller(_Collector(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self.messages.clear()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
