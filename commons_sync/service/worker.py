"""The worker: apply stored deliveries, then deliver the outbox, under the forum's rate limit.

`run_once` does it until nothing is due (`commons-sync worker --once`); `run_forever` loops.
Outbox rows are claimed one at a time (`claimed_until`, so several workers never send one row
twice at once), sent, then marked done only if their `seq` did not change while sending: a change
coalesced into the row meanwhile (a new pledge) makes it go again with the state at that time.
Failures never drop a row: a 429 sets `not_before` to when the forum allows the next request, any
other failure backs off exponentially (`attempts`).

Only the kinds of adapters that are on have a sender; the others stay pending and are not counted.
Status posts are rendered from the database at send time; in the loop, a status post changed in
the last `quiet_seconds` waits (at most `max_delay_seconds`) so a burst makes one edit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select, update

from commons_sync.discourse.errors import NotFound as ForumNotFound
from commons_sync.discourse.errors import PostEnqueued, RateLimited, Unavailable
from commons_sync.discourse.status_post import (
    MARKER,
    Refusal,
    StatusFigures,
    render_command_reply,
    render_funded_notice,
    render_refusal_reply,
    render_round_results,
    render_status_post,
)
from commons_sync.engine.model import Status
from commons_sync.logs import log_context
from commons_sync.mediawiki.errors import WikiUnavailable
from commons_sync.storage import tables as tb

from . import handlers, outbox
from .forum import ApplyReport, DeliveryApplier, forget_applied_deliveries
from .handlers import Service
from .unit_of_work import DatabaseUnavailable, UnitOfWork

log = logging.getLogger(__name__)

Sender = Callable[[dict], None]
RATE_LIMITED = "rate limited"
MAX_BACKOFF_SECONDS = 3600.0


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def backoff_seconds(attempts: int, base: float = 2.0, ceiling: float = MAX_BACKOFF_SECONDS) -> float:
    """Wait after the `attempts`-th failure in a row: `base`, twice, four times … (2, 4, 8 … s by
    default), at most `ceiling` (an hour by default)."""
    return min(ceiling, base * 2.0 ** (max(1, attempts) - 1))


# --- the outbox ------------------------------------------------------------------------------------


@dataclass
class OutboxReport:
    """What one pass over the outbox did."""

    sent: int = 0
    failed: int = 0
    requeued: int = 0  # changed while sending: sent again with the newer state
    deferred: int = 0  # status posts waiting for a burst to settle
    errors: list[str] = field(default_factory=list)
    peers_down: set[str] = field(default_factory=set)  # a send to that peer failed (not a 429)
    peers_up: set[str] = field(default_factory=set)  # a send to that peer went through
    peers_back: set[str] = field(default_factory=set)  # ... and it was a row that had failed before

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.requeued


def deliver_outbox(svc: Service, senders: Mapping[str, Sender], *, flush: bool = True,
                   quiet_seconds: float = 1.0, max_delay_seconds: float = 10.0,
                   lease_seconds: float = 300.0, limit: int = 200,
                   backoff: Callable[[int], float] = backoff_seconds) -> OutboxReport:
    """Send the due outbox rows of the kinds in `senders`, oldest first; a failed row waits
    `backoff(attempts)` seconds."""
    report = OutboxReport()
    now = _utc(svc.clock())
    o = tb.outbox
    rows = svc.run(lambda uow: uow.repo.conn.execute(
        select(o.c.id, o.c.kind, o.c.created_at, o.c.updated_at, o.c.attempts, o.c.last_error)
        .where(o.c.done_at.is_(None), o.c.kind.in_(list(senders)), o.c.not_before <= now,
               or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
        .order_by(o.c.id).limit(limit)).all())
    for row in rows:
        if not flush and row.kind in outbox.SETTLING_KINDS:
            updated, created = _aware(row.updated_at), _aware(row.created_at)
            if (updated > now - timedelta(seconds=quiet_seconds)
                    and created > now - timedelta(seconds=max_delay_seconds)):
                report.deferred += 1
                continue
        claimed = _claim(svc, row.id, lease_seconds)
        if claimed is None:
            continue
        seq, payload = claimed
        try:
            with log_context(delivery_id=f"outbox:{row.id}"):
                senders[row.kind](payload)
        except RateLimited as exc:
            _release(svc, row.id, not_before_seconds=exc.wait_seconds, error=f"{RATE_LIMITED}: {exc}",
                     count_attempt=False)
            report.failed += 1
            report.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the row stays and backs off
            with log_context(delivery_id=f"outbox:{row.id}"):
                log.warning("outbox %s %s failed: %s", row.kind, row.id, exc)
            _release(svc, row.id, error=f"{type(exc).__name__}: {exc}", count_attempt=True,
                     backoff=backoff)
            report.failed += 1
            report.errors.append(f"{type(exc).__name__}: {exc}")
            if outbox.peer_of(row.kind) and isinstance(exc, PEER_OUTAGES):
                report.peers_down.add(outbox.peer_of(row.kind))
        else:
            if outbox.peer_of(row.kind):
                report.peers_up.add(outbox.peer_of(row.kind))
                if row.attempts and _failed_on_an_outage(row.last_error):
                    report.peers_back.add(outbox.peer_of(row.kind))
            if _complete(svc, row.id, seq):
                report.sent += 1
            else:
                report.requeued += 1
    return report


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _claim(svc: Service, row_id: int, lease_seconds: float) -> tuple[int, dict] | None:
    now = _utc(svc.clock())
    o = tb.outbox

    def use_case(uow: UnitOfWork):
        conn = uow.repo.conn
        taken = conn.execute(
            update(o).where(o.c.id == row_id, o.c.done_at.is_(None),
                            or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
            .values(claimed_until=now + timedelta(seconds=lease_seconds))).rowcount
        if taken != 1:
            return None
        row = conn.execute(select(o.c.seq, o.c.payload).where(o.c.id == row_id)).one()
        uow.commit()
        return row.seq, json.loads(row.payload or "{}")

    return svc.run(use_case)


def _complete(svc: Service, row_id: int, seq: int) -> bool:
    """Mark the row done if nothing was coalesced into it while sending; else free it to go again."""
    now = _utc(svc.clock())
    o = tb.outbox

    def use_case(uow: UnitOfWork) -> bool:
        conn = uow.repo.conn
        done = conn.execute(update(o).where(o.c.id == row_id, o.c.seq == seq)
                            .values(done_at=now, claimed_until=None, last_error=None)).rowcount == 1
        if not done:
            conn.execute(update(o).where(o.c.id == row_id).values(claimed_until=None))
        uow.commit()
        return done

    return svc.run(use_case)


def _release(svc: Service, row_id: int, *, error: str, count_attempt: bool,
             not_before_seconds: float | None = None,
             backoff: Callable[[int], float] = backoff_seconds) -> None:
    now = _utc(svc.clock())
    o = tb.outbox

    def use_case(uow: UnitOfWork) -> None:
        conn = uow.repo.conn
        attempts = conn.execute(select(o.c.attempts).where(o.c.id == row_id)).scalar_one()
        if count_attempt:
            attempts += 1
        wait = not_before_seconds if not_before_seconds is not None else backoff(attempts)
        conn.execute(update(o).where(o.c.id == row_id).values(
            attempts=attempts, last_error=error[:1000], claimed_until=None,
            not_before=now + timedelta(seconds=wait)))
        uow.commit()

    svc.run(use_case)


# Failures that say the peer is down, not that it refused this row (a 403, a 422, a bug): only
# these make the worker probe the peer and release its waiting rows when it answers again.
PEER_OUTAGES = (Unavailable, WikiUnavailable)


def _failed_on_an_outage(last_error: str | None) -> bool:
    return bool(last_error) and last_error.startswith(tuple(f"{cls.__name__}:" for cls in PEER_OUTAGES))


def _backing_off(kinds: Iterable[str], now: datetime):
    """Rows of `kinds` waiting after an outage of their peer (not a 429's wait, not a refusal,
    not claimed)."""
    o = tb.outbox
    return (o.c.done_at.is_(None), o.c.kind.in_(list(kinds)), o.c.attempts > 0, o.c.not_before > now,
            or_(*(o.c.last_error.like(f"{cls.__name__}:%") for cls in PEER_OUTAGES)),
            or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))


def release_backing_off(svc: Service, kinds: Iterable[str]) -> int:
    """The peer answers again: its rows that were backing off after failures are due now."""
    now = _utc(svc.clock())
    o = tb.outbox

    def use_case(uow: UnitOfWork) -> int:
        count = uow.repo.conn.execute(update(o).where(*_backing_off(kinds, now)).values(not_before=now)).rowcount
        uow.commit()
        return count

    return svc.run(use_case)


def probe_one(svc: Service, kinds: Iterable[str]) -> bool:
    """Make the backing-off row of `kinds` due soonest due now, to see whether its peer is back."""
    now = _utc(svc.clock())
    o = tb.outbox

    def use_case(uow: UnitOfWork) -> bool:
        conn = uow.repo.conn
        row_id = conn.execute(select(o.c.id).where(*_backing_off(kinds, now))
                              .order_by(o.c.not_before).limit(1)).scalar()
        if row_id is None:
            return False
        conn.execute(update(o).where(o.c.id == row_id).values(not_before=now))
        uow.commit()
        return True

    return svc.run(use_case)


def pending_rows(svc: Service, kinds: Iterable[str]) -> list:
    """The outbox rows not done yet of these kinds (id, kind, not_before, attempts, last_error)."""
    o = tb.outbox
    return svc.run(lambda uow: uow.repo.conn.execute(
        select(o.c.id, o.c.kind, o.c.key, o.c.not_before, o.c.attempts, o.c.last_error)
        .where(o.c.done_at.is_(None), o.c.kind.in_(list(kinds))).order_by(o.c.id)).all())


def forget_sent_rows(svc: Service, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete outbox rows sent more than `older_than` ago, so that the outbox does not grow for
    years. A status post's last send is kept: the next send's latency is measured from it
    (`ops._last_status_edit`). Nothing reads the other sent rows: a pending row alone decides
    whether a side effect is queued."""
    o, newer = tb.outbox, tb.outbox.alias("newer")
    limit = _utc(svc.clock()) - older_than
    sent_again = (select(newer.c.id).where(newer.c.key == o.c.key, newer.c.id > o.c.id,
                                          newer.c.done_at.is_not(None)).exists())

    def use_case(uow: UnitOfWork) -> int:
        count = uow.repo.conn.execute(delete(o).where(
            o.c.done_at.is_not(None), o.c.done_at < limit,
            or_(o.c.kind != outbox.STATUS_POST, sent_again))).rowcount
        uow.commit()
        return count

    return svc.run(use_case)


