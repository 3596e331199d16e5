"""Email intake and outgoing mail: poll the program's IMAP mailbox, read proposals, answer senders.

The public surface: `Mailbox` (IMAP poller) with the `MailboxStore` protocol it stores through,
`parse_message`/`is_automatic` and the mail builders, `Mailer` (SMTP) and `should_acknowledge`,
and the errors under `MailError`.
"""

import logging

from commons_sync.mail.errors import (
    LoginFailed, MailboxCommandFailed, MailboxUnavailable, MailError, SendRefused, SmtpUnavailable,
)
from commons_sync.mail.imap import Mailbox, PollSummary, Received
from commons_sync.mail.messages import (
    Attachment, ParsedMessage, accepted_mail, acknowledgement, describe_malformed, is_automatic,
    parse_message, rejected_mail,
)
from commons_sync.mail.smtp import ACK_DAILY_LIMIT, Mailer, may_acknowledge, should_acknowledge
from commons_sync.mail.store import MailboxStore, MemoryMailboxStore

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ACK_DAILY_LIMIT", "Attachment", "LoginFailed", "MailError", "Mailbox", "MailboxCommandFailed",
    "MailboxStore", "MailboxUnavailable", "Mailer", "MemoryMailboxStore", "ParsedMessage",
    "PollSummary", "Received", "SendRefused", "SmtpUnavailable", "accepted_mail",
    "acknowledgement", "describe_malformed", "is_automatic", "may_acknowledge", "parse_message",
    "rejected_mail", "should_acknowledge",
]
