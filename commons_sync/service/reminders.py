"""Reminders before a round closes, and notices before a recurring round's balances expire.

Who: the members of the round's forum group (`GET /groups/{name}/members.json`) who still have
budget (a member the service has not seen yet has the whole allocation) and have not said
`/rappels non`. What: a private message with their balance and the commons closest to its goal.
When: `remind_days` before the close (default 7 and 2; the latest one due is sent, so a worker
that was down never sends both at once), and, for `--recurring yearly --unspent expire`, 30 days
before the next anniversary, when the unspent balance expires.

Once: a row per (round, reminder, member) under a unique constraint, written in the transaction
that queues the message. Spread: the messages go through the outbox with `not_before` spaced so
reminders use at most `REMINDER_SHARE` of COMMONS_SYNC_DISCOURSE_MAX_RPM, after any reminders
already queued; status posts and replies keep the rest. At 50 requests a minute that is 25
messages a minute: 5,000 members take 200 minutes (3 h 20), plus 100 requests to read the group
(50 members a page); the shared rate limiter never lets the total pass the ceiling.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import func, insert, select

from commons_sync.engine import rules
from commons_sync.engine.errors import NotFound
from commons_sync.engine.model import MemberAccount, Round, Status
from commons_sync.i18n import t
from commons_sync.storage import lifecycle_tables as lt
from commons_sync.storage.repository import _upsert_outbox

from .handlers import Service
from .lifecycle_texts import money, render
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

REMINDER_PM = "reminder_pm"        # outbox kind: one private message
REMINDER_SHARE = 0.5               # of the API ceiling, at most, for reminders
EXPIRY_NOTICE_DAYS = 30
PLANNED = "planned:"               # lifecycle_announcements kind prefix: a reminder queued for a round


def spacing_seconds(max_rpm: int, share: float = REMINDER_SHARE) -> float:
    """Seconds between two reminders so they use at most `share` of `max_rpm`."""
    return 60.0 / max(1.0, max_rpm * share)


def duration_minutes(members: int, max_rpm: int, share: float = REMINDER_SHARE) -> float:
    """How long `members` reminders take under the ceiling (5,000 at 50/min: 200 minutes)."""
    return members * spacing_seconds(max_rpm, share) / 60.0


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


# --- what is due -------------------------------------------------------------------------------------


def due_close_reminder(round_: Round, now: datetime) -> str | None:
    """The latest close reminder due ("7", "2"…), or None."""
    if not round_.is_open(now) or round_.closes_at is None:
        return None
    for days in sorted(round_.remind_days):
        if now >= round_.closes_at - timedelta(days=days):
            return str(days)
    return None


def next_expiry(round_: Round, now: datetime) -> datetime | None:
    """When unspent balances next expire (the next anniversary), for recurring rounds that expire them."""
    if round_.recurring != "yearly" or round_.unspent != "expire" or not round_.is_open(now):
        return None
    opens = round_.opens_at
    year = opens.year + round_.periods_due(now)
    try:
        moment = opens.replace(year=year)
    except ValueError:  # 29 February
        moment = opens.replace(year=year, day=28)
    if round_.closes_at is not None and round_.closes_at <= moment:
        return None
    return moment


def due_expiry_notice(round_: Round, now: datetime) -> str | None:
    """"expiry:<period>" when a recurring round's balances expire within 30 days, else None."""
    moment = next_expiry(round_, now)
    if moment is None or now < moment - timedelta(days=EXPIRY_NOTICE_DAYS):
        return None
    return f"expiry:{round_.periods_due(now)}"


# --- who gets what -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    commons_id: int
    title: str
    raised_cents: int
    goal_cents: int
    link: str


@dataclass(frozen=True)
class PlannedReminder:
    username: str
    balance_cents: int
    suggestion: Suggestion | None
    reminder: str
    send_after: datetime | None = None


def _balance(account: MemberAccount | None, round_: Round, username: str, now: datetime) -> int:
    preview = dataclasses.replace(account) if account is not None else MemberAccount(round_.id, username)
    rules.credit_due(preview, round_, now)  # on a copy: nothing is written
    return preview.balance_cents


def _suggestions(uow: UnitOfWork, round_: Round) -> tuple[list[Suggestion], dict[int, set[str]]]:
    """Open commons of the round, closest to their goal first, and who already supports each."""
    items = [c for c in uow.repo.commons_of_round(round_.id)
             if c.status is Status.FUNDING and c.goal_cents and c.topic_id is not None]
    items.sort(key=lambda c: (c.goal_cents - c.raised_cents, c.title.casefold(), c.id))
    names = uow.repo.cofunder_names([c.id for c in items])
    return ([Suggestion(c.id, c.title, c.raised_cents, c.goal_cents, c.discussion_url or f"/t/{c.topic_id}")
             for c in items], {key: {n.casefold() for n in value} for key, value in names.items()})


