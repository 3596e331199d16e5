"""The staff pages under attack: DiscourseConnect replay and tampering, CSRF on every form,
people who are not staff, forged session cookies, oversized forms."""

from __future__ import annotations

import base64

import pytest

from commons_sync.service import triage

from .conftest import CONNECT_SECRET, csrf_token, forum_answer, log_in, start_login


def _logged_in(client) -> bool:
    return client.get("/staff/triage").status_code == 200


# --- DiscourseConnect ------------------------------------------------------------------------------


def test_a_signed_answer_logs_staff_in_once_and_its_replay_is_refused(staff_app):
    client = staff_app.test_client()
    nonce = start_login(client)
    answer = forum_answer(nonce)
    first = client.get("/staff/sso", query_string=answer)
    assert first.status_code == 302 and first.headers["Location"].endswith("/staff/triage")
    assert _logged_in(client)

    other = staff_app.test_client()  # an attacker who captured the answer's URL
    replay = other.get("/staff/sso", query_string=answer)
    assert replay.status_code == 403
    assert not _logged_in(other)


@pytest.mark.parametrize("tamper", ["groups", "username", "sig_other_secret", "sig_truncated", "sig_missing",
                                    "sso_missing", "sso_not_base64", "unknown_nonce"])
def test_a_tampered_answer_is_refused_and_logs_nobody_in(staff_app, tamper):
    client = staff_app.test_client()
    nonce = start_login(client)
    answer = forum_answer(nonce, username="zoe", groups="trust_level_1")
    if tamper == "groups":  # zoe adds the staff group to the payload, keeping the forum's signature
        forged = forum_answer(nonce, username="zoe", groups="trust_level_1,staff")
        answer = {"sso": forged["sso"], "sig": answer["sig"]}
    elif tamper == "username":
        staff = forum_answer(nonce, username="zoe", groups="staff")
        fields = base64.b64decode(staff["sso"]).decode().replace("username=zoe", "username=claire")
        answer = {"sso": base64.b64encode(fields.encode()).decode(), "sig": staff["sig"]}
    elif tamper == "sig_other_secret":
        answer = forum_answer(nonce, groups="staff", secret="not-the-" + CONNECT_SECRET)
    elif tamper == "sig_truncated":
        answer = forum_answer(nonce, groups="staff")
        answer["sig"] = answer["sig"][:-2]
    elif tamper == "sig_missing":
        answer = {"sso": forum_answer(nonce, groups="staff")["sso"]}
    elif tamper == "sso_missing":
        answer = {"sig": forum_answer(nonce, groups="staff")["sig"]}
    elif tamper == "sso_not_base64":
        answer = forum_answer(nonce, groups="staff")
        answer["sso"] = "%%%not base64%%%"
    elif tamper == "unknown_nonce":
        answer = forum_answer("a-nonce-never-issued", groups="staff")
    refused = client.get("/staff/sso", query_string=answer)
    assert refused.status_code in (400, 403)
    assert not _logged_in(client)
    if tamper != "unknown_nonce":  # the real nonce was not used up by the forgery: staff can still log in
        assert client.get("/staff/sso", query_string=forum_answer(nonce)).status_code == 302


def test_a_signed_answer_for_an_expired_nonce_is_refused(staff_app, forum):
    svc = forum[0]
    client = staff_app.test_client()
    nonce = start_login(client)
    svc.clock.advance(minutes=11)
    assert client.get("/staff/sso", query_string=forum_answer(nonce)).status_code == 403
    assert not _logged_in(client)


def test_a_member_outside_the_staff_group_is_refused(staff_app):
    client = staff_app.test_client()
    assert log_in(client, username="zoe", groups="trust_level_1,cofinanceurs").status_code == 403
    assert not _logged_in(client)


def test_login_never_sends_the_browser_to_another_site(staff_app):
    client = staff_app.test_client()
    nonce = start_login(client, next_path="//evil.example/staff")
    answer = client.get("/staff/sso", query_string=forum_answer(nonce))
    assert answer.status_code == 302
    assert answer.headers["Location"] in ("/staff/triage", "http://localhost/staff/triage")


# --- who may see and post what ---------------------------------------------------------------------


