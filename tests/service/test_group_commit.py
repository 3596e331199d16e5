"""Group commit of the webhook's inserts: rows queued behind a write share the next statement, a
duplicate only fails its own caller, and a database that is away fails every waiting caller."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from commons_sync.service.group_commit import GroupCommit
from commons_sync.service.unit_of_work import DatabaseUnavailable
from commons_sync.storage import forum_tables as ft
from commons_sync.storage.database import make_engine, upgrade

DELIVERIES = ft.forum_deliveries


def delivery(event_id: int) -> dict:
    return dict(event_id=event_id, event_type="post", event="post_created", instance=None,
                body=b'{"post": {}}', received_at=datetime(2026, 11, 22, tzinfo=timezone.utc),
                topic_id=318, post_id=event_id, version=1, opens_commons=False)


@pytest.fixture
def engine(database_url):
    upgrade(make_engine(database_url))
    engine = make_engine(database_url, autocommit=True)
    yield engine
    engine.dispose()


def stored_events(engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(DELIVERIES.c.event_id)).scalars())


def hold_first_write(engine, writer: GroupCommit, waiting: int):
    """Keep the first insert in the database until `waiting` more rows are queued behind it."""
    held = threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def wait_for_queue(*_args):
        if held.is_set():
            return
        held.set()
        deadline = time.monotonic() + 30
        while writer.waiting < waiting and time.monotonic() < deadline:
            time.sleep(0.005)

    return wait_for_queue


def insert_all(writer: GroupCommit, engine, event_ids: list[int]) -> dict[int, BaseException | None]:
    outcomes: dict[int, BaseException | None] = {}

    def one(event_id: int) -> None:
        try:
            writer.insert(engine, delivery(event_id))
            outcomes[event_id] = None
        except BaseException as error:  # noqa: BLE001 - the outcome under test
            outcomes[event_id] = error

    threads = [threading.Thread(target=one, args=(event_id,)) for event_id in event_ids]
    threads[0].start()
    time.sleep(0.05)  # the first one leads and is held in the database
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_rows_queued_behind_a_write_share_the_next_statement(engine):
    writer = GroupCommit(insert(DELIVERIES))
    hold_first_write(engine, writer, waiting=11)
    outcomes = insert_all(writer, engine, list(range(1, 13)))
    assert outcomes == {event_id: None for event_id in range(1, 13)}
    assert stored_events(engine) == list(range(1, 13))
    assert (writer.groups_written, writer.rows_written, writer.waiting) == (2, 12, 0)


def test_a_duplicate_fails_only_its_own_caller(engine):
    writer = GroupCommit(insert(DELIVERIES))
    writer.insert(engine, delivery(7))
    hold_first_write(engine, writer, waiting=3)
    outcomes = insert_all(writer, engine, [1, 2, 7, 3])
    assert isinstance(outcomes.pop(7), IntegrityError)
    assert outcomes == {1: None, 2: None, 3: None}
    assert stored_events(engine) == [1, 2, 3, 7]


def test_a_group_is_never_bigger_than_its_limit(engine):
    writer = GroupCommit(insert(DELIVERIES), max_group=4)
    hold_first_write(engine, writer, waiting=9)
    outcomes = insert_all(writer, engine, list(range(1, 11)))
    assert set(outcomes.values()) == {None}
    assert stored_events(engine) == list(range(1, 11))
    assert writer.groups_written == 1 + 3  # the held row, then 9 rows in groups of at most 4


def test_every_waiting_caller_hears_that_the_database_is_away(engine):
    writer = GroupCommit(insert(DELIVERIES))
    hold_first_write(engine, writer, waiting=3)

    @event.listens_for(engine, "before_cursor_execute")
    def database_away(conn, _cursor, statement, parameters, *_args):
        lost = conn.engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")
        raise OperationalError(statement, parameters, lost)

    outcomes = insert_all(writer, engine, [1, 2, 3, 4])
    assert all(isinstance(error, DatabaseUnavailable) for error in outcomes.values()), outcomes
    event.remove(engine, "before_cursor_execute", database_away)
    writer.insert(engine, delivery(5))  # nobody is left waiting: the next row is written at once
    assert stored_events(engine) == [5]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DELIVERIES)).scalar_one() == 1


def test_a_group_the_database_refuses_is_written_row_by_row(engine):
    writer = GroupCommit(insert(DELIVERIES))
    hold_first_write(engine, writer, waiting=3)

    @event.listens_for(engine, "before_cursor_execute")
    def deadlock_on_groups(conn, _cursor, statement, parameters, _context, executemany):
        if executemany:  # another process's group holds what this one needs
            lost = conn.engine.dialect.loaded_dbapi.OperationalError("deadlock detected")
            raise OperationalError(statement, parameters, lost)

    outcomes = insert_all(writer, engine, [1, 2, 3, 4])
    assert outcomes == {1: None, 2: None, 3: None, 4: None}
    assert stored_events(engine) == [1, 2, 3, 4]
    assert (writer.groups_written, writer.rows_written) == (1, 4)  # the held row alone, then 3 one by one


def test_a_group_is_written_in_order_so_two_processes_lock_alike(engine):
    writer = GroupCommit(insert(DELIVERIES), order=lambda row: row["event_id"])
    hold_first_write(engine, writer, waiting=4)
    groups = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn, _cursor, _statement, parameters, _context, executemany):
        if executemany:
            groups.append(parameters)

    insert_all(writer, engine, [50, 9, 30, 7, 41])
    assert len(groups) == 1
    event_ids = [row["event_id"] if isinstance(row, dict) else row[0] for row in groups[0]]
    assert event_ids == [7, 9, 30, 41]
