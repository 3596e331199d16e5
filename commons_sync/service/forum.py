"""The forum's use cases: store a webhook delivery, apply stored deliveries in the order received.

The webhook only stores (`receive_delivery`): it never calls the forum, the wiki or a mail server,
so it answers at once. The worker then calls `apply_pending_deliveries`, which reads each stored
delivery in the order it arrived and turns it into engine input:

- a post snapshot (`post_created`, `post_edited`) → its command lines (`extract_commands`): the
  `/soutien` line read with `parse_amount` (several lines: `several_pledge_lines`), membership from
  the forum (`GET /u/{username}.json`, cached in the database a short while) → `apply_post`;
  `/commun` (staff) opens the commons; `/interesse`, `/referent`, `/prochaine-etape` update it;
- `post_destroyed` / `post_recovered` → `apply_post` of kind destroyed / recovered;
- `group_user` events → the cached membership of that user is dropped.

Applying is at-least-once: a crash between applying and marking a delivery applied applies it
again, which changes nothing (the engine ignores a snapshot it has seen; commands are recorded
per post version in `forum_post_commands`, in the same transaction as their effect).

`DatabaseRateLimiter` is the limiter every process shares through the database, so all workers
together stay under COMMONS_SYNC_DISCOURSE_MAX_RPM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from datetime import datetime, timedelta, timezone
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from commons_sync import texts
from commons_sync.discourse.client import ForumUser, GroupMember, TopicView
from commons_sync.discourse.commands import (
    ForumCommand,
    extract_commands,
    parse_commun_arguments,
    parse_referent,
)
from commons_sync.discourse.errors import (
    ApiError,
    CommandSyntaxError,
    MalformedDelivery,
)
from commons_sync.discourse.errors import Forbidden, PostRejected, RateLimited
from commons_sync.discourse.errors import NotFound as ForumNotFound
from commons_sync.discourse.events import (
    Accepted,
    Delivery,
    GroupUserChange,
    Ignored,
    PostSnapshot,
    classify,
    parse_delivery,
    post_snapshot,
)
from commons_sync.engine.errors import AmountError, EngineError
from commons_sync.engine.money import parse_amount
from commons_sync.i18n import t
from commons_sync.logs import log_context
from commons_sync.storage import forum_tables as ft
from commons_sync.storage import tables as tb

from . import handlers, outbox
from .group_commit import GroupCommit
from .handlers import CommonsSpec, PostChange, Service
from .unit_of_work import DatabaseUnavailable, UnitOfWork

log = logging.getLogger(__name__)

# Commands this module carries out; `/annuler`, `/transferer`, `/rappels` are dispatched to
# `service.lifecycle_forum`.
HANDLED_COMMANDS = ("commun", "interesse", "referent", "prochaine-etape")
LIFECYCLE_COMMANDS = ("annuler", "transferer", "rappels")  # `service.lifecycle_forum`
OPEN_ROUND = "open"
MAX_ID = 2**63  # ids and versions are stored as 64-bit integers
TOPIC_MARKER = re.compile(r"<!--\s*commons-sync:commun:(\d+)\s*-->")  # `service.triage.topic_marker`


@dataclass(frozen=True)
class ForumSettings:
    """What the forum side needs from the settings (built by `from_settings`)."""

    bot_username: str
    staff_group: str = "staff"
    language: str = "fr"
    base_url: str | None = None
    membership_ttl_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings) -> "ForumSettings":
        return cls(bot_username=settings.discourse_api_username or "",
                   staff_group=settings.discourse_staff_group, language=settings.language,
                   base_url=settings.discourse_url)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _dialect_insert(conn: Connection, table):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


# --- receiving (the webhook) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What the webhook answers: `status` 200 (ignored), 202 (stored) or 400 (malformed)."""

    status: int
    message: str
    stored: bool = False


