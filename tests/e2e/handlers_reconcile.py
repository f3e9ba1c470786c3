"""Handlers loaded by the reconciliation end-to-end tests: each call is written to Redis; a paid order is
tagged back through the shop's Orders API (`event.api`)."""

import json
import os

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


@on("orders/*")
def record(event):
    r.rpush("reconcile:calls", json.dumps({"id": event.id, "topic": event.topic, "source": event.source,
                                           "orderId": event.order_id, "api": event.api is not None}))


@on("orders/paid")
def tag_paid(event):
    if event.api is not None and not event.stale:
        event.api.update_order(event.order_id, tags=["paid-seen"])
