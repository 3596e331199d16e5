"""The command line as an operator uses it: results on stdout, one clear line on stderr on failure."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from commons_sync.bootstrap import _engine
from commons_sync.cli import main


@pytest.fixture
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("COMMONS_SYNC_DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.stderr
        return result

    invoke("db", "upgrade")
    invoke("round", "create", "tl-2026", "--name", "Tiers-lieux 2026", "--allocation", "500 €",
           "--group", "lieux", "--closes", "2030-12-01T18:00", "--partial-threshold", "90")
    yield invoke
    _engine.cache_clear()


def test_round_commons_and_contribution_commands_with_json(cli):
    commons_id = cli("commons", "open", "--title", "Juriste « hot line »", "--round", "tl-2026",
                     "--goal", "3 000", "--max", "3 500", "--referent", "claire").stdout.strip()
    assert commons_id.isdigit()
    idea_id = cli("commons", "open", "--title", "Foncier agricole", "--round", "tl-2026", "--idea").stdout.strip()
    contribution_id = cli("contribution", "add", "--commons", commons_id, "--amount", "50,50",
                          "--source", "sur-adhésion 2026", "--member", "la-ruche").stdout.strip()
    cli("contribution", "mark", contribution_id, "--paid")
    shown = json.loads(cli("commons", "show", commons_id, "--json").stdout)
    assert (shown["goal"], shown["cap"], shown["raised"], shown["contributed"], shown["cofunders"]) == (3000, 3500, 50.5, 50.5, 1)
    listed = json.loads(cli("commons", "list", "--json").stdout)
    assert [c["id"] for c in listed] == [int(commons_id), int(idea_id)]
    assert listed[1]["status"] == "idée" and listed[1]["goal"] is None
    round_ = json.loads(cli("round", "show", "tl-2026", "--json").stdout)
    assert {k: round_[k] for k in ("slug", "name", "status")} == {"slug": "tl-2026", "name": "Tiers-lieux 2026", "status": "open"}
    assert round_["closes"].startswith("2030-12-01T18:00:00+01:00")
    assert round_["members"] == []  # a contribution never takes from a round balance
    cli("round", "grant", "tl-2026", "coop-a", "250", "--reason", "coopérative")
    members = json.loads(cli("round", "show", "tl-2026", "--json").stdout)["members"]
    assert members == [{"username": "coop-a", "allocated": 750, "pledged": 0, "balance": 750}]
    closing = cli("round", "close", "tl-2026").stdout
    assert "== Non financé ==\n* Juriste « hot line » - 50,50 € - 1 cofinanceur" in closing
    assert "== Idées ==\n* Foncier agricole" in closing


def test_export_opens_in_french_spreadsheets(cli, tmp_path):
    commons_id = cli("commons", "open", "--title", "Wiki", "--round", "tl-2026", "--goal", "1000").stdout.strip()
    cli("contribution", "add", "--commons", commons_id, "--amount", "1 200,5", "--source", "adhésion",
        ok=False)  # above the goal, which is the cap: refused
    cli("contribution", "add", "--commons", commons_id, "--amount", "120,5", "--source", "adhésion; 2026")
    cli("export", "--output", str(tmp_path / "ledger.csv"))
    data = (tmp_path / "ledger.csv").read_bytes()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["N°", "Date", "Campagne"]
    assert len(rows) == 2
    assert rows[1][2:] == ["tl-2026", "", commons_id, "Wiki", "contribution", "120,50", "EUR", "pledged", "adhésion; 2026"]


@pytest.mark.parametrize("args, message", [
    (("round", "show", "nope"), "Introuvable : round nope."),
    (("commons", "open", "--title", "X", "--round", "tl-2026", "--goal", "-5"), "Le montant doit être supérieur à zéro."),
    (("commons", "open", "--title", "X", "--round", "tl-2026", "--goal", "1,200"), "« 1,200 » est ambigu"),
    (("round", "create", "b", "--name", "B", "--allocation", "5", "--group", "g", "--closes", "demain"),
     "Date invalide : « demain »"),
    (("round", "create", "b", "--name", "B", "--allocation", "5", "--group", "g", "--closes", "2020-01-01"),
     "La clôture (2020-01-01T00:00:00+01:00) doit venir après l'ouverture"),
    (("round", "create", "b", "--name", "B", "--allocation", "5", "--group", "g", "--currency", "EURO"),
     "Devise inconnue : « EURO »"),
    (("round", "create", "tl-2026", "--name", "B", "--allocation", "5", "--group", "g"), "existe déjà"),
    (("contribution", "add", "--commons", "999", "--amount", "5", "--source", "x"), "Introuvable : commons 999."),
    (("pledge", "mark", "1", "--paid"), "Introuvable : pledge 1."),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(cli, args, message):
    before = cli("export", "--format", "json").stdout, cli("round", "list", "--json").stdout, cli("commons", "list", "--json").stdout
    result = cli(*args, ok=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert result.stdout == ""
    after = cli("export", "--format", "json").stdout, cli("round", "list", "--json").stdout, cli("commons", "list", "--json").stdout
    assert after == before


def test_english_output(cli, monkeypatch):
    monkeypatch.setenv("COMMONS_SYNC_LANGUAGE", "en")
    result = cli("round", "show", "nope", ok=False)
    assert result.stderr.strip() == "commons-sync: Not found: round nope."


def test_invalid_setting_stops_every_command_naming_the_variable(cli, monkeypatch):
    monkeypatch.setenv("COMMONS_SYNC_MEDIAWIKI_API_URL", "https://wiki.example.org/w/api.php")
    monkeypatch.setenv("COMMONS_SYNC_MEDIAWIKI_PASSWORD", "s3cr3t-bot-password")
    result = cli("round", "list", ok=False)
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        "commons-sync: COMMONS_SYNC_MEDIAWIKI_USERNAME is required together with "
        "COMMONS_SYNC_MEDIAWIKI_API_URL, COMMONS_SYNC_MEDIAWIKI_PASSWORD"]
    assert "s3cr3t" not in result.stderr + result.stdout


def test_outdated_database_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("COMMONS_SYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(main, ["round", "list"])
    assert result.exit_code == 1
    assert "commons-sync db upgrade" in result.stderr
    _engine.cache_clear()


def test_wiki_install_and_sync_against_the_real_wiki(cli, monkeypatch, installed, database_url):
    from commons_sync.mediawiki import Wiki, fiche

    monkeypatch.setenv("COMMONS_SYNC_MEDIAWIKI_API_URL", installed.api_url)
    monkeypatch.setenv("COMMONS_SYNC_MEDIAWIKI_USERNAME", installed.bot_username)
    monkeypatch.setenv("COMMONS_SYNC_MEDIAWIKI_PASSWORD", installed.bot_password)
    result = cli("wiki", "install")
    assert result.stdout == ""  # already installed by the session: nothing to edit
    title = f"Fiche CLI {database_url[-12:]}"
    commons_id = cli("commons", "open", "--title", title, "--round", "tl-2026", "--goal", "800").stdout.strip()
    assert "2 mises à jour envoyées, 0 en échec." in cli("wiki", "sync").stdout  # the fiche, the results page
    wiki = Wiki.connect(installed.api_url, installed.bot_username, installed.bot_password)
    page_title = json.loads(cli("commons", "show", commons_id, "--json").stdout)["wiki_title"]
    assert fiche.read_fiche(wiki.read_page(page_title).text)["objectif"] == "800"
    assert cli("wiki", "sync", "--all").stdout.strip() == "0 fiche modifiée sur 1."  # already up to date


def test_wiki_commands_say_when_the_adapter_is_off(cli):
    result = cli("wiki", "sync", ok=False)
    assert result.exit_code == 1 and "COMMONS_SYNC_MEDIAWIKI_API_URL" in result.stderr


def test_round_close_marks_a_partly_funded_commons_as_the_wiki_does(cli):
    commons_id = cli("commons", "open", "--title", "Presse", "--round", "tl-2026", "--goal", "100").stdout.strip()
    cli("contribution", "add", "--commons", commons_id, "--amount", "95", "--source", "adhésion", "--member", "ruche")
    assert "== Financé ==\n* Presse - 95 € - 1 cofinanceur (partiel)\n" in cli("round", "close", "tl-2026").stdout


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/x", "sqlite:////nonexistent/dir/t.db"])
@pytest.mark.parametrize("command", [("round", "list"), ("db", "upgrade")])
def test_unreachable_database_is_one_line(monkeypatch, tmp_path, url, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMONS_SYNC_DATABASE_URL", url)
    result = CliRunner().invoke(main, list(command))
    _engine.cache_clear()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["commons-sync: la base de données est injoignable"]


@pytest.mark.parametrize("args, line", [
    (["commons", "show", "abc"], "commons-sync: Invalid value for 'COMMONS_ID': 'abc' is not a valid integer."),
    (["round", "create", "x"], "commons-sync: Missing option '--name'."),
    (["nope"], "commons-sync: No such command 'nope'."),
])
def test_usage_errors_are_one_line_too(args, line, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "commons_sync.cli", *args], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(line)


def test_statuses_are_shown_in_the_reader_language(cli, monkeypatch):
    commons_id = cli("commons", "open", "--title", "Wiki", "--round", "tl-2026", "--goal", "10").stdout.strip()
    cli("contribution", "add", "--commons", commons_id, "--amount", "10", "--source", "x")
    assert "ouverte" in cli("round", "list").stdout
    monkeypatch.setenv("COMMONS_SYNC_LANGUAGE", "en")
    shown = cli("commons", "show", commons_id).stdout
    assert shown.splitlines()[0].endswith("— funded") and "Raised:" in shown
    assert "open" in cli("round", "list").stdout
