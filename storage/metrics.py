"""Counters kept in Redis: the workers' (and the receivers' quarantined deliveries), read by `/metrics`.

RQ workers run as many processes, often on other hosts than the receiver
(one Procfile dyno each), and come and go. Their counts are therefore kept
where every one of them already writes: one Redis HASH, incremented
atomically with HINCRBY. The receiver's `/metrics` reads it back at scrape
time (`receiver.metrics.RedisCollector`), so one scrape target shows the
whole system, however many workers run, and a restarted worker loses
nothing.

Fields of the hash (`<prefix>metrics`):
    events|<topic>|<status>      events applied to the projection (processed, stale)
    handler|<name>|<outcome>     handler calls (ok, retrying, failed)
    latency|<i>                  delivery-to-processed observations in bucket i (not cumulative)
    latency|sum, latency|count   their sum (seconds) and count
    reconcile|<shop>|<result>    orders reconciliation healed, updated or quarantined, and runs
                                 (`runs_ok`, `runs_failed`)
    total|failed                 events that ended `failed` (a stage's or handler's retries spent)
    total|quarantined            deliveries and reconciled orders quarantined (receivers count theirs here too)
    notify|<type>|<result>       notifications sent, retried (an attempt failed) or dropped (retries spent)
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis as redislib
import structlog
from redis import Redis

from storage.keys import Keys
from storage.status import Status

log = structlog.get_logger("orderhooks.metrics")

# Seconds from a delivery's arrival to its projection being written.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
SEP = "|"


def metrics_key(keys: Keys) -> str:
    """HASH: the worker counters described in this module's docstring."""
    return keys.metrics


def bucket_index(seconds: float) -> int:
    """The first bucket whose upper bound holds `seconds`; len(LATENCY_BUCKETS) for +Inf."""
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)


def _add(pipe, key: str, counts: dict[str, int], latency: list[float]) -> None:
    for name, n in counts.items():
        pipe.hincrby(key, name, n)
    if latency:
        buckets: dict[int, int] = {}
        for value in latency:
            i = bucket_index(value)
            buckets[i] = buckets.get(i, 0) + 1
        for i, n in buckets.items():
            pipe.hincrby(key, f"latency{SEP}{i}", n)
        pipe.hincrbyfloat(key, f"latency{SEP}sum", sum(latency))
        pipe.hincrby(key, f"latency{SEP}count", len(latency))


def record(redis: Redis, keys: Keys, *, events: Iterable[tuple[str, str]] = (),
           handlers: Iterable[tuple[str, str]] = (), latency: Iterable[float] = (),
           reconcile: Iterable[tuple[str, Any]] = ()) -> None:
    """Count applied events (topic, status), handler calls (name, outcome), latencies and reconcile runs
    (shop, `workers.reconcile.Summary`), in one round trip.

    Metrics never fail a job: a Redis error here is logged and dropped.
    """
    try:
        pipe = redis.pipeline(transaction=False)
        if stage(pipe, keys, events=events, handlers=handlers, latency=latency, reconcile=reconcile):
            pipe.execute()
    except redislib.RedisError as exc:
        log.warning("metrics_not_recorded", error=type(exc).__name__)


def stage(pipe, keys: Keys, *, events: Iterable[tuple[str, str]] = (),
          handlers: Iterable[tuple[str, str]] = (), latency: Iterable[float] = (),
          reconcile: Iterable[tuple[str, Any]] = ()) -> int:
    """`record`'s commands queued on `pipe`, unsent; returns how many (0 for nothing to count). A caller
    sending them with other writes reads their replies with `raise_on_error=False` and drops their errors
    (`dropped_errors`): metrics never fail a job."""
    counts: dict[str, int] = {}
    for topic, status in events:
        name = SEP.join(("events", topic, status))
        counts[name] = counts.get(name, 0) + 1
    for handler, outcome in handlers:
        name = SEP.join(("handler", handler, outcome))
        counts[name] = counts.get(name, 0) + 1
    for shop, summary in reconcile:
        for result in ("healed", "updated", "quarantined"):
            counts[SEP.join(("reconcile", shop, result))] = getattr(summary, result)
        failed = 1 if summary.failed else 0  # both counted, the other by 0: each series exists from the first run
        counts[SEP.join(("reconcile", shop, "runs_failed"))] = failed
        counts[SEP.join(("reconcile", shop, "runs_ok"))] = 1 - failed
    latency = [max(0.0, v) for v in latency]
    if not counts and not latency:
        return 0
    before = len(pipe.command_stack)
    _add(pipe, metrics_key(keys), counts, latency)
    return len(pipe.command_stack) - before


