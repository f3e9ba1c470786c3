"""Bounded memory: events, de-duplication and indexes expire after ORDERHOOKS_EVENT_TTL;
RQ's registries keep results for a bounded time."""

import time

from rq.job import Job
from rq.serializers import JSONSerializer

from schemas.samples import example_for_topic
from storage.intake import make_delivery, store_deliveries
from workers import jobs
from workers.runner import sweep


def test_event_hash_and_order_history_expire(ctx):
    d = make_delivery("r1", "orders/create", "acme.genmystore.com", example_for_topic("orders/create"))
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ttl=3600)
    assert 3500 < ctx.redis.ttl(ctx.keys.event(d.ref)) <= 3600
    assert 3500 < ctx.redis.ttl(ctx.keys.body(d.ref)) <= 3600, "the body expires with its event"
    history = ctx.keys.order_events("genstore", "acme.genmystore.com", "1001")
    assert ctx.redis.ttl(history) == -2, "the receiver does not read the body: the order is not known yet"
    assert ctx.redis.ttl(ctx.keys.order("genstore", "acme.genmystore.com", "1001")) == -2  # not written yet
    jobs.process_events([d.ref])
    assert 3500 < ctx.redis.ttl(history) <= 3600, "the history lives as long as its events"
    assert ctx.redis.ttl(ctx.keys.order("genstore", "acme.genmystore.com", "1001")) == -1, "the projection is kept"


def test_sweeper_trims_indexes_past_the_retention(ctx):
    d = make_delivery("old", "orders/create", "acme.genmystore.com", example_for_topic("orders/create"),
                      received_at=time.time() - ctx.settings.event_ttl - 10)
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ttl=ctx.settings.event_ttl)
    jobs.process_events([d.ref])
    assert ctx.redis.zscore(ctx.keys.events, d.ref) is not None
    assert sweep(ctx, trim=False)["trimmed"] == 0, "between two trims (a minute apart) a pass does not scan"
    assert ctx.redis.zscore(ctx.keys.events, d.ref) is not None
    result = sweep(ctx)
    assert result["trimmed"] >= 3  # all events, its status and its topic index
    assert ctx.redis.zscore(ctx.keys.events, d.ref) is None
    assert ctx.redis.zscore(ctx.keys.events_by_topic("orders/create"), d.ref) is None


def test_rq_jobs_keep_results_for_a_bounded_time(ctx):
    d = make_delivery("j1", "orders/create", "acme.genmystore.com", example_for_topic("orders/create"))
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ttl=3600)
    job = Job.fetch(ctx.queue.job_ids[0], connection=ctx.redis, serializer=JSONSerializer)
    assert job.result_ttl == 300
    assert job.failure_ttl == 7 * 24 * 3600
