"""Proposals by email: the SQL mailbox store, the staff triage use cases and their outbox senders.

A polled message becomes a submission and, in the same transaction, its acknowledgement becomes an
outbox row (kind `mail`), unless the mail is automatic or its sender already had
`ACK_DAILY_LIMIT` today. Accepting opens a commons and queues kind `create_topic`: the sender posts
the proposal's text as a topic in the configured category, with a hidden marker naming the commons,
and links the topic to the commons; the status post, the wiki fiche and the "accepted" mail follow
through the outbox. A topic is never created twice: before the forum call the attempt is recorded;
after a crash that leaves it unresolved the sender waits for the topic to be linked (by the bot's
own `post_created` webhook, through `link_topic_from_post`) instead of creating another.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from rapidfuzz import fuzz, utils
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from commons_sync.engine import events as ev
from commons_sync.engine import rules
from commons_sync.engine.errors import NotFound
from commons_sync.i18n import t
from commons_sync.mail.messages import (
    ParsedMessage,
    accepted_mail,
    acknowledgement,
    describe_malformed,
    is_automatic,
    parse_message,
    rejected_mail,
)
from commons_sync.mail.smtp import ACK_DAILY_LIMIT, should_acknowledge
from commons_sync.storage import tables as tb
from commons_sync.storage import triage_tables as tt

from . import outbox
from .handlers import Service
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

CREATE_TOPIC = "create_topic"
MAIL = "mail"

QUEUED, ACCEPTED, REJECTED, MERGED, SPAM = tt.SUBMISSION_STATUSES
MARKER_PATTERN = re.compile(r"<!--\s*commons-sync:commun:(\d+)\s*-->")
EMAIL_PATTERN = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
SYNTHETIC_ID_DOMAIN = "@no-message-id.invalid>"
TITLE_THRESHOLD = 70
TEXT_THRESHOLD = 75
MAX_DUPLICATES = 5


def topic_marker(commons_id: int) -> str:
    """The hidden line that names the commons in the first post of the topic the service creates."""
    return f"<!-- commons-sync:commun:{commons_id} -->"


def redact_addresses(text: str, lang: str = "fr") -> str:
    """The text with every email address replaced: none is ever written to the forum or the wiki."""
    return EMAIL_PATTERN.sub(t(lang, "[adresse masquée]"), text or "")


class TriageRefused(Exception):
    """A triage action that cannot be done in the submission's state; `message(lang)` says why."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def message(self, lang: str) -> str:
        p = self.params
        if self.code == "not_queued":
            return t(lang, "La proposition {id} a déjà été traitée (statut : {status}).",
                     id=p.get("id", ""), status=p.get("status", ""))
        if self.code == "no_open_round":
            return t(lang, "Aucune campagne n'est ouverte : indiquez-en une.")
        if self.code == "several_open_rounds":
            return t(lang, "Plusieurs campagnes sont ouvertes : précisez-en une parmi {rounds}.",
                     rounds=p.get("rounds", ""))
        if self.code == "title_required":
            return t(lang, "Le titre du commun est vide : indiquez-en un.")
        if self.code == "referent_is_address":
            return t(lang, "Le référent doit être un nom ou un pseudonyme du forum, pas une adresse e-mail.")
        if self.code == "reason_required":
            return t(lang, "Indiquez la raison du refus.")
        return t(lang, "Opération impossible.")


class TopicCreationUncertain(Exception):
    """An earlier creation of this topic may have reached the forum: wait for it to be linked."""


@dataclass(frozen=True)
class TriageSettings:
    """What the triage needs from the settings: language, zone, forum category and URL, own address."""

    lang: str = "fr"
    zone: tzinfo = timezone.utc
    category: int | None = None
    forum_url: str | None = None
    from_addr: str | None = None
    ack_limit: int = ACK_DAILY_LIMIT

    @classmethod
    def from_settings(cls, settings) -> "TriageSettings":
        return cls(lang=settings.language, zone=settings.zone, category=settings.discourse_category,
                   forum_url=settings.discourse_url, from_addr=settings.smtp_from)

    @property
    def own_addresses(self) -> tuple[str, ...]:
        return (self.from_addr,) if self.from_addr else ()


# --- the mailbox store ---------------------------------------------------------------------------


