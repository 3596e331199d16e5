"""The Flask application factory: one blueprint per area, the service handed in or built once."""

from __future__ import annotations

import os

from flask import Flask

from commons_sync.config import Settings, load_settings

MAX_BODY_BYTES = 1024 * 1024  # CONTRACT §3: a webhook body over 1 MiB is answered 413


def create_app(settings: Settings | None = None, service=None) -> Flask:
    """Create the web service (tests pass their settings and service; `serve` and gunicorn don't)."""
    from commons_sync.web import api, health, staff, webhooks

    settings = settings or load_settings()
    if service is None:
        from commons_sync.bootstrap import build_service

        service = build_service(settings)
    app = Flask(__name__)
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else None,
    )
    app.extensions["commons_sync"] = {"settings": settings, "service": service,
                                      "inbox": _inbox_service(service)}
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(api.bp)
    _answer_503_while_the_database_is_away(app, settings.language)
    if os.environ.get("COMMONS_SYNC_BENCH_ROUTES") == "1":
        from commons_sync.web import bench

        app.register_blueprint(bench.bp)
    return app


def _answer_503_while_the_database_is_away(app: Flask, language: str) -> None:
    """A database that is down or restarting is a `503` on every page, never a `500`: the request
    can be made again (Discourse redelivers a webhook), and the pool reconnects by itself."""
    import logging

    from flask import jsonify, request

    from commons_sync.i18n import t
    from commons_sync.service.unit_of_work import DatabaseUnavailable

    # Only what the unit of work calls unavailable (connection refused or dropped, server
    # restarting): any other database error is a bug, a 500 with its traceback in the log.
    def unavailable(error):
        logging.getLogger(__name__).warning("%s %s: database unavailable (%s)", request.method,
                                            request.path, error)
        message = t(language, "Service momentanément indisponible : la base de données ne répond pas. "
                              "Réessayez dans un instant.")
        headers = {"Retry-After": "5"}
        if request.path.startswith(("/api/", "/webhooks/")):
            return jsonify({"error": "database_unavailable", "message": message}), 503, headers
        return message, 503, headers | {"Content-Type": "text/plain; charset=utf-8"}

    app.register_error_handler(DatabaseUnavailable, unavailable)


def _inbox_service(service):
    """The webhook's own pool on the same database, in autocommit (`make_engine`): its one insert
    stands alone, and it is the hot path. No connection is opened before the first webhook."""
    from commons_sync.service.handlers import Service
    from commons_sync.storage.database import make_engine

    url = service.engine.url.render_as_string(hide_password=False)
    return Service(make_engine(url, autocommit=True), service.clock, service.zone)
