"""`GET /healthz` and `GET /metrics`: is the service alive, and how far behind is its work.

`/metrics` is Prometheus' text format. The figures that matter across processes (deliveries not
applied yet, outbox rows waiting or failing, commons per status) are read from the database at
scrape time, so every process answers the same; webhook answers are counted per process.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select, text

from commons_sync.service.unit_of_work import DatabaseUnavailable
from commons_sync.storage import forum_tables as ft
from commons_sync.storage import tables as tb

bp = Blueprint("health", __name__)


@bp.record_once
def _setup(state) -> None:
    registry = CollectorRegistry(auto_describe=True)
    webhooks = Counter("commons_sync_webhook_requests", "Webhook requests answered, by HTTP status",
                       ["status"], registry=registry)
    registry.register(_WorkCollector(lambda: state.app.extensions["commons_sync"]["service"]))
    state.app.extensions["commons_sync_metrics"] = {"registry": registry, "webhooks": webhooks}


def count_webhook(status: int) -> None:
    """Count one answer of the webhook (called by `web.webhooks`)."""
    metrics = current_app.extensions.get("commons_sync_metrics")
    if metrics is not None:
        metrics["webhooks"].labels(status=str(status)).inc()


@bp.get("/healthz")
def healthz():
    """`200 {"status": "ok"}` when the database answers, `503` otherwise."""
    service = current_app.extensions["commons_sync"]["service"]
    try:
        service.run(lambda uow: uow.repo.conn.execute(text("SELECT 1")).scalar_one())
    except (DatabaseUnavailable, Exception):  # noqa: BLE001 - any failure means "not healthy"
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})


@bp.get("/metrics")
def metrics():
    """The Prometheus text exposition of the registry of this app."""
    registry = current_app.extensions["commons_sync_metrics"]["registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _WorkCollector:
    """Gauges read from the database at each scrape."""

    def __init__(self, service) -> None:
        self._service = service

    def describe(self):
        return []

    def collect(self):
        try:
            figures = self._service().run(_read_figures)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database did
            up = GaugeMetricFamily("commons_sync_database_up", "Whether the database answered")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("commons_sync_database_up", "Whether the database answered")
        up.add_metric([], 1)
        yield up
        pending = GaugeMetricFamily("commons_sync_webhook_deliveries_pending",
                                    "Stored webhook deliveries not applied yet")
        pending.add_metric([], figures["deliveries"])
        yield pending
        waiting = GaugeMetricFamily("commons_sync_outbox_pending", "Outbox rows not done, by kind",
                                    labels=["kind"])
        failing = GaugeMetricFamily("commons_sync_outbox_failing",
                                    "Outbox rows not done that failed at least once, by kind", labels=["kind"])
        for kind, (count, failed) in sorted(figures["outbox"].items()):
            waiting.add_metric([kind], count)
            failing.add_metric([kind], failed)
        yield waiting
        yield failing
        commons = GaugeMetricFamily("commons_sync_commons", "Commons, by status", labels=["status"])
        for status, count in sorted(figures["commons"].items()):
            commons.add_metric([status], count)
        yield commons


def _read_figures(uow) -> dict:
    conn = uow.repo.conn
    d, o, c = ft.forum_deliveries, tb.outbox, tb.commons
    deliveries = conn.execute(select(func.count()).select_from(d).where(d.c.applied_at.is_(None))).scalar()
    outbox = {kind: (count, failed or 0) for kind, count, failed in conn.execute(
        select(o.c.kind, func.count(), func.sum(case((o.c.attempts > 0, 1), else_=0)))
        .where(o.c.done_at.is_(None)).group_by(o.c.kind))}
    commons = dict(conn.execute(select(c.c.status, func.count()).group_by(c.c.status)).all())
    return {"deliveries": deliveries, "outbox": outbox, "commons": commons}
