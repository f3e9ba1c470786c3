"""RQ entry points. Jobs carry only event ids (JSON serializer, never pickle)."""

from __future__ import annotations

import structlog
from rq import get_current_job

from workers import metrics
from workers.context import get_context
from workers.dispatch import dispatch_applied
from workers.dispatch import resume_pending as _resume_pending
from workers.dispatch import run_handler as _run_handler
from workers.intake import CLAIM_EVENTS, claim_waiting
from workers.projection import apply_events

log = structlog.get_logger("orderhooks.worker")
BATCH_EVENTS = 64  # events applied, then their handlers run, together


def process_events(ids: list[str]) -> dict:
    """Apply a batch of events to the projection, then run their handlers.

    Run by a worker, the job first takes over the processing jobs still waiting behind it and
    applies their events too, `BATCH_EVENTS` at a time: a backlog then pays RQ's per-job cost
    once per batch. It never waits for events to arrive, so a lone event goes through at once.
    """
    ctx = get_context()
    if get_current_job() is not None:
        ids = [*ids, *claim_waiting(ctx.queue, CLAIM_EVENTS - len(ids))]
    totals = {"applied": 0, "skipped": 0, "handlers_failed": 0}
    for start in range(0, len(ids), BATCH_EVENTS):
        batch = ids[start : start + BATCH_EVENTS]
        applied = apply_events(ctx.redis, ctx.keys, batch,
                               lambda topic: [h.name for h in ctx.registry.matching(topic)])
        for a in applied:
            log.info("event_applied", event_id=a.record.id, topic=a.record.topic, shop=a.record.shop,
                     order_id=a.record.order_id, outcome=a.outcome)
        outcomes = dispatch_applied(ctx, applied)
        metrics.record_processed(ctx.redis, ctx.keys, applied, outcomes)
        totals["applied"] += len(applied)
        totals["skipped"] += len(batch) - len(applied)
        totals["handlers_failed"] += sum(1 for o in outcomes if o.data["status"] != "ok")
    return totals


def run_handler(ref: str, handler: str) -> str | None:
    """Retry one handler of one event."""
    ctx = get_context()
    outcome = _run_handler(ctx, ref, handler)
    metrics.record_handler_calls(ctx.redis, ctx.keys, [outcome])
    return outcome.data["status"] if outcome else None


def resume_pending(ref: str) -> int:
    """Run handlers left pending by a worker that died after applying the event."""
    ctx = get_context()
    outcomes = _resume_pending(ctx, ref)
    metrics.record_handler_calls(ctx.redis, ctx.keys, outcomes)
    return len(outcomes)
