"""The webhook's answer says whether a delivery was new, on SQLite and PostgreSQL alike."""

import json
from pathlib import Path

from commons_sync.service import handlers as h
from commons_sync.service.forum import receive_delivery

FIXTURES = Path(__file__).resolve().parents[1] / "discourse" / "fixtures"


def test_a_new_delivery_is_stored_and_its_redelivery_is_already_stored(service):
    h.create_round(service, h.RoundSpec(slug="r", name="R", allocation_cents=100, group="g"))
    body = (FIXTURES / "post_created__pledge.json").read_bytes()
    topic = json.loads(body)["post"]["topic_id"]
    h.open_commons(service, h.CommonsSpec(round_slug="r", title="C", goal_cents=100, topic_id=topic))
    headers = json.loads((FIXTURES / "post_created__pledge.headers.json").read_text())
    first = receive_delivery(service, headers, body, "commons-bot")
    again = receive_delivery(service, headers, body, "commons-bot")
    assert (first.status, first.message, again.status, again.message) == (202, "stored", 202, "already stored")
