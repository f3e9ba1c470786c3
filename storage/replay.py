"""Replaying events: failed handlers again, or the whole pipeline for quarantined ones."""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas import NORMALIZED_TOPICS, TOPICS, retriage
from storage.connection import rq_pipeline
from storage.events import HANDLER_FIELD, load_event, set_status
from storage.intake import RUN_HANDLER_JOB, enqueue_processing
from storage.keys import GENSTORE
from storage.status import HandlerOutcome, Status
from storage.store import Store


@dataclass
class ReplayResult:
    id: str
    status: str  # the event's status after the replay was requested
    action: str  # what was done
    detail: str = ""
    shop: str = ""
    platform: str = ""


def replay(store: Store, ref: str) -> ReplayResult:
    """Replay the event named `ref` (`storage.keys.event_ref`); KeyError when it is not stored."""
    record = load_event(store.redis, store.keys, ref)
    if record is None:
        raise KeyError(ref)

    def result(status: str, action: str, detail: str = "") -> ReplayResult:
        return ReplayResult(record.id, status, action, detail, record.shop, record.platform)

    if record.status == Status.FAILED and record.state is None:  # failed before it was applied: all of it again
        pipe = rq_pipeline(store.redis)
        set_status(store.redis, store.keys, ref, Status.QUEUED, "error", "", "apply_failures", "0", "retry_at", "",
                   client=pipe)
        enqueue_processing(store.queue, [ref], pipeline=pipe)
        pipe.execute()
        return result(Status.QUEUED, "pipeline")
    if record.status == Status.FAILED:
        pipe = rq_pipeline(store.redis)
        failed = [name for name, o in record.handlers.items() if o.get("status") == HandlerOutcome.FAILED]
        fields: list[str] = []
        for name in failed:
            prev = record.handlers[name]
            attempts = int(prev.get("attempts", 0))
            fields += [HANDLER_FIELD + name, json.dumps({
                "status": HandlerOutcome.RETRYING, "attempts": attempts, "cycleStart": attempts,
                "error": prev.get("error"), "traceback": prev.get("traceback"),
            })]
        set_status(store.redis, store.keys, ref, record.state or Status.PROCESSED, *fields, client=pipe)
        for name in failed:
            store.queue.enqueue_call(RUN_HANDLER_JOB, args=(ref, name), pipeline=pipe,
                                   result_ttl=300, failure_ttl=7 * 24 * 3600,
                                   description=f"replay {name} for {ref}")
        pipe.execute()
        return result(record.state or Status.PROCESSED, "handlers", ", ".join(failed))
    if record.status in (Status.QUARANTINED, Status.IGNORED):
        known = NORMALIZED_TOPICS if record.source == "reconcile" else TOPICS  # webhooks: webhook topics only
        if record.platform == GENSTORE:
            status, _, order_id, error = retriage(record.topic, record.shop, record.raw, known)
        else:  # another platform triages its own deliveries
            from platforms import get

            status, order_id, error = get(record.platform).retriage(record.raw)
            if status == Status.QUEUED and not record.shop:
                status, error = Status.QUARANTINED, "no shop: the envelope names no store"
        if status != Status.QUEUED:
            set_status(store.redis, store.keys, ref, Status(record.status), "error", error or "")
            return result(record.status, "none", f"still {record.status}: {error}" if error else "")
        pipe = rq_pipeline(store.redis)
        set_status(store.redis, store.keys, ref, Status.QUEUED, "order_id", order_id or "", "error", "", client=pipe)
        history = store.keys.order_events(record.platform, record.shop, order_id or "")
        pipe.zadd(history, {ref: record.received_at})
        pipe.expire(history, store.settings.event_ttl)
        enqueue_processing(store.queue, [ref], pipeline=pipe)
        pipe.execute()
        return result(Status.QUEUED, "pipeline")
    return result(record.status, "none", f"nothing to replay: the event is {record.status}")


def replay_status(store: Store, status: str, limit: int = 10_000) -> list[ReplayResult]:
    if status not in (Status.FAILED, Status.QUARANTINED):
        raise ValueError("replay --status takes failed or quarantined")
    refs = [i.decode() for i in store.redis.zrange(store.keys.events_by_status(status), 0, limit - 1)]
    return [replay(store, ref) for ref in refs]
