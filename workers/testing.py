"""Test helpers for handler authors: feed an event to handlers, no Redis needed.

    from workers.testing import make_event, run_handlers

    def test_my_handler():
        event = make_event("orders/paid")            # the built-in example payload
        results = run_handlers(event)                 # every handler registered for the topic
        assert results["myapp.handlers.notify"] is None   # None: it succeeded

`make_event` normalizes and merges exactly as the worker does, so
`event.order` is the projection after the event and `event.stale` is set when
`previous` already holds a newer snapshot.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from schemas import Projection, merge, normalize
from schemas.samples import example_for_topic
from storage.events import EventRecord
from storage.status import Status
from workers.dispatch import build_event
from workers.event import HandlerEvent
from workers.handlers import Registry, import_modules, registry


def make_event(
    topic: str,
    payload: bytes | str | dict | None = None,
    *,
    shop: str = "acme.genmystore.com",
    event_id: str | None = None,
    previous: Projection | None = None,
    source: str = "webhook",
    api: Any = None,
) -> HandlerEvent:
    """A HandlerEvent as a worker would build it (payload: bytes, JSON text, a dict, or the example).

    `source="reconcile"` makes an event as reconciliation delivers it; `api` stands for the shop's Orders API
    client (`event.api`): pass a `workers.genstore.GenstoreClient` pointed at a test server, or an object of
    your own with the methods your handler calls."""
    if payload is None:
        raw = example_for_topic(topic)
    elif isinstance(payload, dict):
        raw = json.dumps(payload).encode()
    elif isinstance(payload, str):
        raw = payload.encode()
    else:
        raw = payload
    event_id = event_id or str(uuid.uuid4())
    normalized = normalize(topic, raw)
    result = merge(previous, topic, event_id, normalized)
    record = EventRecord(
        id=event_id, topic=topic, shop=shop, status=Status.PROCESSED, received_at=time.time(), raw=raw,
        order_id=normalized.order_id, source=source,
        state=Status.STALE if result.outcome == "stale" else Status.PROCESSED,
    )
    return build_event(record, result.projection, result.outcome == "stale", api=api)


class Results(dict):
    """Each handler's exception or None, by name; a name that did not run says which handlers did."""

    def __missing__(self, name: str):
        ran = ", ".join(self) or "none"
        raise KeyError(f"{name} did not run for this event (handlers that ran: {ran}); is its module imported? "
                       "pass it: run_handlers(event, 'myapp.handlers')")


def run_handlers(event: HandlerEvent, *modules: str, handlers: Registry = registry) -> Results:
    """Call every handler registered for the event's topic; each one's exception, or None.

    `modules` are imported first (as the worker imports `ORDERHOOKS_HANDLERS`), so that their `@on` handlers
    are registered: `run_handlers(event, "myapp.handlers")`."""
    import_modules(modules)
    results = Results()
    for handler in handlers.matching(event.topic):
        try:
            handler.func(event)
        except Exception as exc:
            results[handler.name] = exc
        else:
            results[handler.name] = None
    return results

