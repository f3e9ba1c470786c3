"""Replaying events: failed handlers again, or the whole pipeline for quarantined ones."""

from __future__ import annotations

import json
from dataclasses import dataclass

from workers.context import Context, rq_pipeline
from workers.dispatch import RUN_HANDLER_JOB
from workers.intake import enqueue_processing, triage
from workers.records import HANDLER_FIELD, load_event, set_status


@dataclass
class ReplayResult:
    id: str
    status: str  # the event's status after the replay was requested
    action: str  # what was done
    detail: str = ""


def replay(ctx: Context, event_id: str) -> ReplayResult:
    record = load_event(ctx.redis, ctx.keys, event_id)
    if record is None:
        raise KeyError(event_id)
    if record.status == "failed" and record.state is None:  # failed before it was applied: all of it again
        pipe = rq_pipeline(ctx.redis)
        set_status(ctx.redis, ctx.keys, event_id, "queued", "error", "", "apply_failures", "0", "retry_at", "",
                   client=pipe)
        enqueue_processing(ctx.queue, [event_id], pipeline=pipe)
        pipe.execute()
        return ReplayResult(event_id, "queued", "pipeline")
    if record.status == "failed":
        pipe = rq_pipeline(ctx.redis)
        failed = [name for name, o in record.handlers.items() if o.get("status") == "failed"]
        fields: list[str] = []
        for name in failed:
            prev = record.handlers[name]
            attempts = int(prev.get("attempts", 0))
            fields += [HANDLER_FIELD + name, json.dumps({
                "status": "retrying", "attempts": attempts, "cycleStart": attempts,
                "error": prev.get("error"), "traceback": prev.get("traceback"),
            })]
        set_status(ctx.redis, ctx.keys, event_id, record.state or "processed", *fields, client=pipe)
        for name in failed:
            ctx.queue.enqueue_call(RUN_HANDLER_JOB, args=(event_id, name), pipeline=pipe,
                                   result_ttl=300, failure_ttl=7 * 24 * 3600,
                                   description=f"replay {name} for {event_id}")
        pipe.execute()
        return ReplayResult(event_id, record.state or "processed", "handlers", ", ".join(failed))
    if record.status in ("quarantined", "ignored"):
        status, _, order_id, error = triage(record.topic, record.shop, record.raw)
        if status != "queued":
            set_status(ctx.redis, ctx.keys, event_id, record.status, "error", error or "")
            return ReplayResult(event_id, record.status, "none", error or "")
        pipe = rq_pipeline(ctx.redis)
        set_status(ctx.redis, ctx.keys, event_id, "queued", "order_id", order_id or "", "error", "", client=pipe)
        pipe.zadd(ctx.keys.order_events(record.shop, order_id), {event_id: record.received_at})
        pipe.expire(ctx.keys.order_events(record.shop, order_id), ctx.settings.event_ttl)
        enqueue_processing(ctx.queue, [event_id], pipeline=pipe)
        pipe.execute()
        return ReplayResult(event_id, "queued", "pipeline")
    return ReplayResult(event_id, record.status, "none", f"nothing to replay: the event is {record.status}")


def replay_status(ctx: Context, status: str, limit: int = 10_000) -> list[ReplayResult]:
    if status not in ("failed", "quarantined"):
        raise ValueError("replay --status takes failed or quarantined")
    ids = [i.decode() for i in ctx.redis.zrange(ctx.keys.events_by_status(status), 0, limit - 1)]
    return [replay(ctx, i) for i in ids]
