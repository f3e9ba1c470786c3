"""One event the apply step cannot handle must not sink the events batched with it.

The poison is realistic: something other than a projection sits where an order's projection
lives (a hash planted on the order's key), or an event's stored fields are corrupt. The failing
event keeps its error, gets its own bounded retries (ORDERHOOKS_RETRY_DELAYS), then is `failed`
and replayable; its batch-mates are applied.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from rq.registry import ScheduledJobRegistry

from schemas.samples import example_for_topic
from storage.events import load_event
from storage.intake import PROCESS_JOB, make_delivery, store_deliveries
from storage.keys import GENSTORE, event_ref
from storage.queries import get_order
from storage.replay import replay
from workers import jobs
from workers.handlers import on
from workers.runner import sweep

SHOP = "acme.genmystore.com"


def ref(event_id: str, shop: str = SHOP) -> str:
    """The event's name in Redis (ids are unique per platform and shop)."""
    return event_ref(GENSTORE, shop, event_id)


def order_body(order_id: str) -> bytes:
    data = json.loads(example_for_topic("orders/update"))
    data["order"].update(orderId=order_id)
    return json.dumps(data).encode()


def store_lost(ctx, ids_and_orders: list[tuple[str, str]]) -> None:
    """Events stored whose processing jobs were lost: only the sweeper can find them."""
    ds = [make_delivery(e, "orders/update", SHOP, order_body(o)) for e, o in ids_and_orders]
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, ds, ctx.settings.event_ttl)
    ctx.queue.empty()


def sweep_now(ctx, now: float) -> list[list[str]]:
    """One sweep pass at `now`; the event ids of each processing job it enqueued."""
    ctx.redis.delete(ctx.keys.sweeper_lock)
    sweep(ctx, now=now)
    found = [job.args[0] for job in ctx.queue.jobs if job.func_name == PROCESS_JOB]
    ctx.queue.empty()
    return found


def scheduled_retries(ctx) -> list[list[str]]:
    registry = ScheduledJobRegistry(queue=ctx.queue)
    out = []
    for job_id in registry.get_job_ids():
        job = ctx.queue.fetch_job(job_id)
        assert job.func_name == PROCESS_JOB
        out.append(job.args[0])
        registry.remove(job)
    return out


def test_a_poison_event_fails_alone_with_its_error_its_batch_mates_are_applied(ctx):
    ctx.settings = replace(ctx.settings, retry_delays=(100, 100))
    calls = []
    on("*")(lambda event: calls.append(event.id))
    store_lost(ctx, [("ok-1", "201"), ("poison", "666"), ("ok-2", "202"), ("ok-3", "203")])
    ctx.redis.hset(ctx.keys.order(GENSTORE, SHOP, "666"), "planted", "not a projection")  # WRONGTYPE for GET
    [batch] = sweep_now(ctx, time.time() + 1000)
    assert sorted(batch) == sorted(ref(e) for e in ("ok-1", "ok-2", "ok-3", "poison")), \
        "the sweeper sends lost events round together"

    jobs.process_events(batch)  # the job itself does not fail
    for event_id in ("ok-1", "ok-2", "ok-3"):
        assert load_event(ctx.redis, ctx.keys, ref(event_id)).status == "processed"
    assert sorted(calls) == ["ok-1", "ok-2", "ok-3"]
    poison = load_event(ctx.redis, ctx.keys, ref("poison"))
    assert poison.status == "queued", "its retries last: it stays queued"
    assert poison.attempts == 1
    assert poison.error.startswith("apply: WRONGTYPE")
    due = ScheduledJobRegistry(queue=ctx.queue).get_jobs_to_schedule
    assert due(int(time.time()) + 90) == [] and len(due(int(time.time()) + 101)) == 1, "due after the first delay"
    assert scheduled_retries(ctx) == [[ref("poison")]], "its own retry"
    assert sweep_now(ctx, time.time() + 120) == [], "the sweeper leaves an event waiting for its retry alone"

    jobs.process_events([ref("poison")])  # the retries (two delays in these settings), as the scheduler runs them
    assert scheduled_retries(ctx) == [[ref("poison")]]
    poison = load_event(ctx.redis, ctx.keys, ref("poison"))
    assert (poison.status, poison.attempts) == ("queued", 2)
    jobs.process_events([ref("poison")])
    poison = load_event(ctx.redis, ctx.keys, ref("poison"))
    assert poison.status == "failed", "retries spent"
    assert poison.attempts == 3
    assert poison.error.startswith("apply: WRONGTYPE")
    assert scheduled_retries(ctx) == []
    assert ctx.redis.zscore(ctx.keys.events_by_status("failed"), ref("poison")) is not None
    assert ctx.redis.zscore(ctx.keys.events_by_status("queued"), ref("poison")) is None
    assert sweep_now(ctx, time.time() + 5000) == [], "a failed event is not sent round again"

    # the cause is fixed; replaying runs the whole pipeline
    ctx.redis.delete(ctx.keys.order(GENSTORE, SHOP, "666"))
    result = replay(ctx, ref("poison"))
    assert (result.status, result.action) == ("queued", "pipeline")
    [job] = ctx.queue.jobs
    jobs.process_events(*job.args)
    poison = load_event(ctx.redis, ctx.keys, ref("poison"))
    assert poison.status == "processed"
    assert poison.error is None, "the error is cleared once the event ends well"
    assert poison.attempts == 4, "every apply attempt counts"
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "666")["orderId"] == "666"
    assert sorted(calls) == ["ok-1", "ok-2", "ok-3", "poison"]


def test_an_event_with_corrupt_fields_does_not_stop_the_others(ctx):
    store_lost(ctx, [("fine", "301"), ("corrupt", "302")])
    ctx.redis.hset(ctx.keys.event(ref("corrupt")), "received_at", "yesterday")
    jobs.process_events([ref("fine"), ref("corrupt")])
    assert load_event(ctx.redis, ctx.keys, ref("fine")).status == "processed"
    h = ctx.redis.hgetall(ctx.keys.event(ref("corrupt")))
    assert h[b"status"] == b"queued" and h[b"attempts"] == b"1"
    assert h[b"error"].startswith(b"apply: ValueError")
