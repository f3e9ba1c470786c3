"""What Redis itself spends per event, and the least it could: the floor under the Redis CPU target.

    python -m bench.redis_floor [--events N] [--group G]

Each line stores or reads the same N events (the drain benchmark's orders/create body, with a receiver's
headers) on a fresh embedded Redis (AOF, `appendfsync always`, as `orderhooks dev` runs it) and prints the
Redis process's CPU time per event:

- intake as orderhooks does it (the store script, groups of G, one RQ job per group);
- the same writes without Lua (one MULTI per group), with and without the three indexes;
- the body key alone (one `SET … EX` per event): what storing the delivery costs at the very least;
- one `PING` per event in the same MULTI: the cost of a command that does nothing;
- the drain's unavoidable parts, groups of 64: reading an event back, writing its projection, writing
  its status and a handler's outcome.

Run it alone on the machine: figures move with its load, the differences between lines much less.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from bench.procs import cpu_seconds
from bench.run import SHOP, TOPIC, _order_body
from orderhooks.embedded import EmbeddedRedis
from schemas import merge, normalize
from storage.events import pack_body
from storage.intake import Delivery, make_delivery, stage_deliveries
from storage.keys import GENSTORE, Keys
from storage.projection import dump_projection
from storage.status import Status

KEYS = Keys()
TTL = 86400
HEADERS = {"content-type": "application/json", "content-length": "3617", "host": "127.0.0.1:8000",
           "user-agent": "Genstore-Webhooks/1.0", "x-genstore-topic": TOPIC, "x-genstore-shop-domain": SHOP,
           "x-genstore-hmac-sha256": "****", "x-genstore-api-version": "2024-01"}


def _deliveries(n: int, label: str) -> list[Delivery]:
    return [make_delivery(f"{label}-{i}", TOPIC, SHOP, _order_body(i), headers={**HEADERS, "x-genstore-event-id":
                                                                                 f"{label}-{i}"})
            for i in range(n)]


def _measure(label: str, n: int, group: int, setup: Callable[[Redis], None] | None,
             step: Callable[[Redis, int, int], None]) -> float:
    """Redis CPU µs per event of `step(redis, start, end)` over groups of `group`, after `setup`."""
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="orderhooks-floor-"))).start()
    try:
        redis = Redis.from_url(server.url)
        if setup:
            redis.config_set("appendfsync", "no")  # setting up is not what is measured
            setup(redis)
            redis.config_set("appendfsync", "always")
        pid = server.process.pid
        before = cpu_seconds(pid)
        for start in range(0, n, group):
            step(redis, start, min(n, start + group))
        us = (cpu_seconds(pid) - before) / n * 1e6
    finally:
        server.stop()
    print(f"  {label:<58} {us:6.1f} µs")
    return us


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--group", type=int, default=16, help="deliveries stored together (the receiver's group)")
    args = parser.parse_args(argv)
    n, group = args.events, args.group
    events = _deliveries(n, "floor")
    bodies = [pack_body(d.headers, d.raw) for d in events]
    projections = [dump_projection(merge(None, TOPIC, d.id, normalize(TOPIC, d.raw)).projection) for d in events]
    started = time.monotonic()
    print(f"Redis process CPU per event ({n:,} events; intake in groups of {group}, drain in groups of 64):")

    def store(redis: Redis, a: int, b: int) -> None:
        stage_deliveries(redis, KEYS, Queue("orderhooks", connection=redis, serializer=JSONSerializer),
                         events[a:b], TTL).execute()

    def writes(indexes: bool) -> Callable[[Redis, int, int], None]:
        def step(redis: Redis, a: int, b: int) -> None:
            pipe = redis.pipeline(transaction=True)
            for d, (body, encoding) in zip(events[a:b], bodies[a:b], strict=True):
                pipe.hset(KEYS.event(d.ref), mapping={**d.meta(), "encoding": encoding})
                pipe.expire(KEYS.event(d.ref), TTL)
                pipe.set(KEYS.body(d.ref), body, ex=TTL)
                if indexes:
                    pipe.zadd(KEYS.events, {d.ref: d.received_at})
                    pipe.zadd(KEYS.events_by_status(Status.QUEUED), {d.ref: d.received_at})
                    pipe.zadd(KEYS.events_by_topic(TOPIC), {d.ref: d.received_at})
            pipe.execute()
        return step

    def each(command: Callable) -> Callable[[Redis, int, int], None]:
        def step(redis: Redis, a: int, b: int) -> None:
            pipe = redis.pipeline(transaction=True)
            for i in range(a, b):
                command(pipe, i)
            pipe.execute()
        return step

    def stored(redis: Redis) -> None:
        for a in range(0, n, 256):
            writes(False)(redis, a, min(n, a + 256))

    print("intake")
    _measure("orderhooks: the store script, an RQ job per group", n, group, None, store)
    _measure("the same writes in a MULTI, no Lua", n, group, None, writes(True))
    _measure("the same without the three indexes", n, group, None, writes(False))
    _measure("the body key alone (SET ... EX)", n, group, None,
             each(lambda pipe, i: pipe.set(KEYS.body(events[i].ref), bodies[i][0], ex=TTL)))
    _measure("PING (a command that does nothing)", n, group, None, each(lambda pipe, i: pipe.ping()))
    print("drain, its unavoidable parts")
    _measure("read an event back (HGETALL + GET)", n, 64, stored,
             each(lambda pipe, i: (pipe.hgetall(KEYS.event(events[i].ref)), pipe.get(KEYS.body(events[i].ref)))))
    _measure("write its projection (SET)", n, 64, None,
             each(lambda pipe, i: pipe.set(KEYS.order(GENSTORE, SHOP, str(500000 + i)), projections[i])))
    _measure("write its status and a handler's outcome (HSET)", n, 64, stored,
             each(lambda pipe, i: pipe.hset(KEYS.event(events[i].ref), mapping={
                 "status": "processed", "processed_at": repr(time.time()),
                 "handler:h": '{"status":"ok","attempts":1,"at":"2026-12-04T16:00:41.261Z"}'})))
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
