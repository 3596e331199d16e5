"""What operators watch: worker heartbeats, counters that add up across processes, the health checks.

Counters (webhook answers, API calls and 429s per peer, sync latency) are kept in memory per
process and per database, then added to the `ops_counters` rows (`value = value + n`) by `flush`:
the worker flushes at every pass with its heartbeat, the web app after each request, any command
at exit. A flush that fails (database down) keeps the increments for the next one. So `/metrics`
read on any web process shows the sum of every process — gunicorn workers, `commons-sync worker`,
one-off commands — without prometheus-client's multiprocess directory.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from commons_sync.storage import forum_tables as ft
from commons_sync.storage import ops_tables as ot
from commons_sync.storage import tables as tb

from . import outbox

log = logging.getLogger(__name__)

# Seconds from a pledge post received to its status post edited.
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
HEARTBEAT_KEEP = timedelta(days=7)

# Outbox kinds per adapter, for "the kinds of the adapters that are on".
ADAPTER_KINDS = {
    "discourse": (outbox.STATUS_POST, outbox.REPLY, outbox.FUNDED_NOTICE, outbox.ROUND_RESULTS_POST,
                  "create_topic"),
    "mediawiki": (outbox.WIKI_FICHE, outbox.WIKI_RESULTS),
    "smtp": ("mail",),
}

WEBHOOK_REQUESTS = "webhook_requests"
API_REQUESTS = "api_requests"
SYNC_LATENCY = "sync_latency_seconds"


def _utc(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return moment.astimezone(timezone.utc)


def labels_text(labels: Mapping[str, object]) -> str:
    """The canonical text of a label set: `k=v,k=v`, sorted by name."""
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


def enabled_kinds(settings) -> list[str]:
    """The outbox kinds whose adapter is on (their rows are expected to move)."""
    return [kind for adapter, kinds in ADAPTER_KINDS.items() if settings.adapter_on(adapter) for kind in kinds]


# --- counters shared through the database -----------------------------------------------------------


class Counters:
    """This process's increments not yet added to `ops_counters` of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: a flush returns once all before it landed
        self._pending: dict[tuple[str, str], float] = defaultdict(float)
        self._last_flush = float("-inf")

    def inc(self, name: str, labels: Mapping[str, object] | None = None, by: float = 1.0) -> None:
        with self._lock:
            self._pending[(name, labels_text(labels or {}))] += by

    def observe_latency(self, seconds: float) -> None:
        """One sample of the sync-latency histogram (cumulative buckets, sum and count)."""
        with self._lock:
            for bound in LATENCY_BUCKETS:
                if seconds <= bound:
                    self._pending[(SYNC_LATENCY, f"le={bound}")] += 1
            self._pending[(SYNC_LATENCY, "le=+Inf")] += 1
            self._pending[(SYNC_LATENCY + "_sum", "")] += max(0.0, seconds)

    def pending(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self._pending)

    def flush_if_due(self, every_seconds: float = 1.0) -> bool:
        """Flush when the last flush is older than `every_seconds` (a busy web process writes its
        counters about once a second instead of after every request)."""
        now = time.monotonic()
        if now - self._last_flush < every_seconds:
            return True
        self._last_flush = now
        return self.flush()

    def flush(self) -> bool:
        """Add the pending increments to the database; on failure keep them. Returns success."""
        engine = self._engine()
        with self._flushing:
            with self._lock:
                batch, self._pending = dict(self._pending), defaultdict(float)
            if not batch or engine is None:
                return True
            try:
                with engine.begin() as conn:
                    add_counters(conn, batch)
            except Exception as exc:  # noqa: BLE001 - counting must never break the caller
                log.debug("counters not flushed (%s); kept for the next flush", type(exc).__name__)
                with self._lock:
                    for key, value in batch.items():
                        self._pending[key] += value
                return False
            return True


