"""Group commit: rows that request threads insert at the same moment share one statement and one
commit.

Every webhook delivery is one small insert. On two shared cores the work around a statement (the
pool, the client's round trips, the server's commit and its flush to disk) costs more than the row.
Threads that arrive while a group is being written queue up; when it is done, the first of them
writes everything queued, in one statement and one commit (the leader/follower scheme of
database group commit). Nobody is answered before their row is durable, and a lone request is
written at once, as before.

A duplicate in a group fails the whole statement: the group is then written row by row, so that
only the duplicate's thread sees its `IntegrityError`. So does anything else the database refuses
(a deadlock with another process's group, a row it cannot store); rows are sorted by `order`, so
that two processes' groups take their locks in the same order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from commons_sync.storage.database import insert_together

from .unit_of_work import DatabaseUnavailable, run, unavailable


class _Ticket:
    """One row waiting for its group: released when written, or when its thread is to lead."""

    __slots__ = ("row", "error", "written", "released")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.error: BaseException | None = None
        self.written = False
        self.released = threading.Lock()
        self.released.acquire()  # held until a leader releases it: the cheapest way to wait


class GroupCommit:
    """Insert rows through `statement` on an autocommit engine, grouping concurrent callers.

    One per engine (the caller keeps them): it holds no reference to the engine, so a registry
    keyed weakly by engine lets both go together.
    """

    def __init__(self, statement: Insert, max_group: int = 64,
                 order: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.statement = statement
        self.max_group = max_group
        self.order = order
        self.groups_written = 0
        self.rows_written = 0
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._writing = False

    @property
    def waiting(self) -> int:
        """Rows queued behind the group being written."""
        with self._lock:
            return len(self._queue)

    def insert(self, engine: Engine, row: dict[str, Any]) -> None:
        """Insert one row and return once it is committed; raises what its write raised
        (`IntegrityError` for a duplicate, `DatabaseUnavailable`)."""
        ticket = _Ticket(row)
        with self._lock:
            self._queue.append(ticket)
            lead = not self._writing
            self._writing = True
        if not lead:
            ticket.released.acquire()
        if not ticket.written:
            self._lead(engine)
        if ticket.error is not None:
            raise ticket.error

    def _lead(self, engine: Engine) -> None:
        """Write the queued rows, this thread's first, then hand over to the next in line.

        The leader's row heads the queue: the queue is empty whenever nobody writes, and a
        successor is the head of what is left."""
        with self._lock:
            group = self._queue[:self.max_group]
            del self._queue[:self.max_group]
        try:
            self._write(engine, group)
        except BaseException as failure:  # a bug, or the leader's thread stopped: nobody is told "stored"
            reason = f"the group's write failed ({type(failure).__name__})"
            for ticket in group:  # each its own exception: they are raised in different threads
                ticket.error = ticket.error or DatabaseUnavailable(reason)
            raise
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                self._writing = successor is not None
            for ticket in group:
                ticket.written = True
            for follower in group[1:]:
                follower.released.release()
            if successor is not None:
                successor.released.release()  # not written: it leads the next group

    def _write(self, engine: Engine, group: list[_Ticket]) -> None:
        """One statement for the group; when the database refuses it (a duplicate, a deadlock with
        another process's group, a row it cannot store), row by row, each with its own outcome."""
        rows = [ticket.row for ticket in group]
        if self.order is not None:
            rows.sort(key=self.order)  # two processes' groups take their locks in the same order
        try:
            self._execute(engine, rows)
        except DatabaseUnavailable as error:
            for ticket in group:  # each its own exception: they are raised in different threads
                ticket.error = DatabaseUnavailable(*error.args)
            return
        except DBAPIError:
            pass
        else:
            self.groups_written += 1
            self.rows_written += len(group)
            return
        for ticket in group:
            try:
                self._execute_alone(engine, ticket.row)
                self.rows_written += 1
            except Exception as error:  # noqa: BLE001 - handed to the row's own thread
                ticket.error = error

    def _execute(self, engine: Engine, rows: list[dict[str, Any]]) -> None:
        try:
            with engine.connect() as connection:
                insert_together(connection, self.statement, rows)
        except DBAPIError as error:
            if unavailable(error):
                raise DatabaseUnavailable(type(error.orig).__name__) from None
            raise

    def _execute_alone(self, engine: Engine, row: dict[str, Any]) -> None:
        # A unit of work retries what is transient (a deadlock, a locked SQLite file) and says
        # when the database is away; a duplicate stays an `IntegrityError`.
        run(engine, lambda uow: insert_together(uow.repo.conn, self.statement, [row]))
