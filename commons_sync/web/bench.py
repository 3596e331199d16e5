"""`POST /_bench/noop` answers 204 at once: the bare route benchmarks compare the webhook with.

Registered only when `COMMONS_SYNC_BENCH_ROUTES=1` (bench/webhook.py sets it), never in production.
"""

from flask import Blueprint, request

bp = Blueprint("bench", __name__)


@bp.post("/_bench/noop")
def noop():
    # The body is read, as any route that answers a POST does: left unread, the threaded server
    # must drain it before the connection's next request, which stalls a keep-alive client.
    request.get_data(cache=False)
    return "", 204
