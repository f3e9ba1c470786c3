"""Storing deliveries straight into Redis through the storage functions the receiver uses."""

from __future__ import annotations

from schemas.samples import example_for_topic
from storage.intake import make_delivery, store_deliveries
from storage.keys import GENSTORE, event_ref
from tests.support.payloads import SHOP


def ref(event_id: str, shop: str = SHOP) -> str:
    """An event's name in Redis (`storage.keys.event_ref`): ids are unique per platform and shop."""
    return event_ref(GENSTORE, shop, event_id)


def store(ctx, event_id: str, topic: str, body: bytes | None = None, *, shop: str = SHOP, process: bool = False,
          ttl: int | None = None, **extra) -> bool:
    """Triage and store one delivery (True: stored, False: a duplicate); with `process`, apply it (and run
    its handlers) at once."""
    d = make_delivery(event_id, topic, shop, example_for_topic(topic) if body is None else body, **extra)
    stored = store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ttl or ctx.settings.event_ttl)[0]
    if process and d.status == "queued":
        from workers.jobs import process_events

        process_events([d.ref])
    return stored
