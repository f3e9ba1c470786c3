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

Redis going away (unreachable, restarting, loading, full, a read-only replica, timing out) never
ends the process: the RQ worker leaves its loop at the first Redis error, the runner waits until
Redis takes writes again and starts a new one, logging once when Redis goes and once when it is
back. RQ's scheduler (due handler and apply retries) runs in the background thread, not in the
process RQ would fork for it, which dies at the first Redis error and is only started again by a
maintenance pass that a worker idle in its blocking wait for a job does not reach.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import redis
import structlog
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from storage.connection import RedisState, redis_problem, rq_pipeline, unavailable_reason
from storage.intake import enqueue_processing
from storage.status import Status
from workers import notify
from workers.context import Context, set_context
from workers.reconcile import schedule_due

RESUME_JOB = "workers.jobs.resume_pending"
SWEEP_BATCH = 100
TRIM_EVERY = 60.0  # seconds between two trims of the indexes by a worker (retention is counted in days)
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
        if job.get_status(refresh=False) != JobStatus.STARTED:
            # It ended between the registry's read and the execution's (RQ deletes the execution when a job
            # ends, and keeps the job for its result): its worker was alive. Requeued, it would run twice.
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


def sweep(ctx: Context, now: float | None = None, trim: bool = True) -> dict:
    """One pass; returns what it did. Only one worker sweeps at a time. `trim`: also trim the indexes of events
    past their TTL (the topic indexes are found by a SCAN of the whole keyspace: not on every pass)."""
    now = time.time() if now is None else now
    keys, r = ctx.keys, ctx.redis
    cutoff = now - ctx.settings.recover_after
    if not r.set(keys.sweeper_lock, b"1", nx=True, ex=max(5, int(ctx.settings.recover_after))):
        return {"abandoned": 0, "requeued": 0, "resumed": 0, "trimmed": 0}
    try:
        abandoned = len(requeue_abandoned(ctx))
        requeued = 0
        if ctx.queue.count == 0:
            stuck = [i.decode() for i in r.zrangebyscore(keys.events_by_status(Status.QUEUED), "-inf", cutoff)]
            stuck = _not_waiting_for_retry(ctx, stuck, cutoff)
            for start in range(0, len(stuck), SWEEP_BATCH):
                enqueue_processing(ctx.queue, stuck[start : start + SWEEP_BATCH])
            requeued = len(stuck)
        pending = [i.decode() for i in r.zrangebyscore(keys.dispatching, "-inf", cutoff)]
        for ref in pending:
            r.zadd(keys.dispatching, {ref: now})  # not again before another recover_after
            ctx.queue.enqueue_call(RESUME_JOB, args=(ref,), result_ttl=300, failure_ttl=7 * 24 * 3600)
        trimmed = 0
        if trim:  # Retention: index entries of events older than the event TTL (the hashes expire by themselves).
            horizon = now - ctx.settings.event_ttl
            indexes = [keys.events, *keys.status_keys()]
            indexes += [k.decode() for k in r.scan_iter(match=keys.topics_pattern, count=1000)]
            pipe = r.pipeline(transaction=False)
            for index in indexes:
                pipe.zremrangebyscore(index, "-inf", horizon)
            trimmed = sum(pipe.execute())
    finally:
        r.delete(keys.sweeper_lock)
    if requeued or pending:
        log.warning("sweeper_recovered", requeued=requeued, resumed=len(pending))
    return {"abandoned": abandoned, "requeued": requeued, "resumed": len(pending), "trimmed": trimmed}


def _not_waiting_for_retry(ctx: Context, ids: list[str], cutoff: float) -> list[str]:
    """Leave out events whose apply retry is scheduled (`retry_at`), unless it is overdue by `recover_after`
    (its job was lost too)."""
    if not ids:
        return ids
    pipe = ctx.redis.pipeline(transaction=False)
    for event_id in ids:
        pipe.hget(ctx.keys.event(event_id), "retry_at")
    out = []
    for event_id, at in zip(ids, pipe.execute(raise_on_error=False), strict=True):
        try:
            due = float(at) if at else 0.0
        except (TypeError, ValueError):
            due = 0.0
        if due <= cutoff:
            out.append(event_id)
    return out


class RedisLost(Exception):
    """Raised out of RQ's loop at the first Redis error, so that the runner waits instead of RQ."""

    def __init__(self, error: BaseException) -> None:
        self.reason = unavailable_reason(error) or f"{type(error).__name__}: {error}"
        super().__init__(self.reason)


