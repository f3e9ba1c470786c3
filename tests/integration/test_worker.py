"""The worker's pipeline in-process against the real Redis: exactly-once apply,
per-handler retries, replay and the sweeper."""

from __future__ import annotations

import json
import threading
import time

from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from schemas.samples import example_for_topic
from storage.events import load_event
from storage.intake import make_delivery, store_deliveries
from storage.keys import GENSTORE
from storage.projection import apply_events
from storage.queries import get_order
from storage.replay import replay
from tests.support.payloads import order_body
from tests.support.store import ref, store
from workers import jobs
from workers.dispatch import run_handler
from workers.handlers import on
from workers.runner import requeue_abandoned, run_worker, sweep

SHOP = "acme.genmystore.com"


def payload(order_id: str, updated_at: str) -> bytes:
    return order_body("orders/update", order_id, updated_at)


def test_store_is_atomic_dedupe(ctx):
    assert store(ctx, "e1", "orders/create") is True
    assert store(ctx, "e1", "orders/create") is False
    assert ctx.redis.zcard(ctx.keys.events) == 1
    assert ctx.queue.count == 2  # the duplicate's job finds nothing left to apply


def test_concurrent_workers_apply_each_event_exactly_once(ctx):
    calls = []
    on("*")(lambda event: calls.append(event.id))
    ids = [f"c{i}" for i in range(40)]
    for i, event_id in enumerate(ids):
        store(ctx, event_id, "orders/update", payload(str(i % 5), f"2024-01-01T00:00:{i:02d}Z"))
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        jobs.process_events([ref(i) for i in ids])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == sorted(ids), "every handler call happens once"
    for event_id in ids:
        assert load_event(ctx.redis, ctx.keys, ref(event_id)).attempts == 1
    for n in range(5):
        newest = max(i for i in range(40) if i % 5 == n)
        assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, str(n))["updatedAt"] == f"2024-01-01T00:00:{newest:02d}Z"


def test_failing_handler_retries_alone_then_fails_and_replays(ctx):
    state = {"ok_calls": 0, "broken": True, "flaky_calls": 0}

    @on("orders/paid")
    def steady(event):
        state["ok_calls"] += 1

    @on("orders/*")
    def flaky(event):
        state["flaky_calls"] += 1
        if state["broken"]:
            raise ValueError("downstream is down")

    store(ctx, "p1", "orders/paid")
    jobs.process_events([ref("p1")])
    name = f"{flaky.__module__}.{flaky.__qualname__}"
    rec = load_event(ctx.redis, ctx.keys, ref("p1"))
    assert rec.status == "processed"
    assert rec.handlers[name]["status"] == "retrying" and rec.handlers[name]["attempts"] == 1
    assert "downstream is down" in rec.handlers[name]["error"]
    assert rec.error == f"{name}: ValueError: downstream is down (retrying)", "the list says why, while retrying"
    assert ScheduledJobRegistry(queue=ctx.queue).count == 1, "the retry is scheduled with RQ"
    # retries (two delays configured by the fixture): run them as the scheduler would
    run_handler(ctx, ref("p1"), name)
    run_handler(ctx, ref("p1"), name)
    rec = load_event(ctx.redis, ctx.keys, ref("p1"))
    assert rec.handlers[name]["status"] == "failed" and rec.handlers[name]["attempts"] == 3
    assert "Traceback" in rec.handlers[name]["traceback"]
    assert rec.status == "failed"
    assert rec.attempts == 3, "an event's attempts: the highest among its stages and handlers"
    assert rec.error == f"{name}: ValueError: downstream is down", "a failed event says why in every list"
    assert state["ok_calls"] == 1, "the other handler was not re-run"
    # after a fix, replay re-runs only the failed handler
    state["broken"] = False
    result = replay(ctx, ref("p1"))
    assert result.action == "handlers" and result.status == "processed"
    run_handler(ctx, ref("p1"), name)
    rec = load_event(ctx.redis, ctx.keys, ref("p1"))
    assert rec.status == "processed"
    assert rec.handlers[name]["status"] == "ok" and rec.handlers[name]["attempts"] == 4
    assert rec.error is None, "cleared once the event ends well"
    assert state["ok_calls"] == 1


def test_replay_of_a_processed_event_does_nothing(ctx):
    store(ctx, "done", "orders/create")
    jobs.process_events([ref("done")])
    result = replay(ctx, ref("done"))
    assert result.action == "none" and "processed" in result.detail


