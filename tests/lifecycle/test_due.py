"""Which reminder is due when: the latest close reminder, and the expiry notice a month ahead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from commons_sync.engine.model import Round
from commons_sync.service.reminders import due_close_reminder, due_expiry_notice, next_expiry

OPENS = datetime(2026, 1, 15, 9, tzinfo=timezone.utc)


def _round(**extra) -> Round:
    return Round(slug="r", name="R", currency="EUR", allocation_cents=10000, group="g", opens_at=OPENS, **extra)


def test_the_latest_close_reminder_due_is_the_one_sent():
    r = _round(closes_at=OPENS + timedelta(days=60), remind_days=(7, 2))
    close = r.closes_at
    assert due_close_reminder(r, close - timedelta(days=8)) is None
    assert due_close_reminder(r, close - timedelta(days=7)) == "7"
    assert due_close_reminder(r, close - timedelta(days=1)) == "2"
    assert due_close_reminder(r, close) is None  # closed: nothing to remind


def test_expiring_balances_are_announced_thirty_days_before_the_anniversary():
    r = _round(recurring="yearly", unspent="expire")
    assert next_expiry(r, OPENS + timedelta(days=10)) == datetime(2027, 1, 15, 9, tzinfo=timezone.utc)
    assert due_expiry_notice(r, datetime(2026, 12, 15, 8, tzinfo=timezone.utc)) is None
    assert due_expiry_notice(r, datetime(2026, 12, 16, 9, tzinfo=timezone.utc)) == "expiry:1"
    assert due_expiry_notice(r, datetime(2027, 12, 20, tzinfo=timezone.utc)) == "expiry:2"
    assert due_expiry_notice(_round(recurring="yearly", unspent="carry"), datetime(2026, 12, 20, tzinfo=timezone.utc)) is None
    ending = _round(recurring="yearly", unspent="expire", closes_at=datetime(2026, 12, 31, tzinfo=timezone.utc))
    assert due_expiry_notice(ending, datetime(2026, 12, 20, tzinfo=timezone.utc)) is None


def test_expiry_message_says_what_expires_when():
    from commons_sync.service.lifecycle_texts import render

    raw = render("expiry_pm.md.j2", "fr", username="alice", round_name="Adhésions 2026", expires="15 janvier 2027",
                 balance="80 €", suggestion=None)
    assert "le solde non promis expire le 15 janvier 2027 : il vous reste **80 €**" in raw
    assert "/rappels non" in raw
