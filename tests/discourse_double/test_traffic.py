"""Discourse's admin-API ceiling (429 with Retry-After) and the failures a test can inject."""

from __future__ import annotations

import pytest
import requests


def _get_user(forum, timeout=10):
    return requests.get(f"{forum.url}/u/yannick.morel.json", headers=forum.api_headers(), timeout=timeout)


def test_request_over_the_ceiling_gets_429_with_retry_after(forum):
    forum.admin.set_api_ceiling(5, reset=True)
    statuses = [_get_user(forum).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = _get_user(forum)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    body = refused.json()
    assert body["error_type"] == "rate_limit"
    assert body["extras"]["wait_seconds"] == wait
    assert body["errors"]


def test_request_counts_show_the_most_in_any_minute(forum):
    forum.admin.set_api_ceiling(3, reset=True)
    for _ in range(4):
        _get_user(forum)
    requests.get(f"{forum.url}/u/yannick.morel.json", timeout=10)  # no key: not an admin-API request
    stats = forum.admin.request_stats()
    assert stats["ceiling"] == 3
    assert stats["total"] == 4
    assert stats["max_in_any_60s"] == 4
    assert stats["rejected"] == 1
    assert sum(stats["per_minute"].values()) == 4


def test_control_endpoints_are_not_counted(forum):
    forum.admin.set_api_ceiling(60, reset=True)
    forum.admin.create_user("someone", name="Someone")
    assert forum.admin.request_stats()["total"] == 0


def test_injected_errors_hit_only_the_next_requests_under_the_prefix(forum):
    forum.admin.fail_next("/posts/", count=2, status=502)
    post_path = f"{forum.url}/posts/{2001}.json"
    assert _get_user(forum).status_code == 200
    statuses = [requests.get(post_path, headers=forum.api_headers(), timeout=10).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert forum.admin.request_stats()["total"] == 4


def test_injected_hang_outlasts_the_client_timeout(forum):
    forum.admin.fail_next("/u/", count=1, mode="hang", hang_seconds=3)
    with pytest.raises(requests.Timeout):
        _get_user(forum, timeout=0.3)
    assert _get_user(forum).status_code == 200


def test_failures_can_be_limited_to_one_method(forum):
    forum.admin.fail_next("/posts", count=1, method="POST")
    assert requests.get(f"{forum.url}/posts/2001.json", headers=forum.api_headers(), timeout=10).status_code == 200
    created = requests.post(f"{forum.url}/posts.json", headers=forum.api_headers(), timeout=10,
                            json={"topic_id": forum.topic_id, "raw": "Réponse qui tombera en erreur."})
    assert created.status_code == 500
