"""The gateway's handling of what the wiki answers over HTTP (5xx, 429, maxlag, API error codes),
with `responses` standing in for api.php (unit tests of an HTTP client)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import mwclient
import pytest
import requests
import responses

from commons_sync.mediawiki import (
    EditConflict,
    PageExists,
    Wiki,
    WikiError,
    WikiUnavailable,
)
from commons_sync.mediawiki.errors import EditRefused

API = "http://wiki.test/w/api.php"
PAGE = {"batchcomplete": True, "query": {"pages": [
    {"pageid": 1, "ns": 0, "title": "Fonds", "revisions": [
        {"revid": 7, "parentid": 0, "slots": {"main": {"content": "texte"}}}]}]}}


def make_wiki(patience: float = 5.0) -> Wiki:
    site = mwclient.Site("wiki.test", path="/w/", scheme="http", do_init=False, max_retries=0,
                         retry_timeout=0)
    return Wiki(site, patience=patience)


def reply(status=200, body=None, headers=None):
    return (status, headers or {}, json.dumps(body if body is not None else PAGE))


def params_of(request) -> dict[str, str]:
    query = parse_qs(urlsplit(request.url).query)
    if request.body:
        body = request.body if isinstance(request.body, str) else request.body.decode()
        query.update(parse_qs(body))
    return {k: v[0] for k, v in query.items()}


@responses.activate
def test_503_with_a_short_retry_after_is_waited_for_and_retried():
    answers = iter([reply(503, {}, {"Retry-After": "0"}), reply()])
    responses.add_callback(responses.GET, API, callback=lambda r: next(answers))
    page = make_wiki().read_page("Fonds")
    assert page.text == "texte" and page.revid == 7
    assert len(responses.calls) == 2


@responses.activate
def test_retry_after_beyond_patience_raises_unavailable_at_once_with_the_wait():
    responses.add(responses.GET, API, status=503, json={}, headers={"Retry-After": "120"})
    with pytest.raises(WikiUnavailable) as raised:
        make_wiki(patience=5).read_page("Fonds")
    assert raised.value.retry_after == 120
    assert len(responses.calls) == 1


@responses.activate
def test_maxlag_is_honoured_then_reported_with_its_retry_after():
    lagged = reply(200, {"error": {"code": "maxlag", "info": "Waiting for db: 7 seconds lagged"}},
                   {"X-Database-Lag": "7", "Retry-After": "7"})
    responses.add_callback(responses.GET, API, callback=lambda r: lagged)
    with pytest.raises(WikiUnavailable) as raised:
        make_wiki(patience=1).read_page("Fonds")
    assert raised.value.retry_after == 7
    assert params_of(responses.calls[0].request)["maxlag"] == "5"


@responses.activate
def test_maxlag_with_a_short_wait_is_retried():
    answers = iter([reply(200, {"error": {"code": "maxlag", "info": "lag"}},
                          {"X-Database-Lag": "1", "Retry-After": "0"}), reply()])
    responses.add_callback(responses.GET, API, callback=lambda r: next(answers))
    assert make_wiki().read_page("Fonds").exists
    assert len(responses.calls) == 2


@responses.activate
def test_429_is_unavailable_with_retry_after():
    responses.add(responses.GET, API, status=429, body="", headers={"Retry-After": "30"})
    with pytest.raises(WikiUnavailable) as raised:
        make_wiki(patience=1).read_page("Fonds")
    assert raised.value.retry_after == 30


@responses.activate
def test_refused_connection_is_unavailable_after_patience():
    responses.add(responses.GET, API, body=requests.ConnectionError("refused"))
    with pytest.raises(WikiUnavailable) as raised:
        make_wiki(patience=0.3).read_page("Fonds")
    assert raised.value.retry_after is None
    assert len(responses.calls) >= 2


@responses.activate
def test_404_is_a_configuration_error_not_an_outage():
    responses.add(responses.GET, API, status=404, body="not here")
    with pytest.raises(WikiError) as raised:
        make_wiki().read_page("Fonds")
    assert not isinstance(raised.value, WikiUnavailable)


def fake_edit_api(edit_errors: list[str | None]):
    """api.php answering token queries, and edits with the given error codes in turn."""
    errors = iter(edit_errors)
    seen: list[dict] = []

    def callback(request):
        params = params_of(request)
        if params.get("action") == "query":
            return reply(200, {"query": {"tokens": {"csrftoken": f"t{len(seen)}+\\"},
                                         "userinfo": {"id": 1, "name": "Robot"}}})
        seen.append(params)
        code = next(errors)
        if code:
            return reply(200, {"error": {"code": code, "info": code}})
        return reply(200, {"edit": {"result": "Success", "newrevid": 42}})

    responses.add_callback(responses.GET, API, callback=callback)
    responses.add_callback(responses.POST, API, callback=callback)
    return seen


@responses.activate
def test_edit_sends_baserevid_without_timestamps_as_a_bot_edit():
    seen = fake_edit_api([None])
    assert make_wiki().save_page("Fonds", "x", base_revid=7, summary="s") == 42
    edit = seen[0]
    assert edit["baserevid"] == "7" and edit["nocreate"] == "1" and edit["bot"] == "1"
    assert "basetimestamp" not in edit and "starttimestamp" not in edit
    assert "createonly" not in edit


@responses.activate
def test_creation_is_createonly():
    seen = fake_edit_api([None])
    make_wiki().save_page("Fonds", "x", base_revid=None, summary="s")
    assert seen[0]["createonly"] == "1" and "baserevid" not in seen[0]


@pytest.mark.parametrize("code, error", [
    ("editconflict", EditConflict),
    ("missingtitle", EditConflict),
    ("articleexists", PageExists),
    ("protectedpage", EditRefused),
])
@responses.activate
def test_edit_error_codes_become_our_errors(code, error):
    fake_edit_api([code])
    with pytest.raises(error) as raised:
        make_wiki().save_page("Fonds", "x", base_revid=7, summary="s")
    assert raised.value.title == "Fonds"


@responses.activate
def test_bad_token_is_refreshed_and_retried_once():
    seen = fake_edit_api(["badtoken", None])
    assert make_wiki().save_page("Fonds", "x", base_revid=7, summary="s") == 42
    assert len(seen) == 2 and seen[0]["token"] != seen[1]["token"]


@responses.activate
def test_read_only_wiki_is_unavailable():
    fake_edit_api(["readonly"])
    with pytest.raises(WikiUnavailable):
        make_wiki(patience=0).save_page("Fonds", "x", base_revid=7, summary="s")