def enqueue_daily_status_refresh(svc: Service, zone: ZoneInfo) -> int:
    """Queue an edit of every status post not sent yet today (in `zone`), so "days left" stays true.

    Only commons of rounds not closed, whose status post exists; a pending row is left alone.
    Returns how many edits were queued.
    """
    now = _utc(svc.clock())
    today_start = datetime.combine(now.astimezone(zone).date(), dt_time.min, tzinfo=zone)
    c, r, o = tb.commons, tb.rounds, tb.outbox

    def use_case(uow: UnitOfWork) -> int:
        conn = uow.repo.conn
        commons = conn.execute(
            select(c.c.id).select_from(c.join(r, r.c.id == c.c.round_id))
            .where(c.c.topic_id.is_not(None), c.c.status_post_id.is_not(None), r.c.closed_at.is_(None))
        ).scalars().all()
        if not commons:
            return 0
        recent = set(conn.execute(select(o.c.key).where(
            o.c.kind == outbox.STATUS_POST,
            or_(o.c.done_at.is_(None), o.c.done_at >= _utc(today_start)))).scalars())
        queued = 0
        for commons_id in commons:
            key = f"{outbox.STATUS_POST}:{commons_id}"
            if key not in recent:
                uow.repo.enqueue(outbox.STATUS_POST, key, {"commons_id": commons_id}, now=now)
                queued += 1
        uow.commit()
        return queued

    return svc.run(use_case)