def test_sweeper_resumes_handlers_left_pending_by_a_dead_worker(ctx):
    calls = []
    on("orders/create")(lambda event: calls.append(event.id))
    store(ctx, "crash1", "orders/create")
    ctx.queue.empty()
    # the worker applied the projection, then died before running handlers
    apply_events(ctx.redis, ctx.keys, [ref("crash1")], lambda topic: [h.name for h in ctx.registry.matching(topic)])
    assert ctx.redis.zscore(ctx.keys.dispatching, ref("crash1")) is not None
    assert sweep(ctx, now=time.time() + 1000)["resumed"] == 1
    job = ctx.queue.jobs[0]
    assert job.func_name == "workers.jobs.resume_pending"
    jobs.resume_pending(*job.args)
    assert calls == ["crash1"]
    assert ctx.redis.zscore(ctx.keys.dispatching, ref("crash1")) is None
    assert load_event(ctx.redis, ctx.keys, ref("crash1")).handlers


def test_sweeper_requeues_events_whose_job_was_lost(ctx):
    store(ctx, "lost1", "orders/create")
    ctx.queue.empty()  # e.g. the job was lost with a crashed process
    assert sweep(ctx, now=time.time() - 1000)["requeued"] == 0, "young events are left alone"
    ctx.redis.delete(ctx.keys.sweeper_lock)
    assert sweep(ctx, now=time.time() + 1000)["requeued"] == 1
    jobs.process_events(*ctx.queue.jobs[0].args)
    assert load_event(ctx.redis, ctx.keys, ref("lost1")).status == "processed"


def test_testing_helper_feeds_handlers_without_redis():
    from workers.handlers import Registry
    from workers.testing import make_event, run_handlers

    reg = Registry()
    seen = []

    @reg.on("orders/paid")
    def remember(event):
        seen.append((event.topic, event.order.total_price, event.stale))

    @reg.on("*")
    def broken(event):
        raise RuntimeError("boom")

    event = make_event("orders/paid")
    results = run_handlers(event, handlers=reg)
    assert seen and seen[0][0] == "orders/paid" and str(seen[0][1]) == "409.94" and seen[0][2] is False
    assert isinstance(results[f"{broken.__module__}.{broken.__qualname__}"], RuntimeError)
    assert results[f"{remember.__module__}.{remember.__qualname__}"] is None


def test_the_order_id_and_the_order_history_are_written_when_the_worker_applies_the_event(ctx):
    """The receiver does not read the body, so an event's order is known once the worker normalized it."""
    from storage.queries import list_events

    shop = "new.genmystore.com"
    for event_id, topic in (("q1", "orders/create"), ("q2", "refunds/create")):
        d = make_delivery(event_id, topic, shop, example_for_topic(topic))
        store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ctx.settings.event_ttl)
    assert load_event(ctx.redis, ctx.keys, ref("q1", shop)).order_id is None
    assert list_events(ctx.redis, ctx.keys, order_id="1001") == []
    calls = []
    on("*")(lambda event: calls.append((event.id, event.order_id)))
    jobs.process_events([ref("q1", shop), ref("q2", shop)])
    assert sorted(calls) == [("q1", "1001"), ("q2", "1001")], "handlers see the order id"
    assert load_event(ctx.redis, ctx.keys, ref("q1", shop)).order_id == "1001"
    assert [r.id for r in list_events(ctx.redis, ctx.keys, order_id="1001")] == ["q2", "q1"], "newest first"
    history = ctx.keys.order_events(GENSTORE, shop, "1001")
    received = load_event(ctx.redis, ctx.keys, ref("q1", shop)).received_at
    assert ctx.redis.zscore(history, ref("q1", shop)) == received, "scored by received time"
    assert 0 < ctx.redis.ttl(history) <= ctx.settings.event_ttl, "and kept as long as its events"


def test_queued_event_whose_body_does_not_normalize_is_quarantined_by_the_worker_with_the_reason(ctx):
    """Only the raw body is stored, unread by the receiver; the worker normalizes it and quarantines it."""
    assert store(ctx, "bad-1", "orders/update", b'{"order": {"orderId": "9"}}')  # no updatedAt
    assert load_event(ctx.redis, ctx.keys, ref("bad-1")).status == "queued"
    assert apply_events(ctx.redis, ctx.keys, [ref("bad-1")], lambda topic: []) == []
    record = load_event(ctx.redis, ctx.keys, ref("bad-1"))
    assert record.status == "quarantined"
    assert record.error == "order.updatedAt: missing", "the reason, as the normalizer gives it"
    assert record.raw == b'{"order": {"orderId": "9"}}'
    assert ctx.redis.zscore(ctx.keys.events_by_status("quarantined"), ref("bad-1")) is not None
    assert ctx.redis.zscore(ctx.keys.events_by_status("queued"), ref("bad-1")) is None
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "9") is None


