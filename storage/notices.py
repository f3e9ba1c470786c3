"""Recording what someone should hear about: occurrences of a problem, counted into notification groups.

Whoever sees a problem (a worker, a receiver, a reconcile run) counts it with `occurred` into a group
in Redis, one per (type, shop), with up to `MAX_EXAMPLES` examples. A group is due at once when no
notification of its type and shop was made within `ORDERHOOKS_NOTIFY_INTERVAL`, else when that interval
has passed. A worker's sender (`workers.notify`) turns due groups into notifications and posts them.
Without notification URLs only the system-wide counter named by `total` is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import redis as redislib
import structlog
from redis import Redis

from orderhooks.config import Settings
from storage import metrics
from storage.keys import Keys, part

log = structlog.get_logger("orderhooks.notify")

TYPES = ("event.failed", "events.quarantined", "deliveries.rejected", "reconcile.healed", "reconcile.failed",
         "redis.unavailable", "test")
RESULTS = ("sent", "retried", "dropped")
MAX_EXAMPLES = 5

# KEYS: group, examples, due zset, sent, metrics. ARGV: type, shop, now, interval, n, member, metrics field,
# max examples, then examples (JSON each).
RECORD = """
redis.call('HINCRBY', KEYS[1], 'count', ARGV[5])
redis.call('HSETNX', KEYS[1], 'first_at', ARGV[3])
redis.call('HSET', KEYS[1], 'last_at', ARGV[3], 'type', ARGV[1], 'shop', ARGV[2])
for i = 9, #ARGV do
  if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[8]) then break end
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
local due = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[4]) or '')
if last and last + tonumber(ARGV[4]) > due then due = last + tonumber(ARGV[4]) end
redis.call('ZADD', KEYS[3], 'NX', due, ARGV[6])
if ARGV[7] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[7], ARGV[5]) end
return 1
"""


def group_member(type_: str, shop: str | None) -> str:
    return f"{type_}:{part(shop or '')}"


def occurred(redis: Redis, keys: Keys, settings: Settings, type_: str, shop: str | None, n: int = 1,
             examples: Sequence[dict] = (), total: str | None = None, now: float | None = None) -> None:
    """Count `n` occurrences of a problem (and the system-wide `total` counter, if named). Never raises."""
    if n <= 0:
        return
    field = metrics.total_field(total) if total else ""
    if not settings.notify_urls:
        if field:
            metrics.count(redis, keys, {field: n})
        return
    member = group_member(type_, shop)
    now = time.time() if now is None else now
    try:
        redis.eval(RECORD, 5, keys.notify_group(member), keys.notify_examples(member), keys.notify_due,
                   keys.notify_sent(member), keys.metrics, type_, shop or "", repr(now),
                   settings.notify_interval, n, member, field, MAX_EXAMPLES,
                   *[json.dumps(e, sort_keys=True) for e in examples[:MAX_EXAMPLES]])
    except redislib.RedisError as exc:
        log.warning("notification_not_recorded", type=type_, shop=shop, error=type(exc).__name__)