# --- the forum's outbox kinds ------------------------------------------------------------------------


class ForumSenders:
    """Sends the forum's outbox kinds through a `DiscourseClient`: status posts, replies, notices.

    Args:
        svc: the service (state is read at send time).
        forum: the client (its limiter keeps the calls under the ceiling).
        bot_username: the API user, whose posts are searched for the status-post marker.
        lang: `fr` or `en`.
        zone: the time zone dates are shown in.
    """

    def __init__(self, svc: Service, forum, bot_username: str, lang: str = "fr",
                 zone: ZoneInfo | None = None) -> None:
        self.svc = svc
        self.forum = forum
        self.bot_username = bot_username
        self.lang = lang
        self.zone = zone or ZoneInfo("Europe/Paris")

    def senders(self) -> dict[str, Sender]:
        return {outbox.STATUS_POST: self.send_status_post, outbox.REPLY: self.send_reply,
                outbox.FUNDED_NOTICE: self.send_funded_notice,
                outbox.ROUND_RESULTS_POST: self.send_round_results}

    # status post

    def send_status_post(self, payload: dict) -> None:
        """Create the commons' status post once (found again by its marker), then keep it edited."""
        state = self._status_state(payload["commons_id"])
        if state is None:
            return
        topic_id, post_id, figures = state
        raw = render_status_post(figures, self.lang, self.svc.clock(), self.zone)
        if post_id is not None:
            try:
                self.forum.update_post(post_id, raw)
                return
            except ForumNotFound:
                log.warning("status post %s of topic %s is gone; posting it again", post_id, topic_id)
        found = self.find_status_post(topic_id)
        if found is None:
            post_id = self.forum.create_post(topic_id, raw).post_id
        else:
            post_id = found.post_id
            if (found.raw or "").strip() != raw.strip():
                self.forum.update_post(post_id, raw)
        self.forum.lock_post(post_id, True)
        # A crash before this line leaves the post unrecorded: the next attempt finds it by its marker.
        self._remember_status_post(payload["commons_id"], post_id)

    def find_status_post(self, topic_id: int):
        """The bot's post holding the marker in the topic, if any (read before creating one)."""
        for post in self.forum.iter_topic_posts(topic_id):
            if post.username.casefold() == self.bot_username.casefold() and MARKER in (post.raw or ""):
                return post
        return None

    def _status_state(self, commons_id: int):
        c = tb.commons

        def use_case(uow: UnitOfWork):
            commons = uow.repo.commons(commons_id)
            if commons is None or commons.topic_id is None:
                return None
            round_ = uow.repo.round(commons.round_id)
            names = uow.repo.cofunder_names([commons.id]).get(commons.id, [])
            post_id = uow.repo.conn.execute(select(c.c.status_post_id).where(c.c.id == commons_id)).scalar()
            return commons.topic_id, post_id, _figures(commons, round_, names)

        return self.svc.run(use_case)

    def _remember_status_post(self, commons_id: int, post_id: int) -> None:
        c = tb.commons

        def use_case(uow: UnitOfWork) -> None:
            uow.repo.conn.execute(update(c).where(c.c.id == commons_id).values(status_post_id=post_id))
            uow.commit()

        self.svc.run(use_case)

    # replies

    def send_reply(self, payload: dict) -> None:
        """A reply to a post: a refused pledge (reason, balance, amount kept) or a refused command."""
        if "message" in payload:
            text = render_command_reply(payload["message"], self.lang)
            self._reply(payload["topic_id"], _mention(payload.get("username")) + text, payload["post_number"])
            return
        target = self._refused_post(payload["post_id"], payload["commons_id"])
        if target is None:
            return
        topic_id, post_number, username, currency = target
        text = render_refusal_reply(Refusal(payload["reason"], currency, payload["balance_cents"],
                                            payload["kept_cents"], dict(payload.get("params") or {})),
                                    self.lang)
        self._reply(topic_id, _mention(username) + text, post_number)

    def _reply(self, topic_id: int, raw: str, post_number: int) -> None:
        try:
            self.forum.create_post(topic_id, raw, reply_to_post_number=post_number)
        except PostEnqueued:
            # The forum holds it for approval: it exists, sending it again would queue a copy.
            log.warning("reply in topic %s was queued for approval by the forum", topic_id)

    def _refused_post(self, post_id: int, commons_id: int):
        p, c, r = tb.pledges, tb.commons, tb.rounds
        return self.svc.run(lambda uow: uow.repo.conn.execute(
            select(c.c.topic_id, p.c.post_number, p.c.username, r.c.currency)
            .select_from(p.join(c, c.c.id == p.c.commons_id).join(r, r.c.id == c.c.round_id))
            .where(p.c.post_id == post_id, c.c.id == commons_id, c.c.topic_id.is_not(None))).first())

    # notices

    def send_funded_notice(self, payload: dict) -> None:
        state = self._status_state(payload["commons_id"])
        if state is None:
            return
        topic_id, _post_id, figures = state
        self.forum.create_post(topic_id, render_funded_notice(figures, self.lang), reply_to_post_number=1)

    def send_round_results(self, payload: dict) -> None:
        round_ = self.svc.run(lambda uow: uow.repo.round(payload["round_id"]))
        if round_ is None or round_.results_topic_id is None:
            return
        results = handlers.results(self.svc, round_.slug)
        text = render_round_results(round_.name, results.nonempty(), round_.currency, self.lang)
        self.forum.create_post(round_.results_topic_id, text, reply_to_post_number=1)