def dedupe_key(parsed: ParsedMessage) -> str:
    """The Message-ID, or for a message without one an id made from its bytes (stable across
    UIDVALIDITY changes)."""
    if parsed.message_id:
        return parsed.message_id[:998]
    return f"<sha256-{hashlib.sha256(parsed.raw).hexdigest()}{SYNTHETIC_ID_DOMAIN}"


class SqlMailboxStore:
    """The `MailboxStore` of `commons_sync.mail.store` in the service's database.

    A new submission and its acknowledgement (an outbox row of kind `mail`) are one transaction;
    the unique constraints on Message-ID and `(uidvalidity, uid)` make a second poller's insert
    fail, and that poller then reports the message as already stored.
    """

    def __init__(self, svc: Service, settings: TriageSettings | None = None) -> None:
        self.svc = svc
        self.settings = settings or TriageSettings(zone=svc.zone)

    def get_state(self, folder: str) -> tuple[int, int] | None:
        m = tt.mailbox_state
        row = self.svc.run(lambda uow: uow.repo.conn.execute(
            select(m.c.uidvalidity, m.c.last_uid).where(m.c.folder == folder)).first())
        return (int(row.uidvalidity), int(row.last_uid)) if row else None

    def set_state(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        m = tt.mailbox_state

        def use_case(uow: UnitOfWork) -> None:
            conn = uow.repo.conn
            changed = conn.execute(update(m).where(m.c.folder == folder).values(
                uidvalidity=uidvalidity, last_uid=last_uid)).rowcount
            if not changed:
                conn.execute(insert(m).values(folder=folder, uidvalidity=uidvalidity, last_uid=last_uid))
            uow.commit()

        self.svc.run(use_case)

    def has_message(self, message_id: str | None, uidvalidity: int, uid: int) -> bool:
        return self.svc.run(lambda uow: _existing(uow.repo.conn, message_id, uidvalidity, uid)) is not None

    def add_submission(self, parsed: ParsedMessage, uidvalidity: int, uid: int) -> tuple[str, bool]:
        key = dedupe_key(parsed)
        try:
            return self.svc.run(lambda uow: self._add(uow, parsed, key, uidvalidity, uid))
        except IntegrityError:
            existing = self.svc.run(lambda uow: _existing(uow.repo.conn, key, uidvalidity, uid))
            if existing is None:
                raise
            return existing, False

    def _add(self, uow: UnitOfWork, parsed: ParsedMessage, key: str, uidvalidity: int,
             uid: int) -> tuple[str, bool]:
        conn = uow.repo.conn
        existing = _existing(conn, key, uidvalidity, uid)
        if existing is not None:
            return existing, False
        s = tt.submissions
        now = self.svc.clock()
        automatic = is_automatic(parsed, own_addresses=self.settings.own_addresses)
        submission_id = conn.execute(insert(s).returning(s.c.id).values(
            status=QUEUED, sender_name=parsed.sender_name, sender_address=parsed.sender_address,
            reply_address=parsed.reply_address, subject=parsed.subject, body=parsed.text,
            sent_at=parsed.date, received_at=now, message_id=key, in_reply_to=parsed.in_reply_to,
            references_header=" ".join(parsed.references) or None, uidvalidity=uidvalidity,
            uid=uid, raw=parsed.raw, malformed=parsed.malformed,
            malformed_reason=parsed.malformed_reason, automatic=automatic)).scalar_one()
        reference = f"{now.astimezone(self.settings.zone).year}-{submission_id:04d}"
        acknowledged = self._acknowledge(uow, parsed, submission_id, now)
        conn.execute(update(s).where(s.c.id == submission_id).values(
            reference=reference, acknowledged=acknowledged))
        for position, attachment in enumerate(parsed.attachments):
            conn.execute(insert(tt.submission_attachments).values(
                submission_id=submission_id, position=position, filename=attachment.filename,
                content_type=attachment.content_type[:255], size=attachment.size, data=attachment.data))
        uow.commit()
        log.info("new submission %s (%s)", reference, "malformed" if parsed.malformed else "ok")
        return reference, True

    def _acknowledge(self, uow: UnitOfWork, parsed: ParsedMessage, submission_id: int,
                     now: datetime) -> bool:
        """Queue the acknowledgement when allowed, counting it for the sender's day."""
        if not parsed.reply_address:
            return False
        a = tt.mail_acknowledgements
        conn = uow.repo.conn
        address = parsed.reply_address.casefold()[:320]
        day = now.astimezone(self.settings.zone).date().isoformat()
        sent_today = conn.execute(select(a.c.count).where(a.c.address == address, a.c.day == day)).scalar() or 0
        if not should_acknowledge(parsed, sent_today, limit=self.settings.ack_limit,
                                  own_addresses=self.settings.own_addresses):
            return False
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(a).values(address=address, day=day, count=1)
        conn.execute(stmt.on_conflict_do_update(index_elements=[a.c.address, a.c.day],
                                                set_={"count": a.c.count + 1}))
        uow.repo.enqueue(MAIL, f"{MAIL}:acknowledgement:{submission_id}",
                         {"mail": "acknowledgement", "submission_id": submission_id}, now=now)
        return True


def _existing(conn, message_id: str | None, uidvalidity: int, uid: int) -> str | None:
    s = tt.submissions
    condition = (s.c.message_id == message_id) if message_id else and_(
        s.c.uidvalidity == uidvalidity, s.c.uid == uid)
    return conn.execute(select(s.c.reference).where(condition)).scalar()


def poll_mailbox(svc: Service, mailbox, settings: TriageSettings | None = None):
    """Turn the mailbox's new messages into submissions (and acknowledgements); a `PollSummary`."""
    return mailbox.poll(SqlMailboxStore(svc, settings))


# --- reading the queue ---------------------------------------------------------------------------


def _iso(when: datetime | None, zone: tzinfo) -> str | None:
    return when.astimezone(zone).isoformat() if when else None


def _real_message_id(value: str | None) -> str | None:
    return None if value is None or value.endswith(SYNTHETIC_ID_DOMAIN) else value


def _similarity(subject: str, body: str, other_title: str, other_body: str | None) -> int:
    """How alike two proposals are (0–100): titles compared word by word, texts as wholes."""
    score = 0
    if subject and other_title:
        score = int(fuzz.token_sort_ratio(subject, other_title, processor=utils.default_process))
        score = max(score, int(fuzz.token_set_ratio(subject, other_title, processor=utils.default_process))
                    if min(len(subject.split()), len(other_title.split())) >= 3 else 0)
    if body and other_body and len(body) >= 40 and len(other_body) >= 40:
        text_score = int(fuzz.token_sort_ratio(body[:4000], other_body[:4000], processor=utils.default_process))
        if text_score >= TEXT_THRESHOLD:
            score = max(score, text_score)
    return score


def _duplicates(row, commons_rows, submission_rows) -> list[dict]:
    found = []
    for c in commons_rows:
        if c.id == row.commons_id:
            continue
        score = _similarity(row.subject, row.body, c.title, None)
        if score >= TITLE_THRESHOLD:
            found.append({"kind": "commons", "id": c.id, "title": c.title, "score": score})
    for other in submission_rows:
        if other.id == row.id:
            continue
        score = _similarity(row.subject, row.body, other.subject, other.body)
        if score >= TITLE_THRESHOLD:
            found.append({"kind": "submission", "id": other.id, "reference": other.reference,
                          "title": other.subject, "score": score})
    found.sort(key=lambda item: (-item["score"], item["kind"], item["id"]))
    return found[:MAX_DUPLICATES]


def list_submissions(svc: Service, status: str | None = None) -> list[dict]:
    """The triage queue as `triage list --json` shows it (CONTRACT §6), newest last.

    `possible_duplicates` (for queued submissions) lists existing commons and other submissions
    whose title or text is alike: `{"kind": "commons"|"submission", "id", "title", "score"}`.
    """
    s, c = tt.submissions, tb.commons

    def use_case(uow: UnitOfWork) -> list[dict]:
        conn = uow.repo.conn
        query = select(s.c.id, s.c.reference, s.c.received_at, s.c.sender_name, s.c.subject,
                       s.c.body, s.c.status, s.c.commons_id, s.c.malformed).order_by(s.c.id)
        rows = conn.execute(query).all()
        commons_rows = conn.execute(select(c.c.id, c.c.title)).all()
        others = [r for r in rows if r.status != SPAM]
        items = []
        for row in rows:
            if status is not None and row.status != status:
                continue
            items.append({
                "id": row.id, "reference": row.reference, "received_at": _iso(row.received_at, svc.zone),
                "sender_name": row.sender_name, "subject": row.subject, "status": row.status,
                "possible_duplicates": _duplicates(row, commons_rows, others) if row.status == QUEUED else [],
            })
        return items

    return svc.run(use_case)


def show_submission(svc: Service, submission_id: int, lang: str = "fr") -> dict:
    """One submission with its text, attachments (without their data), raw source and decision."""
    s, a, c = tt.submissions, tt.submission_attachments, tb.commons

    def use_case(uow: UnitOfWork) -> dict:
        conn = uow.repo.conn
        row = _submission_row(conn, submission_id)
        attachments = conn.execute(select(a.c.position, a.c.filename, a.c.content_type, a.c.size,
                                          a.c.data.is_(None).label("too_large"))
                                   .where(a.c.submission_id == submission_id).order_by(a.c.position)).all()
        commons_rows = conn.execute(select(c.c.id, c.c.title)).all()
        others = conn.execute(select(s.c.id, s.c.reference, s.c.subject, s.c.body)
                              .where(s.c.status != SPAM)).all()
        commons = topic_problem = None
        topic_uncertain = False
        if row.commons_id is not None:
            commons = conn.execute(select(c.c.id, c.c.title, c.c.topic_id, c.c.discussion_url,
                                          c.c.wiki_title).where(c.c.id == row.commons_id)).first()
            o = tb.outbox
            topic_problem = conn.execute(select(o.c.last_error).where(
                o.c.key == f"{CREATE_TOPIC}:{row.commons_id}", o.c.done_at.is_(None),
                o.c.last_error.is_not(None))).scalar()
            r = tt.topic_requests
            topic_uncertain = conn.execute(select(r.c.commons_id).where(
                r.c.commons_id == row.commons_id, r.c.topic_id.is_(None),
                r.c.attempt_started_at.is_not(None))).scalar() is not None
        return {
            "id": row.id, "reference": row.reference, "status": row.status,
            "received_at": _iso(row.received_at, svc.zone), "sent_at": _iso(row.sent_at, svc.zone),
            "sender_name": row.sender_name, "sender_address": row.sender_address,
            "reply_address": row.reply_address, "subject": row.subject, "text": row.body,
            "message_id": _real_message_id(row.message_id), "malformed": row.malformed,
            "malformed_reason": row.malformed_reason,
            "malformed_description": describe_malformed(row.malformed_reason, lang) if row.malformed else None,
            "automatic": row.automatic, "acknowledged": row.acknowledged,
            "attachments": [{"index": att.position, "filename": att.filename,
                             "content_type": att.content_type, "size": att.size,
                             "too_large": bool(att.too_large)} for att in attachments],
            "raw": bytes(row.raw).decode("utf-8", errors="replace"),
            "commons": dict(commons._mapping) if commons is not None else None,
            "topic_problem": topic_problem,  # why the forum topic is not created yet, if it failed
            "topic_uncertain": topic_uncertain,  # an attempt may have reached the forum: staff check
            "decision_reason": row.decision_reason, "decided_by": row.decided_by,
            "decided_at": _iso(row.decided_at, svc.zone),
            "possible_duplicates": (_duplicates(row, commons_rows, others) if row.status == QUEUED else []),
        }

    return svc.run(use_case)


def attachment_data(svc: Service, submission_id: int, index: int) -> tuple[str | None, str, bytes | None]:
    """`(filename, content type, data)` of one attachment (data None when it was over the limit)."""
    a = tt.submission_attachments
    row = svc.run(lambda uow: uow.repo.conn.execute(
        select(a.c.filename, a.c.content_type, a.c.data)
        .where(a.c.submission_id == submission_id, a.c.position == index)).first())
    if row is None:
        raise NotFound("not_found", what="attachment", key=f"{submission_id}/{index}")
    return row.filename, row.content_type, None if row.data is None else bytes(row.data)


def commons_notes(svc: Service, commons_id: int) -> list[dict]:
    """The history notes of a commons (e.g. merged proposals), oldest first."""
    n = tt.commons_notes
    rows = svc.run(lambda uow: uow.repo.conn.execute(
        select(n).where(n.c.commons_id == commons_id).order_by(n.c.id)).all())
    return [{"id": r.id, "at": _iso(r.at, svc.zone), "kind": r.kind, "submission_id": r.submission_id,
             "author": r.author, "text": r.body} for r in rows]


def _submission_row(conn, submission_id: int, *, lock: bool = False):
    s = tt.submissions
    query = select(s).where(s.c.id == submission_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("not_found", what="submission", key=submission_id)
    return row


def _queued(conn, submission_id: int):
    row = _submission_row(conn, submission_id, lock=True)
    if row.status != QUEUED:
        raise TriageRefused("not_queued", id=submission_id, status=row.status)
    return row


# --- decisions -----------------------------------------------------------------------------------


@dataclass
class Acceptance:
    """What staff may change when accepting: every field left None takes the proposal's value."""

    title: str | None = None
    goal_cents: int | None = None
    cap_cents: int | None = None
    round_slug: str | None = None
    referent: str | None = None
    staff: str | None = None


def topic_text(commons_id: int, reference: str, body: str, referent: str | None, lang: str) -> str:
    """The first post of an accepted proposal's topic: who, the proposal's text, the hidden marker."""
    intro = (t(lang, "Proposition reçue par e-mail (référence {reference}), portée par {referent}.",
               reference=reference, referent=referent) if referent
             else t(lang, "Proposition reçue par e-mail (référence {reference}).", reference=reference))
    # No address, and no HTML comment: a sender's text must never carry one of the service's markers.
    text = redact_addresses(body, lang).replace("<!--", "&lt;!--").strip() or t(lang, "(sans texte)")
    return f"{intro}\n\n{text}\n\n{topic_marker(commons_id)}\n"


def _open_round(uow: UnitOfWork, slug: str | None, now: datetime):
    if slug is not None:
        round_ = uow.repo.round_by_slug(slug, lock=True)
        if round_ is None:
            raise NotFound("not_found", what="round", key=slug)
        return round_
    open_rounds = [r for r in uow.repo.rounds() if r.status(now) == "open"]
    if not open_rounds:
        raise TriageRefused("no_open_round")
    if len(open_rounds) > 1:
        raise TriageRefused("several_open_rounds", rounds=", ".join(r.slug for r in open_rounds))
    return uow.repo.round_by_slug(open_rounds[0].slug, lock=True)


def accept(svc: Service, submission_id: int, acceptance: Acceptance,
           settings: TriageSettings | None = None) -> int:
    """Open the proposal as a commons and queue its topic; returns the commons' id.

    The sender's display name is the referent unless staff give one; an email address never is.
    The topic, then the status post, the fiche and the mail to the sender follow via the outbox.
    """
    settings = settings or TriageSettings(zone=svc.zone)
    now = svc.clock()
    s = tt.submissions

    def use_case(uow: UnitOfWork) -> int:
        conn = uow.repo.conn
        row = _queued(conn, submission_id)
        title = redact_addresses((acceptance.title if acceptance.title is not None else row.subject)
                                 .strip(), settings.lang)
        if not title:
            raise TriageRefused("title_required")
        if acceptance.referent is not None:
            referent = acceptance.referent.strip() or None
            if referent and EMAIL_PATTERN.search(referent):
                raise TriageRefused("referent_is_address")
        else:  # the sender's display name, unless it is itself an address
            referent = (row.sender_name or "").strip() or None
            if referent and EMAIL_PATTERN.search(referent):
                referent = None
        round_ = _open_round(uow, acceptance.round_slug, now)
        commons = rules.new_commons(round_, title, acceptance.goal_cents, acceptance.cap_cents, now,
                                    referent=referent)
        uow.repo.add(commons)
        uow.collect([ev.CommonsOpened(commons.id, round_.id)])
        conn.execute(update(s).where(s.c.id == submission_id).values(
            status=ACCEPTED, commons_id=commons.id, decided_at=now, decided_by=acceptance.staff))
        conn.execute(insert(tt.topic_requests).values(
            commons_id=commons.id, submission_id=submission_id, title=title,
            raw=topic_text(commons.id, row.reference, row.body, referent, settings.lang),
            category=settings.category))
        uow.repo.enqueue(CREATE_TOPIC, f"{CREATE_TOPIC}:{commons.id}", {"commons_id": commons.id}, now=now)
        uow.commit()
        return commons.id

    return svc.run(use_case)


def reject(svc: Service, submission_id: int, reason: str, *, mail: bool = False,
           staff: str | None = None) -> bool:
    """Reject the proposal with a reason; with `mail`, the sender is told (not an automatic sender).

    Returns whether a mail was queued.
    """
    reason = (reason or "").strip()
    if not reason:
        raise TriageRefused("reason_required")
    now = svc.clock()
    s = tt.submissions

    def use_case(uow: UnitOfWork) -> bool:
        conn = uow.repo.conn
        row = _queued(conn, submission_id)
        conn.execute(update(s).where(s.c.id == submission_id).values(
            status=REJECTED, decision_reason=reason, decided_at=now, decided_by=staff))
        queued = bool(mail and row.reply_address and not row.automatic)
        if queued:
            uow.repo.enqueue(MAIL, f"{MAIL}:rejected:{submission_id}",
                             {"mail": "rejected", "submission_id": submission_id}, now=now)
        uow.commit()
        return queued

    return svc.run(use_case)


def merge(svc: Service, submission_id: int, into_commons_id: int, *, staff: str | None = None) -> int:
    """Merge the proposal into an existing commons: its text goes to the commons' history notes."""
    now = svc.clock()
    s = tt.submissions

    def use_case(uow: UnitOfWork) -> int:
        conn = uow.repo.conn
        row = _queued(conn, submission_id)
        if uow.repo.commons(into_commons_id) is None:
            raise NotFound("not_found", what="commons", key=into_commons_id)
        conn.execute(update(s).where(s.c.id == submission_id).values(
            status=MERGED, commons_id=into_commons_id, decided_at=now, decided_by=staff))
        body = "\n\n".join(part for part in (row.subject, row.body) if part)
        note_id = conn.execute(insert(tt.commons_notes).returning(tt.commons_notes.c.id).values(
            commons_id=into_commons_id, at=now, kind="merged_submission", submission_id=submission_id,
            author=row.sender_name, body=body)).scalar_one()
        uow.commit()
        return note_id

    return svc.run(use_case)


def mark_spam(svc: Service, submission_id: int, *, staff: str | None = None) -> None:
    """Mark the proposal as spam: it leaves the queue and is never suggested as a duplicate."""
    now = svc.clock()
    s = tt.submissions

    def use_case(uow: UnitOfWork) -> None:
        _queued(uow.repo.conn, submission_id)
        uow.repo.conn.execute(update(s).where(s.c.id == submission_id).values(
            status=SPAM, decided_at=now, decided_by=staff))
        uow.commit()

    svc.run(use_case)


# --- the topic of an accepted proposal -----------------------------------------------------------


def link_topic(svc: Service, commons_id: int, topic_id: int, post_number: int = 1,
               discussion_url: str | None = None) -> bool:
    """Record the topic created for an accepted proposal, and queue what follows it.

    Idempotent: linking the same topic again changes nothing; a commons already linked to another
    topic keeps it (returns False, and the stray topic is logged for staff).
    """
    now = svc.clock()
    r, s = tt.topic_requests, tt.submissions

    def use_case(uow: UnitOfWork) -> bool:
        conn = uow.repo.conn
        commons = uow.repo.commons(commons_id)
        if commons is None:
            return False
        if commons.topic_id is not None:
            if commons.topic_id != topic_id:
                log.warning("commons %s already has topic %s; topic %s is a stray duplicate",
                            commons_id, commons.topic_id, topic_id)
            return False
        if uow.repo.commons_by_topic(topic_id) is not None:
            log.warning("topic %s is already another commons'", topic_id)
            return False
        commons.topic_id = topic_id
        commons.first_post_number = post_number
        commons.discussion_url = discussion_url
        conn.execute(update(r).where(r.c.commons_id == commons_id).values(topic_id=topic_id, linked_at=now))
        outbox.commons_changed(uow.repo, commons_id, commons.round_id)
        submission_id = conn.execute(select(s.c.id).where(
            s.c.commons_id == commons_id, s.c.status == ACCEPTED, s.c.reply_address.is_not(None),
            s.c.automatic.is_(False))).scalar()
        if submission_id is not None:
            uow.repo.enqueue(MAIL, f"{MAIL}:accepted:{submission_id}",
                             {"mail": "accepted", "submission_id": submission_id}, now=now)
        uow.commit()
        return True

    return svc.run(use_case)


def retry_topic_creation(svc: Service, submission_id: int) -> bool:
    """Let the sender create the topic again after staff checked that the forum has none.

    For an attempt whose answer was lost and whose topic never got linked (no webhook came):
    only a person looking at the forum can tell that nothing was created. Returns whether there
    was such an attempt to clear.
    """
    now = svc.clock()
    r, s, o = tt.topic_requests, tt.submissions, tb.outbox

    def use_case(uow: UnitOfWork) -> bool:
        conn = uow.repo.conn
        commons_id = conn.execute(select(s.c.commons_id).where(
            s.c.id == submission_id, s.c.status == ACCEPTED)).scalar()
        if commons_id is None:
            _submission_row(conn, submission_id)  # NotFound when there is no such submission
            return False
        cleared = conn.execute(update(r).where(
            r.c.commons_id == commons_id, r.c.topic_id.is_(None), r.c.attempt_started_at.is_not(None))
            .values(attempt_started_at=None)).rowcount
        if not cleared:
            return False
        key = f"{CREATE_TOPIC}:{commons_id}"
        if not conn.execute(update(o).where(o.c.key == key, o.c.done_at.is_(None)).values(
                not_before=now, attempts=0)).rowcount:
            uow.repo.enqueue(CREATE_TOPIC, key, {"commons_id": commons_id}, now=now)
        uow.commit()
        return True

    return svc.run(use_case)


def discussion_url(base_url: str | None, topic_id: int, topic_slug: str | None = None) -> str | None:
    """The topic's address on the forum (`/t/slug/id`, or `/t/id` without the slug)."""
    if not base_url:
        return None
    base = base_url.rstrip("/")
    return f"{base}/t/{topic_slug}/{topic_id}" if topic_slug else f"{base}/t/{topic_id}"


def link_topic_from_post(svc: Service, post, *, bot_username: str, base_url: str | None,
                         topic_slug: str | None = None) -> int | None:
    """Link a topic the service created, from the bot's own first post carrying the marker.

    For the forum worker: call it with the `PostSnapshot` of a `post_created` delivery by the bot
    (which is otherwise ignored). Returns the commons id when the post links (or had linked) its
    topic, None when the post is not such a first post.
    """
    if post.post_number != 1 or (post.username or "").casefold() != (bot_username or "").casefold():
        return None
    found = MARKER_PATTERN.search(post.raw or "")
    if found is None:
        return None
    commons_id = int(found.group(1))
    if svc.run(lambda uow: uow.repo.conn.execute(
            select(tt.topic_requests.c.commons_id).where(tt.topic_requests.c.commons_id == commons_id)
    ).scalar()) is None:
        return None  # a marker the service did not ask for: not ours to link
    link_topic(svc, commons_id, post.topic_id, post.post_number,
               discussion_url(base_url, post.topic_id, topic_slug))
    return commons_id


def _definitely_not_created(error: Exception) -> bool:
    """Whether a failed forum call certainly created nothing (an answer came, or no connection)."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status >= 400:
        return True
    text = str(error)
    return "ConnectionRefused" in text or "Connection refused" in text or "NewConnectionError" in text


# --- outbox senders ------------------------------------------------------------------------------


class TriageSenders:
    """Sends the triage's outbox kinds: `create_topic` (forum) and `mail` (SMTP).

    Args:
        svc: the service (state is read at send time).
        forum: a `DiscourseClient`, or None when the forum adapter is off.
        mailer: a `Mailer`, or None when outgoing mail is off.
        settings: `commons_sync.config.Settings` (language, category, forum URL, sender address).
    """

    def __init__(self, svc: Service, forum, mailer, settings) -> None:
        self.svc = svc
        self.forum = forum
        self.mailer = mailer
        self.settings = (settings if isinstance(settings, TriageSettings)
                         else TriageSettings.from_settings(settings))

    def senders(self) -> dict:
        found = {}
        if self.forum is not None:
            found[CREATE_TOPIC] = self.send_create_topic
        if self.mailer is not None:
            found[MAIL] = self.send_mail
        return found

    # create_topic

    def send_create_topic(self, payload: dict) -> None:
        """Create the accepted proposal's topic once, then link it (which queues what follows)."""
        commons_id = payload["commons_id"]
        request = self._topic_request(commons_id)
        if request is None or request["linked"]:
            return
        if request["attempt_started_at"] is not None:
            raise TopicCreationUncertain(
                f"an earlier creation of the topic of commons {commons_id} may have reached the forum "
                "(started at " + request["attempt_started_at"].isoformat() + "); waiting for its webhook")
        self._mark_attempt(commons_id, self.svc.clock())
        try:
            created = self.forum.create_topic(request["title"], request["raw"], request["category"])
        except Exception as error:
            if _definitely_not_created(error):
                self._mark_attempt(commons_id, None)
            raise
        link_topic(self.svc, commons_id, created.topic_id, created.post_number,
                   discussion_url(self.settings.forum_url, created.topic_id))

    def _topic_request(self, commons_id: int) -> dict | None:
        r, c = tt.topic_requests, tb.commons
        row = self.svc.run(lambda uow: uow.repo.conn.execute(
            select(r.c.title, r.c.raw, r.c.category, r.c.attempt_started_at, c.c.topic_id)
            .select_from(r.join(c, c.c.id == r.c.commons_id)).where(r.c.commons_id == commons_id)).first())
        if row is None:
            return None
        return {"title": row.title, "raw": row.raw, "category": row.category,
                "attempt_started_at": row.attempt_started_at, "linked": row.topic_id is not None}

    def _mark_attempt(self, commons_id: int, when: datetime | None) -> None:
        r = tt.topic_requests

        def use_case(uow: UnitOfWork) -> None:
            uow.repo.conn.execute(update(r).where(r.c.commons_id == commons_id).values(attempt_started_at=when))
            uow.commit()

        self.svc.run(use_case)

    # mail

    def send_mail(self, payload: dict) -> None:
        """Send the acknowledgement, the "accepted" mail (with the topic's link) or the rejection."""
        kind, submission_id = payload["mail"], payload["submission_id"]
        row, link = self._mail_state(submission_id)
        if row is None or not row.reply_address:
            return
        lang, from_addr = self.settings.lang, self.mailer.from_addr
        reply = dict(to_addr=row.reply_address, to_name=row.sender_name, subject=row.subject,
                     reference=row.reference, from_addr=from_addr, lang=lang,
                     in_reply_to=_real_message_id(row.message_id),
                     references=tuple((row.references_header or "").split()))
        if kind == "acknowledgement":
            message = acknowledgement(parse_message(bytes(row.raw)), row.reference, lang, from_addr=from_addr)
        elif kind == "accepted":
            if link is None:
                return
            message = accepted_mail(link=link, **reply)
        elif kind == "rejected":
            message = rejected_mail(reason=row.decision_reason or "", **reply)
        else:
            raise ValueError(f"unknown mail kind {kind!r}")
        self.mailer.send(message)

    def _mail_state(self, submission_id: int):
        s, c = tt.submissions, tb.commons

        def use_case(uow: UnitOfWork):
            conn = uow.repo.conn
            row = conn.execute(select(s).where(s.c.id == submission_id)).first()
            link = None
            if row is not None and row.commons_id is not None:
                link = conn.execute(select(c.c.discussion_url).where(c.c.id == row.commons_id)).scalar()
            return row, link

        return self.svc.run(use_case)


def forget_expired_nonces(conn, now: datetime, max_age: timedelta) -> None:
    """Drop staff login nonces older than `max_age` (they can no longer be used anyway)."""
    conn.execute(delete(tt.staff_login_nonces).where(tt.staff_login_nonces.c.created_at < now - max_age))


__all__ = [
    "Acceptance", "CREATE_TOPIC", "MAIL", "SqlMailboxStore", "TopicCreationUncertain",
    "TriageRefused", "TriageSenders", "TriageSettings", "accept", "attachment_data", "commons_notes",
    "discussion_url", "link_topic", "link_topic_from_post", "list_submissions", "mark_spam", "merge",
    "poll_mailbox", "redact_addresses", "reject", "retry_topic_creation", "show_submission",
    "topic_marker",
]
