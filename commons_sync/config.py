"""Settings read once from COMMONS_SYNC_* variables and a `.env` file (CONTRACT §2).

An adapter whose variables are all unset is off; one partly set or set with an invalid value stops
every command at start with one line naming the variable. Secrets are `SecretStr`, so they never
show in a repr, a log line or an error message.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "COMMONS_SYNC_"

# Each adapter: the variables that must be set together, and the optional ones that only count
# when the adapter is on.
ADAPTER_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "discourse": (
        ("discourse_url", "discourse_api_key", "discourse_api_username", "discourse_webhook_secret"),
        ("discourse_category",),
    ),
    "mediawiki": (("mediawiki_api_url", "mediawiki_username", "mediawiki_password"), ()),
    "imap": (("imap_host", "imap_username", "imap_password"),
             ("imap_port", "imap_ssl", "imap_folder", "imap_done_folder")),
    "smtp": (("smtp_host", "smtp_from"), ("smtp_port", "smtp_username", "smtp_password", "smtp_starttls")),
}


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./commons-sync.db"
    language: Literal["fr", "en"] = "fr"
    timezone: str = "Europe/Paris"
    secret_key: SecretStr | None = None

    discourse_url: str | None = None
    discourse_api_key: SecretStr | None = None
    discourse_api_username: str | None = None
    discourse_webhook_secret: SecretStr | None = None
    discourse_staff_group: str = "staff"
    discourse_category: int | None = None
    discourse_max_rpm: int = Field(default=50, ge=1, le=100_000)
    # A failed side effect (forum, wiki, mail) waits retry_base, then twice as long each time,
    # at most retry_max seconds. Tests and benches shorten them; production keeps the defaults.
    retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    # How long a worker holds the webhook inbox (renewed after each delivery) and an outbox row it
    # is sending: a worker that dies holding one is waited for that long. Longer than the slowest
    # call to a peer (a forum request waiting for the API ceiling); tests and benches shorten them.
    worker_inbox_lease_seconds: float = Field(default=120.0, ge=5, le=3600)
    worker_outbox_lease_seconds: float = Field(default=300.0, ge=10, le=3600)
    discourse_connect_secret: SecretStr | None = None

    mediawiki_api_url: str | None = None
    mediawiki_username: str | None = None
    mediawiki_password: SecretStr | None = None

    imap_host: str | None = None
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_ssl: bool = True
    imap_folder: str = "INBOX"
    imap_done_folder: str = "Traité"

    smtp_host: str | None = None
    smtp_from: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
            if url.get_backend_name() not in ("sqlite", "postgresql"):
                raise ValueError("only sqlite:/// and postgresql:// databases are supported")
            url.get_dialect()
        except (ArgumentError, NoSuchModuleError):
            raise ValueError("not a database URL (sqlite:///path or postgresql://user@host/db)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("discourse_webhook_secret")
    @classmethod
    def _long_enough_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError("must be at least 12 characters long, as Discourse requires")
        return value

    @field_validator("discourse_url", "mediawiki_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _adapters_set_together(self) -> "Settings":
        for required, optional in ADAPTER_GROUPS.values():
            present = [name for name in required if getattr(self, name) not in (None, "")]
            extras = [name for name in optional if name in self.model_fields_set]
            if extras and not present:
                raise ValueError(
                    f"{PREFIX}{required[0].upper()} is required together with "
                    + ", ".join(PREFIX + name.upper() for name in extras))
            if present and len(present) < len(required):
                missing = next(name for name in required if name not in present)
                raise ValueError(
                    f"{PREFIX}{missing.upper()} is required together with "
                    + ", ".join(PREFIX + name.upper() for name in present)
                )
        return self

    def adapter_on(self, name: str) -> bool:
        """Whether every required variable of the adapter `name` is set."""
        required, _ = ADAPTER_GROUPS[name]
        return all(getattr(self, field) not in (None, "") for field in required)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def imap_effective_port(self) -> int:
        return self.imap_port or (993 if self.imap_ssl else 143)


def load_settings(**overrides) -> Settings:
    """Read the settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    error = exc.errors(include_input=False)[0]
    location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = error.get("msg", "invalid value").removeprefix("Value error, ")
    if location:
        return f"{PREFIX}{location[0].upper()}: {message}"
    return message
