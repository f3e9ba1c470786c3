"""Applying events to the order projection: load, merge (pure), write atomically.

A batch of events is read in one round trip, grouped by order, folded with
the pure `schemas.merge`, and each order's new projection is written together
with its events' statuses by one Lua compare-and-set. A lost race (another
worker changed the order, or already applied one of the events) re-reads and
re-merges only the orders concerned, so an event is applied exactly once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from schemas import NormalizedEvent, Projection, merge
from workers.keys import Keys, shop_member
from workers.records import HANDLER_FIELD, EventRecord, load_events, set_status
from workers.scripts import APPLY_ORDER

MAX_RACES = 50


@dataclass
class Applied:
    """One event whose projection write has committed."""

    record: EventRecord
    event: NormalizedEvent
    outcome: str
    projection: Projection  # the projection right after this event

    @property
    def stale(self) -> bool:
        return self.outcome == "stale"


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load_projection(redis: Redis, keys: Keys, platform: str, shop: str, order_id: str) -> Projection | None:
    raw = redis.get(keys.order(platform, shop, order_id))
    return Projection.from_json(json.loads(raw)) if raw else None


def _fold(current: Projection | None, records: list[EventRecord]) -> list[Applied]:
    applied = []
    for rec in records:
        event = rec.event
        result = merge(current, rec.topic, rec.id, event)
        current = result.projection
        applied.append(Applied(rec, event, result.outcome, current))
    return applied


def apply_events(redis: Redis, keys: Keys, refs: Sequence[str], handler_names) -> list[Applied]:
    """Apply every still-queued event among `refs`; return those this call applied.

    `handler_names(topic)` gives the handlers to mark pending on each event.
    """
    todo = list(dict.fromkeys(refs))
    done: list[Applied] = []
    for _ in range(MAX_RACES):
        if not todo:
            return done
        records = [r for r in load_events(redis, keys, todo) if r and r.status == "queued"]
        for rec in [r for r in records if r.event is None]:  # accepted by an older version, perhaps
            set_status(redis, keys, rec.ref, "quarantined", "error", f"no longer normalizes: {rec.normalize_error}")
        records = [r for r in records if r.event is not None]
        groups: dict[tuple[str, str, str], list[EventRecord]] = defaultdict(list)
        for rec in sorted(records, key=lambda r: (r.received_at, r.id)):
            groups[(rec.platform, rec.shop, rec.order_id or "")].append(rec)
        order_keys = [keys.order(platform, shop, oid) for platform, shop, oid in groups]
        pipe = redis.pipeline(transaction=False)
        for k in order_keys:
            pipe.get(k)
        currents = pipe.execute()
        now = repr(time.time())
        plans = []
        pipe = redis.pipeline(transaction=False)
        for ((platform, shop, oid), recs), key, raw in zip(groups.items(), order_keys, currents, strict=True):
            current = Projection.from_json(json.loads(raw)) if raw else None
            applied = _fold(current, recs)
            new_raw = _dumps(applied[-1].projection.to_json())
            ev_keys: list[str] = []
            ev_args: list[str] = []
            for a in applied:
                status = "stale" if a.stale else "processed"
                fields = ["state", status, "outcome", a.outcome, "error", ""]
                for name in handler_names(a.record.topic):
                    fields += [HANDLER_FIELD + name, _dumps({"status": "pending", "attempts": 0})]
                ev_keys += [keys.event(a.record.ref), keys.events_by_status(status)]
                ev_args += [status, a.record.ref, str(len(fields)), *fields]
            cas_keys = [key, keys.orders(platform, shop), keys.shops, keys.events_by_status("queued"),
                        keys.dispatching]
            # EVAL: a registered script would cost the pipeline a SCRIPT EXISTS round trip
            pipe.eval(APPLY_ORDER, len(cas_keys) + len(ev_keys), *cas_keys, *ev_keys,
                      raw or "", new_raw, oid, shop_member(platform, shop), now, *ev_args)
            plans.append(applied)
        results = pipe.execute() if plans else []
        todo = []
        for applied, result in zip(plans, results, strict=True):
            if result == 1:
                done += applied
            else:  # lost a race: try these events again from fresh reads
                todo += [a.record.ref for a in applied]
    raise RuntimeError(f"could not apply events after {MAX_RACES} attempts: {todo}")
