"""The DiscourseConnect provider signs the chosen user back to the consumer, as Discourse does."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from .conftest import SSO_SECRET

RETURN_URL = "http://127.0.0.1:9/auth/discourse/callback"


def _signed_request(nonce="n-12345", secret=SSO_SECRET):
    payload = base64.b64encode(urlencode({"nonce": nonce, "return_sso_url": RETURN_URL}).encode()).decode()
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return payload, sig


def test_round_trip_returns_the_user_signed(forum):
    payload, sig = _signed_request()
    response = requests.get(f"{forum.url}/session/sso_provider", timeout=10, allow_redirects=False,
                            params={"sso": payload, "sig": sig, "as": "yannick.morel"})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    expected = hmac.new(SSO_SECRET.encode(), query["sso"].encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(query["sig"], expected)
    fields = {key: values[0] for key, values in parse_qs(base64.b64decode(query["sso"]).decode()).items()}
    assert fields["nonce"] == "n-12345"
    assert fields["return_sso_url"] == RETURN_URL
    assert fields["username"] == "yannick.morel"
    assert fields["name"] == "Yannick Morel"
    assert fields["admin"] == "false" and fields["moderator"] == "false"
    assert "la-ruche" in fields["groups"].split(",")
    assert fields["external_id"] == str(forum.admin.user("yannick.morel")["id"])
    assert fields["email"]


def test_staff_user_is_in_the_staff_group(forum):
    payload, sig = _signed_request()
    response = requests.get(f"{forum.url}/session/sso_provider", timeout=10, allow_redirects=False,
                            params={"sso": payload, "sig": sig, "as": "claire.moderation"})
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    fields = parse_qs(base64.b64decode(query["sso"][0]).decode())
    assert fields["moderator"] == ["true"]
    assert "staff" in fields["groups"][0].split(",")


def test_without_a_chosen_user_a_login_form_lists_the_users(forum):
    payload, sig = _signed_request()
    response = requests.get(f"{forum.url}/session/sso_provider", timeout=10,
                            params={"sso": payload, "sig": sig})
    assert response.status_code == 200
    assert "yannick.morel" in response.text and "claire.moderation" in response.text
    assert "as=yannick.morel" in response.text


def test_tampered_signature_is_refused(forum):
    payload, _ = _signed_request()
    _, other_sig = _signed_request(secret="another-secret-entirely")
    response = requests.get(f"{forum.url}/session/sso_provider", timeout=10, allow_redirects=False,
                            params={"sso": payload, "sig": other_sig, "as": "yannick.morel"})
    assert response.status_code == 422
    assert "Location" not in response.headers


def test_tampered_payload_is_refused(forum):
    payload, sig = _signed_request()
    tampered = base64.b64encode(urlencode({"nonce": "n-12345", "return_sso_url": "http://evil.example/"})
                                .encode()).decode()
    response = requests.get(f"{forum.url}/session/sso_provider", timeout=10, allow_redirects=False,
                            params={"sso": tampered, "sig": sig, "as": "yannick.morel"})
    assert response.status_code == 422
    assert payload != tampered
