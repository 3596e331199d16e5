"""Outgoing mail through the configured SMTP server, and the rules that keep it from starting a mail loop.

`Mailer.send` opens one connection per message (the service sends few), upgrades it with STARTTLS
when asked (or uses implicit TLS on port 465), logs in only when a username is set, and turns
smtplib's exceptions into this package's errors. `should_acknowledge` says whether an incoming
message may get an acknowledgement at all: never for automatic mail, and at most
`ACK_DAILY_LIMIT` a day to one sender, so even a responder that ignores `Auto-Submitted` cannot
keep a loop going.
"""

from __future__ import annotations

import smtplib
import socket
import ssl as ssl_lib
from email.message import EmailMessage
from email.utils import getaddresses

from commons_sync.mail.errors import LoginFailed, SendRefused, SmtpUnavailable
from commons_sync.mail.messages import ParsedMessage, is_automatic

ACK_DAILY_LIMIT = 3
IMPLICIT_TLS_PORT = 465


class Mailer:
    """The SMTP server the service sends with (CONTRACT §2: COMMONS_SYNC_SMTP_*).

    Args:
        host, port: the server (587 by default, as the contract says).
        from_addr: the envelope sender and the `From` of every message.
        username, password: no username means no authentication.
        starttls: upgrade the connection before anything else (default true); port 465 uses
            implicit TLS instead.
        ssl_context: to trust a private CA; default: the system's, with verification.
    """

    def __init__(self, host: str, port: int = 587, from_addr: str = "", username: str | None = None,
                 password: str | None = None, starttls: bool = True, *, timeout: float = 30.0,
                 ssl_context: ssl_lib.SSLContext | None = None):
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"Mailer({self.host}:{self.port}, from={self.from_addr!r})"

    @classmethod
    def from_settings(cls, settings) -> "Mailer":
        """The mailer described by `commons_sync.config.Settings` (the smtp adapter must be on)."""
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                   settings.smtp_username or None, password, settings.smtp_starttls)

    def send(self, message: EmailMessage) -> None:
        """Send `message`, setting its `From` when missing, to its To/Cc/Bcc recipients.

        Raises:
            SmtpUnavailable: the server cannot be reached or the conversation broke off (retry).
            LoginFailed: the server refused the username and password.
            SendRefused: the server refused the sender, the message or every recipient.
        """
        if message["From"] is None:
            message["From"] = self.from_addr
        recipients = tuple(address for _name, address in getaddresses(
            [str(value) for field in ("To", "Cc", "Bcc") for value in message.get_all(field, [])])
            if address)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self._password or "")
                refused = smtp.send_message(message, from_addr=self.from_addr or None,
                                            to_addrs=list(recipients))
        except smtplib.SMTPAuthenticationError as exc:
            raise LoginFailed(self.host, self.username or "", _reply(exc)) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendRefused(recipients, _refusals(exc.recipients)) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise SendRefused(recipients, _reply(exc)) from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
                smtplib.SMTPHeloError, smtplib.SMTPNotSupportedError) as exc:
            raise SmtpUnavailable(self.host, self.port, str(exc)) from None
        except smtplib.SMTPResponseException as exc:
            raise SendRefused(recipients, _reply(exc)) from None
        except (OSError, socket.timeout) as exc:
            raise SmtpUnavailable(self.host, self.port, str(exc) or type(exc).__name__) from None
        if refused:
            # Some recipients were accepted and the mail went to them; the others are reported.
            raise SendRefused(tuple(refused), _refusals(refused))

    def _connect(self) -> smtplib.SMTP:
        context = self.ssl_context or ssl_lib.create_default_context()
        if self.port == IMPLICIT_TLS_PORT:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


def may_acknowledge(sent_today: int, limit: int = ACK_DAILY_LIMIT) -> bool:
    """Whether one more acknowledgement may go to a sender who already got `sent_today` today."""
    return sent_today < limit


def should_acknowledge(parsed: ParsedMessage, sent_today: int, *, limit: int = ACK_DAILY_LIMIT,
                       own_addresses: tuple[str, ...] = ()) -> bool:
    """Whether this incoming message gets an acknowledgement (CONTRACT §5).

    Not when it is automatic (auto-reply, bounce, list, or from one of `own_addresses`), has no
    address to answer, or when its sender already got `limit` acknowledgements today.
    """
    if not parsed.reply_address or is_automatic(parsed, own_addresses=own_addresses):
        return False
    return may_acknowledge(sent_today, limit)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    message = exc.smtp_error
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return f"{exc.smtp_code} {message}"


def _refusals(refused: dict) -> str:
    parts = []
    for address, (code, message) in refused.items():
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        parts.append(f"{address}: {code} {message}")
    return "; ".join(parts)