def _mention(username: str | None) -> str:
    return f"@{username} " if username else ""


def _figures(commons, round_, names: list[str]) -> StatusFigures:
    return StatusFigures(
        title=commons.title, status=Status(commons.status).value, currency=round_.currency,
        goal_cents=commons.goal_cents, cap_cents=commons.cap_cents,
        pledged_cents=commons.pledged_cents, contributed_cents=commons.contributed_cents,
        matched_cents=commons.matched_cents, cofunder_names=tuple(names), round_name=round_.name,
        closes_at=round_.closes_at, round_closed=round_.closed_at is not None,
        referent=commons.referent, organisations=commons.organisations, next_steps=commons.next_steps)


# --- the loop -----------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One worker process: what it applies, what it sends, and extra periodic tasks (mail, wiki).

    `applier` is None when the forum adapter is off; `senders` maps outbox kinds to their sender
    (only the adapters that are on); `tasks` run once per pass (mail polling, for instance).
    """

    svc: Service
    applier: DeliveryApplier | None
    senders: dict[str, Sender]
    tasks: list[Callable[[], object]] = field(default_factory=list)
    quiet_seconds: float = 1.0
    max_delay_seconds: float = 10.0
    max_rate_limit_wait: float = 120.0
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Paris"))
    refresh_every_seconds: float = 60.0
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = MAX_BACKOFF_SECONDS
    # A peer whose sends failed is tried again with one row at least this often, whatever the
    # rows' own backoffs, so its coming back is seen soon; then all its rows go (the ceiling paces).
    # A forum down costs at most 6 calls a minute so (the wiki's own pause spaces its tries more).
    probe_seconds: float = 10.0
    inbox_lease_seconds: float = 120.0
    outbox_lease_seconds: float = 300.0
    _last_refresh: float | None = field(default=None, init=False, repr=False)
    _peers_down: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def step(self, *, flush: bool) -> tuple[ApplyReport, OutboxReport]:
        """One pass: close due rounds, apply stored deliveries, send what is due."""
        handlers.close_due_rounds(self.svc)
        # `--once` (flush) is an operator's explicit run: it asks the forum now.
        applied = (self.applier.apply_pending(lease_seconds=self.inbox_lease_seconds, wait=not flush)
                   if self.applier is not None else ApplyReport())
        moment = time.monotonic()
        if outbox.STATUS_POST in self.senders and (
                self._last_refresh is None or moment - self._last_refresh >= self.refresh_every_seconds):
            self._last_refresh = moment
            enqueue_daily_status_refresh(self.svc, self.zone)
            forget_applied_deliveries(self.svc)
            forget_sent_rows(self.svc)
        for task in self.tasks:
            try:
                task()
            except Exception as exc:  # noqa: BLE001 - one failing task must not stop the worker
                log.warning("worker task %s failed: %s", getattr(task, "__name__", task), exc)
        self._probe_peers_down(moment)
        sent = deliver_outbox(self.svc, self.senders, flush=flush, quiet_seconds=self.quiet_seconds,
                              max_delay_seconds=self.max_delay_seconds, backoff=self.backoff,
                              lease_seconds=self.outbox_lease_seconds)
        self._follow_peers(sent, applied, moment)
        return applied, sent

    def _probe_peers_down(self, moment: float) -> None:
        for peer, last_try in list(self._peers_down.items()):
            if moment - last_try >= self.probe_seconds:
                self._peers_down[peer] = moment
                probe_one(self.svc, outbox.PEER_KINDS[peer] & self.senders.keys())

    def _follow_peers(self, sent: OutboxReport, applied: ApplyReport, moment: float) -> None:
        back = sent.peers_back | (sent.peers_up & self._peers_down.keys())
        if applied.recovered:
            back.add("forum")
        for peer in back:
            self._peers_down.pop(peer, None)
            released = release_backing_off(self.svc, outbox.PEER_KINDS[peer] & self.senders.keys())
            if released:
                log.info("%s answers again: %d rows that were backing off go now", peer, released)
            if peer == "forum" and self.applier is not None:
                self.applier.forum_is_back()
        for peer in sent.peers_down - sent.peers_up:
            self._peers_down.setdefault(peer, moment)

    def backoff(self, attempts: int) -> float:
        return backoff_seconds(attempts, self.backoff_base_seconds, self.backoff_max_seconds)

    def run_once(self, max_passes: int = 10_000) -> "OnceSummary":
        """Work until the outbox is empty or holds only rows backing off after a failure."""
        summary = OnceSummary()
        for _ in range(max_passes):
            applied, sent = self.step(flush=True)
            summary.applied += applied.applied
            summary.sent += sent.sent
            summary.failed += sent.failed
            if applied.blocked:
                summary.blocked = applied.blocked
            if sent.attempted or (applied.applied and not applied.blocked):
                continue
            wait = self._rate_limit_wait()
            if wait is None:
                break
            time.sleep(wait)
        summary.pending = len(pending_rows(self.svc, self.senders))
        return summary

    def _rate_limit_wait(self) -> float | None:
        """Seconds until a row held back only by the forum's 429 may go, when that is short."""
        now = _utc(self.svc.clock())
        waits = [(_aware(row.not_before) - now).total_seconds() for row in pending_rows(self.svc, self.senders)
                 if (row.last_error or "").startswith(RATE_LIMITED)]
        waits = [max(0.0, wait) for wait in waits if wait <= self.max_rate_limit_wait]
        return min(waits) + 0.05 if waits else None

    def run_forever(self, stop: threading.Event | None = None, poll_seconds: float = 0.5) -> None:
        """Loop until `stop` is set; a failing pass is logged and the next one goes on."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.step(flush=False)
            except DatabaseUnavailable as exc:  # a restart or an outage: one line, not a traceback a pass
                log.warning("worker pass failed, the database is unavailable (%s); trying again", exc)
            except Exception:  # noqa: BLE001 - whatever failed, the next pass goes on
                log.exception("worker pass failed; trying again")
            stop.wait(poll_seconds)


@dataclass
class OnceSummary:
    """What `worker --once` did, printed on exit."""

    applied: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    blocked: str | None = None