def test_a_quarantine_is_counted_and_notified_once_however_many_workers_see_the_event(ctx):
    from dataclasses import replace

    from storage.metrics import WorkerCounts
    from storage.notices import group_member

    ctx.settings = replace(ctx.settings, notify_urls=("http://127.0.0.1:9/hook",))
    for i in range(3):
        store(ctx, f"bad-{i}", "orders/create", b"{not json")
    refs = [ref(f"bad-{i}") for i in range(3)]
    barrier = threading.Barrier(3)

    def work():
        barrier.wait()
        jobs.process_events(refs)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs.process_events(refs)  # once more, as a sweeper's job would
    assert WorkerCounts.parse(ctx.redis.hgetall(ctx.keys.metrics)).totals == {"quarantined": 3}
    group = ctx.redis.hgetall(ctx.keys.notify_group(group_member("events.quarantined", SHOP)))
    assert int(group[b"count"]) == 3
    examples = [json.loads(e) for e in ctx.redis.lrange(ctx.keys.notify_examples(
        group_member("events.quarantined", SHOP)), 0, -1)]
    assert sorted(e["id"] for e in examples) == ["bad-0", "bad-1", "bad-2"]
    assert all(e["reason"].startswith("body is not valid JSON") and e["topic"] == "orders/create"
               for e in examples)


def test_a_group_is_stored_in_one_script_with_each_delivery_flagged(ctx):
    ds = [make_delivery(f"g{i}", "orders/create", SHOP, example_for_topic("orders/create")) for i in range(3)]
    ds.append(make_delivery("g1", "orders/create", SHOP, example_for_topic("orders/create")))  # resent at once
    ds.append(make_delivery("g-junk", "orders/create", SHOP, b"not json"))
    ds.append(make_delivery("g-noshop", "orders/create", "", b"not json"))
    flags = store_deliveries(ctx.redis, ctx.keys, ctx.queue, ds, ctx.settings.event_ttl)
    assert flags == [True, True, True, False, True, True]
    stored = load_event(ctx.redis, ctx.keys, ref("g0"))
    assert stored.raw == example_for_topic("orders/create") and stored.status == "queued"
    assert stored.order_id is None and stored.event is not None and stored.event.order_id == "1001"
    junk = load_event(ctx.redis, ctx.keys, ref("g-junk"))
    assert junk.status == "queued" and junk.raw == b"not json", "the receiver stores what it cannot read too"
    shopless = load_event(ctx.redis, ctx.keys, ref("g-noshop", ""))
    assert shopless.status == "quarantined" and "X-Genstore-Shop-Domain" in shopless.error
    assert ctx.redis.zcard(ctx.keys.events) == 5
    assert ctx.redis.zcard(ctx.keys.order_events(GENSTORE, SHOP, "1001")) == 0, "written once applied"
    assert ctx.redis.ttl(ctx.keys.event(ref("g0"))) > 0


def test_an_order_is_stored_compressed_and_one_stored_before_compression_reads_and_updates(ctx):
    from storage import codec

    store(ctx, "z-1", "orders/create", payload("8801", "2024-01-01T00:00:00Z"))
    jobs.process_events([ref("z-1")])
    key = ctx.keys.order(GENSTORE, SHOP, "8801")
    stored = ctx.redis.get(key)
    text = codec.unpack(stored)
    assert stored[:4] == codec.MAGIC and len(stored) < len(text) * 0.4
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "8801")["orderId"] == "8801"
    ctx.redis.set(key, text)  # as a release before compression wrote it
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "8801")["updatedAt"].startswith("2024-01-01")
    store(ctx, "z-2", "orders/update", payload("8801", "2024-02-01T00:00:00Z"))
    jobs.process_events([ref("z-2")])
    assert load_event(ctx.redis, ctx.keys, ref("z-2")).status == "processed", "the plain value compared and replaced"
    assert ctx.redis.get(key)[:4] == codec.MAGIC
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "8801")["updatedAt"].startswith("2024-02-01")


def test_a_job_that_ends_while_the_sweeper_looks_is_not_taken_for_abandoned(ctx):
    """The sweeper reads the started jobs, then each one's execution. A job ending in between has no
    execution any more (RQ deletes it, and keeps the job for its result): it must not be requeued as if its
    worker had died, or it runs twice (a second reconcile run, for instance)."""
    job = ctx.queue.enqueue_call("workers.jobs.resume_pending", args=([],), result_ttl=300)
    run_worker(ctx, burst=True)
    assert job.get_status(refresh=True) == "finished"
    registry = StartedJobRegistry(queue=ctx.queue)
    ctx.redis.zadd(registry.key, {f"{job.id}:gone-execution": time.time() + 600})  # the sweeper's earlier read
    assert requeue_abandoned(ctx) == []
    assert ctx.queue.count == 0, "not enqueued again"

    # A job still started whose worker left no trace is requeued, as before.
    started = ctx.queue.enqueue_call("workers.jobs.resume_pending", args=([],), result_ttl=300)
    ctx.queue.remove(started.id)
    started.set_status("started")
    ctx.redis.zadd(registry.key, {f"{started.id}:gone-execution": time.time() + 600})
    assert requeue_abandoned(ctx) == [started.id]
    assert ctx.queue.count == 1
