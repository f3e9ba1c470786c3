"""Applying events to the order projection: load, merge (pure), write atomically.

A batch of events is read in one round trip, grouped by order, folded with
the pure `schemas.merge`, and each order's new projection is written together
with its events' statuses by one Lua compare-and-set. A lost race (another
worker changed the order, or already applied one of the events) re-reads and
re-merges only the orders concerned, so an event is applied exactly once.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis import exceptions as redis_errors

from schemas import NormalizedEvent, Projection, merge
from storage import codec
from storage.connection import unavailable_reason
from storage.events import HANDLER_FIELD, EventRecord, load_events, stage_status
from storage.keys import Keys
from storage.status import HandlerOutcome, Status

MAX_RACES = 50


@dataclass
class Applied:
    """One event whose projection write has committed."""

    record: EventRecord
    event: NormalizedEvent
    outcome: str
    projection: Projection  # the projection right after this event

    @property
    def stale(self) -> bool:
        return self.outcome == "stale"  # the merge's outcome (`schemas.MergeResult`)


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def read_projection(stored: bytes | None) -> Projection | None:
    """An order's projection from its key's value: JSON, compressed by `storage.codec.pack` (or as written
    before compression came), None for no value."""
    return Projection.from_json(json.loads(codec.unpack(stored))) if stored else None


def dump_text(projection: Projection) -> bytes:
    """A projection's JSON text as stored: sorted keys, no spaces."""
    return _dumps(projection.to_json()).encode()


def dump_projection(projection: Projection) -> bytes:
    """What an order's key holds: its projection's JSON text, compressed when that pays (with the projections
    dictionary: `storage.codec.pack`)."""
    return codec.pack(dump_text(projection))


def load_projection(redis: Redis, keys: Keys, platform: str, shop: str, order_id: str) -> Projection | None:
    return read_projection(redis.get(keys.order(platform, shop, order_id)))


class Unavailable(Exception):
    """Redis as a whole refuses to serve (unreachable, full, a replica, loading): no event is to blame."""

    def __init__(self, reason: str, error: BaseException) -> None:
        super().__init__(f"redis {reason}: {type(error).__name__}: {error}")
        self.reason = reason


_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.S)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, redis_errors.ResponseError):  # Redis's own words: "WRONGTYPE Operation against a key ..."
        return _PIPELINE_NOTE.sub("", str(exc))
    return f"{type(exc).__name__}: {exc}"


def _check(result):
    """A pipeline result read with `raise_on_error=False`: raise `Unavailable` when Redis itself refused."""
    if isinstance(result, Exception):
        reason = unavailable_reason(result)
        if reason:
            raise Unavailable(reason, result) from result
    return result


def _load(redis: Redis, keys: Keys, refs: list[str], failed: dict[str, str],
          normalized: dict[str, NormalizedEvent] | None = None) -> list[EventRecord]:
    """The events among `refs` still queued. One round trip; when that fails, one per event, so an event
    whose stored fields are corrupt (or whose key holds something else) fails alone, into `failed`."""
    try:
        loaded = load_events(redis, keys, refs)
        for rec in loaded:
            if rec is not None and normalized and rec.ref in normalized:
                rec.prime(normalized[rec.ref])
        for rec in loaded:
            if rec is not None:
                rec.event  # noqa: B018 -- rebuilt from raw here, so that a corrupt body fails here
    except Exception as exc:
        _check(exc)
        loaded = []
        for ref in refs:
            try:
                [rec] = load_events(redis, keys, [ref])
                if rec is not None:
                    rec.event  # noqa: B018
            except Exception as one:
                _check(one)
                failed[ref] = _describe(one)
                continue
            loaded.append(rec)
    return [r for r in loaded if r and r.status == Status.QUEUED]


def _fold(current: Projection | None, records: list[EventRecord], failed: dict[str, str]) -> list[Applied]:
    """Merge the records in turn, leaving out an event the merge cannot take (its error goes into `failed`)."""
    applied = []
    for rec in records:
        try:
            result = merge(current, rec.topic, rec.id, rec.event)
        except Exception as exc:
            failed[rec.ref] = _describe(exc)
            continue
        current = result.projection
        applied.append(Applied(rec, rec.event, result.outcome, current))
    return applied


