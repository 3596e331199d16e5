"""Tables of the operations side: worker heartbeats and the counters `/metrics` adds up.

Every process (gunicorn workers, `commons-sync worker`, one-off commands) writes here, so a scrape
of any web process shows the same figures for the whole installation (migration `0004_ops`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, String, Table

from commons_sync.storage.tables import _when, metadata

# One row per worker process, rewritten at each pass: `/healthz` says "degraded" when the newest
# pass is too old.
ops_heartbeats = Table(
    "ops_heartbeats", metadata,
    Column("worker_id", String(200), primary_key=True),  # host/pid
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    _when("started_at", nullable=False),
    _when("last_pass_at", nullable=False),
    Column("passes", BigInteger, nullable=False, server_default="0"),
)

# Monotonic counters shared by all processes: each process adds its increments (`value + n`), a
# scrape reads the sums. `labels` is the canonical `k=v,k=v` text of the label set.
ops_counters = Table(
    "ops_counters", metadata,
    Column("name", String(80), primary_key=True),
    Column("labels", String(200), primary_key=True),
    Column("value", Float, nullable=False, server_default="0"),
)
