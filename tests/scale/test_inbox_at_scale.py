"""Queries that run per status post must not read the whole inbox, which keeps every delivery for
30 days (a round of 200,000 pledges: 200,000 rows), nor every outbox row sent in those 30 days:
bench/scale.py found one of each that did."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, insert, text

from commons_sync.service import ops
from commons_sync.storage import forum_tables as ft
from commons_sync.storage import tables as tb
from commons_sync.storage.database import make_engine, upgrade


def plan_of_the_one_query(engine, table: str, call) -> tuple[object, str]:
    """What `call` returns, and PostgreSQL's plan for the one statement on `table` it runs."""
    executed = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany):
        if table in statement:
            executed.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        result = call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(executed) == 1, executed
    statement, parameters = executed[0]
    with engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
    engine.dispose()
    return result, plan


def test_the_status_post_latency_metric_reads_the_inbox_by_post_id(postgres_url, clock):
    engine = make_engine(postgres_url)
    upgrade(engine)
    from commons_sync.service.handlers import Service

    svc = Service(engine, clock)
    with engine.begin() as conn:  # an inbox of applied deliveries, as a round leaves it
        conn.execute(insert(ft.forum_deliveries), [dict(
            event_id=n, event_type="post", event="post_created", body=b"{}", received_at=clock(),
            topic_id=100 + n % 50, post_id=10_000 + n, version=1, applied_at=clock()) for n in range(20_000)])
        conn.execute(text("ANALYZE"))
    _, plan = plan_of_the_one_query(engine, "forum_deliveries",
                                 lambda: ops._pledges_received(svc, 1, clock() - timedelta(hours=1), clock()))
    assert "ix_forum_deliveries_post" in plan and "Seq Scan on forum_deliveries" not in plan, plan


def test_the_last_status_edit_is_found_by_key_among_every_row_sent(postgres_url, clock):
    engine = make_engine(postgres_url)
    upgrade(engine)
    from commons_sync.service.handlers import Service

    svc = Service(engine, clock)
    with engine.begin() as conn:  # rows sent over a round: status posts, replies, fiches
        conn.execute(insert(tb.outbox), [dict(
            kind="status_post", key=f"status_post:{n % 2000}" if n % 3 else f"reply:refused:{n}:1",
            payload="{}", created_at=clock(), updated_at=clock(), not_before=clock(), done_at=clock())
            for n in range(20_000)])
        conn.execute(text("ANALYZE"))
    last_edit, plan = plan_of_the_one_query(engine, "outbox", lambda: ops._last_status_edit(svc, 4321))
    assert last_edit is None  # a commons whose status post was never sent
    assert "ix_outbox_key_done" in plan, plan
