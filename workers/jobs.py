"""RQ entry points. Jobs carry only event ids (JSON serializer, never pickle)."""

from __future__ import annotations

import structlog

from workers import metrics
from workers.context import get_context
from workers.dispatch import dispatch_applied
from workers.dispatch import resume_pending as _resume_pending
from workers.dispatch import run_handler as _run_handler
from workers.projection import apply_events

log = structlog.get_logger("orderhooks.worker")


def process_events(ids: list[str]) -> dict:
    """Apply a batch of events to the projection, then run their handlers."""
    ctx = get_context()
    applied = apply_events(ctx.redis, ctx.keys, ids, lambda topic: [h.name for h in ctx.registry.matching(topic)])
    for a in applied:
        log.info("event_applied", event_id=a.record.id, topic=a.record.topic, shop=a.record.shop,
                 order_id=a.record.order_id, outcome=a.outcome)
    outcomes = dispatch_applied(ctx, applied)
    metrics.record_processed(ctx.redis, ctx.keys, applied, outcomes)
    return {
        "applied": len(applied),
        "skipped": len(ids) - len(applied),
        "handlers_failed": sum(1 for o in outcomes if o.data["status"] != "ok"),
    }


def run_handler(event_id: str, handler: str) -> str | None:
    """Retry one handler of one event."""
    ctx = get_context()
    outcome = _run_handler(ctx, event_id, handler)
    metrics.record_handler_calls(ctx.redis, ctx.keys, [outcome])
    return outcome.data["status"] if outcome else None


def resume_pending(event_id: str) -> int:
    """Run handlers left pending by a worker that died after applying the event."""
    ctx = get_context()
    outcomes = _resume_pending(ctx, event_id)
    metrics.record_handler_calls(ctx.redis, ctx.keys, outcomes)
    return len(outcomes)