def add_counters(conn, increments: Mapping[tuple[str, str], float]) -> None:
    """`value = value + n` for each (name, labels), creating the rows that are missing."""
    table = ot.ops_counters
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for (name, labels), value in sorted(increments.items()):
        statement = dialect.insert(table).values(name=name, labels=labels, value=value)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[table.c.name, table.c.labels],
            set_={"value": table.c.value + statement.excluded.value}))


_registry: dict[int, Counters] = {}
_registry_lock = threading.Lock()


def counters(engine: Engine) -> Counters:
    """The counters of this process for the database of `engine` (flushed at exit too)."""
    with _registry_lock:
        found = _registry.get(id(engine))
        if found is None or found._engine() is not engine:
            found = _registry[id(engine)] = Counters(engine)
    return found


@atexit.register
def _flush_at_exit() -> None:
    for recorder in list(_registry.values()):
        recorder.flush()


def read_counters(conn) -> dict[str, dict[str, float]]:
    """Every counter of the installation: name → labels text → value."""
    table = ot.ops_counters
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for name, labels, value in conn.execute(select(table.c.name, table.c.labels, table.c.value)):
        found[name][labels] = value
    return found


# --- HTTP calls to the peers ----------------------------------------------------------------------


def count_http_calls(session, peer: str, recorder: Counters) -> None:
    """Count every answer `session` (a `requests.Session`) receives, by peer and status code."""
    if session is None or not hasattr(session, "hooks"):
        return

    def _count(response, *args, **kwargs):
        recorder.inc(API_REQUESTS, {"peer": peer, "status": response.status_code})
        return None

    session.hooks.setdefault("response", []).append(_count)


# --- worker heartbeat and sync latency --------------------------------------------------------------


@dataclass
class Heartbeat:
    """The worker's task run at every pass: its heartbeat row, then the counters flushed."""

    svc: object
    recorder: Counters
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: datetime | None = None

    @property
    def worker_id(self) -> str:
        return f"{self.host}/{self.pid}"

    def __call__(self) -> None:
        now = _utc(self.svc.clock())
        self.started_at = self.started_at or now
        table = ot.ops_heartbeats
        with self.svc.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).values(
                worker_id=self.worker_id, host=self.host[:200], pid=self.pid, started_at=self.started_at,
                last_pass_at=now, passes=1)
            conn.execute(statement.on_conflict_do_update(
                index_elements=[table.c.worker_id],
                set_={"last_pass_at": now, "passes": table.c.passes + 1, "started_at": self.started_at}))
            conn.execute(delete(table).where(table.c.last_pass_at < now - HEARTBEAT_KEEP))
        self.recorder.flush()

    __name__ = "heartbeat"


def heartbeats(conn) -> list:
    """Every worker seen in the last week, newest pass first."""
    table = ot.ops_heartbeats
    return conn.execute(select(table).order_by(table.c.last_pass_at.desc())).all()


def instrument_senders(svc, senders: dict[str, Callable[[dict], object]], recorder: Counters) -> dict:
    """Wrap the status-post sender so each edit observes how long its pledges waited.

    The latency of a pledge is from its delivery's `received_at` to the end of the first status-post
    send that follows its application; pledges received before the previous edit were counted then.
    """
    send = senders.get(outbox.STATUS_POST)
    if send is None:
        return senders

    def send_status_post(payload: dict) -> None:
        since = _last_status_edit(svc, payload.get("commons_id"))
        result = send(payload)
        now = _utc(svc.clock())
        for received in _pledges_received(svc, payload.get("commons_id"), since, now):
            recorder.observe_latency((now - _utc(received)).total_seconds())
        return result

    return {**senders, outbox.STATUS_POST: send_status_post}


def _last_status_edit(svc, commons_id) -> datetime | None:
    o = tb.outbox
    return svc.run(lambda uow: uow.repo.conn.execute(
        select(func.max(o.c.done_at)).where(o.c.key == f"{outbox.STATUS_POST}:{commons_id}")).scalar())