def _suggest(suggestions: list[Suggestion], supporters: dict[int, set[str]], username: str) -> Suggestion | None:
    """The commons closest to its goal that the member does not support yet (else the closest)."""
    key = username.casefold()
    for suggestion in suggestions:
        if key not in supporters.get(suggestion.commons_id, set()):
            return suggestion
    return suggestions[0] if suggestions else None


def opted_out(conn) -> set[str]:
    p = lt.lifecycle_reminder_prefs
    return set(conn.execute(select(p.c.username).where(p.c.opted_out.is_(True))).scalars())


def plan_in(uow: UnitOfWork, round_: Round, members: list[str], reminder: str, now: datetime) -> list[PlannedReminder]:
    """Who gets `reminder` now: members with budget, not opted out, not reminded yet (no writes)."""
    conn = uow.repo.conn
    r = lt.lifecycle_reminders
    done = set(conn.execute(select(r.c.username).where(r.c.round_id == round_.id,
                                                       r.c.reminder == reminder)).scalars())
    skip = done | opted_out(conn)
    accounts = {a.username.casefold(): a for a in uow.repo.accounts(round_.id)}
    suggestions, supporters = _suggestions(uow, round_)
    planned, seen = [], set()
    for username in members:
        key = username.casefold()
        if key in seen or key in skip:
            continue
        seen.add(key)
        balance = _balance(accounts.get(key), round_, username, now)
        if balance > 0:
            planned.append(PlannedReminder(username, balance, _suggest(suggestions, supporters, username),
                                           reminder))
    return planned


def queue_in(uow: UnitOfWork, round_: Round, planned: list[PlannedReminder], now: datetime,
             spacing: float) -> list[PlannedReminder]:
    """Record each reminder once and queue its message, spaced after the reminders already queued."""
    conn = uow.repo.conn
    r = lt.lifecycle_reminders
    tail = _aware(conn.execute(select(func.max(r.c.send_after))).scalar())
    start = max(now, tail + timedelta(seconds=spacing)) if tail is not None else now
    queued = [dataclasses.replace(p, send_after=start + timedelta(seconds=i * spacing))
              for i, p in enumerate(planned)]
    if not queued:
        return []
    conn.execute(insert(r), [dict(round_id=round_.id, reminder=p.reminder, username=p.username.casefold(),
                                  balance_cents=p.balance_cents,
                                  commons_id=p.suggestion.commons_id if p.suggestion else None,
                                  queued_at=now, send_after=p.send_after) for p in queued])
    conn.execute(_upsert_outbox(conn.dialect.name), [dict(
        kind=REMINDER_PM, key=f"{REMINDER_PM}:{round_.id}:{p.reminder}:{p.username.casefold()}",
        payload=json.dumps({"reminder": p.reminder, "round_id": round_.id, "username": p.username},
                           sort_keys=True),
        created_at=now, updated_at=now, not_before=p.send_after) for p in queued])
    return queued


def _round(uow: UnitOfWork, slug: str) -> Round:
    round_ = uow.repo.round_by_slug(slug)
    if round_ is None:
        raise NotFound("not_found", what="round", key=slug)
    return round_


def reminder_now(round_: Round, now: datetime) -> str:
    """The reminder `round remind` sends: the one due, else one for today ("manual:YYYY-MM-DD")."""
    return due_close_reminder(round_, now) or f"manual:{now.date().isoformat()}"


def plan_reminders(svc: Service, slug: str, members: list[str], reminder: str | None = None
                   ) -> tuple[str, list[PlannedReminder]]:
    """Who would get which reminder now, without sending (`round remind --dry-run`)."""
    now = svc.clock()

    def use_case(uow: UnitOfWork):
        round_ = _round(uow, slug)
        label = reminder or reminder_now(round_, now)
        return label, plan_in(uow, round_, members, label, now)

    return svc.run(use_case)


def queue_reminders(svc: Service, slug: str, members: list[str], *, max_rpm: int,
                    reminder: str | None = None) -> tuple[str, list[PlannedReminder]]:
    """Queue the reminder now for every member who should get it (`round remind`)."""
    now = svc.clock()

    def use_case(uow: UnitOfWork):
        round_ = _round(uow, slug)
        label = reminder or reminder_now(round_, now)
        queued = queue_in(uow, round_, plan_in(uow, round_, members, label, now), now,
                          spacing_seconds(max_rpm))
        uow.commit()
        return label, queued

    return svc.run(use_case)


def set_reminders(uow: UnitOfWork, username: str, on: bool, post_id: int, now: datetime) -> None:
    """`/rappels oui|non`: the member's choice, kept across rounds."""
    p = lt.lifecycle_reminder_prefs
    conn = uow.repo.conn
    key = username.casefold()
    if conn.execute(select(p.c.username).where(p.c.username == key)).first() is None:
        conn.execute(insert(p).values(username=key, opted_out=not on, post_id=post_id, updated_at=now))
    else:
        conn.execute(p.update().where(p.c.username == key).values(opted_out=not on, post_id=post_id,
                                                                  updated_at=now))


# --- the worker's task -------------------------------------------------------------------------------


