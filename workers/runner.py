"""The worker process: an RQ worker (with its scheduler, for handler retries) plus a sweeper.

The sweeper makes sure nothing stays stuck: events still `queued` well after
they arrived (their job was lost: a receiver died between storing and
enqueueing, or a worker died holding the job) are enqueued again, and
events whose handlers were left pending by a dead worker are resumed.
Applying is exactly-once, so sending an event round again is harmless.
"""

from __future__ import annotations

import threading
import time

import structlog
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from workers.context import Context, set_context
from workers.intake import enqueue_processing

RESUME_JOB = "workers.jobs.resume_pending"
SWEEP_BATCH = 100
log = structlog.get_logger("orderhooks.sweeper")


def sweep(ctx: Context, now: float | None = None) -> dict:
    """One pass; returns what it re-enqueued. Only one worker sweeps at a time."""
    now = time.time() if now is None else now
    keys, r = ctx.keys, ctx.redis
    cutoff = now - ctx.settings.recover_after
    if not r.set(keys.sweeper_lock, b"1", nx=True, ex=max(5, int(ctx.settings.recover_after))):
        return {"requeued": 0, "resumed": 0, "trimmed": 0}
    requeued = resumed = 0
    if ctx.queue.count == 0:
        stuck = [i.decode() for i in r.zrangebyscore(keys.events_by_status("queued"), "-inf", cutoff)]
        for start in range(0, len(stuck), SWEEP_BATCH):
            enqueue_processing(ctx.queue, stuck[start : start + SWEEP_BATCH])
        requeued = len(stuck)
    pending = [i.decode() for i in r.zrangebyscore(keys.dispatching, "-inf", cutoff)]
    for event_id in pending:
        r.zadd(keys.dispatching, {event_id: now})  # not again before another recover_after
        ctx.queue.enqueue_call(RESUME_JOB, args=(event_id,), result_ttl=300, failure_ttl=7 * 24 * 3600)
    resumed = len(pending)
    # Retention: index entries of events older than the event TTL (the event hashes expire by themselves).
    horizon = now - ctx.settings.event_ttl
    pipe = r.pipeline(transaction=False)
    for index in [keys.events, *keys.status_keys()]:
        pipe.zremrangebyscore(index, "-inf", horizon)
    trimmed = sum(pipe.execute())
    if requeued or resumed:
        log.warning("sweeper_recovered", requeued=requeued, resumed=resumed)
    return {"requeued": requeued, "resumed": resumed, "trimmed": trimmed}


def _sweep_forever(ctx: Context, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            sweep(ctx)
        except Exception as exc:  # Redis away: try again next round
            log.warning("sweeper_error", error=f"{type(exc).__name__}: {exc}")


def run_worker(ctx: Context, burst: bool = False, name: str | None = None) -> None:
    set_context(ctx)
    stop = threading.Event()
    interval = max(1.0, min(10.0, ctx.settings.recover_after / 4))
    sweeper = threading.Thread(target=_sweep_forever, args=(ctx, stop, interval), daemon=True, name="sweeper")
    sweeper.start()
    worker = SimpleWorker([ctx.queue], connection=ctx.redis, serializer=JSONSerializer, name=name)
    log.info("worker_started", queue=ctx.queue.name, handlers=[h.name for h in ctx.registry.all()])
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
