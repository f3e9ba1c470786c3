"""Handlers for the failover test: they record each call in a Redis outside the failing set
(E2E_WITNESS_URL), so that what they saw survives the primary's loss."""

import json
import os
import time

import redis

from workers.handlers import on

witness = redis.Redis.from_url(os.environ["E2E_WITNESS_URL"])


def _seen(name, event):
    witness.rpush(f"calls:{event.id}", json.dumps({"handler": name, "attempt": event.attempt, "at": time.time()}))


@on("*")
def record_everything(event):
    _seen("record_everything", event)


@on("orders/paid")
def flaky_once(event):
    """Fails the first time it sees an event, succeeds after (its retry is scheduled)."""
    _seen("flaky_once", event)
    if witness.incr(f"flaky:{event.id}") == 1:
        raise RuntimeError("temporary failure")
