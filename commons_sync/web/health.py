"""`GET /healthz`: whether the service can reach its database, for load balancers and monitors."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from commons_sync.service.unit_of_work import DatabaseUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """`200 {"status": "ok"}` when the database answers, `503` otherwise."""
    service = current_app.extensions["commons_sync"]["service"]
    try:
        service.run(lambda uow: uow.repo.conn.execute(text("SELECT 1")).scalar_one())
    except (DatabaseUnavailable, Exception):  # noqa: BLE001 - any failure means "not healthy"
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})
