"""Metrics: worker counters kept in Redis, and what one scrape of /metrics shows."""

from __future__ import annotations

import time

from receiver.metrics import render
from storage import metrics as wm
from tests.support.metrics import parse
from workers.dispatch import Outcome


def test_bucket_index_is_inclusive_of_the_upper_bound():
    assert wm.bucket_index(0.0) == 0
    assert wm.bucket_index(0.01) == 0
    assert wm.bucket_index(0.011) == 1
    assert wm.bucket_index(10_000) == len(wm.LATENCY_BUCKETS)


def test_counts_parse_back_and_buckets_are_cumulative(ctx):
    wm.record(ctx.redis, ctx.keys, events=[("orders/paid", "processed"), ("orders/paid", "processed"),
                                           ("orders/create", "stale")],
              handlers=[("app.notify", "ok"), ("app.notify", "retrying")], latency=[0.005, 0.3, 7200])
    counts = wm.WorkerCounts.parse(ctx.redis.hgetall(wm.metrics_key(ctx.keys)))
    assert counts.events == {("orders/paid", "processed"): 2, ("orders/create", "stale"): 1}
    assert counts.handlers == {("app.notify", "ok"): 1, ("app.notify", "retrying"): 1}
    assert counts.latency_count == 3
    assert abs(counts.latency_sum - 7200.305) < 1e-6
    buckets = dict(counts.cumulative_buckets())
    assert buckets["0.01"] == 1 and buckets["0.5"] == 2 and buckets["1800.0"] == 2 and buckets["+Inf"] == 3


def test_a_redis_error_never_fails_the_caller(ctx):
    import redis

    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    wm.record(broken, ctx.keys, events=[("orders/paid", "processed")])  # logged, not raised


def test_scrape_shows_queue_state_worker_counts_and_receiver_metrics(ctx):
    now = time.time()
    ctx.redis.zadd(ctx.keys.events_by_status("queued"), {"old": now - 120, "new": now - 1})
    ctx.redis.zadd(ctx.keys.events_by_status("failed"), {"f": now})
    ctx.redis.rpush(ctx.queue.key, "job-1", "job-2", "job-3")
    wm.record_handler_calls(ctx.redis, ctx.keys, [Outcome("e1", "app.ship", {"status": "failed"}), None])
    s = parse(render(ctx))
    assert s[("orderhooks_redis_up", ())] == 1
    assert s[("orderhooks_events", (("status", "queued"),))] == 2
    assert s[("orderhooks_events", (("status", "failed"),))] == 1
    assert s[("orderhooks_queue_depth", ())] == 3
    assert 119 <= s[("orderhooks_oldest_queued_age_seconds", ())] < 130
    assert s[("orderhooks_handler_calls_total", (("handler", "app.ship"), ("outcome", "failed")))] == 1
    assert s[("orderhooks_delivery_to_processed_seconds_count", ())] == 0, "no event was applied"
    assert s[("orderhooks_handler_retries_scheduled", ())] == 0


def test_scrape_shows_the_receiver_acknowledgement_histogram(ctx):
    from receiver.metrics import ACK_SECONDS

    before = parse(render(ctx))
    ACK_SECONDS.observe(0.004)
    after = parse(render(ctx))

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("orderhooks_ack_seconds_count") == 1
    assert grew("orderhooks_ack_seconds_bucket", le="0.0025") == 0
    assert grew("orderhooks_ack_seconds_bucket", le="0.005") == 1
    assert abs(grew("orderhooks_ack_seconds_sum") - 0.004) < 1e-9


def test_scrape_without_redis_still_answers(ctx):
    from dataclasses import replace

    import redis

    from storage.connection import make_queue

    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    s = parse(render(replace(ctx, redis=gone, queue=make_queue(gone, ctx.settings))))
    assert s[("orderhooks_redis_up", ())] == 0
    assert ("orderhooks_queue_depth", ()) not in s


def test_processing_is_counted_by_the_job(ctx):
    """The real job path: process_events counts applied events, latency and handler calls."""
    from schemas.samples import example_for_topic
    from storage.intake import make_delivery, store_deliveries
    from workers.handlers import on
    from workers.jobs import process_events

    @on("orders/paid")
    def counted(event):
        pass

    d = make_delivery("m-1", "orders/paid", "acme.genmystore.com", example_for_topic("orders/paid"))
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ttl=3600)
    process_events([d.ref])
    counts = wm.WorkerCounts.parse(ctx.redis.hgetall(wm.metrics_key(ctx.keys)))
    assert counts.events == {("orders/paid", "processed"): 1}
    assert counts.handlers == {(f"{__name__}.test_processing_is_counted_by_the_job.<locals>.counted", "ok"): 1}
    assert counts.latency_count == 1
