"""The HTML view of the forum, the command-line runner, and a RunningDouble that leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble


def test_index_lists_topics_and_topic_page_shows_cooked_posts(forum):
    forum.admin.create_post("yannick.morel", forum.topic_id,
                            '[quote="claire.moderation, post:1, topic:1"]\n/soutien 50\n[/quote]\n\n'
                            "Je **confirme** notre engagement.")
    index = requests.get(forum.url + "/", timeout=10)
    assert "Achat mutualisé d&#39;une découpeuse laser" in index.text
    page = requests.get(f"{forum.url}/t/{forum.topic_id}", timeout=10)
    assert page.url.endswith(f"/t/achat-mutualise-dune-decoupeuse-laser/{forum.topic_id}")
    assert "<blockquote><p>/soutien 50</p></blockquote>" in page.text
    assert "<strong>confirme</strong>" in page.text
    assert "Yannick Morel" in page.text


def test_posts_created_through_the_api_are_cooked(forum):
    created = requests.post(f"{forum.url}/posts.json", headers=forum.api_headers(), timeout=10,
                            json={"topic_id": forum.topic_id,
                                  "raw": "<!-- commons-sync:statut -->\n**150 €** collectés <script>x</script>"})
    cooked = created.json()["cooked"]
    assert "<strong>150 €</strong>" in cooked
    assert "<script>" not in cooked and "commons-sync:statut" not in cooked
    assert "<!-- commons-sync:statut -->" in created.json()["raw"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_line_runner_serves_the_double():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "commons_sync.devtools.discourse_double", "--port", str(port),
         "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret", "a-long-enough-secret",
         "--api-rpm", "7", "--api-key", "k" * 64],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        health = None
        for _ in range(100):
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_double/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert health is not None and health.json()["ok"] is True
        stats = requests.get(f"http://127.0.0.1:{port}/_double/requests", timeout=5).json()
        assert stats["ceiling"] == 7
        user = requests.get(f"http://127.0.0.1:{port}/u/commons-bot.json", timeout=5,
                            headers={"Api-Key": "k" * 64, "Api-Username": "commons-bot"})
        assert user.json()["user"]["admin"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


def test_stop_leaves_nothing_running():
    before = {thread.name for thread in threading.enumerate()}
    double = RunningDouble(DoubleConfig()).start()
    url = double.url
    assert requests.get(url + "/_double/health", timeout=5).status_code == 200
    double.admin.fail_next("/u/", mode="hang", hang_seconds=60)

    def hang():
        try:
            requests.get(url + "/u/system.json", headers=double.api_headers(), timeout=30)
        except requests.RequestException:
            pass

    hanging = threading.Thread(target=hang)
    hanging.start()
    for _ in range(100):  # wait until the request is held by the double
        if not double.admin.failures():
            break
        time.sleep(0.02)
    double.stop()
    hanging.join(timeout=10)
    assert not hanging.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_double/health", timeout=2)
    left = {thread.name for thread in threading.enumerate()} - before
    assert not {name for name in left if name.startswith("discourse-double")}
