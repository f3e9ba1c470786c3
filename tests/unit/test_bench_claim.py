"""Batching for throughput: a processing job takes over the processing jobs waiting behind it.

Runs against the session's real Redis, like the integration tests.
"""

from __future__ import annotations

from rq import SimpleWorker

from storage.events import load_event
from storage.intake import claim_waiting, enqueue_processing
from tests.support.store import ref, store
from workers import jobs
from workers.handlers import on
from workers.runner import run_worker

SHOP = "acme.genmystore.com"



def _store(ctx, event_id: str, topic: str = "orders/create") -> None:
    store(ctx, event_id, topic)


def test_claim_takes_waiting_processing_jobs_only(ctx):
    for i in range(5):
        _store(ctx, f"w{i}")
    retry = ctx.queue.enqueue_call("workers.jobs.run_handler", args=("w0", "h"))
    assert ctx.queue.count == 6
    assert sorted(claim_waiting(ctx.queue)) == [ref(f"w{i}") for i in range(5)]
    assert ctx.queue.job_ids == [retry.id], "other jobs stay queued"
    assert claim_waiting(ctx.queue) == []


def test_claim_stops_once_it_holds_enough_events(ctx):
    enqueue_processing(ctx.queue, ["a", "b", "c"])
    enqueue_processing(ctx.queue, ["d"])
    enqueue_processing(ctx.queue, ["e"])
    assert claim_waiting(ctx.queue, events=4) == ["a", "b", "c", "d"]
    assert ctx.queue.count == 1
    assert claim_waiting(ctx.queue, events=0) == []


def test_a_direct_call_does_not_claim(ctx):
    _store(ctx, "d1")
    _store(ctx, "d2")
    jobs.process_events([ref("d1")])
    assert ctx.queue.count == 2
    assert load_event(ctx.redis, ctx.keys, ref("d2")).status == "queued"


def test_a_worker_drains_a_backlog_in_few_jobs_each_event_once(ctx):
    calls = []
    on("orders/*")(lambda event: calls.append(event.id))
    ids = [f"b{i}" for i in range(40)]  # one order: the first applies, the rest are stale
    for event_id in ids:
        _store(ctx, event_id)
    _store(ctx, "b0")  # a duplicate delivery: its job holds an id already held by another
    worker = SimpleWorker([ctx.queue], connection=ctx.redis, serializer=ctx.queue.serializer)
    worker.work(burst=True)
    assert sorted(calls) == sorted(ids), "each handler call happens once"
    for event_id in ids:
        record = load_event(ctx.redis, ctx.keys, ref(event_id))
        assert record.status in ("processed", "stale") and record.attempts == 1
    assert ctx.queue.count == 0
    assert worker.successful_job_count < 5, "the first job took over the others"


def _chained(ctx, prefix: str, last: int) -> list[str]:
    """A handler making the next delivery arrive as each event is handled (`prefix`0 .. `prefix``last`), as a
    steady flow of deliveries would; returns the ids it was called with, in order."""
    calls: list[str] = []

    def deliver_next(event):
        calls.append(event.id)
        n = int(event.id.removeprefix(prefix))
        if n < last:
            _store(ctx, f"{prefix}{n + 1}")

    on("orders/create")(deliver_next)
    _store(ctx, f"{prefix}0")
    return calls


def test_events_enqueued_while_a_job_runs_are_taken_by_that_job(ctx):
    """Under a steady flow, the next deliveries are queued while a job runs: the job takes them when its own
    events are done, instead of leaving them to wait for RQ's round trips between two jobs."""
    calls = _chained(ctx, "s", 5)
    run_worker(ctx, burst=True)
    assert calls == [f"s{i}" for i in range(6)]
    assert ctx.queue.finished_job_registry.count == 1, "one job took every event enqueued while it ran"
    assert ctx.queue.count == 0


def test_a_job_stops_taking_new_events_after_its_time(ctx, monkeypatch):
    """Bounded: past `KEEP_CLAIMING_SECONDS` a job ends and the events still arriving get jobs of their own
    (handler retries and a shutdown wait for no more than that)."""
    monkeypatch.setattr(jobs, "KEEP_CLAIMING_SECONDS", 0.0)
    calls = _chained(ctx, "t", 2)
    run_worker(ctx, burst=True)
    assert calls == ["t0", "t1", "t2"]
    assert ctx.queue.finished_job_registry.count == 3
