"""A delivery the forum can never help with (its post is gone) is set aside, not a roadblock."""

import json
from pathlib import Path

import requests

from commons_sync.discourse.signature import sign

from .harness import SECRET, ForumHarness

FIXTURES = Path(__file__).resolve().parents[1] / "discourse" / "fixtures"


def test_a_recovery_of_a_post_the_forum_no_longer_has_does_not_block_later_pledges(sqlite_url):
    with ForumHarness(sqlite_url) as forum:
        forum.people()
        forum.round()
        topic = forum.commons_topic()
        payload = json.loads((FIXTURES / "post_recovered__by_author.json").read_bytes())
        payload["post"].update(id=999_999, topic_id=topic, post_number=40, username="alice")
        payload["post"].pop("raw", None)  # so the worker must read the post from the forum: 404
        body = json.dumps(payload).encode()
        headers = json.loads((FIXTURES / "post_recovered__by_author.headers.json").read_text())
        headers.update({"X-Discourse-Event-Id": "777001", "Content-Length": str(len(body)),
                        "X-Discourse-Event-Signature": sign(SECRET.encode(), body)})
        headers.pop("Host", None)
        answer = requests.post(forum.app.url + "/webhooks/discourse", data=body, headers=headers, timeout=10)
        assert answer.status_code == 202
        forum.pledge("bruno", topic, "50")
        forum.settle()
        assert forum.commons(topic)["pledged"] == 50
