"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL, and the migrations runner."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Insert, create_engine, event
from sqlalchemy.engine import Engine, make_url

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """An engine whose transactions serialise money changes.

    SQLite: WAL, a busy timeout, and `BEGIN IMMEDIATE` so each transaction takes the write lock at
    its start (two writers never interleave). PostgreSQL: READ COMMITTED with row locks taken by
    the repository (`SELECT … FOR UPDATE` on the round), connections pinged before use.

    `autocommit`: for the webhook, whose one insert stands alone: each statement commits by itself
    and connections are not pinged, so storing a delivery in a known commons topic on PostgreSQL
    is one round trip instead of four (ping, BEGIN, INSERT, COMMIT). A connection the database
    dropped fails once and the pool reconnects; the webhook then tries again.
    """
    parsed = make_url(url)
    isolation = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **isolation)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" below emit BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        if not autocommit:
            @event.listens_for(engine, "begin")
            def _on_begin(connection):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=not autocommit, **isolation)


def insert_together(connection: Connection, statement: Insert, rows: list[dict]) -> None:
    """Insert `rows` all or none, and commit.

    A list even of one row: an executemany asks no new id back. PostgreSQL runs one as a single
    implicit transaction (psycopg pipelines it); SQLite in autocommit (`make_engine(autocommit=True)`)
    would commit each row by itself, so there a savepoint, which outside a transaction is one,
    holds them together.
    """
    if connection.dialect.name == "sqlite" and len(rows) > 1:
        with connection.begin_nested():
            connection.execute(statement, rows)
    else:
        connection.execute(statement, rows)
    connection.commit()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)
