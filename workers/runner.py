"""The worker process: an RQ worker (with its scheduler, for handler retries) plus a sweeper.

The sweeper makes sure nothing stays stuck:
- a job held by a worker that died (SIGKILL, out of memory, lost machine) is
  requeued as soon as that worker's liveness key expires, instead of after
  RQ's own abandoned-job timeout (the job's timeout plus a minute, found by a
  maintenance pass every ten minutes);
- events still `queued` well after they arrived while the queue is empty
  (their job was lost: a receiver died between storing and enqueueing) are
  enqueued again;
- events whose handlers were left pending by a dead worker are resumed.
Applying is exactly-once, so sending an event round again is harmless.
"""

from __future__ import annotations

import signal
import threading
import time

import redis
import structlog
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from workers.context import Context, rq_pipeline, set_context
from workers.intake import enqueue_processing

RESUME_JOB = "workers.jobs.resume_pending"
SWEEP_BATCH = 100
log = structlog.get_logger("orderhooks.sweeper")


def alive_ttl(ctx: Context) -> int:
    """Seconds a worker's liveness key lives without a refresh."""
    return int(min(30, max(3, ctx.settings.recover_after / 2)))


def requeue_abandoned(ctx: Context) -> list[str]:
    """Requeue jobs whose worker is no longer alive; return their ids."""
    registry = StartedJobRegistry(queue=ctx.queue)
    requeued = []
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        try:
            worker = Execution.fetch(execution_id, job_id, ctx.redis).worker_name
        except ValueError:
            worker = ""
        if worker and ctx.redis.exists(ctx.keys.worker_alive(worker)):
            continue
        try:
            job = Job.fetch(job_id, connection=ctx.redis, serializer=JSONSerializer)
        except Exception:
            ctx.redis.zrem(registry.key, f"{job_id}:{execution_id}")
            continue
        pipe = rq_pipeline(ctx.redis)
        pipe.zrem(registry.key, f"{job_id}:{execution_id}")
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        FailedJobRegistry(queue=ctx.queue).add(
            job, ttl=7 * 24 * 3600, exc_string=f"abandoned: worker {worker or '?'} died; requeued", pipeline=pipe
        )
        ctx.queue.enqueue_call(job.func_name, args=job.args, kwargs=job.kwargs, pipeline=pipe,
                               result_ttl=300, failure_ttl=7 * 24 * 3600, timeout=job.timeout,
                               description=f"requeued {job.description}")
        pipe.execute()
        requeued.append(job_id)
    if requeued:
        log.warning("abandoned_jobs_requeued", jobs=requeued)
    return requeued


def sweep(ctx: Context, now: float | None = None) -> dict:
    """One pass; returns what it did. Only one worker sweeps at a time."""
    now = time.time() if now is None else now
    keys, r = ctx.keys, ctx.redis
    cutoff = now - ctx.settings.recover_after
    if not r.set(keys.sweeper_lock, b"1", nx=True, ex=max(5, int(ctx.settings.recover_after))):
        return {"abandoned": 0, "requeued": 0, "resumed": 0, "trimmed": 0}
    try:
        abandoned = len(requeue_abandoned(ctx))
        requeued = 0
        if ctx.queue.count == 0:
            stuck = [i.decode() for i in r.zrangebyscore(keys.events_by_status("queued"), "-inf", cutoff)]
            for start in range(0, len(stuck), SWEEP_BATCH):
                enqueue_processing(ctx.queue, stuck[start : start + SWEEP_BATCH])
            requeued = len(stuck)
        pending = [i.decode() for i in r.zrangebyscore(keys.dispatching, "-inf", cutoff)]
        for event_id in pending:
            r.zadd(keys.dispatching, {event_id: now})  # not again before another recover_after
            ctx.queue.enqueue_call(RESUME_JOB, args=(event_id,), result_ttl=300, failure_ttl=7 * 24 * 3600)
        # Retention: index entries of events older than the event TTL (the hashes expire by themselves).
        horizon = now - ctx.settings.event_ttl
        indexes = [keys.events, *keys.status_keys()]
        indexes += [k.decode() for k in r.scan_iter(match=keys.events_by_topic("*"), count=100)]
        pipe = r.pipeline(transaction=False)
        for index in indexes:
            pipe.zremrangebyscore(index, "-inf", horizon)
        trimmed = sum(pipe.execute())
    finally:
        r.delete(keys.sweeper_lock)
    if requeued or pending:
        log.warning("sweeper_recovered", requeued=requeued, resumed=len(pending))
    return {"abandoned": abandoned, "requeued": requeued, "resumed": len(pending), "trimmed": trimmed}


