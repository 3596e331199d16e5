"""`commons open --topic` and `--title` against the Discourse double (forum adapter on)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from commons_sync.cli import main
from commons_sync.service import handlers
from commons_sync.service.triage import topic_marker


def _open(*args: str):
    return CliRunner().invoke(main, ["commons", "open", *args])


def test_open_on_topic_reads_title_and_last_post_and_ignores_earlier_pledges(forum_env):
    forum = forum_env
    topic = forum.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                     "Proposition : une licence partagée entre les lieux.")["topic_id"]
    early = forum.pledge("bruno", topic, "30")  # before the commons exists: not a pledge
    assert forum.admin.wait_for_webhooks(timeout=30)  # answered "ignored": not a commons yet
    result = _open("--topic", str(topic), "--round", "printemps", "--goal", "1340", "--max", "1500")
    assert result.exit_code == 0, result.output
    commons_id = int(result.stdout.strip())
    commons = handlers.show_commons(forum.svc, commons_id)
    assert (commons["title"], commons["topic_id"], commons["goal"], commons["cap"]) == (
        "Mutualiser une licence de comptabilité", topic, 1340, 1500)
    assert commons["discussion_url"] == f"{forum.forum.url}/t/{topic}"
    forum.pledge("chloe", topic, "25")
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["pledged"], commons["cofunder_names"]) == (25, ["chloe"])
    assert forum.replies_to(topic, early["post_number"]) == []
    assert "**25 €** collectés" in forum.status_post(topic)["raw"]


def test_open_on_a_long_topic_finds_its_last_post_beyond_the_first_page(forum_env):
    forum = forum_env
    topic = forum.admin.create_topic("alice", "Un sujet avec beaucoup de messages",
                                     "Discussion ouverte entre les lieux du réseau.")["topic_id"]
    for n in range(24):
        forum.post("zoe", topic, f"Message numéro {n} de la discussion.")
    last = forum.pledge("bruno", topic, "30")
    result = _open("--topic", str(topic), "--round", "printemps", "--idea")
    assert result.exit_code == 0, result.output
    first_post_number = forum.svc.run(lambda uow: uow.repo.commons(int(result.stdout)).first_post_number)
    assert first_post_number == last["post_number"] == 26


def test_open_on_a_topic_the_forum_does_not_have_fails_with_one_line(forum_env):
    result = _open("--topic", "987654", "--round", "printemps", "--goal", "100")
    assert result.exit_code == 1
    assert result.stderr.strip() == "commons-sync: le sujet 987654 est introuvable sur le forum"
    assert handlers.list_commons(forum_env.svc) == []


def test_open_the_same_topic_twice_is_refused(forum_env):
    forum = forum_env
    topic = forum.admin.create_topic("alice", "Mutualiser une licence de comptabilité",
                                     "Proposition : une licence partagée entre les lieux.")["topic_id"]
    assert _open("--topic", str(topic), "--round", "printemps", "--goal", "100").exit_code == 0
    again = _open("--topic", str(topic), "--round", "printemps", "--goal", "100")
    assert again.exit_code == 1
    assert len(handlers.list_commons(forum.svc)) == 1


def test_open_with_title_creates_the_topic_in_the_category_and_links_it(forum_env, monkeypatch):
    forum = forum_env
    category = forum.admin.create_category("Communs", category_id=12)["id"]
    monkeypatch.setenv("COMMONS_SYNC_DISCOURSE_CATEGORY", str(category))
    result = _open("--title", "Une imprimante 3D partagée", "--round", "printemps", "--goal", "800",
                   "--referent", "Claire Dubois")
    assert result.exit_code == 0, result.output
    commons_id = int(result.stdout.strip())  # printed before the forum was asked anything
    assert handlers.show_commons(forum.svc, commons_id)["topic_id"] is None
    forum.worker.run_once()
    forum.settle()
    commons = handlers.show_commons(forum.svc, commons_id)
    topic = commons["topic_id"]
    assert topic is not None
    stored = forum.forum.double.forum.topics[topic]
    assert (stored.title, stored.category_id) == ("Une imprimante 3D partagée", category)
    first = forum.topic_posts(topic)[0]
    assert first["username"] == forum.forum.api_username
    assert topic_marker(commons_id) in first["raw"]
    assert "Claire Dubois" in first["raw"]
    assert forum.status_post(topic)  # the status post followed
    forum.pledge("alice", topic, "50")
    forum.settle()
    assert forum.commons(topic)["pledged"] == 50


def test_without_the_forum_adapter_topic_is_refused_and_title_works_offline(sqlite_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("URL", "API_KEY", "API_USERNAME", "WEBHOOK_SECRET", "CATEGORY"):
        monkeypatch.delenv(f"COMMONS_SYNC_DISCOURSE_{name}", raising=False)
    monkeypatch.setenv("COMMONS_SYNC_DATABASE_URL", sqlite_url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(main, ["round", "create", "r", "--name", "R", "--allocation", "500",
                                "--group", "g"]).exit_code == 0
    refused = _open("--topic", "5", "--round", "r", "--goal", "100")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == ("commons-sync: --topic demande l'adaptateur Discourse "
                                      "(COMMONS_SYNC_DISCOURSE_*)")
    offline = _open("--title", "Une idée", "--round", "r", "--idea")
    assert offline.exit_code == 0, offline.output
    listed = json.loads(runner.invoke(main, ["commons", "list", "--json"]).stdout)
    assert [(c["id"], c["title"], c["topic_id"]) for c in listed] == [(int(offline.stdout), "Une idée", None)]
