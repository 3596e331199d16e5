"""Rosters of forum groups (`Membership._read_roster`): two workers reading the same group at once
both save it, one after the other, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, select

from commons_sync.discourse.client import GroupMember
from commons_sync.service.forum import Membership
from commons_sync.storage import forum_tables as ft


class Forum:
    """Answers a roster of three members, waiting at a barrier so that both readers save together."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def group_roster(self, name: str, at_most: int) -> list[GroupMember]:
        self.barrier.wait(timeout=10)
        return [GroupMember(user_id=n, username=f"lieu-{n}", name=None) for n in (1, 2, 3)]


def test_two_workers_saving_one_roster_at_once_take_turns(service):
    barrier = threading.Barrier(2)
    first_commits = threading.Event()
    held = threading.local()

    @event.listens_for(service.engine, "commit")
    def hold_the_first_commit(_conn):
        # The first save to commit waits while the other one runs into it: saved in another
        # order (members, then the roster's row), the second failed on the first's members.
        if getattr(held, "done", False) or first_commits.is_set():
            return
        held.done = True
        first_commits.set()
        time.sleep(0.5)

    errors: list[BaseException] = []

    def read() -> None:
        try:
            Membership(service, Forum(barrier), ttl_seconds=120)._read_roster("Lieux", now=1_000.0)
        except BaseException as error:  # noqa: BLE001 - the outcome under test
            errors.append(error)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    m, r = ft.forum_group_members, ft.forum_group_rosters
    with service.engine.connect() as conn:
        assert sorted(conn.execute(select(m.c.user_id).where(m.c.group_key == "lieux")).scalars()) == [1, 2, 3]
        assert conn.execute(select(r.c.size, r.c.unlisted)).all() == [(3, False)]