# Compare-and-set of each order's projection together with the status of the events that produced it,
# and their place in the order's history (the receiver stores a body unread, so an event's order is known
# once it is normalized here). One call for a whole batch of orders: each order is checked and written on
# its own (a key of one order holding something else fails that order alone, its writes so far kept, as a
# call of its own would have).
# KEYS: queued zset, dispatch zset, then per order: order, orders index, the order's history zset, then per
#       event: event, its new status zset
# ARGV: processed_at, number of orders, then per order: expected projection ('' = none), new projection,
#       order id, number of events, then per event: status, ref, received_at, field/value count n, n pairs
# Returns per order: 1 on success, -1 when the projection changed since it was read, -2 when one of its
# events is no longer queued (another worker applied it), or 'E' and Redis's error.
# The history lives as long as the longest-lived of its events (their hashes' TTL).
APPLY_ORDERS = """
local now = ARGV[1]
local function one(k, a, nevents)
  local current = redis.call('GET', KEYS[k]) or ''
  if current ~= ARGV[a] then return -1 end
  local e_a = a + 4
  for e = 1, nevents do
    if redis.call('HGET', KEYS[k + 1 + 2 * e], 'status') ~= 'queued' then return -2 end
    e_a = e_a + 4 + tonumber(ARGV[e_a + 3])
  end
  redis.call('SET', KEYS[k], ARGV[a + 1])
  local oid = ARGV[a + 2]
  redis.call('SADD', KEYS[k + 1], oid)
  local longest = 0
  e_a = a + 4
  for e = 1, nevents do
    local ek, zk = KEYS[k + 1 + 2 * e], KEYS[k + 2 + 2 * e]
    local ref, received, n = ARGV[e_a + 1], ARGV[e_a + 2], tonumber(ARGV[e_a + 3])
    local fields = {'status', ARGV[e_a], 'processed_at', now}
    if oid ~= '' then fields[#fields + 1] = 'order_id'; fields[#fields + 1] = oid end
    for i = e_a + 4, e_a + 3 + n do fields[#fields + 1] = ARGV[i] end
    redis.call('HSET', ek, unpack(fields))
    redis.call('HINCRBY', ek, 'attempts', 1)
    redis.call('ZREM', KEYS[1], ref)
    redis.call('ZADD', zk, received, ref)
    redis.call('ZADD', KEYS[2], now, ref)
    if oid ~= '' then
      redis.call('ZADD', KEYS[k + 2], received, ref)
      local ttl = redis.call('TTL', ek)
      if ttl > longest then longest = ttl end
    end
    e_a = e_a + 4 + n
  end
  if longest > 0 and redis.call('TTL', KEYS[k + 2]) < longest then redis.call('EXPIRE', KEYS[k + 2], longest) end
  return 1
end
local out = {}
local k, a = 3, 3
for o = 1, tonumber(ARGV[2]) do
  local nevents = tonumber(ARGV[a + 3])
  local ok, result = pcall(one, k, a, nevents)
  if ok then
    out[o] = result
  else
    out[o] = 'E' .. tostring(type(result) == 'table' and result.err or result)
  end
  local e_a = a + 4
  for e = 1, nevents do e_a = e_a + 4 + tonumber(ARGV[e_a + 3]) end
  k = k + 3 + 2 * nevents
  a = e_a
end
return out
"""


def quarantine(redis: Redis, keys: Keys, records: Sequence[EventRecord]) -> list[EventRecord]:
    """Quarantine each of `records` whose body does not normalize (`normalize_error` is the reason) if it is
    still queued, in one round trip; return those this call moved (the others were dealt with elsewhere:
    each quarantine is counted once, however many workers see the event)."""
    if not records:
        return []
    pipe = redis.pipeline(transaction=False)
    for rec in records:
        stage_status(pipe, keys, rec.ref, Status.QUARANTINED, "error", rec.normalize_error or "does not normalize",
                     only_from=Status.QUEUED)
    moved = []
    for rec, result in zip(records, pipe.execute(raise_on_error=False), strict=True):
        if _check(result) == 1:
            rec.status, rec.error = Status.QUARANTINED, rec.normalize_error
            moved.append(rec)
    return moved


