"""Order and refund payloads built from the seed examples (`schemas/samples`), changed where a test says."""

from __future__ import annotations

import json

from schemas.samples import example_for_topic

SHOP = "acme.genmystore.com"


def order_body(topic: str, order_id: str | None = None, updated_at: str | None = None, **changes) -> bytes:
    """The topic's example payload, for another order id and `updatedAt` (or `updateTime`), with `changes`
    set on the order (or the refund)."""
    data = json.loads(example_for_topic(topic))
    inner = data["order"] if "order" in data else data["refund"]
    if order_id is not None:
        inner["orderId" if "orderId" in inner else "order_id"] = order_id
    if updated_at is not None:
        names = [n for n in ("updatedAt", "updateTime") if n in inner] or ["updatedAt"]
        for name in names:
            inner[name] = updated_at
    inner.update(changes)
    return json.dumps(data).encode()