class _QuietReconnects(logging.Filter):
    """RQ logs each reconnect attempt and the traceback of leaving its loop; the runner logs the change once."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RedisLost) or (error is not None and unavailable_reason(error)):
            return False
        return "could not connect to Redis" not in record.getMessage()


logging.getLogger("rq.worker").addFilter(_QuietReconnects())


class _Queue(Queue):
    """RQ's queue, whose blocking wait for a job raises `RedisLost` at a Redis error. RQ itself sleeps and
    tries again, doubling the sleep up to a minute for as long as the errors last, so a worker whose
    connection was dropped while Redis stayed up picked up nothing for that long."""

    @classmethod
    def dequeue_any(cls, *args, **kwargs):
        try:
            return super().dequeue_any(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisLost(exc) from exc


class _Worker(SimpleWorker):
    """RQ's SimpleWorker, giving up at the first Redis error instead of retrying (and logging) each attempt,
    or quitting for good when a write is refused. `lost` is that error, for the runner to log."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue_class = _Queue  # after RQ checked the queues given are its own Queue
        self.lost: RedisLost | None = None

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except RedisLost as exc:  # RQ's loop logs it with a traceback and leaves; the runner says why
            self.lost = exc
            raise

    def heartbeat(self, timeout=None, pipeline=None):
        """RQ's heartbeat, in one round trip when it is not part of a pipeline already (RQ sends its three
        writes one by one, twice per job: each costs an fsync under `appendfsync always`)."""
        try:
            if pipeline is not None:
                return super().heartbeat(timeout, pipeline)
            pipe = self.connection.pipeline(transaction=False)
            super().heartbeat(timeout, pipe)
            pipe.execute()
        except redis.RedisError as exc:
            self.lost = RedisLost(exc)
            raise self.lost from exc

    def set_state(self, state, pipeline=None):
        """RQ's, but not written again when unchanged: RQ sets `idle` after each job and once more before
        waiting for the next, one write round trip each."""
        if pipeline is None and state == self._state:
            return
        super().set_state(state, pipeline)

    def set_shutdown_requested_date(self):
        try:  # runs in the signal handler, maybe in the middle of a job: a Redis away must not break the job
            super().set_shutdown_requested_date()
        except redis.RedisError:
            pass

    def teardown(self):
        try:
            super().teardown()
        except redis.RedisError:  # registering its death needs Redis; the pub/sub thread must stop all the same
            if self.pubsub_thread:  # it leaves at its next wake-up and closes its connection itself
                self.pubsub_thread.stop(timeout=0)
            raise

    def unsubscribe(self) -> None:
        """Stop promptly: redis-py 8's PubSubWorkerThread.stop() joins the pubsub thread, which can be waiting
        up to 60 s (RQ's poll) for a subscription that will not come, so a warm shutdown stalled."""
        if self.pubsub_thread:
            try:
                self.pubsub.unsubscribe()
            except redis.RedisError:
                pass
            self.pubsub_thread._running.clear()  # what stop() does, without its unbounded join
            self.pubsub_thread.join(timeout=1)  # a daemon thread: a poll still running ends with the process
            self.pubsub.close()

    def _pubsub_exception_handler(self, exc, pubsub, pubsub_thread):
        if isinstance(exc, redis.ConnectionError):  # redis-py resubscribes once back; the runner logs the loss
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)


class _Scheduler:
    """RQ's scheduler, one tick at a time: moves due jobs (handler and apply retries) to the queue.

    One worker process schedules at a time (RQ's scheduler lock); the others keep trying for the
    lock, so one takes over within a minute when the holder dies.
    """

    def __init__(self, ctx: Context) -> None:
        self.rq = RQScheduler([ctx.queue], connection=ctx.redis, serializer=JSONSerializer,
                              logging_level="WARNING")
        # RQ's scheduler rebuilds its connection from the client's connection class and keyword arguments
        # (for the process it forks) under a plain ConnectionPool; a Sentinel-managed connection needs its
        # Sentinel pool to find the primary, so the scheduler is given the worker's own client instead.
        self.rq._connection = ctx.redis

    def tick(self) -> None:
        if self.rq.acquired_locks:
            self.rq.heartbeat()  # refreshes the lock, or finds it taken over
        if not self.rq.acquired_locks:
            self.rq.acquire_locks()
        if self.rq.acquired_locks:
            self.rq.enqueue_scheduled_jobs()

    def close(self) -> None:
        try:
            self.rq.release_locks()
            self.rq.register_death()
        except redis.RedisError:
            pass


class _Current:
    """The name of the RQ worker this process runs at the moment (None between two)."""

    name: str | None = None


