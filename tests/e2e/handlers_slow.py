"""A handler for the fault tests: slow enough that a burst takes a while; records each call."""

import os
import time

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


@on("*")
def slow_recorder(event):
    time.sleep(0.01)
    r.rpush("faults:calls", event.id)