def _pledges_received(svc, commons_id, since: datetime | None, until: datetime) -> list[datetime]:
    d, p = ft.forum_deliveries, tb.pledges
    query = (select(d.c.received_at).select_from(d.join(p, p.c.post_id == d.c.post_id))
             .where(p.c.commons_id == commons_id, p.c.refusal.is_(None),  # a refusal edits no status post
                    d.c.applied_at.is_not(None), d.c.received_at <= until))
    if since is not None:
        query = query.where(d.c.received_at > since)
    return list(svc.run(lambda uow: uow.repo.conn.execute(query).scalars().all()))


# --- health -----------------------------------------------------------------------------------------


@dataclass
class HealthReport:
    """The checks of `/healthz` (see `web.health`)."""

    database: bool
    workers: list[dict] = field(default_factory=list)
    heartbeat_age: float | None = None  # seconds since the newest pass of any worker
    outbox: dict[str, dict] = field(default_factory=dict)  # kind → {"pending", "oldest_age"}
    error: str | None = None


def outbox_ages(conn, kinds: Iterable[str], now: datetime) -> dict[str, dict]:
    """Per kind: rows not done and the age in seconds of the oldest (its first change)."""
    o = tb.outbox
    kinds = list(kinds)
    found = {kind: {"pending": 0, "oldest_age": None} for kind in kinds}
    for kind, count, oldest in conn.execute(
            select(o.c.kind, func.count(), func.min(o.c.created_at))
            .where(o.c.done_at.is_(None), o.c.kind.in_(kinds)).group_by(o.c.kind)):
        found[kind] = {"pending": count,
                       "oldest_age": round((now - _utc(oldest)).total_seconds(), 3) if oldest else None}
    return found


def health(svc, kinds: Iterable[str]) -> HealthReport:
    """Read every check in one transaction; a database that does not answer is `database=False`."""
    now = _utc(svc.clock())

    def use_case(uow) -> HealthReport:
        conn = uow.repo.conn
        workers = [{"worker": row.worker_id, "host": row.host, "pid": row.pid,
                    "last_pass": _utc(row.last_pass_at).isoformat(),
                    "age": round((now - _utc(row.last_pass_at)).total_seconds(), 3), "passes": row.passes}
                   for row in heartbeats(conn)]
        return HealthReport(database=True, workers=workers,
                            heartbeat_age=min((w["age"] for w in workers), default=None),
                            outbox=outbox_ages(conn, kinds, now))

    try:
        return svc.run(use_case)
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the database did not answer
        return HealthReport(database=False, error=type(exc).__name__)


def metric_figures(svc, kinds: Iterable[str]) -> dict:
    """Everything `/metrics` reads from the database, in one transaction."""
    now = _utc(svc.clock())
    d, o, c, p = ft.forum_deliveries, tb.outbox, tb.commons, tb.pledges

    def use_case(uow) -> dict:
        conn = uow.repo.conn
        pending_deliveries = conn.execute(
            select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar()
        failing = dict(conn.execute(select(o.c.kind, func.count()).where(
            o.c.done_at.is_(None), o.c.attempts > 0).group_by(o.c.kind)).all())
        pledges = conn.execute(select(p.c.state, p.c.refusal, func.count())
                               .group_by(p.c.state, p.c.refusal)).all()
        return {
            "deliveries": pending_deliveries,
            "outbox": outbox_ages(conn, set(kinds) | set(conn.execute(
                select(o.c.kind).where(o.c.done_at.is_(None)).distinct()).scalars()), now),
            "failing": failing,
            "commons": dict(conn.execute(select(c.c.status, func.count()).group_by(c.c.status)).all()),
            "pledges": pledges,
            "counters": read_counters(conn),
            "workers": [(row.worker_id, (now - _utc(row.last_pass_at)).total_seconds())
                        for row in heartbeats(conn)],
        }

    return svc.run(use_case)


def pledge_result(state: str, refusal: str | None) -> tuple[str, str]:
    """(result, reason) of a pledge post for the metrics: accepted, refused (reason), withdrawn, released."""
    if refusal:
        return "refused", refusal
    if state == "live":
        return "accepted", ""
    return ("released" if state == "released" else "withdrawn"), ""
