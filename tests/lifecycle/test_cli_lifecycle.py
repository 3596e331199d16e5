"""`round remind SLUG --dry-run` and `commons cancel` as the command line runs them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from commons_sync.cli import main

from .conftest import private_messages


@pytest.fixture
def env(forum, monkeypatch):
    for name, value in forum.environment(max_rpm=50).items():
        monkeypatch.setenv(name, value)
    return forum


def test_round_remind_dry_run_shows_who_gets_what_and_sends_nothing(env):
    forum = env
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "120")
    forum.settle()
    result = CliRunner().invoke(main, ["round", "remind", "printemps", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines == ["alice\t380 €\tMutualiser une licence de comptabilité",
                     "bruno\t500 €\tMutualiser une licence de comptabilité",
                     "chloe\t500 €\tMutualiser une licence de comptabilité"]
    assert "3 messages seraient envoyés" in result.stderr and "50 requêtes/min" in result.stderr
    forum.settle()
    assert private_messages(forum, "alice") == []
    result = CliRunner().invoke(main, ["round", "remind", "printemps"])
    assert result.exit_code == 0 and "3 messages mis en file" in result.stderr
    forum.settle()
    assert len(private_messages(forum, "alice")) == 1  # the first goes at once, the others are spaced


def test_commons_cancel_prints_what_was_released_and_refuses_a_second_time(env):
    forum = env
    topic = forum.commons_topic()
    forum.pledge("bruno", topic, "75")
    forum.settle()
    commons_id = str(forum.commons(topic)["id"])
    result = CliRunner().invoke(main, ["commons", "cancel", commons_id, "--reason", "doublon"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["bruno\t75 €"]
    again = CliRunner().invoke(main, ["commons", "cancel", commons_id, "--reason", "doublon"])
    assert again.exit_code != 0 and f"Le commun {commons_id} est déjà annulé." in again.stderr