def _staff_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff") or rule.endpoint in ("staff.login", "staff.sso_return"):
            continue
        path = rule.rule.replace("<int:submission_id>", "1").replace("<int:index>", "0")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_the_staff_routes_are_all_found(staff_app):
    routes = _staff_routes(staff_app)
    posts = [path for method, path in routes if method == "POST"]
    assert {"/staff/triage/1/accept", "/staff/triage/1/reject", "/staff/triage/1/merge",
            "/staff/triage/1/spam", "/staff/logout"} <= set(posts)


def test_nobody_logged_in_reaches_no_staff_page(staff_app):
    client = staff_app.test_client()
    for method, path in _staff_routes(staff_app):
        if path in ("/staff/", "/staff/logout"):
            continue
        answer = client.open(path, method=method, data={"csrf_token": "x"})
        if method == "GET":
            assert answer.status_code == 302 and "/staff/login" in answer.headers["Location"], path
        else:
            assert answer.status_code in (302, 400), (method, path, answer.status_code)
            assert answer.status_code == 400 or "/staff/login" in answer.headers["Location"]
    assert triage.show_submission(staff_app.extensions["commons_sync"]["service"], 1)["status"] == "queued"


def test_a_session_cookie_signed_with_another_key_is_not_a_login(staff_app):
    from flask import Flask

    forger = Flask("forger")
    forger.secret_key = "guessed-secret-key-000000000000"
    cookie = forger.session_interface.get_signing_serializer(forger).dumps(
        {"staff": {"username": "zoe", "name": "Zoé"}})
    client = staff_app.test_client()
    client.set_cookie("session", cookie)
    assert not _logged_in(client)


@pytest.mark.parametrize("token", ["missing", "forged", "another_session"])
def test_every_staff_form_refuses_a_post_without_its_csrf_token(staff_app, token):
    svc = staff_app.extensions["commons_sync"]["service"]
    client = staff_app.test_client()
    assert log_in(client).status_code == 302
    valid = csrf_token(client)
    other = staff_app.test_client()
    log_in(other)
    foreign = csrf_token(other)
    form = {"reason": "doublon", "into": "1", "goal": "1340", "round": "printemps", "title": "Presse"}
    if token == "forged":
        form["csrf_token"] = valid[:-3] + "abc"
    elif token == "another_session":
        form["csrf_token"] = foreign
    posts = [path for method, path in _staff_routes(staff_app) if method == "POST"]
    for path in posts:
        answer = client.post(path, data=form)
        assert answer.status_code == 400, (path, answer.status_code)
    assert triage.show_submission(svc, 1)["status"] == "queued"
    assert _logged_in(client)  # logout was refused too
    # the same form with its token goes through (the check above can fail)
    assert client.post("/staff/triage/1/spam", data={"csrf_token": valid}).status_code == 302
    assert triage.show_submission(svc, 1)["status"] == "spam"


def test_a_staff_form_over_one_mebibyte_is_answered_413(staff_app):
    client = staff_app.test_client()
    log_in(client)
    answer = client.post("/staff/triage/1/reject", data={"csrf_token": csrf_token(client),
                                                         "reason": "x" * (1024 * 1024 + 1)})
    assert answer.status_code == 413
    assert triage.show_submission(staff_app.extensions["commons_sync"]["service"], 1)["status"] == "queued"


def test_an_amount_of_thousands_of_digits_in_the_accept_form_is_refused_not_a_500(staff_app):
    client = staff_app.test_client()
    log_in(client)
    answer = client.post("/staff/triage/1/accept", data={"csrf_token": csrf_token(client), "goal": "9" * 5000,
                                                         "round": "printemps", "title": "Presse"})
    assert answer.status_code == 302
    assert triage.show_submission(staff_app.extensions["commons_sync"]["service"], 1)["status"] == "queued"




def test_a_signature_with_non_ascii_characters_is_refused_not_a_crash(staff_app):
    client = staff_app.test_client()
    answer = forum_answer(start_login(client))
    answer["sig"] = "\u00e9" * 64
    assert client.get("/staff/sso", query_string=answer).status_code == 403
    assert not _logged_in(client)