def _background(ctx: Context, current: _Current, scheduler: _Scheduler, stop: threading.Event,
                state: RedisState) -> None:
    """Keep this worker's liveness key fresh, run due scheduled jobs every second, sweep every few seconds."""
    ttl = alive_ttl(ctx)
    sweep_every = max(1.0, min(10.0, ctx.settings.recover_after / 4))
    last_sweep = last_trim = 0.0
    while not stop.is_set():
        try:
            name = current.name
            if name:
                ctx.redis.set(ctx.keys.worker_alive(name), b"1", ex=ttl)
            scheduler.tick()
            if time.monotonic() - last_sweep >= sweep_every:
                last_sweep = time.monotonic()
                trim = last_sweep - last_trim >= TRIM_EVERY
                sweep(ctx, trim=trim)
                if trim:
                    last_trim = last_sweep
                schedule_due(ctx)
            state.ok()
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason:  # Redis away: try again next round, said once
                state.failed(reason)
            else:
                log.warning("sweeper_error", error=f"{type(exc).__name__}: {exc}")
        stop.wait(1.0)


def wait_for_redis(ctx: Context, stop: threading.Event, state: RedisState | None = None, most: float = 2.0) -> bool:
    """Block until Redis takes writes (True), or until asked to stop (False); log the change of state once."""
    state = state or RedisState(log)
    delay = 0.25
    while not stop.is_set():
        problem = redis_problem(ctx.redis, ctx.keys.probe)
        if problem is None:
            state.ok()
            return True
        state.failed(problem)
        stop.wait(delay)
        delay = min(most, delay * 2)
    return False


def run_worker(ctx: Context, burst: bool = False, name: str | None = None) -> None:
    """Run until stopped; while Redis is away, wait for it and carry on."""
    set_context(ctx)
    stop = threading.Event()
    state = RedisState(log)
    current = _Current()
    scheduler = _Scheduler(ctx)

    def _stop_waiting(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, _stop_waiting) for s in (signal.SIGTERM, signal.SIGINT)}
    background_stop = threading.Event()
    background = threading.Thread(target=_background, args=(ctx, current, scheduler, background_stop, state),
                                  daemon=True, name="sweeper")
    notify.start_sender(ctx.redis, ctx.keys, ctx.settings, background_stop)  # posts on its own thread
    quick_restarts = 0
    try:
        while not stop.is_set():
            if not wait_for_redis(ctx, stop, state):
                return
            if burst:  # what is due now is run in this burst, as RQ's own burst does
                try:
                    scheduler.tick()
                except redis.RedisError as exc:
                    state.failed(unavailable_reason(exc) or type(exc).__name__)
                    continue
            if not background.is_alive():
                background.start()
            worker = _Worker([ctx.queue], connection=ctx.redis, serializer=JSONSerializer, name=name,
                             maintenance_interval=60)
            # A worker started again after losing Redis gets a new name: the sweeper then requeues
            # the job the old one held, as for a worker that died.
            name = None
            started = time.monotonic()
            error = _work(ctx, worker, current, burst, previous)
            for s in previous:
                signal.signal(s, _stop_waiting)
            if burst or stop.is_set() or worker._shutdown_requested_date is not None:
                return
            reason = getattr(error, "reason", None) or (unavailable_reason(error) if error else None)
            if reason:
                state.failed(reason)
            else:  # not Redis: RQ's loop ended by itself; start again, not in a tight loop
                log.warning("worker_restarting", error=f"{type(error).__name__}: {error}" if error else None)
            quick_restarts = quick_restarts + 1 if time.monotonic() - started < 5 else 0
            stop.wait(min(10.0, 0.1 * 2 ** quick_restarts) if quick_restarts else 0)
    finally:
        background_stop.set()
        if background.is_alive():
            background.join(timeout=5)
        scheduler.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _work(ctx: Context, worker: _Worker, current: _Current, burst: bool, signals: dict) -> BaseException | None:
    """Run one RQ worker until it stops; the error that ended it, if one did."""
    for s, handler in signals.items():  # RQ installs its own while it works
        signal.signal(s, handler)
    current.name = worker.name
    log.info("worker_started", worker=worker.name, queue=ctx.queue.name,
             handlers=[h.name for h in ctx.registry.all()])
    error = None
    try:
        worker.work(burst=burst, logging_level="WARNING")
    except Exception as exc:
        error = exc
    finally:
        current.name = None
        try:
            ctx.redis.delete(ctx.keys.worker_alive(worker.name))
        except redis.RedisError:
            pass
    log.info("worker_stopped", worker=worker.name)
    return worker.lost or error
