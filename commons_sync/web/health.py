"""`GET /healthz` and `GET /metrics`: is the service alive, and how far behind is its work.

Every figure is read from the database at request time (see `service.ops`), so any web process
answers for the whole installation: gunicorn workers, `commons-sync worker` processes, commands.
The blueprint also gives each request its id (`X-Request-Id`, taken from the request when it is a
sane token, else generated; echoed in the answer and put on every log record of the request) and
flushes the process's counters once the answer is sent.

`/healthz` answers `503 {"status": "unavailable"}` when the database does not answer (a load
balancer should stop sending webhooks there), else `200` with `"status": "ok"`, or `"degraded"`
when no worker passed for `HEARTBEAT_MAX_AGE` seconds or the oldest pending outbox row of an
adapter that is on is older than `OUTBOX_MAX_AGE`: the web side still stores deliveries then, so
it stays in service; monitoring alerts on the body.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from commons_sync import logs
from commons_sync.service import ops

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

HEARTBEAT_MAX_AGE = 120.0  # seconds; COMMONS_SYNC_HEALTH_HEARTBEAT_MAX_AGE
OUTBOX_MAX_AGE = 900.0  # seconds; COMMONS_SYNC_HEALTH_OUTBOX_MAX_AGE
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_QUIET_PATHS = ("/healthz", "/metrics")


def _threshold(name: str, default: float) -> float:
    value = current_app.config.get(name) or os.environ.get(f"COMMONS_SYNC_{name}")
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _parts():
    return current_app.extensions["commons_sync"]


def _recorder() -> ops.Counters | None:
    engine = getattr(_parts()["service"], "engine", None)
    return ops.counters(engine) if engine is not None else None


@bp.record_once
def _setup(state) -> None:
    # Under gunicorn (which imports the app without our command line) nobody configured the root
    # logger: do it as `commons-sync` would. A host that configured logging already is left alone.
    if not logs.configured() and not logging.getLogger().handlers:
        logs.configure_logging(settings=state.app.extensions["commons_sync"]["settings"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector(state.app))
    state.app.extensions["commons_sync_metrics"] = {"registry": registry}


@bp.before_app_request
def _start_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.monotonic()
    g.log_token = logs.bind_context(request_id=g.request_id)


@bp.after_app_request
def _end_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
        level = logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO
        log.log(level, "%s %s -> %s in %.3f s", request.method, request.path, response.status_code,
                time.monotonic() - g.get("request_started", time.monotonic()))
    recorder = _recorder()
    if recorder is not None and request.path not in _QUIET_PATHS:
        # After the answer is sent, at most once a second: a busy database never delays the
        # answer to Discourse, and a burst of webhooks does not write the counters per request.
        response.call_on_close(recorder.flush_if_due)
    return response


@bp.teardown_app_request
def _forget_request(_exc) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        try:
            logs.unbind_context(token)
        except ValueError:  # reset from another context (should not happen): nothing to undo
            pass


def count_webhook(status: int) -> None:
    """Count one answer of the webhook (called by `web.webhooks`); shared through the database."""
    recorder = _recorder()
    if recorder is not None:
        recorder.inc(ops.WEBHOOK_REQUESTS, {"status": status})


@bp.get("/healthz")
def healthz():
    """`200` ok or degraded (see the module's docstring), `503` when the database does not answer."""
    settings = _parts()["settings"]
    report = ops.health(_parts()["service"], ops.enabled_kinds(settings))
    if not report.database:
        return jsonify({"status": "unavailable",
                        "checks": {"database": {"ok": False, "error": report.error}}}), 503
    heartbeat_max = _threshold("HEALTH_HEARTBEAT_MAX_AGE", HEARTBEAT_MAX_AGE)
    outbox_max = _threshold("HEALTH_OUTBOX_MAX_AGE", OUTBOX_MAX_AGE)
    worker_ok = report.heartbeat_age is not None and report.heartbeat_age <= heartbeat_max
    late = {kind: figures for kind, figures in report.outbox.items()
            if figures["oldest_age"] is not None and figures["oldest_age"] > outbox_max}
    problems = []
    if not worker_ok:
        problems.append("no worker pass seen" if report.heartbeat_age is None
                        else f"newest worker pass {report.heartbeat_age:.0f} s ago")
    problems += [f"outbox {kind}: oldest row {figures['oldest_age']:.0f} s old" for kind, figures in late.items()]
    body = {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "checks": {
            "database": {"ok": True},
            "worker": {"ok": worker_ok, "newest_pass_age": report.heartbeat_age,
                       "max_age": heartbeat_max, "workers": report.workers},
            "outbox": {"ok": not late, "max_age": outbox_max, "kinds": report.outbox},
        },
    }
    return jsonify(body), 200


@bp.get("/metrics")
def metrics():
    """The Prometheus text exposition, read from the database at each scrape."""
    recorder = _recorder()
    if recorder is not None:
        recorder.flush()  # this process's own increments first (waits for a flush under way)
    registry = current_app.extensions["commons_sync_metrics"]["registry"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _DatabaseCollector:
    """Every metric of the installation, read from the database at each scrape."""

    def __init__(self, app) -> None:
        self._app = app

    def collect(self):
        parts = self._app.extensions["commons_sync"]
        up = GaugeMetricFamily("commons_sync_database_up", "Whether the database answered the scrape")
        try:
            figures = ops.metric_figures(parts["service"], ops.enabled_kinds(parts["settings"]))
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database did
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _work_metrics(figures)
        yield from _counter_metrics(figures["counters"])


def _work_metrics(figures: dict):
    pending = GaugeMetricFamily("commons_sync_webhook_deliveries_pending", "Stored webhook deliveries not applied yet")
    pending.add_metric([], figures["deliveries"])
    yield pending
    depth = GaugeMetricFamily("commons_sync_outbox_pending", "Outbox rows not done, by kind", labels=["kind"])
    failing = GaugeMetricFamily("commons_sync_outbox_failing", "Outbox rows not done that failed at least once",
                                labels=["kind"])
    age = GaugeMetricFamily("commons_sync_outbox_oldest_age_seconds",
                            "Age of the oldest outbox row not done (its first change), by kind", labels=["kind"])
    for kind, row in sorted(figures["outbox"].items()):
        depth.add_metric([kind], row["pending"])
        failing.add_metric([kind], figures["failing"].get(kind, 0))
        age.add_metric([kind], row["oldest_age"] or 0.0)
    yield depth
    yield failing
    yield age
    commons = GaugeMetricFamily("commons_sync_commons", "Commons, by status", labels=["status"])
    for status, count in sorted(figures["commons"].items()):
        commons.add_metric([status], count)
    yield commons
    pledges = GaugeMetricFamily("commons_sync_pledge_posts",
                                "Pledge posts by result: accepted, refused (by reason), withdrawn, released",
                                labels=["result", "reason"])
    totals: dict[tuple[str, str], int] = {}
    for state, refusal, count in figures["pledges"]:
        key = ops.pledge_result(state, refusal)
        totals[key] = totals.get(key, 0) + count
    for (result, reason), count in sorted(totals.items()):
        pledges.add_metric([result, reason], count)
    yield pledges
    heartbeat = GaugeMetricFamily("commons_sync_worker_heartbeat_age_seconds",
                                  "Seconds since each worker's last pass (workers seen in the last week)",
                                  labels=["worker"])
    for worker, seconds in figures["workers"]:
        heartbeat.add_metric([worker], max(0.0, seconds))
    yield heartbeat
    newest = GaugeMetricFamily("commons_sync_worker_newest_heartbeat_age_seconds",
                               "Seconds since the newest pass of any worker (absent when none ever ran)")
    if figures["workers"]:
        newest.add_metric([], max(0.0, min(seconds for _, seconds in figures["workers"])))
    yield newest


def _counter_metrics(counters: dict):
    webhooks = CounterMetricFamily("commons_sync_webhook_requests", "Webhook requests answered, by HTTP status",
                                   labels=["status"])
    for labels, value in sorted(counters.get(ops.WEBHOOK_REQUESTS, {}).items()):
        webhooks.add_metric([ops.parse_labels(labels).get("status", "")], value)
    yield webhooks
    calls = CounterMetricFamily("commons_sync_api_calls", "HTTP requests answered by a peer (forum, wiki)",
                                labels=["peer"])
    limited = CounterMetricFamily("commons_sync_api_rate_limited",
                                  "Answers 429 (too many requests) from a peer", labels=["peer"])
    responses = CounterMetricFamily("commons_sync_api_responses", "Answers of a peer by HTTP status",
                                    labels=["peer", "status"])
    per_peer: dict[str, list[float]] = {}
    for labels, value in sorted(counters.get(ops.API_REQUESTS, {}).items()):
        parsed = ops.parse_labels(labels)
        peer, status = parsed.get("peer", ""), parsed.get("status", "")
        responses.add_metric([peer, status], value)
        totals = per_peer.setdefault(peer, [0.0, 0.0])
        totals[0] += value
        if status == "429":
            totals[1] += value
    for peer, (count, rate_limited) in sorted(per_peer.items()):
        calls.add_metric([peer], count)
        limited.add_metric([peer], rate_limited)
    yield calls
    yield limited
    yield responses
    latency = counters.get(ops.SYNC_LATENCY, {})
    buckets = [(str(bound), latency.get(f"le={bound}", 0.0)) for bound in ops.LATENCY_BUCKETS]
    buckets.append(("+Inf", latency.get("le=+Inf", 0.0)))
    total = sum(counters.get(ops.SYNC_LATENCY + "_sum", {}).values())
    yield HistogramMetricFamily("commons_sync_sync_latency_seconds",
                                "From a pledge post received to its status post edited",
                                buckets=buckets, sum_value=total)
