"""Settings (CONTRACT §2): adapters on or off, one line naming a bad variable, secrets never shown."""

import pytest

from commons_sync.config import SettingsError, load_settings

SECRET = "tres-secret-webhook-1234"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    import os

    for name in list(os.environ):
        if name.startswith("COMMONS_SYNC_"):
            monkeypatch.delenv(name)


def test_defaults_and_adapters_off():
    settings = load_settings()
    assert (settings.database_url, settings.language, settings.timezone) == (
        "sqlite:///./commons-sync.db", "fr", "Europe/Paris")
    assert [settings.adapter_on(a) for a in ("discourse", "mediawiki", "imap", "smtp")] == [False] * 4
    assert settings.discourse_max_rpm == 50 and settings.imap_effective_port == 993


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("COMMONS_SYNC_LANGUAGE=en\nCOMMONS_SYNC_IMAP_SSL=false\n"
                                   "COMMONS_SYNC_IMAP_HOST=imap.example.org\nCOMMONS_SYNC_IMAP_USERNAME=p\n"
                                   "COMMONS_SYNC_IMAP_PASSWORD=secret\n")
    settings = load_settings()
    assert settings.language == "en" and settings.imap_effective_port == 143


def test_adapter_fully_set_is_on(monkeypatch):
    for name, value in {"URL": "https://forum.example.org/", "API_KEY": "k" * 64, "API_USERNAME": "bot",
                        "WEBHOOK_SECRET": SECRET}.items():
        monkeypatch.setenv(f"COMMONS_SYNC_DISCOURSE_{name}", value)
    settings = load_settings()
    assert settings.adapter_on("discourse") and settings.discourse_url == "https://forum.example.org"
    assert SECRET not in repr(settings) and "k" * 64 not in str(settings.model_dump())


@pytest.mark.parametrize("variables, line", [
    ({"COMMONS_SYNC_DATABASE_URL": "foo://x"}, "COMMONS_SYNC_DATABASE_URL: only sqlite:/// and postgresql://"),
    ({"COMMONS_SYNC_DATABASE_URL": "notaurl"}, "COMMONS_SYNC_DATABASE_URL: not a database URL"),
    ({"COMMONS_SYNC_IMAP_PORT": "993"}, "COMMONS_SYNC_IMAP_HOST is required together with COMMONS_SYNC_IMAP_PORT"),
    ({"COMMONS_SYNC_SMTP_USERNAME": "x"}, "COMMONS_SYNC_SMTP_HOST is required together with COMMONS_SYNC_SMTP_USERNAME"),
    ({"COMMONS_SYNC_DISCOURSE_CATEGORY": "5"}, "COMMONS_SYNC_DISCOURSE_URL is required together with COMMONS_SYNC_DISCOURSE_CATEGORY"),
    ({"COMMONS_SYNC_LANGUAGE": "de"}, "COMMONS_SYNC_LANGUAGE: Input should be 'fr' or 'en'"),
    ({"COMMONS_SYNC_TIMEZONE": "Mars/Olympus"}, "COMMONS_SYNC_TIMEZONE: unknown time zone 'Mars/Olympus'"),
    ({"COMMONS_SYNC_DISCOURSE_MAX_RPM": "beaucoup"}, "COMMONS_SYNC_DISCOURSE_MAX_RPM: Input should be a valid integer"),
    ({"COMMONS_SYNC_SMTP_HOST": "smtp.example.org"}, "COMMONS_SYNC_SMTP_FROM is required together with COMMONS_SYNC_SMTP_HOST"),
    ({"COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET": "court"}, "COMMONS_SYNC_DISCOURSE_WEBHOOK_SECRET: must be at least 12 characters"),
    ({"COMMONS_SYNC_MEDIAWIKI_API_URL": "wiki.example.org/api.php"}, "COMMONS_SYNC_MEDIAWIKI_API_URL: must start with http"),
])
def test_bad_setting_is_one_line_naming_the_variable(monkeypatch, variables, line):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(line) and "\n" not in message
    assert "court" not in message  # a secret's value is never repeated


def test_secret_value_never_in_the_error(monkeypatch):
    monkeypatch.setenv("COMMONS_SYNC_IMAP_PASSWORD", "hunter2-mot-de-passe")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
    assert "COMMONS_SYNC_IMAP_HOST" in str(caught.value)