def dropped_errors(replies: Sequence) -> None:
    """The replies of staged metrics commands: an error among them is logged once, never raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            log.warning("metrics_not_recorded", error=type(reply).__name__)
            return


def total_field(name: str) -> str:
    """The hash field of a system-wide total (`failed`, `quarantined`)."""
    return SEP.join(("total", name))


def notify_field(type_: str, result: str) -> str:
    return SEP.join(("notify", type_, result))


def count(redis: Redis, keys: Keys, fields: dict[str, int]) -> None:
    """Add to counters by field name, in one round trip; never raises (metrics never fail a job)."""
    try:
        pipe = redis.pipeline(transaction=False)
        _add(pipe, metrics_key(keys), {k: n for k, n in fields.items() if n}, [])
        pipe.execute()
    except redislib.RedisError as exc:
        log.warning("metrics_not_recorded", error=type(exc).__name__)


def stage_processed(pipe, keys: Keys, applied, outcomes, now: float | None = None) -> int:
    """`stage` for a batch `process_events` has just applied: each applied event, its delivery-to-processed
    time, each handler call."""
    now = time.time() if now is None else now
    return stage(
        pipe, keys,
        events=[(a.record.topic, Status.STALE if a.stale else Status.PROCESSED) for a in applied],
        handlers=[(o.handler, o.data["status"]) for o in outcomes],
        latency=[now - a.record.received_at for a in applied],
    )


def record_handler_calls(redis: Redis, keys: Keys, outcomes) -> None:
    """After a retry or a resume: each handler call's outcome."""
    record(redis, keys, handlers=[(o.handler, o.data["status"]) for o in outcomes if o is not None])


@dataclass
class WorkerCounts:
    """The hash, read back."""

    events: dict[tuple[str, str], int] = field(default_factory=dict)
    handlers: dict[tuple[str, str], int] = field(default_factory=dict)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    reconcile: dict[tuple[str, str], int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    notify: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[bytes, bytes]) -> WorkerCounts:
        out = cls()
        for k, v in raw.items():
            parts = k.decode("utf-8", "replace").split(SEP)
            value = v.decode()
            if parts[0] == "events" and len(parts) == 3:
                out.events[(parts[1], parts[2])] = int(value)
            elif parts[0] == "handler" and len(parts) == 3:
                out.handlers[(parts[1], parts[2])] = int(value)
            elif parts[0] == "reconcile" and len(parts) == 3:
                out.reconcile[(parts[1], parts[2])] = int(value)
            elif parts[0] == "total" and len(parts) == 2:
                out.totals[parts[1]] = int(value)
            elif parts[0] == "notify" and len(parts) == 3:
                out.notify[(parts[1], parts[2])] = int(value)
            elif parts[0] == "latency" and len(parts) == 2:
                if parts[1] == "sum":
                    out.latency_sum = float(value)
                elif parts[1] == "count":
                    out.latency_count = int(value)
                elif parts[1].isdigit() and int(parts[1]) < len(out.latency_buckets):
                    out.latency_buckets[int(parts[1])] = int(value)
        return out

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """Prometheus histogram buckets: (upper bound, observations at or below it), ending with +Inf."""
        bounds = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
        total = 0
        out = []
        for bound, n in zip(bounds, self.latency_buckets, strict=True):
            total += n
            out.append((bound, total))
        return out
