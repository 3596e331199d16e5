"""Incoming proposals read from raw mail, and the mails the service sends back, in French and English.

Pure functions over the standard library's `email` package with `policy.default`, which decodes
RFC 2047 subjects and display names, quoted-printable and base64 bodies, and RFC 2231 attachment
names. `parse_message` never raises: a message it cannot read properly is still returned, flagged
`malformed` with a reason code, and its raw bytes are always kept so staff can look at the source.

`is_automatic` recognises auto-replies, bounces and list mail, which are never acknowledged, so no
mail loop can start (CONTRACT §5). Every mail the service sends carries `Auto-Submitted` (RFC 3834)
and `X-Auto-Response-Suppress`, so well-behaved responders do not answer it either.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Mapping

from commons_sync.i18n import t
from commons_sync.mail.html_text import html_to_text

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

# Headers kept on every ParsedMessage for loop detection (lower-case names).
LOOP_HEADERS = (
    "auto-submitted", "precedence", "list-id", "list-unsubscribe", "list-post", "return-path",
    "x-autoreply", "x-autorespond", "x-auto-response-suppress", "x-loop", "x-failed-recipients",
    "content-type",
)
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})
AUTOMATIC_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
# X-Auto-Response-Suppress values set by Exchange/Outlook on their own automatic mail.
SUPPRESS_VALUES = frozenset({"all", "oof", "autoreply"})

# Reason codes of a malformed message (`describe_malformed` gives their text).
MALFORMED_REASONS = ("unreadable", "empty", "no-sender", "broken-structure")
_STRUCTURE_DEFECTS = frozenset({
    "NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect", "MissingHeaderBodySeparatorDefect",
})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message; `data` is None when it is larger than the limit."""

    filename: str | None
    content_type: str
    size: int
    data: bytes | None

    @property
    def too_large(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class ParsedMessage:
    """What the triage queue needs from one incoming mail.

    `message_id`, `in_reply_to` and `references` keep their angle brackets, as in the headers.
    `date` is the sender's `Date` with its offset (a `-0000` date is taken as UTC), or None when
    missing or unreadable. `headers` holds the lower-case headers of `LOOP_HEADERS` that are present.
    """

    raw: bytes
    message_id: str | None = None
    sender_address: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    subject: str = ""
    date: datetime | None = None
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    malformed: bool = False
    malformed_reason: str | None = None

    @property
    def reply_address(self) -> str | None:
        """Where an answer goes: `Reply-To` when given, else the sender."""
        return self.reply_to or self.sender_address


def describe_malformed(reason: str, lang: str = "fr") -> str:
    """The sentence staff read for a malformed message's reason code."""
    # Literal calls, so the message extractor finds each text.
    if reason == "empty":
        return t(lang, "Le message est vide.")
    if reason == "no-sender":
        return t(lang, "Le message n'a pas d'adresse d'expéditeur valable.")
    if reason == "broken-structure":
        return t(lang, "La structure du message est cassée (parties ou en-têtes illisibles).")
    return t(lang, "Le message n'a pas pu être lu.")


# -- parsing --------------------------------------------------------------------------------------


def parse_message(raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES) -> ParsedMessage:
    """Read one raw RFC 5322 message; never raises, flags what it cannot read as `malformed`.

    Args:
        raw: the message exactly as fetched (`BODY.PEEK[]`).
        max_attachment_bytes: attachments larger than this keep their name, type and size but
            not their data.
    """
    raw = bytes(raw or b"")
    if not raw.strip():
        return ParsedMessage(raw=raw, malformed=True, malformed_reason="empty")
    try:
        message = email.message_from_bytes(raw, policy=default_policy)
    except Exception:  # noqa: BLE001 - whatever the parser trips on, the message is kept
        return ParsedMessage(raw=raw, malformed=True, malformed_reason="unreadable")

    reasons: list[str] = []
    fields: dict = {"raw": raw}

    def read(step):
        """Run one extraction step; a failure flags the message but keeps the other fields."""
        try:
            step()
        except Exception:  # noqa: BLE001 - a header or part the library cannot handle
            reasons.append("unreadable")

    def identifiers():
        fields["message_id"] = _first_msgid(_header(message, "Message-ID"))
        fields["in_reply_to"] = _first_msgid(_header(message, "In-Reply-To"))
        fields["references"] = tuple(re.findall(r"<[^<>\s]+>", _header(message, "References") or ""))

    def people():
        fields["sender_name"], fields["sender_address"] = _sender(message)
        fields["reply_to"] = _address(message, "Reply-To")[1]

    def envelope():
        fields["subject"] = _SPACES.sub(" ", _header(message, "Subject") or "").strip()
        fields["date"] = _date(message)
        fields["headers"] = MappingProxyType(
            {name: value for name in LOOP_HEADERS if (value := _header(message, name)) is not None})

    body = _body_part(message)

    def content():
        fields["text"] = _body_text(body) if body is not None else ""

    def attachments():
        fields["attachments"] = tuple(_attachments(message, body, max_attachment_bytes))

    def structure():
        if _has_structure_defect(message):
            reasons.append("broken-structure")
            if not fields.get("text"):
                fields["text"] = _fallback_text(message)

    for step in (identifiers, people, envelope, content, attachments, structure):
        read(step)
    if not fields.get("sender_address"):
        reasons.insert(0, "no-sender")
    if reasons:
        fields["malformed"] = True
        fields["malformed_reason"] = reasons[0]
    return ParsedMessage(**fields)


def _header(message: Message, name: str) -> str | None:
    """A header's decoded value, or None; a header the library cannot decode is read raw."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else _CONTROL.sub(" ", _unescape(str(value))).strip()


def _unescape(text: str) -> str:
    """Undo the surrogate escapes the parser leaves for raw 8-bit bytes (UTF-8, else Latin-1)."""
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _first_msgid(value: str | None) -> str | None:
    if not value:
        return None
    found = re.search(r"<[^<>\s]+>", value)
    if found:
        return found.group(0)
    bare = value.strip().split()[0] if value.strip() else ""
    return f"<{bare}>" if bare else None


def _address(message: Message, name: str) -> tuple[str | None, str | None]:
    """(display name, address) of the first mailbox of an address header."""
    try:
        header = message.get(name)
        addresses = header.addresses if header is not None else ()
    except Exception:  # noqa: BLE001
        header, addresses = _header(message, name), ()
    if addresses:
        first = addresses[0]
        display, address = first.display_name, first.addr_spec
    elif header is not None:
        display, address = parseaddr(str(header))
    else:
        return None, None
    address = address.strip() if address else ""
    if "@" not in address or address.startswith("@") or address.endswith("@") or " " in address:
        address = ""
    if address and not _usable_address(address):
        address = ""
    display = _SPACES.sub(" ", _unescape(display or "")).strip()
    return (display or None), (address or None)


def _usable_address(address: str) -> bool:
    """Whether an answer can be addressed to it: undecodable bytes or control characters in an
    address make the outgoing `To:` header fail, so such a sender is no sender."""
    try:
        Address(addr_spec=address)
    except Exception:  # noqa: BLE001 - any defect the header registry raises
        return False
    return address.isprintable()


def _sender(message: Message) -> tuple[str | None, str | None]:
    name, address = _address(message, "From")
    if address is None:
        name, address = _address(message, "Sender")
    return name, address


def _date(message: Message) -> datetime | None:
    try:
        header = message.get("Date")
        value = header.datetime if header is not None else None
    except Exception:  # noqa: BLE001
        return None
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _body_part(message: Message) -> Message | None:
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        return None


def _decoded_text(part: Message) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except Exception:  # noqa: BLE001 - unknown charset, broken transfer encoding
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = part.get_payload()
        return _unescape(payload) if isinstance(payload, str) else ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def _body_text(part: Message) -> str:
    text = _decoded_text(part)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _fallback_text(message: Message) -> str:
    """The body as text when the structure is broken: decoded as UTF-8, else Windows-1252."""
    try:
        payload = message.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if not isinstance(payload, bytes):
        return ""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = payload.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").strip()


def _has_structure_defect(message: Message) -> bool:
    for part in message.walk():
        if any(type(defect).__name__ in _STRUCTURE_DEFECTS for defect in part.defects):
            return True
    return False


def _leaves(part: Message):
    """Every part that is not a container; a forwarded message (message/rfc822) is one leaf."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.iter_parts():
            yield from _leaves(sub)
    else:
        yield part


def _attachments(message: Message, body: Message | None, limit: int):
    for part in _leaves(message):
        if part is body or part is message:
            continue
        filename = _safe_filename(part.get_filename())
        content_type = part.get_content_type()
        is_text_body = content_type in ("text/plain", "text/html") and filename is None
        if is_text_body and not part.is_attachment():
            continue  # the other alternative of the body, not a file
        data = _part_bytes(part)
        yield Attachment(filename=filename, content_type=content_type, size=len(data),
                         data=data if len(data) <= limit else None)


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    payload = part.get_payload()  # message/rfc822, message/delivery-status: parsed sub-messages
    if isinstance(payload, Message):
        payload = [payload]
    if isinstance(payload, list):
        return b"\n".join(inner.as_bytes() for inner in payload if isinstance(inner, Message))
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _safe_filename(name: str | None) -> str | None:
    """The last path component of a sender-given name, without control characters."""
    if not name:
        return None
    name = PurePosixPath(_CONTROL.sub("", str(name)).replace("\\", "/")).name.strip()
    return name if name not in ("", ".", "..") else None


# -- loop detection -------------------------------------------------------------------------------


def is_automatic(parsed: ParsedMessage, *, own_addresses: tuple[str, ...] = ()) -> bool:
    """Whether the mail was sent by a program (auto-reply, bounce, list): never answer those.

    Checks `Auto-Submitted` other than `no`, `Precedence: bulk|list|junk|auto_reply`, `List-Id`
    and `List-Unsubscribe`, `MAILER-DAEMON`/`postmaster` senders, an empty `Return-Path: <>`,
    `X-Autoreply`/`X-Autorespond`, Exchange's `X-Auto-Response-Suppress`, delivery reports
    (`multipart/report`), and the service's own addresses in `own_addresses`.
    """
    headers = parsed.headers
    auto_submitted = headers.get("auto-submitted")
    if auto_submitted is not None and auto_submitted.split("(")[0].split(";")[0].strip().lower() != "no":
        return True
    if (headers.get("precedence") or "").strip().lower() in AUTOMATIC_PRECEDENCE:
        return True
    if "list-id" in headers or "list-unsubscribe" in headers or "list-post" in headers:
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    suppress = {v.strip().lower() for v in (headers.get("x-auto-response-suppress") or "").split(",")}
    if suppress & SUPPRESS_VALUES:
        return True
    if "return-path" in headers and headers["return-path"].strip() in ("<>", ""):
        return True
    if (headers.get("content-type") or "").lower().startswith("multipart/report"):
        return True
    sender = (parsed.sender_address or "").lower()
    if sender.split("@")[0] in AUTOMATIC_LOCAL_PARTS:
        return True
    own = {address.lower() for address in own_addresses}
    return bool(sender) and sender in own


# -- outgoing mail ----------------------------------------------------------------------------------


def acknowledgement(parsed: ParsedMessage, reference: str | int, lang: str = "fr", *,
                    from_addr: str) -> EmailMessage:
    """The automatic answer to a new proposal, quoting its reference number, in the thread.

    Raises:
        ValueError: the message has no address to answer (check `should_acknowledge` first).
    """
    if not parsed.reply_address:
        raise ValueError("the message has no sender address to acknowledge")
    subject = parsed.subject or t(lang, "(sans objet)")
    body = "\n\n".join([
        _greeting(parsed.sender_name, lang),
        t(lang, "Nous avons bien reçu votre proposition « {subject} » et nous vous en remercions.",
          subject=subject),
        t(lang, "Elle est enregistrée sous la référence {reference} : merci de la rappeler si vous "
                "nous écrivez à son sujet.", reference=reference),
        t(lang, "L'équipe va l'examiner et vous écrira quand une décision sera prise."),
        t(lang, "Ce message a été envoyé automatiquement."),
    ])
    return _outgoing(
        to_addr=parsed.reply_address, to_name=parsed.sender_name, from_addr=from_addr, lang=lang,
        subject=t(lang, "Proposition reçue (référence {reference}) : {subject}",
                  reference=reference, subject=subject),
        body=body, auto_submitted="auto-replied",
        in_reply_to=parsed.message_id, references=parsed.references,
    )


def accepted_mail(*, to_addr: str, to_name: str | None, subject: str, reference: str | int,
                  link: str, from_addr: str, lang: str = "fr", in_reply_to: str | None = None,
                  references: tuple[str, ...] = ()) -> EmailMessage:
    """The mail telling a sender that staff accepted the proposal, with the link to its topic.

    `subject` is the proposal's subject; `in_reply_to` its Message-ID, to stay in the thread.
    """
    subject = subject or t(lang, "(sans objet)")
    body = "\n\n".join([
        _greeting(to_name, lang),
        t(lang, "Bonne nouvelle : votre proposition « {subject} » (référence {reference}) a été "
                "acceptée. Elle est maintenant ouverte au cofinancement par le réseau.",
          subject=subject, reference=reference),
        t(lang, "Vous pouvez suivre la collecte et en discuter ici : {link}", link=link),
        t(lang, "Merci pour votre proposition !"),
    ])
    return _outgoing(
        to_addr=to_addr, to_name=to_name, from_addr=from_addr, lang=lang,
        subject=t(lang, "Proposition acceptée : {subject}", subject=subject), body=body,
        auto_submitted="auto-generated", in_reply_to=in_reply_to, references=references,
    )


def rejected_mail(*, to_addr: str, to_name: str | None, subject: str, reference: str | int,
                  reason: str, from_addr: str, lang: str = "fr", in_reply_to: str | None = None,
                  references: tuple[str, ...] = ()) -> EmailMessage:
    """The mail telling a sender that staff did not retain the proposal, and why."""
    subject = subject or t(lang, "(sans objet)")
    body = "\n\n".join([
        _greeting(to_name, lang),
        t(lang, "Votre proposition « {subject} » (référence {reference}) n'a pas été retenue.",
          subject=subject, reference=reference),
        t(lang, "Raison : {reason}", reason=reason),
        t(lang, "Merci de l'intérêt que vous portez au réseau."),
    ])
    return _outgoing(
        to_addr=to_addr, to_name=to_name, from_addr=from_addr, lang=lang,
        subject=t(lang, "Proposition non retenue : {subject}", subject=subject), body=body,
        auto_submitted="auto-generated", in_reply_to=in_reply_to, references=references,
    )


def _greeting(name: str | None, lang: str) -> str:
    return t(lang, "Bonjour {name},", name=name) if name else t(lang, "Bonjour,")


def _header_text(text: str) -> str:
    """Text on one line for an outgoing header, where a literal `=?…?=` a sender typed is not
    read back as an encoded word: Python's email package decodes such a look-alike (an unknown
    charset, stray bytes) into surrogates and then cannot write the header at all. An invisible
    WORD JOINER between `=` and `?` keeps the text as shown."""
    return _SPACES.sub(" ", text).strip().replace("=?", "=\u2060?")


def _outgoing(*, to_addr: str, to_name: str | None, from_addr: str, lang: str, subject: str,
              body: str, auto_submitted: str, in_reply_to: str | None,
              references: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage(policy=default_policy)
    message["From"] = from_addr
    # Text from senders and staff goes in headers on one line: no header injection.
    message["To"] = Address(display_name=_header_text(to_name or ""), addr_spec=to_addr)
    message["Subject"] = _header_text(subject)
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    domain = parseaddr(from_addr)[1].rpartition("@")[2] or "commons-sync.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join([*(r for r in references if r != in_reply_to), in_reply_to])
    message["Auto-Submitted"] = auto_submitted
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(body + "\n", charset="utf-8", cte="quoted-printable")
    message["Content-Language"] = lang  # after set_content, which clears the Content-* headers
    return message
