"""Alembic environment: runs on the engine handed over by `database.upgrade`."""

from alembic import context
from sqlalchemy import create_engine

from commons_sync.storage import forum_tables, lifecycle_tables, ops_tables, triage_tables  # noqa: F401 - their tables join `metadata`
from commons_sync.storage.tables import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
