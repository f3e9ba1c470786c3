"""Calling the user's handlers and recording each one's outcome.

Every handler's outcome is kept on the event (`handler:<name>` fields). A
failing handler is retried alone, later, by its own RQ job
(`workers.jobs.run_handler`) with growing delays; once the delays are spent
it is `failed`, which makes the event `failed` until it is replayed.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from schemas import NormalizedEvent, Order, Projection, Refund
from storage import metrics, notices
from storage.connection import rq_pipeline
from storage.events import EventRecord, load_event, stage_first_success, stage_handler_outcome, status_change
from storage.intake import RUN_HANDLER_JOB
from storage.keys import GENSTORE
from storage.projection import Applied, load_projection
from storage.status import HandlerOutcome, Status
from workers.context import Context
from workers.event import HandlerEvent
from workers.handlers import Handler

log = structlog.get_logger("orderhooks.dispatch")


def _iso(moment: datetime) -> str:
    """A time in a handler outcome: ISO 8601 in UTC to the millisecond, `Z` for the offset (short enough to keep
    a success's field within 64 bytes: `storage.events.dump_outcome`)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(UTC))


def build_event(record: EventRecord, projection: Projection | None, stale: bool, attempt: int = 1,
                normalized: NormalizedEvent | None = None, order: Order | None = None,
                api: Any = None) -> HandlerEvent:
    """The handlers' event. `normalized` and `order`, when the caller already has them typed, save
    validating the stored JSON again (they must be what that JSON validates to)."""
    if normalized is None:
        normalized = record.event
    if order is None:
        order = Order.model_validate(projection.order) if projection and projection.order else None
    refunds = [Refund.model_validate(r) for r in projection.refunds.values()] if projection else []
    details = {}
    if record.platform != GENSTORE:
        from platforms import get

        try:
            details = get(record.platform).event_details(record.topic, record.raw)
        except KeyError:
            details = {}
    return HandlerEvent(
        id=record.id,
        topic=record.topic,
        shop=record.shop,
        order_id=record.order_id,
        order=order,
        refund=normalized.refund if normalized else None,
        stale=stale,
        source=record.source,
        received_at=datetime.fromtimestamp(record.received_at, UTC),
        raw=record.raw,
        normalized=normalized,
        refunds=refunds,
        attempt=attempt,
        platform=record.platform,
        api=api,
        **details,
    )


@dataclass
class Outcome:
    event_ref: str
    handler: str
    data: dict
    retry_in: int | None = None


def call_handler(handler: Handler, event: HandlerEvent, event_ref: str, attempts_before: int,
                 delays: tuple[int, ...]) -> Outcome:
    """Run one handler once (`event_ref` names the event in Redis); decide its outcome and whether it
    is retried."""
    attempts = attempts_before + 1
    bound = log.bind(event_id=event.id, topic=event.topic, shop=event.shop, order_id=event.order_id,
                     handler=handler.name, attempt=attempts)
    started = time.perf_counter()
    try:
        handler.func(event)
    except Exception as exc:  # a handler's failure never stops the worker
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        if attempts <= len(delays):
            delay = delays[attempts - 1]
            bound.warning("handler_failed_will_retry", error=error, retry_in=delay)
            return Outcome(event_ref, handler.name, {
                "status": HandlerOutcome.RETRYING, "attempts": attempts, "error": error, "traceback": tb,
                "at": _now_iso(),
                "nextAttemptAt": _iso(datetime.now(UTC) + timedelta(seconds=delay)),
            }, retry_in=delay)
        bound.error("handler_failed", error=error)
        return Outcome(event_ref, handler.name, {
            "status": HandlerOutcome.FAILED, "attempts": attempts, "error": error, "traceback": tb,
            "at": _now_iso(),
        })
    bound.info("handler_ok", ms=round((time.perf_counter() - started) * 1000, 2))
    return Outcome(event_ref, handler.name, {"status": HandlerOutcome.OK, "attempts": attempts, "at": _now_iso()})


def record_outcomes(ctx: Context, outcomes: Iterable[Outcome], finished: Iterable[str] = (),
                    just_applied: Sequence[Applied] = ()) -> None:
    """One round trip: every outcome, retry jobs for those that will retry, dispatch bookkeeping.
    `just_applied`: the events this job has just applied (each handler called once), counted in the
    metrics on the way."""
    outcomes = list(outcomes)
    pipe = rq_pipeline(ctx.redis)
    evals: list[tuple[int, Outcome]] = []
    for o in outcomes:
        if just_applied and o.data["status"] == HandlerOutcome.OK:
            stage_first_success(pipe, ctx.keys, o.event_ref, o.handler, o.data)
            continue
        evals.append((stage_handler_outcome(pipe, ctx.keys, o.event_ref, o.handler, o.data), o))
        if o.retry_in is not None:
            ctx.queue.enqueue_in(
                timedelta(seconds=o.retry_in), RUN_HANDLER_JOB, o.event_ref, o.handler,
                pipeline=pipe, result_ttl=300, failure_ttl=7 * 24 * 3600,
                description=f"retry {o.handler} for {o.event_ref}",
            )
    for ref in finished:
        pipe.zrem(ctx.keys.dispatching, ref)
    ours = len(pipe.command_stack)
    if just_applied:
        metrics.stage_processed(pipe, ctx.keys, just_applied, outcomes)
    results = pipe.execute(raise_on_error=False)
    for reply in results[:ours]:
        if isinstance(reply, Exception):
            raise reply
    metrics.dropped_errors(results[ours:])
    _count_failed(ctx, [(o, results[i]) for i, o in evals])


def _count_failed(ctx: Context, results: list[tuple[Outcome, Any]]) -> None:
    """Events that have just turned `failed` (a handler's retries spent): counted, and notified per shop."""
    by_shop: dict[str, list[dict]] = {}
    for o, reply in results:
        change = status_change(reply)
        if change is not None and change.status == Status.FAILED and change.previous != Status.FAILED:
            by_shop.setdefault(change.shop, []).append({
                "id": change.id, "topic": change.topic, "order_id": change.order_id,
                "reason": f"{o.handler}: {o.data.get('error', '')}"[:300]})
    for shop, examples in by_shop.items():
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "event.failed", shop or None, len(examples), examples,
                         total=Status.FAILED)


