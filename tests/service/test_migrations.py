"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from commons_sync.storage import forum_tables, lifecycle_tables, ops_tables, triage_tables  # noqa: F401 - their tables join metadata
from commons_sync.storage.database import make_engine, upgrade
from commons_sync.storage.tables import metadata


def test_migrated_schema_equals_the_declared_one(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []
