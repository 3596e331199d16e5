"""The staff pages in headless Chromium (Debian's), logged in through the double's DiscourseConnect."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from commons_sync.service import handlers, triage

from .conftest import eml, proposal, unique_title

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BODY = ("Bonjour,\n\nNous proposons une presse à cidre mobile pour les vergers partagés du réseau.\n\n"
        "Renée Dupré\nrenee@cretes.example\n")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (scripts/setup.sh --test)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def received(harness, subject: str, raw: bytes | None = None) -> dict:
    harness.deliver(raw or proposal(subject, BODY))
    harness.poll()
    return triage.list_submissions(harness.svc)[-1]


def log_in(page, harness, username: str) -> None:
    """Open the queue, which sends the browser to the forum's login, and choose `username` there."""
    page.goto(harness.app.url + "/staff/triage")
    assert page.url.startswith(harness.forum.url + "/session/sso_provider")
    page.get_by_role("link", name=username, exact=True).click()
    page.wait_for_load_state()


def test_staff_logs_in_through_the_forum_and_accepts_a_submission(wiki_harness, browser):
    harness = wiki_harness
    title = unique_title("Presse à cidre mobile")
    item = received(harness, title)
    malformed = received(harness, "", eml("malformed_broken_multipart"))
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()

    log_in(page, harness, "claire")

    assert page.url == harness.app.url + "/staff/triage"
    assert page.locator(".submission").count() == 2
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    [cookie] = [c for c in context.cookies() if c["name"] == "session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain HTTP here
    page.goto(f"{harness.app.url}/staff/triage/{malformed['id']}")
    assert "==sans-fin==" in page.locator("#raw").inner_text()
    assert "Message mal formé" in page.content()
    page.goto(harness.app.url + "/staff/triage")
    page.get_by_role("link", name=title).click()
    assert "Renée Dupré" in page.locator("#sender").inner_text()
    assert "presse à cidre mobile" in page.locator("#text").inner_text()
    page.fill("#accept-form input[name=goal]", "1 340")
    page.fill("#accept-form input[name=max]", "1500")
    page.click("#accept-form button[type=submit]")
    assert "Proposition acceptée" in page.locator(".flash-ok").inner_text()
    harness.settle()

    [topic] = harness.topics_in_category()
    assert topic.title == title
    commons = handlers.show_commons(harness.svc, triage.show_submission(harness.svc, item["id"])["commons"]["id"])
    assert (commons["topic_id"], commons["goal"], commons["cap"]) == (topic.id, 1340, 1500)
    page_on_wiki = harness.connect_wiki().read_page(commons["wiki_title"])
    assert page_on_wiki.exists and "{{Fiche commun" in page_on_wiki.text
    assert commons["discussion_url"] in page_on_wiki.text
    page.reload()
    assert page.get_by_role("link", name="sujet du forum").get_attribute("href") == commons["discussion_url"]
    context.close()


def test_a_member_outside_the_staff_group_is_refused(harness, browser):
    received(harness, "Presse à cidre mobile")
    context = browser.new_context()
    page = context.new_page()

    log_in(page, harness, "zoe")

    assert "réservées aux membres du groupe « equipe »" in page.content()
    page.goto(harness.app.url + "/staff/triage")
    assert page.url.startswith(harness.forum.url + "/session/sso_provider")  # still not logged in
    context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(harness, browser):
    item = received(harness, "Presse à cidre mobile")
    context = browser.new_context()
    page = context.new_page()
    log_in(page, harness, "claire")

    answer = page.request.post(f"{harness.app.url}/staff/triage/{item['id']}/spam", form={"x": "1"})
    forged = page.request.post(f"{harness.app.url}/staff/triage/{item['id']}/spam",
                               form={"csrf_token": "forged-token"})

    assert answer.status == 400 and forged.status == 400
    assert triage.show_submission(harness.svc, item["id"])["status"] == "queued"
    page.goto(f"{harness.app.url}/staff/triage/{item['id']}")
    page.click("#spam-form button[type=submit]")  # the same form with its token goes through
    assert triage.show_submission(harness.svc, item["id"])["status"] == "spam"
    context.close()


def _forum_answer(harness, username: str) -> str:
    """The signed address the forum sends a browser back to after logging in as `username`."""
    start = requests.get(harness.app.url + "/staff/login", allow_redirects=False, timeout=10)
    to_forum = start.headers["Location"]
    back = requests.get(to_forum + "&" + urlencode({"as": username}), allow_redirects=False, timeout=10)
    return back.headers["Location"]


def test_a_login_answer_is_used_once_and_must_be_signed_and_fresh(harness):
    answer = _forum_answer(harness, "claire")
    first = requests.get(answer, allow_redirects=False, timeout=10)
    replay = requests.get(answer, allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(_forum_answer(harness, "claire")).query)
    forged_sig = requests.get(harness.app.url + "/staff/sso?" + urlencode(
        {"sso": query["sso"][0], "sig": "0" * 64}), allow_redirects=False, timeout=10)
    late = _forum_answer(harness, "claire")
    harness.clock.advance(minutes=11)
    expired = requests.get(late, allow_redirects=False, timeout=10)

    assert first.status_code == 302 and first.headers["Location"].endswith("/staff/triage")
    assert "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Lax" in first.headers["Set-Cookie"]
    assert (replay.status_code, forged_sig.status_code, expired.status_code) == (403, 403, 403)


def test_the_session_cookie_is_secure_behind_tls(harness):
    answer = _forum_answer(harness, "claire")

    behind_proxy = requests.get(answer, allow_redirects=False, timeout=10,
                                headers={"X-Forwarded-Proto": "https"})

    assert behind_proxy.status_code == 302
    assert "Secure" in behind_proxy.headers["Set-Cookie"]


def test_pages_follow_the_chosen_language(harness):
    harness.deliver(proposal("", BODY))
    harness.poll()
    client = harness.app.server.app.test_client()
    with client.session_transaction() as session:
        session["staff"] = {"username": "claire", "name": "Claire Dubois"}

    french = client.get("/staff/triage").get_data(as_text=True)
    english = client.get("/staff/triage?lang=en").get_data(as_text=True)
    still_english = client.get("/staff/triage").get_data(as_text=True)

    assert '<html lang="fr">' in french and "(sans objet)" in french
    assert '<html lang="en">' in english and "(no subject)" in english
    assert "(no subject)" in still_english
    # Each language's typography: a space before the colon in French only.
    [link] = re.findall(r'href="(/staff/triage/\d+)"', english)
    page_fr = client.get(link + "?lang=fr").get_data(as_text=True)
    page_en = client.get(link + "?lang=en").get_data(as_text=True)
    assert "Référence : <strong" in page_fr and "Reference: <strong" in page_en


def test_an_attachment_is_always_a_download(harness):
    harness.deliver(eml("proposition_multipart_fr"))
    harness.poll()
    [item] = triage.list_submissions(harness.svc)
    client = harness.app.server.app.test_client()
    anonymous = client.get(f"/staff/triage/{item['id']}/attachments/0")
    with client.session_transaction() as session:
        session["staff"] = {"username": "claire", "name": "Claire Dubois"}

    answer = client.get(f"/staff/triage/{item['id']}/attachments/0")

    assert anonymous.status_code == 302 and "/staff/login" in anonymous.headers["Location"]
    assert answer.status_code == 200 and answer.data.startswith(b"%PDF")
    assert answer.mimetype == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert "Tiers-lieu%20des%20Cr%C3%AAtes.pdf" in answer.headers["Content-Disposition"]
    assert client.get(f"/staff/triage/{item['id']}/attachments/5").status_code == 404
