"""The SQL mailbox store on SQLite and PostgreSQL: idempotent submissions, one acknowledgement each."""

from __future__ import annotations

import threading

from sqlalchemy import select

from commons_sync.mail import parse_message
from commons_sync.service import triage
from commons_sync.storage import tables as tb

from .conftest import eml


def _acknowledgements(service) -> list:
    o = tb.outbox
    return service.run(lambda uow: uow.repo.conn.execute(
        select(o.c.key).where(o.c.kind == triage.MAIL)).scalars().all())


def test_the_same_message_twice_is_one_submission_with_one_acknowledgement(service):
    store = triage.SqlMailboxStore(service)
    parsed = parse_message(eml("proposition_multipart_fr"))

    first = store.add_submission(parsed, 7, 1)
    again = store.add_submission(parsed, 8, 3)  # UIDVALIDITY changed: same Message-ID

    assert first == ("2026-0001", True) and again == ("2026-0001", False)
    assert store.has_message(parsed.message_id, 8, 3)
    assert _acknowledgements(service) == ["mail:acknowledgement:1"]


def test_a_message_without_message_id_is_recognised_by_its_bytes(service):
    store = triage.SqlMailboxStore(service)
    parsed = parse_message(eml("no_message_id"))

    assert store.add_submission(parsed, 7, 1)[1] is True
    assert store.add_submission(parsed, 9, 1)[1] is False
    assert triage.show_submission(service, 1)["message_id"] is None


def test_two_pollers_storing_one_message_at_once_make_one_submission(service):
    parsed = parse_message(eml("proposition_multipart_fr"))
    stores = [triage.SqlMailboxStore(service) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results = []

    def poller(store):
        barrier.wait()
        results.append(store.add_submission(parsed, 7, 1))

    threads = [threading.Thread(target=poller, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(created for _reference, created in results) == [False, False, False, True]
    assert {reference for reference, _created in results} == {"2026-0001"}
    assert len(triage.list_submissions(service)) == 1
    assert len(_acknowledgements(service)) == 1


def test_folder_state_is_saved_and_replaced(service):
    store = triage.SqlMailboxStore(service)

    assert store.get_state("INBOX") is None
    store.set_state("INBOX", 7, 3)
    store.set_state("INBOX", 9, 1)

    assert store.get_state("INBOX") == (9, 1)