def apply_events(redis: Redis, keys: Keys, refs: Sequence[str], handler_names,
                 failed: dict[str, str] | None = None,
                 normalized: dict[str, NormalizedEvent] | None = None,
                 quarantined: list[EventRecord] | None = None) -> list[Applied]:
    """Apply every still-queued event among `refs`; return those this call applied.

    Each event's raw body is normalized here (the receiver stores it unread): one that does not normalize
    is quarantined with the reason and, with `quarantined`, added to it (each event once, whichever worker
    gets there first), for the caller to count and notify. An applied event gets its order id and its
    place in the order's history.

    `handler_names(topic)` gives the handlers to mark pending on each event. `normalized` (ref -> event)
    holds events the caller has just normalized from the very bodies it stored, so they are not
    normalized again.

    An event that cannot be applied (its stored fields are corrupt, its order's key holds
    something other than a projection, ...) does not stop the others: its error goes into
    `failed` (event ref -> error), or, without `failed`, is raised once the others are applied.
    An error of Redis as a whole (unreachable, full, read-only) raises `Unavailable`.
    """
    errors: dict[str, str] = {}
    todo = list(dict.fromkeys(refs))
    done: list[Applied] = []
    for _ in range(MAX_RACES):
        if not todo:
            break
        records = _load(redis, keys, todo, errors, normalized)
        moved = quarantine(redis, keys, [r for r in records if r.event is None])
        if quarantined is not None:
            quarantined += moved
        records = [r for r in records if r.event is not None]
        groups: dict[tuple[str, str], list[EventRecord]] = defaultdict(list)
        for rec in sorted(records, key=lambda r: (r.received_at, r.id)):
            if rec.order_id is None:  # stored unread by the receiver: the body names the order
                rec.order_id = rec.event.order_id
            groups[(rec.platform, rec.shop, rec.order_id or "")].append(rec)
        order_keys = [keys.order(platform, shop, oid) for platform, shop, oid in groups]
        pipe = redis.pipeline(transaction=False)
        for k in order_keys:
            pipe.get(k)
        currents = pipe.execute(raise_on_error=False)
        now = repr(time.time())
        plans = []
        order_keys_args: list[str] = []
        order_args: list[str | bytes] = []
        for ((platform, shop, oid), recs), key, raw in zip(groups.items(), order_keys, currents, strict=True):
            try:  # an order's key holding something else fails that order's events only
                if isinstance(_check(raw), Exception):
                    raise raw
                current = read_projection(raw)
            except Unavailable:
                raise
            except Exception as exc:
                errors.update({r.ref: _describe(exc) for r in recs})
                continue
            applied = _fold(current, recs, errors)
            if not applied:
                continue
            order_keys_args += [key, keys.orders(platform, shop), keys.order_events(platform, shop, oid)]
            order_args += [raw or "", dump_projection(applied[-1].projection), oid, str(len(applied))]
            for a in applied:
                status = Status.STALE if a.stale else Status.PROCESSED
                fields = ["state", status, "outcome", a.outcome, "error", ""]
                if a.record.error:  # applied after failed attempts: their count starts again at a replay
                    fields += ["apply_failures", "0", "retry_at", ""]
                for name in handler_names(a.record.topic):
                    fields += [HANDLER_FIELD + name, _dumps({"status": HandlerOutcome.PENDING, "attempts": 0})]
                order_keys_args += [keys.event(a.record.ref), keys.events_by_status(status)]
                order_args += [status, a.record.ref, repr(a.record.received_at), str(len(fields)), *fields]
            plans.append(applied)
        if plans:
            # EVAL: a registered script would cost a SCRIPT EXISTS round trip
            script_keys = [keys.events_by_status(Status.QUEUED), keys.dispatching, *order_keys_args]
            try:
                results = redis.eval(APPLY_ORDERS, len(script_keys), *script_keys, now, len(plans), *order_args)
            except Exception as exc:
                _check(exc)
                results = [exc] * len(plans)
        else:
            results = []
        todo = []
        for applied, result in zip(plans, results, strict=True):
            if isinstance(result, bytes) and result.startswith(b"E"):  # Redis's error for this order's writes
                result = redis_errors.ResponseError(result[1:].decode("utf-8", "replace"))
            if result == 1:
                done += applied
            elif isinstance(_check(result), Exception):  # the order's write failed: its events did
                errors.update({a.record.ref: _describe(result) for a in applied})
            else:  # lost a race: try these events again from fresh reads
                todo += [a.record.ref for a in applied]
    else:
        if todo:
            raise RuntimeError(f"could not apply events after {MAX_RACES} attempts: {todo}")
    if failed is not None:
        failed.update(errors)
    elif errors:
        raise RuntimeError("; ".join(f"{i}: {e}" for i, e in errors.items()))
    return done


# An event the apply step failed on: count the attempt, keep the error, and either give it its next
# retry or, its retries spent, make it `failed` (moved from the queued index to the failed one).
# KEYS: event, queued zset, failed zset. ARGV: error, now, the event's ref, then one delay (seconds) per retry.
# Returns the delay before the next retry, -1 when the event is now failed, -2 when it is no
# longer queued (another worker applied it, or it was replayed meanwhile).
RECORD_APPLY_FAILURE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return -2 end
local n = redis.call('HINCRBY', KEYS[1], 'apply_failures', 1)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n <= #ARGV - 3 then
  local delay = tonumber(ARGV[3 + n])
  redis.call('HSET', KEYS[1], 'error', ARGV[1], 'retry_at', tostring(tonumber(ARGV[2]) + delay))
  return delay
end
local ref = ARGV[3]
local score = redis.call('ZSCORE', KEYS[2], ref)
redis.call('ZREM', KEYS[2], ref)
redis.call('ZADD', KEYS[3], score or ARGV[2], ref)
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1], 'retry_at', '')
return -1
"""


def record_apply_failures(redis: Redis, keys: Keys, failed: dict[str, str],
                          delays: Sequence[int], stage: str = "apply") -> dict[str, int | None]:
    """Record each failed event's error (`apply: ...`, or another `stage`'s) and attempt, in one round trip.

    Returns, per event still queued, the seconds before its next retry, or None when its
    retries (one per delay) are spent and it is now `failed`.
    """
    pipe = redis.pipeline(transaction=False)
    refs = list(failed)
    now = time.time()
    for ref in refs:
        pipe.eval(RECORD_APPLY_FAILURE, 3, keys.event(ref), keys.events_by_status(Status.QUEUED),
                  keys.events_by_status(Status.FAILED), f"{stage}: {failed[ref]}", repr(now), ref, *delays)
    out: dict[str, int | None] = {}
    for ref, result in zip(refs, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(_check(result), Exception):
            continue  # nothing of it can be written (its key holds something else): nothing to retry either
        if result >= 0:
            out[ref] = int(result)
        elif result == -1:
            out[ref] = None
    return out
