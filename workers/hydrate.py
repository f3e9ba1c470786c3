"""The hydrate stage: before applying, read the order of events whose platform sends thin deliveries.

A platform with a `hydrate` step (BigCommerce) reads each queued event's order from its API; what it read is
kept on the event (field `hydrated`), from which the event normalizes like any other. A failed read is
retried like the apply stage (`error` = `hydrate: ...`, the event stays `queued`), then `failed`, replayable.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from platforms import HydrateFailure, get
from storage.events import EventRecord, load_events, stage_status
from storage.keys import GENSTORE
from storage.status import Status


def hydrate_events(ctx, refs: Sequence[str]) -> tuple[list[str], dict[str, HydrateFailure]]:
    """Hydrate the events among `refs` that need it; return the refs ready to apply (in their order) and the
    failures by ref. Events whose platform has nothing to apply for them (`None`) are made `processed` here."""
    # A ref starts with its platform (`storage.keys.event_ref`): Genstore's events are not even read here.
    others = [r for r in refs if r.partition(":")[0] != GENSTORE]
    if not others:
        return list(refs), {}
    groups: dict[str, list[EventRecord]] = defaultdict(list)
    for rec in _load(ctx, others):
        if rec.status == Status.QUEUED and rec.platform != GENSTORE:
            groups[rec.platform].append(rec)
    failed: dict[str, HydrateFailure] = {}
    done: set[str] = set()
    pipe = ctx.redis.pipeline(transaction=False)
    for platform, records in groups.items():
        try:
            hydrate = get(platform).hydrate
        except KeyError:
            continue  # the apply stage says why such an event cannot be read
        if hydrate is None:
            continue
        for ref, result in hydrate(ctx, records).items():
            if isinstance(result, HydrateFailure):
                failed[ref] = result
            elif result is None:
                done.add(ref)
                stage_status(pipe, ctx.keys, ref, Status.PROCESSED, "state", Status.PROCESSED,
                             "outcome", "not_found", "error", "", "processed_at", repr(time.time()))
            else:
                pipe.hset(ctx.keys.event(ref), "hydrated", result)
    pipe.execute()
    return [r for r in refs if r not in failed and r not in done], failed


def _load(ctx, refs: list[str]) -> list[EventRecord]:
    """The events, one round trip; one by one when that fails, leaving out those that cannot be read (the
    apply stage records why)."""
    try:
        return [r for r in load_events(ctx.redis, ctx.keys, refs) if r is not None]
    except Exception:
        out = []
        for ref in refs:
            try:
                out += [r for r in load_events(ctx.redis, ctx.keys, [ref]) if r is not None]
            except Exception:  # noqa: S112 -- a corrupt event is the apply stage's to report
                continue
        return out

