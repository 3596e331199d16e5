"""Deliver webhook events as Discourse's background jobs do: signed, unordered, retried.

Each event gets an `X-Discourse-Event-Id`; a delivery the receiver does not answer with 2xx is
retried after `retry_delays` with a NEW id and the same body (Discourse's automatic retry,
shortened). Test options add duplicates (same id), delays and reordering.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from .config import DoubleConfig


def sign(secret: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256(secret, body): the X-Discourse-Event-Signature value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_body(event_type: str, payload: dict[str, Any]) -> bytes:
    """The body Discourse sends: compact JSON `{event_type: payload}`, UTF-8, no trailing newline."""
    return json.dumps({event_type: payload}, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class DeliveryOptions:
    """How deliveries misbehave: `duplicates` extra copies with the same id, `delay` seconds before
    each delivery, events emitted within `reorder_window` seconds sent in reverse order."""

    duplicates: int = 0
    delay: float = 0.0
    reorder_window: float = 0.0
    paused: bool = False


@dataclass(order=True)
class _Item:
    due: float
    order: int
    event_id: int = field(compare=False)
    event_type: str = field(compare=False)
    event_name: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(compare=False, default=0)
    retry_of: int | None = field(compare=False, default=None)
    duplicate: bool = field(compare=False, default=False)


class WebhookSender:
    """A background thread that delivers events to the configured URL and logs every attempt."""

    def __init__(self, config: DoubleConfig, first_event_id: int = 1):
        self.config = config
        self.options = DeliveryOptions()
        self._ids = itertools.count(first_event_id)
        self._order = itertools.count()
        self._queue: list[_Item] = []
        self._condition = threading.Condition()
        self._in_flight = 0
        self._batch_due: float | None = None
        self.log: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="discourse-double-webhooks", daemon=True)
        self._thread.start()

    def ping(self) -> int:
        """Queues the admin's "Ping" event: type and name `ping`, body `{"ping":"OK"}`."""
        return self.emit("ping", "ping", body=b'{"ping":"OK"}')

    def emit(self, event_type: str, event_name: str, payload: dict[str, Any] | None = None, *,
             body: bytes | None = None) -> int:
        """Queues one event (its body is the snapshot now) and returns its event id."""
        body = body if body is not None else encode_body(event_type, payload or {})
        with self._condition:
            event_id = next(self._ids)
            self.events.append({"event_id": event_id, "event_type": event_type, "event_name": event_name,
                                "body": body.decode()})
            now = time.monotonic()
            due = now + self.options.delay
            order = next(self._order)
            if self.options.reorder_window > 0:
                if self._batch_due is None or self._batch_due <= now:
                    self._batch_due = now + self.options.reorder_window
                due = self._batch_due + self.options.delay
                order = -order
            for copy in range(1 + self.options.duplicates):
                heapq.heappush(self._queue, _Item(due, order, event_id, event_type, event_name, body,
                                                  duplicate=copy > 0))
            self._condition.notify_all()
            return event_id

    def set_options(self, **changes: Any) -> DeliveryOptions:
        with self._condition:
            for key, value in changes.items():
                if not hasattr(self.options, key):
                    raise ValueError(f"unknown webhook option {key!r}")
                setattr(self.options, key, type(getattr(self.options, key))(value))
            self._condition.notify_all()
            return self.options

    def pending(self) -> int:
        with self._condition:
            return len(self._queue) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Blocks until every queued delivery and retry is done; False on timeout or when paused."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.options.paused:
                    return False
                self._condition.wait(min(remaining, 0.05))
            return True

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopping:
                    now = time.monotonic()
                    if self._queue and not self.options.paused and self._queue[0].due <= now:
                        break
                    wait = 0.2 if not self._queue or self.options.paused else self._queue[0].due - now
                    self._condition.wait(min(wait, 0.2))
                if self._stopping:
                    return
                item = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._deliver(item)
            finally:
                with self._condition:
                    self._in_flight -= 1
                    self._condition.notify_all()

    def headers(self, item: _Item) -> dict[str, str]:
        """The headers of one delivery, in the order Discourse builds them."""
        return {
            "Accept": "*/*", "Accept-Encoding": None, "Connection": "close",  # type: ignore[dict-item]
            "Content-Length": str(len(item.body)), "Content-Type": "application/json",
            "User-Agent": self.config.user_agent,
            "X-Discourse-Instance": self.config.instance_url or "",
            "X-Discourse-Event-Id": str(item.event_id), "X-Discourse-Event-Type": item.event_type,
            "X-Discourse-Event": item.event_name,
            "X-Discourse-Event-Signature": sign(self.config.webhook_secret, item.body),
        }

    def _deliver(self, item: _Item) -> None:
        headers = self.headers(item)
        record: dict[str, Any] = {
            "event_id": item.event_id, "event_type": item.event_type, "event_name": item.event_name,
            "attempt": item.attempt, "retry_of": item.retry_of, "duplicate": item.duplicate,
            "headers": {key: value for key, value in headers.items() if value is not None},
            "body": item.body.decode(), "status": None, "error": None,
        }
        url = self.config.webhook_url
        if not url:
            record["error"] = "no webhook URL configured"
        else:
            try:
                started = time.monotonic()
                response = requests.post(url, data=item.body, headers=headers,
                                         timeout=self.config.webhook_timeout, allow_redirects=False)
                record["status"] = response.status_code
                record["seconds"] = time.monotonic() - started
            except requests.RequestException as error:
                record["error"] = f"{type(error).__name__}: {error}"
        delivered = record["status"] is not None and 200 <= record["status"] < 300
        record["delivered"] = delivered
        with self._condition:
            self.log.append(record)
            delays = self.config.retry_delays
            if url and not delivered and not item.duplicate and item.attempt < len(delays):
                retry = _Item(time.monotonic() + delays[item.attempt], next(self._order), next(self._ids),
                              item.event_type, item.event_name, item.body, attempt=item.attempt + 1,
                              retry_of=item.retry_of or item.event_id)
                record["retried_as"] = retry.event_id
                heapq.heappush(self._queue, retry)
