"""The webhook under attack: forged, missing, truncated, wrong-algorithm signatures; replays of a
valid delivery (same event id, new event id, an older version); bodies over 1 MiB."""

from __future__ import annotations

import http.client
import json

import pytest
from sqlalchemy import func, select

from commons_sync.service import handlers
from commons_sync.storage import tables as tb
from commons_sync.web.app import create_app
from commons_sync.devtools.served import ServedApp

from . import fuzz_targets
from .fuzz_targets import COMMONS_TOPIC, FORGED_SIGNATURES, deliveries, ledger_rows, sign, signature_for

URL = "/webhooks/discourse"


def pledge_delivery(event_id: int, raw: str = "Pour La Ruche :\n\n/soutien 50", *, version: int = 1,
                    username: str = "alice", post_id: int = 5001, event: str = "post_created") -> tuple[dict, bytes]:
    headers, body = fuzz_targets.recorded_deliveries()["post_created__pledge"]
    payload = json.loads(body)
    payload["post"].update(id=post_id, username=username, raw=raw, version=version, topic_id=COMMONS_TOPIC,
                           user_id=1000 + len(username), post_number=post_id - 4990)
    body = json.dumps(payload).encode()
    headers = dict(headers, **{"X-Discourse-Event-Id": str(event_id), "X-Discourse-Event": event,
                               "X-Discourse-Event-Signature": sign(body)})
    return headers, body


def _outbox_rows(svc) -> int:
    return svc.run(lambda uow: uow.repo.conn.execute(select(func.count()).select_from(tb.outbox)).scalar())


@pytest.fixture
def client(forum):
    svc, settings, _applier, _double = forum
    return create_app(settings, svc).test_client()


@pytest.mark.parametrize("mode", FORGED_SIGNATURES)
def test_a_forged_signature_is_401_and_nothing_is_recorded(forum, client, mode):
    svc = forum[0]
    headers, body = pledge_delivery(1)
    signature = signature_for(mode, body, "zz")
    headers.pop("X-Discourse-Event-Signature")
    if signature is not None:
        headers["X-Discourse-Event-Signature"] = signature
    answer = client.post(URL, data=body, headers=headers)
    assert answer.status_code == 401
    assert deliveries(svc) == 0 and ledger_rows(svc) == 0


def test_the_signature_of_another_body_is_401(forum, client):
    headers, _ = pledge_delivery(1, "/soutien 5")
    _, body = pledge_delivery(1, "/soutien 500")
    assert client.post(URL, data=body, headers=headers).status_code == 401
    assert deliveries(forum[0]) == 0


def test_a_replayed_delivery_changes_nothing(forum, client):
    svc, _settings, applier, _double = forum
    headers, body = pledge_delivery(1)
    assert client.post(URL, data=body, headers=headers).status_code == 202
    applier.apply_pending()
    pledged = handlers.show_round(svc, "printemps")["members"]
    assert [(m["username"], m["pledged"]) for m in pledged] == [("alice", 50)]
    entries, outbox = ledger_rows(svc), _outbox_rows(svc)

    # Same event id (Discourse's own redelivery, or an attacker's replay): stored once.
    again = client.post(URL, data=body, headers=headers)
    assert again.status_code == 202 and again.json["message"] == "already stored"
    # The event id is not signed: a replay under a new id is stored, and applying it changes nothing.
    renamed = dict(headers, **{"X-Discourse-Event-Id": "2"})
    assert client.post(URL, data=body, headers=renamed).status_code == 202
    assert deliveries(svc) == 2
    applier.apply_pending()
    assert (ledger_rows(svc), _outbox_rows(svc)) == (entries, outbox)
    assert handlers.show_round(svc, "printemps")["members"] == pledged
    assert handlers.verify_ledger(svc) == []


def test_an_older_version_replayed_after_an_edit_does_not_override_it(forum, client):
    svc, _settings, applier, _double = forum
    old_headers, old_body = pledge_delivery(1, "/soutien 50", version=1)
    for headers, body in (pledge_delivery(1, "/soutien 50", version=1),
                          pledge_delivery(2, "/soutien 80", version=2, event="post_edited")):
        assert client.post(URL, data=body, headers=headers).status_code == 202
    applier.apply_pending()
    entries = ledger_rows(svc)
    replay = dict(old_headers, **{"X-Discourse-Event-Id": "3"})
    assert client.post(URL, data=old_body, headers=replay).status_code == 202
    applier.apply_pending()
    assert ledger_rows(svc) == entries
    [pledge] = handlers.list_pledges(svc, "printemps")
    assert (pledge["amount"], pledge["version"]) == (80, 2)


def test_a_pledge_posted_by_a_forged_delivery_never_reaches_the_ledger(forum, client):
    svc, _settings, applier, _double = forum
    headers, body = pledge_delivery(1, "/soutien 400")
    headers["X-Discourse-Event-Signature"] = sign(body, "guessed-webhook-secret")
    assert client.post(URL, data=body, headers=headers).status_code == 401
    applier.apply_pending()
    assert ledger_rows(svc) == 0 and handlers.list_pledges(svc, "printemps") == []


# --- oversized bodies, over real HTTP ----------------------------------------------------------------


@pytest.fixture
def served(forum):
    svc, settings, _applier, _double = forum
    app = ServedApp(create_app(settings, svc))
    yield app
    app.stop()


def _raw_post(served, body: bytes, headers: dict, *, chunked: bool = False) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", served.server.server_port, timeout=30)
    try:
        connection.putrequest("POST", URL)
        for key, value in headers.items():
            connection.putheader(key, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 65536):
                piece = body[start:start + 65536]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        else:
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
        return connection.getresponse().status
    except (ConnectionResetError, BrokenPipeError):
        return -1  # the server answered and closed before reading everything
    finally:
        connection.close()


def _big(size: int) -> bytes:
    prefix, suffix = b'{"post": {"raw": "', b'"}}'
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_one_mebibyte_is_413_signed_or_not(forum, served, chunked):
    headers, _ = pledge_delivery(1)
    body = _big(1024 * 1024 + 1)
    for signature in (sign(body), "sha256=00"):
        status = _raw_post(served, body, dict(headers, **{"X-Discourse-Event-Signature": signature}),
                           chunked=chunked)
        assert status == 413
    assert deliveries(forum[0]) == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_one_mebibyte_is_read(forum, served, chunked):
    headers, _ = pledge_delivery(1)
    body = _big(1024 * 1024)
    signed = dict(headers, **{"X-Discourse-Event-Signature": sign(body)})
    assert _raw_post(served, body, signed, chunked=chunked) == 400  # read whole, then malformed
    unsigned = _raw_post(served, body, dict(headers, **{"X-Discourse-Event-Signature": "sha256=00"}),
                         chunked=chunked)
    assert unsigned == 401


def test_a_deeply_nested_body_is_400_not_500(forum, client):
    body = b"[" * 100_000
    headers = dict(pledge_delivery(1)[0], **{"X-Discourse-Event-Signature": sign(body)})
    assert client.post(URL, data=body, headers=headers).status_code == 400
    assert deliveries(forum[0]) == 0


@pytest.mark.parametrize("field", ["version", "post_number"])
def test_a_version_beyond_32_bits_is_400_not_a_database_error(forum, client, field):
    headers, body = pledge_delivery(1)
    payload = json.loads(body)
    payload["post"][field] = 3_000_000_000
    body = json.dumps(payload).encode()
    headers["X-Discourse-Event-Signature"] = sign(body)
    assert client.post(URL, data=body, headers=headers).status_code == 400
    assert deliveries(forum[0]) == 0
