"""Errors of the mail adapters, so callers branch on what went wrong and not on library exceptions.

Parsing never raises (a broken message becomes a `ParsedMessage` flagged `malformed`); these are
the failures of talking to the IMAP and SMTP servers. Messages never contain a password.
"""

from __future__ import annotations


class MailError(Exception):
    """Base class of every mail adapter error."""


class MailboxUnavailable(MailError):
    """The IMAP server could not be reached or dropped the connection (retry later)."""

    def __init__(self, host: str, port: int, detail: str):
        super().__init__(f"IMAP server {host}:{port} unavailable: {detail}")
        self.host = host
        self.port = port
        self.detail = detail


class LoginFailed(MailError):
    """The IMAP or SMTP server refused the username and password (a setting to fix, not to retry)."""

    def __init__(self, host: str, username: str, detail: str = ""):
        super().__init__(f"login as {username!r} on {host} refused" + (f": {detail}" if detail else ""))
        self.host = host
        self.username = username
        self.detail = detail


class MailboxCommandFailed(MailError):
    """The IMAP server answered NO or BAD to a command (select, create, move…)."""

    def __init__(self, command: str, detail: str):
        super().__init__(f"IMAP {command} failed: {detail}")
        self.command = command
        self.detail = detail


class SmtpUnavailable(MailError):
    """The SMTP server could not be reached or the conversation broke off (retry later)."""

    def __init__(self, host: str, port: int, detail: str):
        super().__init__(f"SMTP server {host}:{port} unavailable: {detail}")
        self.host = host
        self.port = port
        self.detail = detail


class SendRefused(MailError):
    """The SMTP server refused the message or all its recipients."""

    def __init__(self, recipients: tuple[str, ...], detail: str):
        super().__init__(f"message to {', '.join(recipients) or '?'} refused: {detail}")
        self.recipients = recipients
        self.detail = detail