def receive_delivery(svc: Service, headers: Mapping[str, str], body: bytes,
                     bot_username: str) -> Receipt:
    """Store one signed delivery for the worker, or say why it is ignored or malformed.

    The signature is checked before, by the caller. Raises `DatabaseUnavailable` (answer 503).
    """
    try:
        delivery = parse_delivery(headers, body)
        verdict = classify(delivery, bot_username)
    except MalformedDelivery as exc:
        return Receipt(400, exc.reason)
    topic_post = bot_topic_post(delivery, bot_username)
    if topic_post is not None:
        # The first post of a topic the service created (an accepted proposal): stored, so the
        # worker links the topic even when the creating call's answer was lost.
        verdict = Accepted(event=delivery.event, subject=topic_post, topic_id=topic_post.topic_id,
                           needs_commons_topic=False, links_topic=True)
    if isinstance(verdict, Ignored):
        return Receipt(200, verdict.reason)
    post = verdict.subject if isinstance(verdict.subject, PostSnapshot) else None
    numbers = [delivery.event_id, verdict.topic_id, post and post.post_id, post and post.version]
    if any(number is not None and not 0 <= number < MAX_ID for number in numbers):
        return Receipt(400, "an id or version is out of range")
    small = [post and post.version, post and post.post_number]  # 32-bit columns
    if any(number is not None and not 0 <= number < 2**31 for number in small):
        return Receipt(400, "a version or post number is out of range")

    def store() -> Receipt:
        known = _known_commons_topics(svc)
        in_known_commons = verdict.topic_id in known
        # Parsed only where it matters: a `/commun` line counts for topics not known as commons yet.
        opens_commons = not in_known_commons and verdict.opens_commons
        if verdict.needs_commons_topic and not opens_commons and not in_known_commons:
            if not svc.run(lambda uow: _is_commons_topic(uow.repo.conn, verdict.topic_id, known)):
                return Receipt(200, "the topic is not a commons")
        _delivery_writer(svc.engine).insert(svc.engine, dict(
            event_id=delivery.event_id, event_type=delivery.event_type, event=delivery.event,
            instance=delivery.instance, body=body, received_at=_utc(svc.clock()),
            topic_id=verdict.topic_id, post_id=post.post_id if post else None,
            version=post.version if post else None, opens_commons=opens_commons))
        return Receipt(202, "stored", True)

    try:
        try:
            return store()
        except DatabaseUnavailable:
            # The webhook's pool does not ping (`make_engine(autocommit=True)`): a connection the
            # database dropped fails once and the pool reconnects. Storing is idempotent.
            return store()
    except IntegrityError:
        # The unique event id decides: Discourse delivered this event before.
        if svc.run(lambda uow: uow.repo.conn.execute(_DELIVERY_OF_EVENT,
                                                     {"event_id": delivery.event_id}).first()):
            return Receipt(202, "already stored")
        raise


# Built once, so SQLAlchemy's compiled cache serves them (a dialect's `insert … on conflict` is
# never cached, which made it most of the webhook's time).
_STORE_DELIVERY = insert(ft.forum_deliveries)
_DELIVERY_OF_EVENT = select(ft.forum_deliveries.c.id).where(
    ft.forum_deliveries.c.event_id == bindparam("event_id"))
_COMMONS_OF_TOPIC = select(tb.commons.c.id).where(tb.commons.c.topic_id == bindparam("topic_id"))
_TOPIC_OPENING = (select(ft.forum_deliveries.c.id)
                  .where(ft.forum_deliveries.c.topic_id == bindparam("topic_id"),
                         ft.forum_deliveries.c.opens_commons.is_(True)).limit(1))

_WRITERS: "WeakKeyDictionary[Engine, GroupCommit]" = WeakKeyDictionary()
_BY_EVENT_ID = operator.itemgetter("event_id")
_WRITERS_LOCK = threading.Lock()


def _delivery_writer(engine: Engine) -> GroupCommit:
    """The engine's one group-commit writer of deliveries (concurrent webhooks share commits)."""
    writer = _WRITERS.get(engine)
    if writer is None:
        with _WRITERS_LOCK:
            writer = _WRITERS.get(engine)
            if writer is None:
                writer = _WRITERS[engine] = GroupCommit(_STORE_DELIVERY, order=_BY_EVENT_ID)
    return writer


_KNOWN_COMMONS: "WeakKeyDictionary[Engine, set[int]]" = WeakKeyDictionary()
_KNOWN_COMMONS_MAX = 100_000
_COMMONS_TOPICS = (select(tb.commons.c.topic_id).where(tb.commons.c.topic_id.is_not(None))
                   .limit(_KNOWN_COMMONS_MAX))


def _known_commons_topics(svc: Service) -> set[int]:
    """The topics of the commons, read once per process: a commons never loses its topic, so a
    known topic is never looked up again (a stale entry only stores a delivery the worker drops),
    and a topic opened later is added by its first delivery (`_is_commons_topic`)."""
    known = _KNOWN_COMMONS.get(svc.engine)
    if known is None:
        topics = svc.run(lambda uow: uow.repo.conn.execute(_COMMONS_TOPICS).scalars().all())
        known = _KNOWN_COMMONS.setdefault(svc.engine, set(topics))
    return known


def _is_commons_topic(conn: Connection, topic_id: int, known: set[int]) -> bool:
    """Whether the topic is a commons' (remembered in `known`) or holds a stored `/commun` post."""
    if conn.execute(_COMMONS_OF_TOPIC, {"topic_id": topic_id}).first():
        if len(known) < _KNOWN_COMMONS_MAX:
            known.add(topic_id)
        return True
    return conn.execute(_TOPIC_OPENING, {"topic_id": topic_id}).first() is not None


def bot_topic_post(delivery: Delivery, bot_username: str) -> PostSnapshot | None:
    """The bot's first post of a topic it created for a commons (with the triage's marker), or None."""
    payload = delivery.payload.get("post")
    if delivery.event != "post_created" or not isinstance(payload, dict) or payload.get("post_number") != 1:
        return None  # cheap checks first: most deliveries are replies
    try:
        post = post_snapshot(delivery.payload["post"])
    except MalformedDelivery:
        return None
    if (post.post_number != 1 or post.username.casefold() != bot_username.casefold()
            or TOPIC_MARKER.search(post.raw or "") is None):
        return None
    return post


