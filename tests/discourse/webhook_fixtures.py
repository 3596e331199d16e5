"""Load the recorded deliveries of `fixtures/`, as Zulip's `check_webhook` reads its fixtures."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = b"test-secret"
BOT_USERNAME = "cofinancement"


def fixture_names() -> list[str]:
    """Every delivery name (`post_created__pledge`), sorted."""
    return sorted(path.stem for path in FIXTURES.glob("*.json")
                  if not path.name.endswith(".headers.json"))


def load(name: str) -> tuple[dict[str, str], bytes]:
    """The headers and the exact body bytes of delivery `name`."""
    body = (FIXTURES / f"{name}.json").read_bytes()
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text(encoding="utf-8"))
    return headers, body


# Shared samples keep their original names, which predate the `<event>__<variant>` rule.
SAMPLE_EVENTS = {"post_destroyed_by_author": "post_destroyed"}


def event_from_filename(name: str) -> str:
    """The `X-Discourse-Event` a fixture name stands for: the part before `__`."""
    return SAMPLE_EVENTS.get(name, name.split("__", 1)[0])
