"""Prometheus metrics: the receiver's own, the workers' (kept in Redis), and queue state at scrape time.

`GET /metrics` serves, in one text exposition:

- the receiver's counters and histograms (this process's, or every uvicorn
  process's when `PROMETHEUS_MULTIPROC_DIR` is set: prometheus-client then
  keeps them in files in that directory and the scrape adds them up);
- the workers' counters and histogram, read from Redis (`storage.metrics`);
- gauges computed from Redis at scrape time: events by status, queue
  depth, age of the oldest queued event, scheduled handler retries.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from schemas import TOPICS
from schemas.bigcommerce import PROCESSED_SCOPES
from storage.metrics import WorkerCounts, metrics_key
from storage.notices import RESULTS as NOTIFY_RESULTS
from storage.notices import TYPES as NOTIFY_TYPES
from storage.shops import list_shops
from storage.status import STATUSES, Status

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

DELIVERIES = Counter(
    "orderhooks_deliveries_total", "Webhook deliveries by topic and outcome", ["topic", "outcome"]
)
DELIVERIES_REFUSED = Counter(
    "orderhooks_deliveries_refused_total", "Deliveries refused before being stored, by the status answered",
    ["status"],
)
REFUSED_STATUSES = ("400", "401", "413", "431")
for _status in REFUSED_STATUSES:  # every series exists from the first scrape, so the first refusal raises alerts
    DELIVERIES_REFUSED.labels(status=_status)
ACK_SECONDS = Histogram(
    "orderhooks_ack_seconds", "Time from request start to acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def topic_label(topic: str) -> str:
    """Known topics as themselves; anything else as `other`, so labels stay few."""
    return topic if topic in TOPICS or topic in PROCESSED_SCOPES else "other"


class RedisCollector:
    """Reads the worker counters and the queue state from Redis, in one round trip per scrape."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def collect(self):
        ctx = self.ctx
        keys = ctx.keys
        up = GaugeMetricFamily("orderhooks_redis_up", "1 when Redis answered this scrape, else 0")
        try:
            pipe = ctx.redis.pipeline(transaction=False)
            for status in STATUSES:
                pipe.zcard(keys.events_by_status(status))
            pipe.zrange(keys.events_by_status(Status.QUEUED), 0, 0, withscores=True)
            pipe.llen(ctx.queue.key)
            pipe.zcard(ctx.queue.scheduled_job_registry.key)
            pipe.hgetall(metrics_key(keys))
            results = pipe.execute()
            shops = list_shops(ctx.redis, keys)
        except Exception:  # the scrape still answers: orderhooks_redis_up 0 says why the rest is missing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        counts = dict(zip(STATUSES, results[: len(STATUSES)], strict=True))
        oldest, depth, scheduled, raw = results[len(STATUSES):]

        by_status = GaugeMetricFamily("orderhooks_events", "Stored events by current status", labels=["status"])
        for status, n in counts.items():
            by_status.add_metric([status], n)
        yield by_status
        g = GaugeMetricFamily("orderhooks_queue_depth", "Jobs waiting in the RQ queue")
        g.add_metric([], depth)
        yield g
        g = GaugeMetricFamily("orderhooks_oldest_queued_age_seconds",
                              "Age of the oldest event still queued (0 when none)")
        g.add_metric([], max(0.0, time.time() - oldest[0][1]) if oldest else 0.0)
        yield g
        g = GaugeMetricFamily("orderhooks_handler_retries_scheduled", "Handler retries waiting for their time")
        g.add_metric([], scheduled)
        yield g

        worker = WorkerCounts.parse(raw)
        c = CounterMetricFamily("orderhooks_events_processed", "Events applied by workers, by topic and status",
                                labels=["topic", "status"])
        for (topic, status), n in sorted(worker.events.items()):
            c.add_metric([topic, status], n)
        yield c
        c = CounterMetricFamily("orderhooks_handler_calls", "Handler calls by handler and outcome "
                                "(ok; retrying: failed, will retry; failed: retries spent)",
                                labels=["handler", "outcome"])
        for (handler, outcome), n in sorted(worker.handlers.items()):
            c.add_metric([handler, outcome], n)
        yield c
        h = HistogramMetricFamily("orderhooks_delivery_to_processed_seconds",
                                  "Time from a delivery's arrival to its projection being written")
        h.add_metric([], worker.cumulative_buckets(), worker.latency_sum)
        yield h

        yield from totals_metrics(worker)
        yield from reconcile_metrics(worker, shops)