def pending_delivery_count(svc: Service) -> int:
    """How many stored deliveries are not applied yet."""
    d = ft.forum_deliveries
    return svc.run(lambda uow: uow.repo.conn.execute(
        select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar_one())


# --- the forum the worker reads ------------------------------------------------------------------


class ForumReader(Protocol):
    """The few reads the apply step needs (a `DiscourseClient` is one)."""

    def get_user(self, username: str) -> ForumUser: ...

    def group_roster(self, name: str, at_most: int) -> list[GroupMember] | None: ...

    def get_topic(self, topic_id: int, include_raw: bool = False) -> TopicView: ...

    def get_post(self, post_id: int) -> PostSnapshot: ...


ROSTER_MAX_MEMBERS = 20_000  # 20 calls a read; a bigger group (an automatic one) is asked user by user


class Membership:
    """Group memberships of forum users, cached in the database for `ttl_seconds` (120 s).

    Whether a pledge's author is in a group: yes when the group's roster
    (`GET /groups/{name}/members.json`, 1,000 members a call) lists their user id and no
    `group_user` event came for them since it was read (`forget`); otherwise their own groups are
    asked (`GET /u/{username}.json`). A roster's "no" is never trusted: it may predate a join whose
    event has not arrived yet, or an id a page boundary skipped while someone left. So a roster
    costs a call per 1,000 members every `ttl_seconds` while pledges come, instead of a call per
    member, and non-members cost what they did. The staff group's checks ask the user.
    """

    def __init__(self, svc: Service, forum: ForumReader, ttl_seconds: float) -> None:
        self.svc = svc
        self.forum = forum
        self.ttl_seconds = ttl_seconds

    def in_group(self, username: str, user_id: int | None, group: str) -> bool:
        """Whether the user is in the group (see the class).

        Raises:
            RateLimited, Unavailable…: the forum could not answer; try the delivery again later.
        """
        key = group.casefold()
        r, m, c = ft.forum_group_rosters, ft.forum_group_members, ft.forum_membership_changes
        now = self.svc.clock().timestamp()

        def listed(uow: UnitOfWork) -> bool | None:
            """True when the roster says yes, False when it cannot, None when it is to be read."""
            conn = uow.repo.conn
            roster = conn.execute(select(r.c.loaded_at, r.c.unlisted).where(r.c.group_key == key)).first()
            if roster is None or roster.loaded_at <= now - self.ttl_seconds:
                return None
            if roster.unlisted or user_id is None:
                return False
            changed = conn.execute(select(c.c.user_id).where(
                c.c.user_id == user_id, c.c.changed_at >= roster.loaded_at)).first()
            return not changed and conn.execute(select(m.c.user_id).where(
                m.c.group_key == key, m.c.user_id == user_id)).first() is not None

        answer = self.svc.run(listed)
        if answer is None:
            self._read_roster(group, now)
            answer = self.svc.run(listed)
        return bool(answer) or key in {own.casefold() for own in self.groups(username)}

    def _read_roster(self, group: str, now: float) -> None:
        try:
            members = self.forum.group_roster(group, at_most=ROSTER_MAX_MEMBERS)
        except ForumNotFound:
            members = []  # no such group: its roster lists nobody
        except Forbidden:
            members = None  # its members are hidden from the bot: ask them one by one
        key = group.casefold()
        r, m = ft.forum_group_rosters, ft.forum_group_members
        listed = {member.user_id: member.username for member in members or ()}

        def save(uow: UnitOfWork) -> None:
            conn = uow.repo.conn
            # The roster's row first: it locks, so two workers' saves of one group take turns.
            values = dict(loaded_at=now, unlisted=members is None, size=len(listed))
            conn.execute(_dialect_insert(conn, r).values(group_key=key, **values)
                         .on_conflict_do_update(index_elements=[r.c.group_key], set_=values))
            conn.execute(delete(m).where(m.c.group_key == key))
            if listed:
                conn.execute(insert(m), [dict(group_key=key, user_id=user_id, username=username)
                                         for user_id, username in listed.items()])
            uow.commit()

        self.svc.run(save)

    def groups(self, username: str) -> frozenset[str]:
        """The user's group names (empty for a user the forum does not know).

        Raises:
            RateLimited, Unavailable…: the forum could not answer; try the delivery again later.
        """
        key = username.casefold()
        now = self.svc.clock().timestamp()
        m = ft.forum_memberships
        row = self.svc.run(lambda uow: uow.repo.conn.execute(
            select(m.c.groups, m.c.fetched_at).where(m.c.username == key)).first())
        if row is not None and row.fetched_at > now - self.ttl_seconds:
            return frozenset(json.loads(row.groups))
        try:
            user = self.forum.get_user(username)
            groups, user_id, name = user.group_names, user.user_id, user.name
        except ForumNotFound:
            groups, user_id, name = frozenset(), None, None

        def save(uow: UnitOfWork) -> None:
            conn = uow.repo.conn
            values = dict(user_id=user_id, display_name=name, groups=json.dumps(sorted(groups)),
                          fetched_at=now)
            statement = _dialect_insert(conn, m).values(username=key, **values)
            conn.execute(statement.on_conflict_do_update(index_elements=[m.c.username], set_=values))
            uow.commit()

        self.svc.run(save)
        return frozenset(groups)

    def forget(self, user_id: int | None = None, username: str | None = None) -> None:
        """A user's memberships changed (a group_user event came): drop their cached groups, and
        note when, so that rosters read before are not trusted for them."""
        m, c = ft.forum_memberships, ft.forum_membership_changes
        conditions = []
        if user_id is not None:
            conditions.append(m.c.user_id == user_id)
        if username:
            conditions.append(m.c.username == username.casefold())
        if not conditions:
            return
        now = self.svc.clock().timestamp()

        def use_case(uow: UnitOfWork) -> None:
            conn = uow.repo.conn
            conn.execute(delete(m).where(or_(*conditions)))
            if user_id is not None:
                conn.execute(_dialect_insert(conn, c).values(user_id=user_id, changed_at=now)
                             .on_conflict_do_update(index_elements=[c.c.user_id], set_={"changed_at": now}))
                # Every roster in use was read since: older changes are in it.
                conn.execute(delete(c).where(c.c.changed_at < now - self.ttl_seconds))
            uow.commit()

        self.svc.run(use_case)


# --- applying stored deliveries --------------------------------------------------------------------


@dataclass
class ApplyReport:
    """What one pass over the inbox did; `blocked` names the error that stopped it, if any."""

    applied: int = 0
    blocked: str | None = None
    busy: bool = False  # another worker holds the inbox
    recovered: bool = False  # the forum answered again after failures


@dataclass(frozen=True)
class _CommonsInfo:
    commons_id: int
    round_id: int
    round_slug: str
    status: str
    group: str
    referent: str | None
    currency: str
    matching: bool
    matching_group: str | None


def _commons_info(svc: Service, topic_id: int) -> _CommonsInfo | None:
    c, r = tb.commons, tb.rounds

    def use_case(uow: UnitOfWork) -> _CommonsInfo | None:
        row = uow.repo.conn.execute(
            select(c.c.id, c.c.round_id, c.c.status, c.c.referent, r.c.slug, r.c.group_name,
                   r.c.currency, r.c.matching_ratio, r.c.matching_group)
            .select_from(c.join(r, r.c.id == c.c.round_id)).where(c.c.topic_id == topic_id)).first()
        if row is None:
            return None
        return _CommonsInfo(row.id, row.round_id, row.slug, row.status, row.group_name, row.referent,
                            row.currency, row.matching_ratio is not None, row.matching_group)

    return svc.run(use_case)


class DeliveryApplier:
    """Applies stored deliveries one by one, in the order they were received.

    Args:
        svc: the service (database and clock).
        forum: where memberships and topic titles are read (a `DiscourseClient`).
        settings: the bot's username, the staff group, the language.
    """

    def __init__(self, svc: Service, forum: ForumReader, settings: ForumSettings,
                 worker_id: str | None = None, backoff: Callable[[int], float] | None = None) -> None:
        self.svc = svc
        self.forum = forum
        self.settings = settings
        self.membership = Membership(svc, forum, settings.membership_ttl_seconds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        if backoff is None:
            from .worker import backoff_seconds as backoff
        self.backoff = backoff
        self._failures = 0  # in a row: the forum could not answer for the first pending delivery
        self._wait_until = 0.0  # time.monotonic() before which the forum is not asked again

    # -- the pass -----------------------------------------------------------------------------

    def apply_pending(self, limit: int = 1000, lease_seconds: float = 120.0, *,
                      wait: bool = True) -> ApplyReport:
        """Apply up to `limit` stored deliveries in the order received; stop at the first the
        forum cannot help with (it stays for the next pass, so the order is kept).

        After such a stop the forum is left alone for a while (`wait`): as long as its `429`
        says, else a backoff that doubles with each failure in a row, so a forum that is down
        does not use up the API ceiling the catching up will need. `wait=False` tries now.
        """
        report = ApplyReport()
        if wait and time.monotonic() < self._wait_until:
            report.blocked = "waiting"
            return report
        if not self._take_inbox(lease_seconds):
            report.busy = True
            return report
        try:
            d = ft.forum_deliveries
            rows = self.svc.run(lambda uow: uow.repo.conn.execute(
                select(d.c.id, d.c.event_id, d.c.event_type, d.c.event, d.c.instance, d.c.body)
                .where(d.c.applied_at.is_(None)).order_by(d.c.id).limit(limit)).all())
            for row in rows:
                try:
                    with log_context(delivery_id=f"webhook:{row.event_id}"):
                        self.apply_row(row)
                except (ForumNotFound, Forbidden, PostRejected) as exc:
                    # The forum says for good that what this delivery needs is gone or closed to
                    # us: it is set aside (noted), so the deliveries after it are not held up.
                    with log_context(delivery_id=f"webhook:{row.event_id}"):
                        log.warning("delivery %s set aside: %s", row.event_id, exc)
                    self._note_failure(row.id, f"set aside: {exc}")
                except ApiError as exc:
                    if isinstance(exc, RateLimited):
                        pause = exc.wait_seconds
                    else:
                        self._failures += 1
                        pause = self.backoff(self._failures)
                    self._wait_until = time.monotonic() + pause
                    with log_context(delivery_id=f"webhook:{row.event_id}"):
                        log.warning("delivery %s waits %.1f s: %s", row.event_id, pause, exc)
                    self._note_failure(row.id, str(exc))
                    report.blocked = type(exc).__name__
                    return report
                if self._failures:
                    report.recovered = True
                self._failures = 0
                report.applied += 1
                if not self._mark_applied(row.id, lease_seconds):
                    log.warning("inbox lease lost to another worker: this pass stops")
                    report.busy = True
                    return report
            return report
        finally:
            self._release_inbox()

    def forum_is_back(self) -> None:
        """The forum answered another call: the delivery waiting for it is tried at once."""
        self._failures, self._wait_until = 0, 0.0

    def apply_row(self, row) -> None:
        """Apply one stored delivery (its headers rebuilt from the stored columns)."""
        headers = {"X-Discourse-Event": row.event, "X-Discourse-Event-Type": row.event_type,
                   "X-Discourse-Event-Id": str(row.event_id)}
        if row.instance:
            headers["X-Discourse-Instance"] = row.instance
        try:
            delivery = parse_delivery(headers, bytes(row.body))
            verdict = classify(delivery, self.settings.bot_username)
        except MalformedDelivery as exc:  # checked when received; kept for the log
            log.error("stored delivery %s is malformed: %s", row.event_id, exc.reason)
            return
        if isinstance(verdict, Ignored):
            topic_post = bot_topic_post(delivery, self.settings.bot_username)
            if topic_post is not None:
                from .triage import link_topic_from_post

                slug = delivery.payload["post"].get("topic_slug")
                link_topic_from_post(self.svc, topic_post, bot_username=self.settings.bot_username,
                                     base_url=self.settings.base_url or delivery.instance,
                                     topic_slug=slug if isinstance(slug, str) else None)
            return
        self.apply_delivery(delivery, verdict)

    def apply_delivery(self, delivery: Delivery, verdict: Accepted) -> None:
        subject = verdict.subject
        if isinstance(subject, GroupUserChange):
            self.membership.forget(subject.user_id, subject.username)
            return
        if not isinstance(subject, PostSnapshot):
            return  # topic events: nothing the service keeps changes
        payload = delivery.payload.get("post") or {}
        if verdict.event in ("post_created", "post_edited"):
            self.apply_snapshot(subject, payload, delivery.instance)
        elif verdict.event == "post_destroyed":
            self._apply_deletion(subject, "destroyed")
        elif verdict.event == "post_recovered":
            self._apply_deletion(subject, "recovered")
            # The recovered post as it is now: an edit whose delivery was missed counts too. Its
            # text is re-read from the forum when the delivery did not carry it.
            current = subject if subject.raw is not None else self.forum.get_post(subject.post_id)
            if not current.is_deleted:
                self.apply_snapshot(current)

    # -- posts --------------------------------------------------------------------------------

    def apply_snapshot(self, post: PostSnapshot, payload: Mapping | None = None,
                       instance: str | None = None) -> None:
        """Apply one version of a post: its commands, then its pledge line."""
        commands = extract_commands(post.raw or "")
        # A deleted post's pledge line is still read: the engine keeps it for a recovery.
        if not post.is_deleted and any(command.name in HANDLED_COMMANDS for command in commands):
            self._run_commands(post, commands, payload or {}, instance)
        if not post.is_deleted and any(command.name in LIFECYCLE_COMMANDS for command in commands):
            from .lifecycle_forum import run_lifecycle_commands  # `/annuler`, `/transferer`, `/rappels`

            run_lifecycle_commands(self, post, commands)
        info = _commons_info(self.svc, post.topic_id)
        if info is None:
            return
        pledge_lines = [command for command in commands if command.name == "soutien"]
        amount, error, params = None, None, ()
        if len(pledge_lines) > 1:
            error = "several_pledge_lines"
        elif pledge_lines:
            try:
                amount = parse_amount(pledge_lines[0].argument)
            except AmountError as exc:
                error, params = exc.code, tuple(exc.params.items())
        if amount is None and error is None and post.version <= 1 and not self._known_pledge(post.post_id):
            return  # a post that never had a pledge line is no pledge (an edited one is kept, below)
        is_member, eligible = True, False
        if amount is not None and not post.is_deleted:
            is_member, eligible = self._member(post, info)
        handlers.apply_post(self.svc, PostChange(
            post_id=post.post_id, topic_id=post.topic_id, username=post.username, kind="snapshot",
            version=post.version, amount_cents=amount, error=error, error_params=params,
            deleted=post.is_deleted, post_number=post.post_number, is_member=is_member,
            matching_eligible=eligible))

    def _apply_deletion(self, post: PostSnapshot, kind: str) -> None:
        info = _commons_info(self.svc, post.topic_id)
        if info is None:
            return
        if not self._known_pledge(post.post_id):
            lines = [c for c in extract_commands(post.raw or "") if c.name == "soutien"]
            if not lines and not post.user_deleted:
                return  # not a pledge post; nothing to record
        is_member, eligible = True, False
        if kind == "recovered":
            is_member, eligible = self._member(post, info)
        handlers.apply_post(self.svc, PostChange(
            post_id=post.post_id, topic_id=post.topic_id, username=post.username, kind=kind,
            version=post.version, post_number=post.post_number, is_member=is_member,
            matching_eligible=eligible))

    def _member(self, post: PostSnapshot, info: _CommonsInfo) -> tuple[bool, bool]:
        """Whether the author is in the round's group, and their pledge eligible for matching."""
        in_group = self.membership.in_group
        is_member = in_group(post.username, post.user_id, info.group)
        eligible = info.matching and (info.matching_group is None
                                      or in_group(post.username, post.user_id, info.matching_group))
        return is_member, eligible

    def _is_staff(self, username: str) -> bool:
        groups = {name.casefold() for name in self.membership.groups(username)}
        return self.settings.staff_group.casefold() in groups

    def _known_pledge(self, post_id: int) -> bool:
        p = tb.pledges
        return self.svc.run(lambda uow: uow.repo.conn.execute(
            select(p.c.id).where(p.c.post_id == post_id)).first() is not None)

    # -- commands -----------------------------------------------------------------------------

    def _run_commands(self, post: PostSnapshot, commands: list[ForumCommand], payload: Mapping,
                      instance: str | None) -> None:
        """Carry out `/commun`, `/interesse`, `/referent`, `/prochaine-etape` of a post version
        newer than the last one carried out; refusals become replies to the post."""
        digest = _digest(commands)
        if not self._newer_than_done(post, digest):
            return
        lang = self.settings.language
        replies: list[str] = []
        info = _commons_info(self.svc, post.topic_id)
        commun = next((c for c in commands if c.name == "commun"), None)
        if commun is not None and info is None:
            replies.extend(self._open_commons(post, commun, payload, instance))
            info = _commons_info(self.svc, post.topic_id)
        changes: dict[str, str] = {}
        organisations: list[str] = []
        if info is not None:
            for command in commands:
                if command.name == "interesse":
                    organisations.append(command.argument.strip() or post.name or post.username)
                elif command.name in ("referent", "prochaine-etape"):
                    if not self._may_steer(post.username, info):
                        typed = command.line.split(None, 1)[0].lstrip("/")  # as the author wrote it
                        replies.append(t(lang, "Seuls l'équipe et le référent du commun peuvent "
                                               "utiliser /{command}.", command=typed))
                    elif command.name == "referent":
                        try:
                            changes["referent"] = parse_referent(command.argument)
                        except CommandSyntaxError as exc:
                            replies.append(exc.message(lang))
                    elif command.argument.strip():
                        changes["next_steps"] = command.argument.strip()
                    else:
                        replies.append(t(lang, "La commande /prochaine-etape attend un texte, par "
                                               "exemple « /prochaine-etape signer le devis »."))
        self._record_commands(post, digest, info, changes, organisations, replies)

    def _may_steer(self, username: str, info: _CommonsInfo) -> bool:
        if info.referent and info.referent.casefold().lstrip("@") == username.casefold():
            return True
        return self._is_staff(username)

    def _open_commons(self, post: PostSnapshot, command: ForumCommand, payload: Mapping,
                      instance: str | None) -> list[str]:
        """Open the topic as a commons for a staff `/commun` line; the refusals to reply, if any."""
        lang = self.settings.language
        if not self._is_staff(post.username):
            return [t(lang, "Seuls les membres du groupe « {group} » peuvent ouvrir un commun avec "
                            "/commun.", group=self.settings.staff_group)]
        try:
            arguments = parse_commun_arguments(command.argument)
            goal = parse_amount(arguments["objectif"])
            cap = parse_amount(arguments["plafond"]) if "plafond" in arguments else None
        except CommandSyntaxError as exc:
            return [exc.message(lang)]
        except AmountError as exc:
            return [texts.reason(exc.code, lang, **exc.params)]
        slug = arguments.get("campagne")
        if slug is None:
            open_rounds = [r for r in handlers.list_rounds(self.svc) if r["status"] == OPEN_ROUND]
            if len(open_rounds) != 1:
                if not open_rounds:
                    return [t(lang, "Aucune campagne n'est ouverte : le commun ne peut pas être ouvert.")]
                listing = ", ".join(f"{r['slug']} ({r['name']})" for r in open_rounds)
                return [t(lang, "Plusieurs campagnes sont ouvertes : précisez-en une avec "
                                "campagne=… parmi {rounds}.", rounds=listing)]
            slug = open_rounds[0]["slug"]
        title = payload.get("topic_title") if isinstance(payload.get("topic_title"), str) else None
        if not title:
            title = self.forum.get_topic(post.topic_id).topic.title
        base = (self.settings.base_url or instance or "").rstrip("/")
        topic_slug = payload.get("topic_slug")
        url = (f"{base}/t/{topic_slug}/{post.topic_id}" if isinstance(topic_slug, str) and topic_slug
               else f"{base}/t/{post.topic_id}") if base else None
        try:
            handlers.open_commons(self.svc, CommonsSpec(
                round_slug=slug, title=title, goal_cents=goal, cap_cents=cap, topic_id=post.topic_id,
                first_post_number=post.post_number, discussion_url=url))
        except EngineError as exc:
            if exc.code == "duplicate_topic":
                return []
            return [texts.reason(exc.code, lang, **exc.params)]
        log.info("topic %s opened as a commons by %s", post.topic_id, post.username)
        return []

    def _newer_than_done(self, post: PostSnapshot, digest: str) -> bool:
        c = ft.forum_post_commands
        done = self.svc.run(lambda uow: uow.repo.conn.execute(
            select(c.c.version, c.c.digest).where(c.c.post_id == post.post_id)).first())
        return _is_newer(done, post.version, digest)

    def _record_commands(self, post: PostSnapshot, digest: str, info: _CommonsInfo | None,
                         changes: dict[str, str], organisations: list[str], replies: list[str]) -> None:
        """In one transaction: the commons' new details, the replies, and the version carried out."""

        def use_case(uow: UnitOfWork) -> None:
            conn = uow.repo.conn
            c = ft.forum_post_commands
            done = conn.execute(select(c.c.version, c.c.digest).where(c.c.post_id == post.post_id)).first()
            if not _is_newer(done, post.version, digest):
                return  # another worker did it
            if done is None:
                conn.execute(insert(c).values(post_id=post.post_id, version=post.version, digest=digest))
            else:
                conn.execute(update(c).where(c.c.post_id == post.post_id)
                             .values(version=post.version, digest=digest))
            if info is not None and (changes or organisations):
                commons = uow.repo.commons(info.commons_id)
                before = (commons.referent, commons.next_steps, commons.organisations)
                if "referent" in changes:
                    commons.referent = changes["referent"]
                if "next_steps" in changes:
                    commons.next_steps = changes["next_steps"]
                listed = [name.strip() for name in (commons.organisations or "").split(",") if name.strip()]
                for name in organisations:
                    if name.casefold() not in {known.casefold() for known in listed}:
                        listed.append(name)
                commons.organisations = ", ".join(listed) or None
                if (commons.referent, commons.next_steps, commons.organisations) != before:
                    outbox.commons_changed(uow.repo, commons.id, commons.round_id)
            for index, message in enumerate(replies):
                key = f"{outbox.REPLY}:command:{post.post_id}:{post.version}:{digest[:12]}:{index}"
                uow.repo.enqueue(outbox.REPLY, key,
                                 {"topic_id": post.topic_id, "post_number": post.post_number,
                                  "username": post.username, "message": message})
            uow.commit()

        self.svc.run(use_case)

    # -- the inbox lease ----------------------------------------------------------------------

    def _take_inbox(self, lease_seconds: float) -> bool:
        now = self.svc.clock().timestamp()
        lock = ft.forum_locks

        def use_case(uow: UnitOfWork) -> bool:
            taken = uow.repo.conn.execute(
                update(lock).where(lock.c.name == "inbox",
                                   or_(lock.c.until.is_(None), lock.c.until < now,
                                       lock.c.holder == self.worker_id))
                .values(holder=self.worker_id, until=now + lease_seconds)).rowcount == 1
            uow.commit()
            return taken

        return self.svc.run(use_case)

    def _release_inbox(self) -> None:
        lock = ft.forum_locks

        def use_case(uow: UnitOfWork) -> None:
            uow.repo.conn.execute(update(lock).where(lock.c.name == "inbox",
                                                     lock.c.holder == self.worker_id)
                                  .values(holder=None, until=None))
            uow.commit()

        self.svc.run(use_case)

    def _mark_applied(self, row_id: int, lease_seconds: float) -> bool:
        """Mark the delivery applied and renew this worker's inbox lease, in one commit; False if
        the lease ran out and another worker holds the inbox now."""
        d, lock = ft.forum_deliveries, ft.forum_locks
        now = _utc(self.svc.clock())

        def use_case(uow: UnitOfWork) -> bool:
            conn = uow.repo.conn
            conn.execute(update(d).where(d.c.id == row_id).values(applied_at=now))
            held = conn.execute(update(lock).where(lock.c.name == "inbox", lock.c.holder == self.worker_id)
                                .values(until=now.timestamp() + lease_seconds)).rowcount == 1
            uow.commit()
            return held

        return self.svc.run(use_case)

    def _note_failure(self, row_id: int, error: str) -> None:
        d = ft.forum_deliveries

        def use_case(uow: UnitOfWork) -> None:
            uow.repo.conn.execute(update(d).where(d.c.id == row_id)
                                  .values(attempts=d.c.attempts + 1, last_error=error[:500]))
            uow.commit()

        self.svc.run(use_case)


def _digest(commands: list[ForumCommand]) -> str:
    """A fingerprint of a post's command lines (a quick edit may keep the version)."""
    text = "\n".join(f"{c.name} {c.argument}" for c in commands if c.name in HANDLED_COMMANDS)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_newer(done, version: int, digest: str) -> bool:
    """Whether a post's commands at `version` (`digest`) are to be carried out after `done`."""
    if done is None:
        return True
    return version > done.version or (version == done.version and digest != done.digest)


def forget_applied_deliveries(svc: Service, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete deliveries applied more than `older_than` ago (their effects are in the ledger)."""
    d = ft.forum_deliveries
    limit = _utc(svc.clock()) - older_than

    def use_case(uow: UnitOfWork) -> int:
        count = uow.repo.conn.execute(delete(d).where(d.c.applied_at.is_not(None),
                                                      d.c.applied_at < limit)).rowcount
        uow.commit()
        return count

    return svc.run(use_case)


# --- reconcile -------------------------------------------------------------------------------------


def reconcile_topic(applier: DeliveryApplier, forum, topic_id: int) -> int:
    """Re-apply every post of a commons topic in post order, as if each had just been delivered.

    The engine ignores a version it has seen, so an unchanged refused post stays refused; a post
    that disappeared from the forum (404) is treated as destroyed. Returns how many posts were read.
    """
    count = 0
    seen: set[int] = set()
    for post in forum.iter_topic_posts(topic_id):
        seen.add(post.post_id)
        if post.username.casefold() == applier.settings.bot_username.casefold():
            continue
        if post.is_private_message or post.is_whisper or post.is_small_action:
            continue
        applier.apply_snapshot(post)
        if not post.is_deleted and _pledge_deleted(applier.svc, post.post_id):
            # Deletion and recovery keep the version, so a late `post_destroyed` can outlive the
            # `post_recovered` after it; the forum shows the post live: it is recovered.
            applier._apply_deletion(post, "recovered")
        count += 1
    p, c = tb.pledges, tb.commons
    known = applier.svc.run(lambda uow: uow.repo.conn.execute(
        select(p.c.post_id).select_from(p.join(c, c.c.id == p.c.commons_id))
        .where(c.c.topic_id == topic_id, p.c.deleted.is_(False))).scalars().all())
    for post_id in known:
        if post_id in seen:
            continue
        try:
            post = forum.get_post(post_id)
        except ForumNotFound:
            info = _commons_info(applier.svc, topic_id)
            pledge = applier.svc.run(lambda uow: uow.repo.pledge_by_post(post_id))
            if info is not None and pledge is not None:
                handlers.apply_post(applier.svc, PostChange(
                    post_id=post_id, topic_id=topic_id, username=pledge.username, kind="destroyed",
                    version=pledge.version, post_number=pledge.post_number))
            continue
        applier.apply_snapshot(post)
        count += 1
    return count


def _pledge_deleted(svc: Service, post_id: int) -> bool:
    p = tb.pledges
    return bool(svc.run(lambda uow: uow.repo.conn.execute(
        select(p.c.deleted).where(p.c.post_id == post_id)).scalar()))


def commons_topics(svc: Service) -> list[int]:
    """The topic ids of every commons that has one."""
    c = tb.commons
    return svc.run(lambda uow: list(uow.repo.conn.execute(
        select(c.c.topic_id).where(c.c.topic_id.is_not(None)).order_by(c.c.id)).scalars()))


# --- the rate limit shared by all workers ----------------------------------------------------------


class DatabaseRateLimiter:
    """At most `max_per_minute` forum requests in any 60 s, counted across every process.

    Each request is a row of `forum_api_calls`; `acquire()` counts the rows of the last window
    under a lock (the `api` row of `forum_locks`, `SELECT … FOR UPDATE` on PostgreSQL; SQLite
    serialises writers already) and sleeps until the oldest leaves the window when it is full.
    The window counted is `margin_seconds` longer than the forum's: the forum counts a request
    when it arrives, a moment after it was counted here, and a request that took longer on the
    way than a later one would otherwise put one more than the ceiling in the forum's minute.
    """

    def __init__(self, engine, max_per_minute: int, *, window_seconds: float = 60.0,
                 margin_seconds: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if max_per_minute < 1:
            raise ValueError("max_per_minute must be at least 1")
        self.engine = engine
        self.max_per_minute = max_per_minute
        self.window_seconds = window_seconds + margin_seconds
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"DatabaseRateLimiter(max_per_minute={self.max_per_minute})"

    def acquire(self) -> None:
        """Block until one more request fits in the window, then count it."""
        while True:
            wait = self._try()
            if wait is None:
                return
            self._sleep(max(wait, 0.01))

    def _try(self) -> float | None:
        calls, lock = ft.forum_api_calls, ft.forum_locks
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(lock.c.name).where(lock.c.name == "api").with_for_update())
            now = self._clock()
            start = now - self.window_seconds
            conn.execute(delete(calls).where(calls.c.at <= start - self.window_seconds))
            count, oldest = conn.execute(
                select(func.count(), func.min(calls.c.at)).where(calls.c.at > start)).one()
            if count < self.max_per_minute:
                conn.execute(insert(calls).values(at=now))
                return None
            return oldest + self.window_seconds - now
