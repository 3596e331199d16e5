"""The demo's replay of 2018, headless: the wiki's results page and every status post as published."""

import os
import signal
import subprocess
import sys

import pytest

from commons_sync.demo import movilab
from commons_sync.demo.stack import ROUND_SLUG, DemoStack
from commons_sync.devtools.local_mediawiki import available
from commons_sync.discourse.status_post import MARKER, status_label
from commons_sync.i18n import format_money
from commons_sync.mediawiki import Wiki, fiche
from commons_sync.service import handlers
from commons_sync.service.wiki_sync import results_title

from ..conftest import IN_CI

PUBLISHED = movilab.load()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not available():
        if IN_CI:
            pytest.fail("MediaWiki is required in CI")
        pytest.skip("MediaWiki not installed")
    with DemoStack(tmp_path_factory.mktemp("demo") / "demo.db") as running:
        running.replay()
        yield running


def published_lines():
    for section in ("funded", "in_progress"):
        for item in PUBLISHED[section]:
            yield section, item


def cofunders_text(n: int) -> str:
    return f"{n} cofinanceur" + ("s" if n > 1 else "")


def test_results_page_on_the_wiki_has_every_published_line(stack):
    wiki = Wiki.connect(stack.wiki.api_url, stack.wiki.bot_username, stack.wiki.bot_password)
    round_ = stack.svc.run(lambda uow: uow.repo.round_by_slug(ROUND_SLUG))
    text = wiki.read_page(results_title(round_)).text
    pages = {c["title"]: c["wiki_title"] for c in handlers.list_commons(stack.svc, ROUND_SLUG)}
    headings = {"funded": "== Financé ==", "in_progress": "== En cours de financement =="}
    for section, item in published_lines():
        line = fiche.results_line({"page": pages[item["title"]], "name": item["title"],
                                   "amount_cents": item["raised"] * 100, "currency": "EUR",
                                   "cofunders": item["cofunders"], "partial": False})
        block = text.split(headings[section])[1].split("\n==")[0]
        assert line in block.splitlines(), line
    for item in PUBLISHED["ideas"]:
        assert f"* [[{pages[item['title']]}|{item['title']}]]" in text.split("== Idées ==")[1]


def test_every_topic_has_one_status_post_with_the_published_figures(stack):
    topics = {t.title: t.topic_id for t in stack.topics}
    for section, item in published_lines():
        posts = [stack.admin.post(pid) for pid in stack.forum.double.forum.topics[topics[item["title"]]].post_ids]
        status = [p for p in posts if p["username"] == stack.forum.api_username and MARKER in p["raw"]]
        assert len(status) == 1, item["title"]
        raw = status[0]["raw"]
        assert f"**{format_money(item['raised'] * 100)}**" in raw, (item["title"], raw)
        assert cofunders_text(item["cofunders"]) in raw
        expected = status_label("financé" if section == "funded" else "en financement", "fr")
        assert raw.split("\n")[0].endswith(f" {expected}"), raw.split("\n")[0]


def test_no_pledge_was_refused_and_the_api_ceiling_was_kept(stack):
    assert all(p["refusal"] is None for p in handlers.list_pledges(stack.svc, ROUND_SLUG))
    stats = stack.admin.request_stats()
    assert stats["max_in_any_60s"] <= stack.settings.discourse_max_rpm


def test_demo_command_without_wiki_says_so_and_leaves_nothing_running(tmp_path):
    env = {**os.environ, "COMMONS_SYNC_LANGUAGE": "fr"}
    result = subprocess.run([sys.executable, "-m", "commons_sync.cli", "demo", "--no-wiki", "--exit-after-replay"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Sans wiki (--no-wiki)" in result.stderr
    assert "* Budget animation du réseau tiers lieux national - 1 340 € - 12 cofinanceurs" in result.stdout
    assert (tmp_path / "commons-sync-demo.db").exists()


def test_demo_stops_everything_on_ctrl_c(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "commons_sync.cli", "demo", "--no-wiki"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "Ctrl-C" in line:
            break
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
