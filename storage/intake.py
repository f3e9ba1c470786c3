"""Storing verified deliveries: many in one Redis round trip.

`schemas.triage` decides, from its topic and shop alone, what a verified delivery
becomes (queued, ignored or quarantined): the body is stored as it came, unread,
and normalized by the worker. `store_deliveries` writes a whole group of them,
de-duplicated atomically per event, and enqueues one RQ job for the group's
new events, all in one pipeline.

Processing jobs carry only event ids, under recognizable job ids, so that a
worker starting one may take over the others still waiting
(`claim_waiting`): a backlog then costs RQ's per-job overhead once per
batch instead of once per event, and nothing ever waits to form a batch.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from rq import Queue
from rq.job import Job

from schemas import triage
from storage.connection import execute_replicated, rq_pipeline
from storage.events import pack_body
from storage.keys import GENSTORE, Keys, event_ref, shop_member
from storage.status import Status

# The worker's jobs, by the names RQ imports them by when it runs them.
PROCESS_JOB = "workers.jobs.process_events"  # applies events, then runs their handlers
RUN_HANDLER_JOB = "workers.jobs.run_handler"  # one handler of one event, again
PROCESS_JOB_ID_PREFIX = "apply-"  # then the number of events the job carries, "-", a uuid
CLAIM_EVENTS = 512  # a job takes over waiting processing jobs until it holds this many events
CLAIM_JOBS = 256  # and looks at most this far into the queue

# KEYS: the queue's list. ARGV: RQ's job key prefix, our job id prefix, events wanted, jobs looked at.
# Takes waiting processing jobs off the head of the queue until their events add up to what is
# wanted, deletes them and returns (id, data) pairs, data being RQ's serialized call: each job is
# run by whoever removed it from the list, RQ's dequeue or this script, never both.
CLAIM_WAITING = """
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
local wanted = tonumber(ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  if wanted <= 0 then break end
  if string.sub(id, 1, #ARGV[2]) == ARGV[2] and redis.call('LREM', KEYS[1], 1, id) == 1 then
    local key = ARGV[1] .. id
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', key, 'data') or ''
    redis.call('DEL', key)
    wanted = wanted - (tonumber(string.match(string.sub(id, #ARGV[2] + 1), '^(%d+)%-')) or 1)
  end
end
return out
"""


@dataclass
class Delivery:
    """One verified delivery, triaged and ready to store."""

    id: str
    topic: str
    shop: str
    raw: bytes
    received_at: float = field(default_factory=time.time)
    headers: dict[str, str] = field(default_factory=dict)
    source: str = "webhook"
    status: Status = Status.QUEUED
    order_id: str | None = None
    error: str | None = None
    platform: str = GENSTORE

    @property
    def ref(self) -> str:
        return event_ref(self.platform, self.shop, self.id)

    def meta(self) -> dict[str, str]:
        """The event hash's fields, all strings (the headers and body go to the body: `Keys.body`)."""
        values = {
            "id": self.id,
            "platform": self.platform,
            "topic": self.topic,
            "shop": self.shop,
            "source": self.source,
            "received_at": repr(self.received_at),
            "status": self.status,
            "attempts": "0",
        }
        if self.order_id:
            values["order_id"] = self.order_id
        if self.error:
            values["error"] = self.error
        return values


def make_delivery(event_id: str, topic: str, shop: str, raw: bytes, **extra) -> Delivery:
    """A verified Genstore delivery, triaged from its topic and shop (`schemas.triage`): its body is stored
    as it came, unread; the worker normalizes it, and writes the event's order id then."""
    status, error = triage(topic, shop)
    return Delivery(id=event_id, topic=topic, shop=shop, raw=raw, status=Status(status), error=error, **extra)


def enqueue_processing(queue: Queue, refs: list[str], pipeline=None) -> None:
    """One processing job for these events (their refs: `storage.keys.event_ref`)."""
    queue.enqueue_call(
        PROCESS_JOB, args=(refs,), pipeline=pipeline,
        job_id=f"{PROCESS_JOB_ID_PREFIX}{len(refs)}-{uuid.uuid4().hex}",
        result_ttl=300, failure_ttl=7 * 24 * 3600, timeout=600,
        description=f"process {len(refs)} event(s)",
    )


def claim_waiting(queue: Queue, events: int = CLAIM_EVENTS) -> list[str]:
    """Take processing jobs still waiting at the queue's head, about `events` events' worth; return their
    events' refs.

    Other jobs (handler retries, resumes) are left where they are. A worker dying after this
    leaves the events `queued`: the sweeper enqueues them again, as for any lost job.
    """
    if events <= 0:
        return []
    script = queue.connection.register_script(CLAIM_WAITING)
    found = script(keys=[queue.key], args=[Job.redis_job_namespace_prefix, PROCESS_JOB_ID_PREFIX, events,
                                           CLAIM_JOBS])
    ids: list[str] = []
    for job_id, data in zip(found[::2], found[1::2], strict=True):
        if not data:  # its hash had expired
            continue
        job = Job(job_id.decode(), connection=queue.connection, serializer=queue.serializer)
        try:
            job.data = zlib.decompress(data)  # as Job.restore reads it
        except zlib.error:
            job.data = data
        if job.func_name == PROCESS_JOB:
            ids += job.args[0]
    return ids


# A group of deliveries, each stored unless its event is already stored.
# KEYS: events, shops, then per delivery: event hash, body, status zset, topic zset, order history zset
#       (the event hash's own key again when the delivery names no order)
# ARGV: ttl, then per delivery: its event hash fields as one JSON object of strings (`received_at`,
#       `order_id` and `encoding` among them), its body string (`storage.events.pack_body`), its ref (the
#       member it gets in every index) and its shops-set member ('' for none)
# Returns one flag per delivery: 1 when stored, 0 when this event (platform, shop, id) is already stored.
# A JSON object costs Redis one cjson.decode; a field, value pair each costs the caller a packed argument.
STORE_EVENTS = """
local ttl = tonumber(ARGV[1])
local out = {}
for i = 1, (#KEYS - 2) / 5 do
  local k = 2 + (i - 1) * 5
  local a = 2 + (i - 1) * 4
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then
    -- Counted: a write of the duplicate's own, so that a WAIT after it also covers the original's.
    redis.call('HINCRBY', KEYS[k + 1], 'deliveries', 1)
    out[i] = 0
  else
    local meta = cjson.decode(ARGV[a])
    local fields = {}
    for name, value in pairs(meta) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    redis.call('HSET', KEYS[k + 1], unpack(fields))
    if ttl > 0 then
      redis.call('EXPIRE', KEYS[k + 1], ttl)
      redis.call('SET', KEYS[k + 2], ARGV[a + 1], 'EX', ttl)
    else
      redis.call('SET', KEYS[k + 2], ARGV[a + 1])
    end
    local score, ref = meta['received_at'], ARGV[a + 2]
    redis.call('ZADD', KEYS[1], score, ref)
    redis.call('ZADD', KEYS[k + 3], score, ref)
    redis.call('ZADD', KEYS[k + 4], score, ref)
    if meta['order_id'] then
      redis.call('ZADD', KEYS[k + 5], score, ref)
      if ttl > 0 then redis.call('EXPIRE', KEYS[k + 5], ttl) end
    end
    if ARGV[a + 3] ~= '' then redis.call('SADD', KEYS[2], ARGV[a + 3]) end
    out[i] = 1
  end
end
return out
"""


def stage_deliveries(redis: Redis, keys: Keys, queue: Queue, deliveries: Sequence[Delivery], ttl: int):
    """Queue a group's commands on a MULTI pipeline, unsent: one EVAL storing every delivery, then
    one RQ job for the new events.

    EVAL, not a registered script: redis-py checks a pipeline's scripts with SCRIPT EXISTS, one
    more round trip per group, where EVAL costs Redis a hash of the short script text.
    """
    pipe = rq_pipeline(redis)
    if deliveries:
        event_keys: list[str] = [keys.events, keys.shops]
        args: list[str | bytes | int] = [ttl]
        for d in deliveries:
            ref = d.ref
            event_key = keys.event(ref)
            event_keys += [event_key, keys.body(ref), keys.events_by_status(d.status), keys.events_by_topic(d.topic),
                           keys.order_events(d.platform, d.shop, d.order_id) if d.order_id else event_key]
            meta = d.meta()
            stored, encoding = pack_body(d.headers, d.raw)  # as received, or compressed and said so
            if encoding:
                meta["encoding"] = encoding
            args += [json.dumps(meta, separators=(",", ":")), stored, ref,
                     shop_member(d.platform, d.shop) if d.shop else ""]
        pipe.eval(STORE_EVENTS, len(event_keys), *event_keys, *args)
    queued = list(dict.fromkeys(d.ref for d in deliveries if d.status == Status.QUEUED))
    if queued:
        # A duplicate of an event still waiting is listed too: applying is exactly-once.
        enqueue_processing(queue, queued, pipeline=pipe)
    return pipe


def stored_flags(results: Sequence, count: int) -> list[bool]:
    """True for each newly stored delivery of the group, False for a duplicate."""
    return [bool(r) for r in results[0]] if count else []


def store_deliveries(
    redis: Redis, keys: Keys, queue: Queue, deliveries: Sequence[Delivery], ttl: int
) -> list[bool]:
    """Store a group in one round trip; True for each newly stored delivery, False for a duplicate."""
    return stored_flags(stage_deliveries(redis, keys, queue, deliveries, ttl).execute(), len(deliveries))


async def store_deliveries_async(
    aredis: AsyncRedis, redis: Redis, keys: Keys, queue: Queue, deliveries: Sequence[Delivery], ttl: int,
    replicas: int = 0, replica_timeout_ms: int = 1000, connected: int = 0,
) -> list[bool]:
    """`store_deliveries` on an asyncio connection: the same commands, sent without blocking the loop.

    The commands are staged on `redis` (RQ builds its job on a synchronous pipeline, which sends
    nothing before `execute`) and sent through `aredis`. With `replicas`, the group counts as stored
    only once the `connected` replicas acknowledged it (`WAIT`), or at least `replicas` of them within
    `replica_timeout_ms`, else `NotEnoughReplicas` is raised (`storage.connection.execute_replicated`). A
    duplicate's own small write (its delivery count) makes the `WAIT` cover the original's write too,
    which may have reached the primary alone.
    """
    staged = stage_deliveries(redis, keys, queue, deliveries, ttl)
    commands = list(staged.command_stack)
    staged.reset()
    results = await execute_replicated(aredis, commands, replicas, replica_timeout_ms, wait_for=connected)
    return stored_flags(results, len(deliveries))