def _background(ctx: Context, worker_name: str, stop: threading.Event) -> None:
    """Keep this worker's liveness key fresh, and sweep every few seconds."""
    ttl = alive_ttl(ctx)
    beat = max(1.0, ttl / 3)
    sweep_every = max(1.0, min(10.0, ctx.settings.recover_after / 4))
    last_sweep = 0.0
    while not stop.is_set():
        try:
            ctx.redis.set(ctx.keys.worker_alive(worker_name), b"1", ex=ttl)
            if time.monotonic() - last_sweep >= sweep_every:
                last_sweep = time.monotonic()
                sweep(ctx)
        except Exception as exc:  # Redis away: try again next round
            log.warning("sweeper_error", error=f"{type(exc).__name__}: {exc}")
        stop.wait(min(beat, sweep_every))


def wait_for_redis(ctx: Context, stop: threading.Event, most: float = 10.0) -> bool:
    """Block until Redis answers (True), or until asked to stop (False)."""
    delay = 0.5
    while not stop.is_set():
        try:
            ctx.redis.ping()
            return True
        except redis.RedisError as exc:
            log.warning("redis_unavailable", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
            stop.wait(delay)
            delay = min(most, delay * 2)
    return False


def run_worker(ctx: Context, burst: bool = False, name: str | None = None) -> None:
    """Run until stopped; while Redis is away, wait for it and carry on."""
    set_context(ctx)
    stop = threading.Event()

    def _stop_waiting(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, _stop_waiting) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            if not wait_for_redis(ctx, stop):
                return
            for s, handler in previous.items():  # RQ installs its own while it works
                signal.signal(s, handler)
            try:
                _work(ctx, burst, name)
                return
            except redis.ConnectionError as exc:
                log.warning("worker_lost_redis", error=f"{type(exc).__name__}: {exc}")
                for s in previous:
                    signal.signal(s, _stop_waiting)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Worker(SimpleWorker):
    """RQ's worker, stopping promptly: redis-py 8's PubSubWorkerThread.stop() joins the pubsub thread, which
    can be waiting up to 60 s (RQ's poll) for a subscription that will not come, so a warm shutdown stalled."""

    def unsubscribe(self) -> None:
        if self.pubsub_thread:
            self.pubsub.unsubscribe()
            self.pubsub_thread._running.clear()  # what stop() does, without its unbounded join
            self.pubsub_thread.join(timeout=1)  # a daemon thread: a poll still running ends with the process
            self.pubsub.close()


def _work(ctx: Context, burst: bool, name: str | None) -> None:
    # Maintenance (restarting a scheduler lost with Redis, cleaning registries) every minute, not ten.
    worker = _Worker([ctx.queue], connection=ctx.redis, serializer=JSONSerializer, name=name,
                          maintenance_interval=60)
    stop = threading.Event()
    thread = threading.Thread(target=_background, args=(ctx, worker.name, stop), daemon=True, name="sweeper")
    thread.start()
    log.info("worker_started", worker=worker.name, queue=ctx.queue.name,
             handlers=[h.name for h in ctx.registry.all()])
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        thread.join(timeout=5)
        try:
            ctx.redis.delete(ctx.keys.worker_alive(worker.name))
        except redis.RedisError:
            pass
        log.info("worker_stopped", worker=worker.name)
