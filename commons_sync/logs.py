"""Logging for every command: one configuration, plain text or one JSON object a line, no secret.

`configure_logging` is called once by the `commons-sync` group (and by the web app when a server
such as gunicorn imported it without our command line). Each record carries the request id of the
web request (`X-Request-Id`) or the delivery id of the worker's current item (webhook event id,
outbox row id) set with `log_context`. Secret values — every `SecretStr` of the settings and the
password of the database URL — are replaced by `[redacted]` in the message and the traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

FORMATS = ("text", "json")
ENV_FORMAT = "COMMONS_SYNC_LOG_FORMAT"
ENV_LEVEL = "COMMONS_SYNC_LOG_LEVEL"
REDACTED = "[redacted]"
_CONTEXT_FIELDS = ("request_id", "delivery_id")

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("commons_sync_log_context", default={})


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Tag every record logged inside the block (`request_id=…` or `delivery_id=…`)."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_context(**fields: object) -> contextvars.Token:
    """Like `log_context`, for code that ends the scope elsewhere (`unbind_context(token)`)."""
    return _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})


def unbind_context(token: contextvars.Token) -> None:
    _context.reset(token)


def current_context() -> dict:
    return dict(_context.get())


class _ContextFilter(logging.Filter):
    """Copy the current request/delivery id onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in _CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


class Redactor:
    """Replaces every known secret value in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole; very short values
        # (a typo'd one-letter password) would blank out ordinary words, they are not worth it.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def secret_values(settings) -> list[str]:
    """Every secret the settings hold: the `SecretStr` fields and the database URL's password."""
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url

    if settings is None:
        return []
    values = [value.get_secret_value() for value in (getattr(settings, name) for name in type(settings).model_fields)
              if isinstance(value, SecretStr)]
    try:
        password = make_url(settings.database_url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        password = None
    if password:
        values.append(str(password))
    return values


class TextFormatter(logging.Formatter):
    """`time level logger [id]: message`, secrets redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{name}={getattr(record, name)}" for name in _CONTEXT_FIELDS if getattr(record, name, None)]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return self.redactor(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id / delivery_id, exception.

    Only these fields are written (never the record's arbitrary extras), each after redaction.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = self.redactor(str(value))
        if record.exc_info:
            entry["exception"] = self.redactor(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = self.redactor(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):
    """The handler `configure_logging` installs (a second call replaces it).

    Without a fixed stream it writes to the `sys.stderr` of the moment, so a test runner that
    swaps stderr (click's `CliRunner`) never leaves it writing to a closed stream.
    """

    def __init__(self, stream=None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._fixed is None:
            self.stream = sys.stderr
        super().emit(record)


def configure_logging(fmt: str | None = None, level: str | int | None = None, settings=None,
                      stream=None) -> logging.Handler:
    """Send every record to stderr (or `stream`) as text or JSON lines, secrets redacted.

    `fmt` and `level` default to COMMONS_SYNC_LOG_FORMAT (`text`) and COMMONS_SYNC_LOG_LEVEL
    (`INFO`). Calling it again replaces the previous configuration.
    """
    fmt = (fmt or os.environ.get(ENV_FORMAT) or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"{ENV_FORMAT}: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    level = level or os.environ.get(ENV_LEVEL) or logging.INFO
    if isinstance(level, str):
        level = level.upper()
    redactor = Redactor(secret_values(settings))
    handler = _OurHandler(stream)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter that would drown the service's own lines (and alembic's info on each start).
    for name in ("alembic", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def configured() -> bool:
    """Whether `configure_logging` already ran in this process."""
    return any(isinstance(h, _OurHandler) for h in logging.getLogger().handlers)
