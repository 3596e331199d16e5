"""`POST /webhooks/discourse`: check the signature, then store the delivery for the worker.

The answer never waits for the forum, the wiki or a mail server (CONTRACT §3): `401` missing or
forged signature (nothing recorded), `413` body over 1 MiB, `400` malformed, `200` ignored,
`202` stored, `503` when the database is unavailable (Discourse delivers again).
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from commons_sync.discourse import signature
from commons_sync.discourse.events import DELIVERY_HEADERS
from commons_sync.service.forum import receive_delivery
from commons_sync.service.unit_of_work import DatabaseUnavailable
from commons_sync.web.health import count_webhook

MAX_BODY_BYTES = 1024 * 1024  # CONTRACT §3 (also the app's MAX_CONTENT_LENGTH)

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def _answer(status: int, message: str):
    count_webhook(status)
    return jsonify({"status": status, "message": message}), status


@bp.post("/webhooks/discourse")
def discourse():
    """Receive one Discourse webhook delivery."""
    parts = current_app.extensions["commons_sync"]
    settings = parts["settings"]
    secret = settings.discourse_webhook_secret
    if secret is None:
        return _answer(404, "the forum adapter is not configured")
    # A chunked body (no Content-Length) is cut at the limit by werkzeug, not refused: read one
    # byte more than allowed, so that a body over the limit is told from one exactly at it.
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(413, "body over 1 MiB")
    if len(body) > MAX_BODY_BYTES:
        return _answer(413, "body over 1 MiB")
    if not signature.verify(secret.get_secret_value().encode(), body,
                            request.headers.get(signature.HEADER)):
        return _answer(401, "missing or wrong X-Discourse-Event-Signature")
    try:
        receipt = receive_delivery(parts["inbox"], _delivery_headers(), body,
                                   settings.discourse_api_username or "")
    except (DatabaseUnavailable, DBAPIError) as exc:
        log.warning("webhook: database unavailable (%s)", type(exc).__name__)
        response, status = _answer(503, "database unavailable, deliver again later")
        response.headers["Retry-After"] = "5"
        return response, status
    return _answer(receipt.status, receipt.message)


def _delivery_headers() -> dict[str, str]:
    # The few headers a delivery is read from: all of them would be a walk through the WSGI environ.
    headers = request.headers
    return {name: value for name in DELIVERY_HEADERS if (value := headers.get(name)) is not None}


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error):
    return _answer(413, "body over 1 MiB")
