"""Handlers loaded by the end-to-end worker (ORDERHOOKS_HANDLERS=tests.e2e.handlers_app).

They write what they saw to Redis so the tests can read it.
"""

import json
import os

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


def _seen(name, event):
    r.rpush(f"e2e:calls:{event.id}", json.dumps({
        "handler": name, "topic": event.topic, "stale": event.stale, "orderId": event.orderId,
        "order_updated": event.order.updated_at.isoformat() if event.order else None,
        "refund": event.refund.refund_id if event.refund else None, "attempt": event.attempt,
    }))


@on("*")
def record_everything(event):
    _seen("record_everything", event)


@on("orders/paid")
def flaky_once(event):
    """Fails the first time it sees an event, succeeds after."""
    _seen("flaky_once", event)
    if r.incr(f"e2e:flaky:{event.id}") == 1:
        raise RuntimeError("temporary failure")
