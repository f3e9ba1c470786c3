"""RQ entry points. Jobs carry only event ids (JSON serializer, never pickle)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import structlog
from rq import get_current_job

from storage import metrics, notices
from storage.events import EventRecord, load_events
from storage.intake import CLAIM_EVENTS, PROCESS_JOB, PROCESS_JOB_ID_PREFIX, claim_waiting
from storage.projection import apply_events, record_apply_failures
from storage.status import HandlerOutcome, Status
from workers.context import get_context
from workers.dispatch import dispatch_applied
from workers.dispatch import resume_pending as _resume_pending
from workers.dispatch import run_handler as _run_handler
from workers.hydrate import hydrate_events

log = structlog.get_logger("orderhooks.worker")
BATCH_EVENTS = 64  # events applied, then their handlers run, together
KEEP_CLAIMING_SECONDS = 2.0  # a processing job takes over jobs enqueued while it runs for this long


def process_events(ids: list[str]) -> dict:
    """Apply a batch of events to the projection, then run their handlers.

    Run by a worker, the job first takes over the processing jobs still waiting behind it and
    applies their events too, `BATCH_EVENTS` at a time: a backlog then pays RQ's per-job cost
    once per batch. It never waits for events to arrive, so a lone event goes through at once; once its
    events are done, it takes over those enqueued meanwhile, for up to `KEEP_CLAIMING_SECONDS`.

    Each event's body is normalized on the way (the receiver stores it unread): one that does not
    normalize is quarantined with the reason, counted and notified (`events.quarantined`).

    An event the apply step fails on fails alone: its error and attempt are recorded and it is
    retried on its own after the next of the retry delays (`ORDERHOOKS_RETRY_DELAYS`), staying
    `queued`; once they are spent it is `failed`. Its batch-mates are applied as usual. Only
    Redis refusing service as a whole (`storage.projection.Unavailable`) fails the job.
    """
    ctx = get_context()
    in_worker = get_current_job() is not None
    if in_worker:
        ids = [*ids, *claim_waiting(ctx.queue, CLAIM_EVENTS - len(ids))]
    totals = {"applied": 0, "skipped": 0, "failed": 0, "quarantined": 0, "handlers_failed": 0}
    until = time.monotonic() + KEEP_CLAIMING_SECONDS
    while ids:
        _process(ctx, ids, totals)
        # Events that arrived meanwhile are taken at once, without RQ's own round trips between two jobs
        # (about twenty per job, each a write): under a steady flow of deliveries, that is what an event
        # would otherwise wait for. Bounded, so that other jobs (handler retries) and a shutdown wait little.
        ids = claim_waiting(ctx.queue, CLAIM_EVENTS) if in_worker and time.monotonic() < until else []
    return totals


def _process(ctx, ids: list[str], totals: dict) -> None:
    for start in range(0, len(ids), BATCH_EVENTS):
        batch, hydrate_failed = hydrate_events(ctx, ids[start : start + BATCH_EVENTS])
        if hydrate_failed:
            _retry_or_fail(ctx, {r: f.error for r, f in hydrate_failed.items() if not f.final}, "hydrate")
            _retry_or_fail(ctx, {r: f.error for r, f in hydrate_failed.items() if f.final}, "hydrate", ())
        failed: dict[str, str] = {}
        quarantined: list[EventRecord] = []
        applied = apply_events(ctx.redis, ctx.keys, batch,
                               lambda topic: [h.name for h in ctx.registry.matching(topic)], failed,
                               quarantined=quarantined)
        if failed:
            _retry_or_fail(ctx, failed)
        if quarantined:
            _notify_quarantined(ctx, quarantined)
        for a in applied:
            log.info("event_applied", event_id=a.record.id, topic=a.record.topic, shop=a.record.shop,
                     order_id=a.record.order_id, outcome=a.outcome)
        outcomes = dispatch_applied(ctx, applied)  # counted in the metrics with its outcomes
        totals["applied"] += len(applied)
        totals["skipped"] += len(batch) - len(applied) - len(failed) - len(quarantined)
        totals["failed"] += len(failed) + len(hydrate_failed)
        totals["quarantined"] += len(quarantined)
        totals["handlers_failed"] += sum(1 for o in outcomes if o.data["status"] != HandlerOutcome.OK)


def _retry_or_fail(ctx, failed: dict[str, str], stage: str = "apply", delays=None) -> None:
    """Events a stage (apply, hydrate) failed on: record each one's error; schedule its retry, or it is failed
    (at once with `delays` empty: retrying cannot help)."""
    if not failed:
        return
    outcomes = record_apply_failures(ctx.redis, ctx.keys, failed,
                                     ctx.settings.retry_delays if delays is None else delays, stage)
    ended = [ref for ref, delay in outcomes.items() if delay is None]
    if ended:
        _notify_failed(ctx, ended, failed, stage)
    for ref, delay in outcomes.items():
        if delay is None:
            log.error("event_failed", event_ref=ref, stage=stage, error=failed[ref])
            continue
        log.warning(f"event_{stage}_failed_will_retry", event_ref=ref, error=failed[ref], retry_in=delay)
        ctx.queue.enqueue_in(timedelta(seconds=delay), PROCESS_JOB, [ref],
                             job_id=f"{PROCESS_JOB_ID_PREFIX}1-{uuid.uuid4().hex}",
                             result_ttl=300, failure_ttl=7 * 24 * 3600, timeout=600,
                             description=f"retry applying {ref}")


def _notify_failed(ctx, refs: list[str], errors: dict[str, str], stage: str = "apply") -> None:
    """Events whose retries of a stage are spent: counted, and notified per shop."""
    by_shop: dict[str, list[dict]] = {}
    for ref, record in zip(refs, load_events(ctx.redis, ctx.keys, refs), strict=True):
        shop = record.shop if record else ""
        by_shop.setdefault(shop, []).append({
            "id": record.id if record else ref, "topic": record.topic if record else None,
            "order_id": record.order_id if record else None, "reason": f"{stage}: {errors[ref]}"[:300]})
    for shop, examples in by_shop.items():
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "event.failed", shop or None, len(examples), examples,
                         total=Status.FAILED)


def _notify_quarantined(ctx, records: list[EventRecord]) -> None:
    """Events the worker has just quarantined (their bodies do not normalize): logged, counted, and notified
    per shop, as the receiver does for a delivery without a shop."""
    by_shop: dict[str, list[dict]] = {}
    for rec in records:
        log.warning("event_quarantined", event_id=rec.id, topic=rec.topic, shop=rec.shop, platform=rec.platform,
                    reason=rec.error)
        by_shop.setdefault(rec.shop, []).append({"id": rec.id, "topic": rec.topic, "order_id": rec.order_id,
                                                 "reason": (rec.error or "")[:300]})
    for shop, examples in by_shop.items():
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "events.quarantined", shop or None, len(examples),
                         examples, total=Status.QUARANTINED)


def run_handler(ref: str, handler: str) -> str | None:
    """Retry one handler of one event."""
    ctx = get_context()
    outcome = _run_handler(ctx, ref, handler)
    metrics.record_handler_calls(ctx.redis, ctx.keys, [outcome])
    return outcome.data["status"] if outcome else None


def resume_pending(ref: str | list[str]) -> int:
    """Run handlers left pending by a worker that died after applying the event (or each of a list of
    events, as reconciliation enqueues them)."""
    ctx = get_context()
    outcomes = [o for one in ([ref] if isinstance(ref, str) else ref) for o in _resume_pending(ctx, one)]
    metrics.record_handler_calls(ctx.redis, ctx.keys, outcomes)
    return len(outcomes)


def reconcile_shop(shop: str) -> dict:
    """A scheduled reconcile run (`workers.reconcile.schedule_due`); a run already in progress is left alone."""
    from workers.reconcile import ReconcileRefused
    from workers.reconcile import reconcile_shop as run

    ctx = get_context()
    try:
        return run(ctx, shop).to_json()
    except ReconcileRefused as exc:
        log.info("reconcile_skipped", shop=shop, reason=str(exc))
        return {"shop": shop, "failed": str(exc)}
