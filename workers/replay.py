"""Replaying events: failed handlers again, or the whole pipeline for quarantined ones."""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas import NORMALIZED_TOPICS, TOPICS
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
    shop: str = ""
    platform: str = ""


def replay(ctx: Context, ref: str) -> ReplayResult:
    """Replay the event named `ref` (`workers.keys.event_ref`); KeyError when it is not stored."""
    record = load_event(ctx.redis, ctx.keys, ref)
    if record is None:
        raise KeyError(ref)

    def result(status: str, action: str, detail: str = "") -> ReplayResult:
        return ReplayResult(record.id, status, action, detail, record.shop, record.platform)

    if record.status == "failed" and record.state is None:  # failed before it was applied: all of it again
        pipe = rq_pipeline(ctx.redis)
        set_status(ctx.redis, ctx.keys, ref, "queued", "error", "", "apply_failures", "0", "retry_at", "",
                   client=pipe)
        enqueue_processing(ctx.queue, [ref], pipeline=pipe)
        pipe.execute()
        return result("queued", "pipeline")
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
        set_status(ctx.redis, ctx.keys, ref, record.state or "processed", *fields, client=pipe)
        for name in failed:
            ctx.queue.enqueue_call(RUN_HANDLER_JOB, args=(ref, name), pipeline=pipe,
                                   result_ttl=300, failure_ttl=7 * 24 * 3600,
                                   description=f"replay {name} for {ref}")
        pipe.execute()
        return result(record.state or "processed", "handlers", ", ".join(failed))
    if record.status in ("quarantined", "ignored"):
        known = NORMALIZED_TOPICS if record.source == "reconcile" else TOPICS  # webhooks: webhook topics only
        if record.platform == "genstore":
            status, _, order_id, error = triage(record.topic, record.shop, record.raw, known)
        else:  # another platform triages its own deliveries
            from platforms import get

            status, order_id, error = get(record.platform).retriage(record.raw)
            if status == "queued" and not record.shop:
                status, error = "quarantined", "no shop: the envelope names no store"
        if status != "queued":
            set_status(ctx.redis, ctx.keys, ref, record.status, "error", error or "")
            return result(record.status, "none", f"still {record.status}: {error}" if error else "")
        pipe = rq_pipeline(ctx.redis)
        set_status(ctx.redis, ctx.keys, ref, "queued", "order_id", order_id or "", "error", "", client=pipe)
        history = ctx.keys.order_events(record.platform, record.shop, order_id or "")
        pipe.zadd(history, {ref: record.received_at})
        pipe.expire(history, ctx.settings.event_ttl)
        enqueue_processing(ctx.queue, [ref], pipeline=pipe)
        pipe.execute()
        return result("queued", "pipeline")
    return result(record.status, "none", f"nothing to replay: the event is {record.status}")


def replay_status(ctx: Context, status: str, limit: int = 10_000) -> list[ReplayResult]:
    if status not in ("failed", "quarantined"):
        raise ValueError("replay --status takes failed or quarantined")
    refs = [i.decode() for i in ctx.redis.zrange(ctx.keys.events_by_status(status), 0, limit - 1)]
    return [replay(ctx, ref) for ref in refs]