def totals_metrics(worker: WorkerCounts):
    """Events failed and quarantined, notifications by type and result: every series from the first scrape."""
    c = CounterMetricFamily("orderhooks_events_failed", "Events that ended failed (a handler's or a stage's "
                            "retries spent)")
    c.add_metric([], worker.totals.get(Status.FAILED, 0))
    yield c
    c = CounterMetricFamily("orderhooks_events_quarantined", "Deliveries and reconciled orders quarantined")
    c.add_metric([], worker.totals.get(Status.QUARANTINED, 0))
    yield c
    c = CounterMetricFamily("orderhooks_notifications", "Notifications by type and result (sent; retried: an "
                            "attempt failed; dropped: retries spent)", labels=["type", "result"])
    for type_ in NOTIFY_TYPES:
        for result in NOTIFY_RESULTS:
            c.add_metric([type_, result], worker.notify.get((type_, result), 0))
    yield c


def reconcile_metrics(worker: WorkerCounts, shops):
    """Reconciliation: orders healed, updated and quarantined and runs per shop (counters kept by the workers),
    and each registered shop's last run (from the registry)."""
    orders = CounterMetricFamily("orderhooks_reconcile_orders", "Orders reconciliation healed (missing here), "
                                 "updated (older here) or quarantined, by shop", labels=["shop", "result"])
    runs = CounterMetricFamily("orderhooks_reconcile_runs", "Reconcile runs by shop and result (ok, failed)",
                               labels=["shop", "result"])
    counted = dict(worker.reconcile)
    for shop in shops:  # a registered shop's series exist before its first run
        if shop.reconciled:
            for result in ("healed", "updated", "quarantined", "runs_ok", "runs_failed"):
                counted.setdefault((shop.shop, result), 0)
    for (shop, result), n in sorted(counted.items()):
        if result in ("healed", "updated", "quarantined"):
            orders.add_metric([shop, result], n)
        elif result in ("runs_ok", "runs_failed"):
            runs.add_metric([shop, result.removeprefix("runs_")], n)
    yield orders
    yield runs
    ok = GaugeMetricFamily("orderhooks_reconcile_last_run_ok", "1 when the shop's last reconcile run finished, "
                           "0 when it failed", labels=["shop"])
    at = GaugeMetricFamily("orderhooks_reconcile_last_run_timestamp_seconds", "When the shop's last reconcile "
                           "run ended (Unix time)", labels=["shop"])
    for shop in shops:
        if shop.reconciled and shop.last_run is not None:
            ok.add_metric([shop.shop], 1 if shop.last_run.ok else 0)
            at.add_metric([shop.shop], shop.last_run.at)
    yield ok
    yield at


class _Sources:
    """A registry-like object for `generate_latest`: the metrics of several collectors."""

    def __init__(self, *collectors) -> None:
        self.collectors = collectors

    def collect(self):
        for c in self.collectors:
            yield from c.collect()


def render(ctx) -> bytes:
    """The whole exposition text (blocking: reads Redis, and the multiprocess files if any)."""
    own = MultiProcessCollector(None) if os.environ.get(MULTIPROC_ENV) else REGISTRY
    return generate_latest(_Sources(own, RedisCollector(ctx)))


async def endpoint(request: Request) -> Response:
    body = await run_in_threadpool(render, request.app.state.store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
