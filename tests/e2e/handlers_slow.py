"""A handler for the fault tests: slow enough that a burst takes a while; records each call.

While the key `faults:hold` exists every call waits after recording itself, so a test can be sure
a worker is mid-burst when it kills it."""

import os
import time

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


@on("*")
def slow_recorder(event):
    time.sleep(0.01)
    r.rpush("faults:calls", event.id)
    while r.exists("faults:hold"):
        time.sleep(0.02)
