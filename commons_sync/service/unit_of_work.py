"""A unit of work: one database transaction, its repository, and the events to put in the outbox.

As in cosmicpython, `__exit__` always rolls back: nothing is saved unless the use case called
`commit()`. Committing flushes the changed objects and writes the outbox rows for the collected
events in the same transaction, so a ledger change and its side effects land together or not at all.
"""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from commons_sync.storage.repository import Repository

from . import outbox

T = TypeVar("T")

_TRANSIENT_PG = {"40001", "40P01"}  # serialization failure, deadlock detected


class DatabaseUnavailable(Exception):
    """The database cannot be reached (or stays locked); callers answer 503 or retry later."""


class UnitOfWork:
    def __init__(self, engine: Engine, clock: Callable | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.events: list[object] = []

    def __enter__(self) -> "UnitOfWork":
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.repo = Repository(self.connection, self.clock)
        self.events = []
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self.transaction.is_active:
                self.transaction.rollback()
        finally:
            self.connection.close()

    def collect(self, events) -> None:
        self.events.extend(events)

    def commit(self) -> None:
        self.repo.flush()
        outbox.record(self.repo, self.events)
        self.events = []
        self.transaction.commit()


def _transient(error: DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in _TRANSIENT_PG:
        return True
    return isinstance(error, OperationalError) and "locked" in str(error.orig).lower()


def run(engine: Engine, use_case: Callable[[UnitOfWork], T], *, attempts: int = 8,
        clock: Callable | None = None) -> T:
    """Run `use_case` in a unit of work, retrying when the database reports a conflict.

    Concurrency is the database's job (row locks, SQLite's single writer); a deadlock or a
    serialization failure is retried with jittered backoff, a lost connection becomes
    `DatabaseUnavailable`.
    """
    for attempt in range(attempts):
        try:
            with UnitOfWork(engine, clock) as uow:
                return use_case(uow)
        except DBAPIError as error:
            if unavailable(error):
                raise DatabaseUnavailable(type(error.orig).__name__) from None
            if not _transient(error) or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")


def unavailable(error: DBAPIError) -> bool:
    """Whether `error` says the database is away (a lost connection, a server restarting), not
    that the statement was wrong."""
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower()
    return any(word in text for word in ("connection refused", "could not connect", "server closed",
                                         "terminating connection", "unable to open database",
                                         "the database system is"))  # … shutting down, starting up