class ReminderTask:
    """Queue each round's due reminders once (read the group, then queue spaced messages).

    Runs at most every `every_seconds`; a reminder already queued for a round is remembered in
    `lifecycle_announcements` ("planned:<reminder>"), so the group is read once per reminder.
    """

    def __init__(self, svc: Service, forum, max_rpm: int, every_seconds: float = 60.0) -> None:
        self.svc = svc
        self.forum = forum
        self.max_rpm = max_rpm
        self.every_seconds = every_seconds
        self._last: float | None = None
        self.__name__ = "reminders"

    def due(self) -> list[tuple[Round, str]]:
        """(round, reminder) pairs due now and not queued yet."""
        now = self.svc.clock()
        a = lt.lifecycle_announcements

        def use_case(uow: UnitOfWork):
            planned = set(uow.repo.conn.execute(select(a.c.kind, a.c.subject_id)
                                                .where(a.c.kind.like(f"{PLANNED}%"))).all())
            pairs = []
            for round_ in uow.repo.rounds():
                for label in (due_close_reminder(round_, now), due_expiry_notice(round_, now)):
                    if label is not None and (f"{PLANNED}{label}", round_.id) not in planned:
                        pairs.append((round_, label))
            return pairs

        return self.svc.run(use_case)

    def __call__(self) -> int:
        moment = time.monotonic()
        if self._last is not None and moment - self._last < self.every_seconds:
            return 0
        self._last = moment
        count = 0
        for round_, label in self.due():
            members = [m.username for m in self.forum.group_members(round_.group)]
            now = self.svc.clock()

            def use_case(uow: UnitOfWork, round_=round_, label=label, members=members):
                fresh = uow.repo.round(round_.id, lock=True)
                queued = queue_in(uow, fresh, plan_in(uow, fresh, members, label, now), now,
                                  spacing_seconds(self.max_rpm))
                uow.repo.conn.execute(insert(lt.lifecycle_announcements).values(
                    kind=f"{PLANNED}{label}", subject_id=round_.id, sent_at=now))
                uow.commit()
                return len(queued)

            queued = self.svc.run(use_case)
            log.info("round %s: reminder %s queued for %d members", round_.slug, label, queued)
            count += queued
        return count


# --- sending -------------------------------------------------------------------------------------------


class ReminderSender:
    """Sends one queued reminder as a private message, with the figures at send time.

    A member who opted out since it was queued, or has no budget left, gets nothing.
    """

    def __init__(self, svc: Service, forum, lang: str = "fr", zone: ZoneInfo | None = None) -> None:
        self.svc = svc
        self.forum = forum
        self.lang = lang
        self.zone = zone or ZoneInfo("Europe/Paris")

    def message(self, payload: dict) -> tuple[str, str] | None:
        """The (title, text) of the reminder, or None when there is nothing to send any more."""
        now = self.svc.clock()
        username = payload["username"]

        def use_case(uow: UnitOfWork):
            round_ = uow.repo.round(payload["round_id"])
            if round_ is None or username.casefold() in opted_out(uow.repo.conn):
                return None
            planned = plan_in_one(uow, round_, username, now)
            return round_, planned

        found = self.svc.run(use_case)
        if found is None or found[1] is None:
            return None
        round_, planned = found
        lang, fmt = self.lang, money(round_.currency, self.lang)
        suggestion = None
        if planned.suggestion is not None:
            s = planned.suggestion
            suggestion = {"title": s.title, "raised": fmt(s.raised_cents), "goal": fmt(s.goal_cents),
                          "missing": fmt(max(0, s.goal_cents - s.raised_cents)), "link": s.link}
        balance = fmt(planned.balance_cents)
        title = t(lang, "Campagne « {round} » : il vous reste {balance} à promettre", round=round_.name,
                  balance=balance)
        if payload["reminder"].startswith("expiry:"):
            expires = next_expiry(round_, now) or now
            raw = render("expiry_pm.md.j2", lang, username=username, round_name=round_.name,
                         balance=balance, suggestion=suggestion,
                         expires=format_date(expires.astimezone(self.zone).date(), "long", locale=lang))
        else:
            closes = round_.closes_at or now
            days = max(0, (closes.astimezone(self.zone).date() - now.astimezone(self.zone).date()).days)
            raw = render("reminder_pm.md.j2", lang, username=username, round_name=round_.name, days=days,
                         closes=format_date(closes.astimezone(self.zone).date(), "long", locale=lang),
                         balance=balance, suggestion=suggestion)
        return title, raw

    def send(self, payload: dict) -> None:
        message = self.message(payload)
        if message is not None:
            self.forum.create_private_message(message[0], message[1], [payload["username"]])


def plan_in_one(uow: UnitOfWork, round_: Round, username: str, now: datetime) -> PlannedReminder | None:
    """One member's figures now (balance, suggestion), or None without budget."""
    account = uow.repo.account(round_.id, username)
    balance = _balance(account, round_, username, now)
    if balance <= 0:
        return None
    suggestions, supporters = _suggestions(uow, round_)
    return PlannedReminder(username, balance, _suggest(suggestions, supporters, username), "")


