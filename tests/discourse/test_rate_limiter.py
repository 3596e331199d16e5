"""The local sliding-window limiter, driven by a fake clock: no real waiting, no timing assertions."""

from __future__ import annotations

import threading

import pytest

from commons_sync.discourse.client import LocalRateLimiter, RateLimiter


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter_with(max_per_minute: int) -> tuple[LocalRateLimiter, FakeClock]:
    clock = FakeClock()
    return LocalRateLimiter(max_per_minute, clock=clock, sleep=clock.sleep), clock


def test_requests_within_the_ceiling_go_at_once():
    limiter, clock = limiter_with(3)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []


def test_request_over_the_ceiling_waits_for_the_oldest_to_leave_the_window():
    limiter, clock = limiter_with(2)
    limiter.acquire()
    clock.now += 10
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == [50.0]  # the first request, sent 10 s ago, leaves the window in 50 s


def test_window_slides_rather_than_resetting_each_minute():
    limiter, clock = limiter_with(2)
    limiter.acquire()
    clock.now += 59
    limiter.acquire()
    clock.now += 2  # the first left the window, the second has not
    limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [58.0]  # the second, sent at +59, leaves at +119


def test_never_more_than_the_ceiling_in_any_minute():
    limiter, clock = limiter_with(5)
    sent = []
    for _ in range(23):
        limiter.acquire()
        sent.append(clock.now)
    for index, moment in enumerate(sent):
        in_window = [t for t in sent[index:] if t < moment + 60]
        assert len(in_window) <= 5


def test_threads_share_the_ceiling():
    limiter, clock = limiter_with(10)
    lock = threading.Lock()
    sent = []

    def work():
        for _ in range(5):
            limiter.acquire()
            with lock:
                sent.append(clock.now)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 20
    assert sum(1 for moment in sent if moment == 1000.0) == 10


def test_ceiling_must_be_positive():
    with pytest.raises(ValueError):
        LocalRateLimiter(0)


def test_local_limiter_satisfies_the_protocol():
    limiter: RateLimiter = LocalRateLimiter(50)
    limiter.acquire()
    assert "50" in repr(limiter)
