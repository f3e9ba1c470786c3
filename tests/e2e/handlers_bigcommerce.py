"""Handlers loaded by the BigCommerce end-to-end worker: they write what they saw to Redis."""

import json
import os

import redis

from workers.handlers import on

r = redis.Redis.from_url(os.environ["REDIS_URL"])


def _seen(name, event):
    r.rpush(f"e2e:bc:{event.id}", json.dumps({
        "handler": name, "topic": event.topic, "platform": event.platform, "stale": event.stale,
        "orderId": event.order_id, "status": event.order.status if event.order else None,
        "totalPrice": str(event.order.total_price) if event.order else None,
        "previous": event.previous_status_id, "new": event.new_status_id,
    }))


@on("store/order/*")
def any_order(event):
    _seen("any_order", event)


@on("store/order/statusUpdated")
def status_changed(event):
    _seen("status_changed", event)
