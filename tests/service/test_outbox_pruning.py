"""Sent outbox rows are forgotten after 30 days, except each status post's last send; rows not
sent yet are never touched."""

from __future__ import annotations

from sqlalchemy import select, update

from commons_sync.service import outbox
from commons_sync.service.worker import forget_sent_rows
from commons_sync.storage import tables as tb


def queue(service, kind: str, key: str) -> None:
    service.run(lambda uow: (uow.repo.enqueue(kind, key, {}), uow.commit()))


def send(service, key: str, clock) -> None:
    o = tb.outbox
    service.run(lambda uow: (uow.repo.conn.execute(
        update(o).where(o.c.key == key, o.c.done_at.is_(None)).values(done_at=clock())), uow.commit()))


def remaining(service) -> list[tuple[str, bool]]:
    o = tb.outbox
    return service.run(lambda uow: [(row.key, row.done_at is not None) for row in uow.repo.conn.execute(
        select(o.c.key, o.c.done_at).order_by(o.c.id))])


def test_rows_sent_long_ago_are_forgotten_but_each_status_posts_last_send(service, clock):
    status = f"{outbox.STATUS_POST}:1"
    queue(service, outbox.STATUS_POST, status)
    send(service, status, clock)                      # 40 days ago, sent again since: forgotten
    queue(service, "reply", "reply:11")
    send(service, "reply:11", clock)                  # 40 days ago: forgotten
    queue(service, outbox.STATUS_POST, f"{outbox.STATUS_POST}:2")
    send(service, f"{outbox.STATUS_POST}:2", clock)   # 40 days ago, its last send: kept
    queue(service, "reply", "reply:12")               # never sent: kept, however old
    clock.advance(days=39)
    queue(service, outbox.STATUS_POST, status)
    send(service, status, clock)                      # 1 day ago: kept
    queue(service, "reply", "reply:13")
    send(service, "reply:13", clock)                  # 1 day ago: kept
    clock.advance(days=1)

    assert forget_sent_rows(service) == 2
    assert remaining(service) == [(f"{outbox.STATUS_POST}:2", True), ("reply:12", False),
                                  (status, True), ("reply:13", True)]
    assert forget_sent_rows(service) == 0
    clock.advance(days=30)
    assert forget_sent_rows(service) == 1  # reply:13; both status posts keep their last send
    assert remaining(service) == [(f"{outbox.STATUS_POST}:2", True), ("reply:12", False), (status, True)]
