"""Webhook signatures: Discourse's own test vector, the recorded deliveries, and forgeries."""

from __future__ import annotations

import pytest

from commons_sync.discourse.signature import sign, verify
from tests.discourse.webhook_fixtures import SECRET, fixture_names, load

DISCOURSE_SECRET = b"my_lovely_secret_for_web_hook"
DISCOURSE_SIGNATURE = "sha256=162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6"


def test_sign_matches_discourse_test_vector():
    assert sign(DISCOURSE_SECRET, b'{"ping":"OK"}') == DISCOURSE_SIGNATURE


def test_verify_accepts_discourse_test_vector():
    assert verify(DISCOURSE_SECRET, b'{"ping":"OK"}', DISCOURSE_SIGNATURE)


@pytest.mark.parametrize("name", fixture_names())
def test_recorded_delivery_is_signed_with_test_secret(name):
    headers, body = load(name)
    assert verify(SECRET, body, headers["X-Discourse-Event-Signature"])


def test_reformatted_body_no_longer_matches():
    headers, body = load("post_created")
    reformatted = body.replace(b'","', b'", "')
    assert reformatted != body
    assert not verify(SECRET, reformatted, headers["X-Discourse-Event-Signature"])


def test_one_changed_byte_no_longer_matches():
    headers, body = load("post_edited")
    assert not verify(SECRET, body.replace(b"200", b"900"), headers["X-Discourse-Event-Signature"])


def test_wrong_secret_is_refused():
    headers, body = load("ping")
    assert not verify(b"another-secret-entirely", body, headers["X-Discourse-Event-Signature"])


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha1=" + "0" * 40,
                                   "162f107f6b5022353274eb1a7197885cfd35744d8d08e5bcea025d309386b7d6",
                                   "sha256=162f107f", "sha256=zz\u00e9"])
def test_missing_or_garbled_header_is_refused(header):
    assert not verify(DISCOURSE_SECRET, b'{"ping":"OK"}', header)


def test_upper_case_hex_is_the_same_signature():
    assert verify(DISCOURSE_SECRET, b'{"ping":"OK"}', "sha256=" + DISCOURSE_SIGNATURE[7:].upper())


def test_empty_secret_never_verifies():
    assert not verify(b"", b'{"ping":"OK"}', sign(b"", b'{"ping":"OK"}'))
