"""`POST /_bench/noop` answers 204 at once: the bare route benchmarks compare the webhook with.

Registered only when `COMMONS_SYNC_BENCH_ROUTES=1` (bench/webhook.py sets it), never in production.
"""

from flask import Blueprint

bp = Blueprint("bench", __name__)


@bp.post("/_bench/noop")
def noop():
    return "", 204
