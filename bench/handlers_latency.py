"""Records when the handler was called, per event id (ORDERHOOKS_HANDLERS for the latency run)."""

import os
import time

import redis

from workers.handlers import on

CALLED = "bench:called"
_redis = redis.Redis.from_url(os.environ["REDIS_URL"])


@on("orders/create")
def record_called(event) -> None:
    _redis.hset(CALLED, event.id, repr(time.time()))
