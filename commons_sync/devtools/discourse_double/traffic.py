"""Admin-API traffic: Discourse's per-minute ceiling, request counts, and injected failures."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


class RateLimiter:
    """At most `per_minute` admin-API requests in any rolling 60 s (DISCOURSE_MAX_ADMIN_API_REQS_PER_MINUTE).

    Every request that reaches the API is counted in `stats()`, answered or not, so a test can
    assert that a client never sent more than a ceiling in any 60 s window.
    """

    WINDOW = 60.0

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()
        self._attempts: list[float] = []
        self._per_minute_counts: dict[str, int] = {}
        self._max_in_window = 0
        self.rejected = 0

    def record_attempt(self) -> None:
        """Counts one request sent to the admin API."""
        now = time.monotonic()
        minute = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        with self._lock:
            self._attempts.append(now)
            in_window = len(self._attempts) - bisect.bisect_right(self._attempts, now - self.WINDOW)
            self._max_in_window = max(self._max_in_window, in_window)
            self._per_minute_counts[minute] = self._per_minute_counts.get(minute, 0) + 1

    def acquire(self) -> int | None:
        """None when the request may go on, else the seconds to wait (the request is refused)."""
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.WINDOW:
                self._accepted.popleft()
            if len(self._accepted) >= self.per_minute:
                self.rejected += 1
                return max(1, math.ceil(self._accepted[0] + self.WINDOW - now))
            self._accepted.append(now)
            return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"ceiling": self.per_minute, "total": len(self._attempts),
                    "max_in_any_60s": self._max_in_window, "rejected": self.rejected,
                    "per_minute": dict(self._per_minute_counts)}

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
            self._attempts.clear()
            self._per_minute_counts.clear()
            self._max_in_window = 0
            self.rejected = 0


@dataclass
class FailureRule:
    """The next `count` requests whose path starts with `path_prefix` (and method, if given) fail:
    `mode` `error` answers `status`, `hang` holds the request `hang_seconds` then answers `status`.
    A `429` with `retry_after` carries Discourse's `Retry-After` and `extras.wait_seconds`."""

    path_prefix: str
    count: int = 1
    mode: str = "error"
    status: int = 500
    hang_seconds: float = 30.0
    method: str | None = None
    retry_after: float | None = None


class FailureInjector:
    """Injected failures, matched in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FailureRule] = []
        self.stopping = threading.Event()

    def add(self, rule: FailureRule) -> None:
        if rule.mode not in ("error", "hang"):
            raise ValueError("mode must be 'error' or 'hang'")
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(rule.__dict__) for rule in self._rules]

    def take(self, method: str, path: str) -> FailureRule | None:
        """The rule this request triggers (using one of its `count`), or None."""
        with self._lock:
            for rule in self._rules:
                if path.startswith(rule.path_prefix) and (rule.method is None or rule.method.upper() == method):
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    return rule
            return None