def _typed_order(a: Applied, cache: dict[int, Order]) -> Order | None:
    """The projection's order, typed. An applied snapshot *is* the projection's order: the stored
    JSON is canonical, so validating it again would give back an equal model."""
    if a.outcome == "applied" and a.event.order is not None:
        return a.event.order
    raw = a.projection.order
    if raw is None:
        return None
    key = id(raw)
    if key not in cache:
        cache[key] = Order.model_validate(raw)
    return cache[key]


def dispatch_applied(ctx: Context, applied: list[Applied]) -> list[Outcome]:
    """Run every matching handler for freshly applied events, then record all outcomes."""
    outcomes = []
    delays = ctx.settings.retry_delays
    orders: dict[int, Order] = {}  # stale events and refunds of one order share its projection's order
    for a in applied:
        event = build_event(a.record, a.projection, a.stale, normalized=a.event, order=_typed_order(a, orders),
                            api=ctx.api_for(a.record.shop, a.record.platform))
        for handler in ctx.registry.matching(a.record.topic):
            outcomes.append(call_handler(handler, event, a.record.ref, 0, delays))
    record_outcomes(ctx, outcomes, finished=[a.record.ref for a in applied], just_applied=applied)
    return outcomes


def _current_event(ctx: Context, record: EventRecord, attempt: int) -> HandlerEvent:
    projection = (
        load_projection(ctx.redis, ctx.keys, record.platform, record.shop, record.order_id)
        if record.order_id else None
    )
    return build_event(record, projection, record.state == Status.STALE, attempt,
                       api=ctx.api_for(record.shop, record.platform))


def run_handler(ctx: Context, ref: str, name: str) -> Outcome | None:
    """Retry one handler of one event (the projection is not re-applied)."""
    record = load_event(ctx.redis, ctx.keys, ref)
    handler = ctx.registry.get(name)
    if record is None:
        log.warning("retry_event_gone", event_ref=ref, handler=name)
        return None
    previous = record.handlers.get(name, {})
    if previous.get("status") == HandlerOutcome.OK:
        return None
    if handler is None:
        outcome = Outcome(ref, name, {
            "status": HandlerOutcome.FAILED, "attempts": previous.get("attempts", 0),
            "error": f"handler {name} is not registered in this worker", "at": _now_iso(),
        })
    else:
        attempts = int(previous.get("attempts", 0))
        event = _current_event(ctx, record, attempts + 1)
        cycle_start = int(previous.get("cycleStart", 0))
        outcome = call_handler(handler, event, ref, attempts - cycle_start, ctx.settings.retry_delays)
        outcome.data["attempts"] = attempts + 1
        if cycle_start:
            outcome.data["cycleStart"] = cycle_start
    record_outcomes(ctx, [outcome])
    return outcome


def resume_pending(ctx: Context, ref: str) -> list[Outcome]:
    """After a crash: run the handlers of an applied event that have no recorded outcome."""
    record = load_event(ctx.redis, ctx.keys, ref)
    if record is None or record.status not in (Status.PROCESSED, Status.STALE, Status.FAILED):
        ctx.redis.zrem(ctx.keys.dispatching, ref)
        return []
    event = _current_event(ctx, record, 1)
    if record.handlers:
        names = [name for name, data in record.handlers.items() if data.get("status") == HandlerOutcome.PENDING]
    else:  # applied by a process without the handler registry (`orderhooks reconcile`): this worker's handlers
        names = [h.name for h in ctx.registry.matching(record.topic)]
    outcomes = []
    for name in names:
        handler = ctx.registry.get(name)
        if handler is not None:
            outcomes.append(call_handler(handler, event, ref, 0, ctx.settings.retry_delays))
    record_outcomes(ctx, outcomes, finished=[ref])
    return outcomes
