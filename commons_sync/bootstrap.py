"""The one place where concrete adapters are built from the settings (tests pass their own)."""

from __future__ import annotations

from functools import lru_cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from commons_sync.config import Settings
from commons_sync.service.handlers import Service
from commons_sync.service.unit_of_work import DatabaseUnavailable
from commons_sync.storage.database import alembic_config, make_engine


class SchemaOutdated(Exception):
    """The database has not been brought to the current schema (`commons-sync db upgrade`)."""


@lru_cache(maxsize=8)
def _engine(url: str):
    return make_engine(url)


def build_service(settings: Settings, *, check_schema: bool = True) -> Service:
    engine = _engine(settings.database_url)
    if check_schema:
        ensure_schema_current(engine)
    return Service(engine, zone=settings.zone)


def ensure_schema_current(engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as error:
        raise DatabaseUnavailable(type(error.orig).__name__) from None
    if current != head:
        raise SchemaOutdated(current or "empty")


def connect_wiki(settings: Settings, patience: float = 10.0):
    """The wiki gateway, logged in with the bot password (CONTRACT §2); `patience`: seconds one
    call may spend retrying a wiki that does not answer."""
    from commons_sync.mediawiki import Wiki

    return Wiki.connect(settings.mediawiki_api_url, settings.mediawiki_username,
                        settings.mediawiki_password.get_secret_value(), patience=patience)
