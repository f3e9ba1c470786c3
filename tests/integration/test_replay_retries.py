"""Replaying quarantined and ignored events, handler retry timing (ORDERHOOKS_RETRY_DELAYS, nextAttemptAt),
and the gauge of scheduled retries. In-process worker code on the session's real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rq.registry import ScheduledJobRegistry

from orderhooks.config import Settings
from receiver.metrics import render
from storage.events import load_event
from storage.intake import Delivery, store_deliveries
from storage.keys import GENSTORE
from storage.queries import get_order
from storage.replay import replay, replay_status
from tests.conftest import SECRET
from tests.support.metrics import parse, value
from tests.support.payloads import SHOP, order_body
from tests.support.store import ref
from workers import jobs
from workers.context import Context, set_context
from workers.dispatch import run_handler
from workers.handlers import on, registry


def put(ctx, event_id: str, topic: str, raw: bytes, status: str, error: str | None = None) -> None:
    """A delivery as an earlier release stored it (with that release's verdict)."""
    d = Delivery(id=event_id, topic=topic, shop=SHOP, raw=raw, status=status, error=error)
    assert store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ctx.settings.event_ttl) == [True]


def test_replaying_a_quarantined_event_that_still_fails_records_the_new_reason(ctx):
    put(ctx, "q-still", "orders/create", b'{"order": {"orderId": "77"}}', "quarantined",
        "an older release's reason")
    result = replay(ctx, ref("q-still"))
    assert (result.status, result.action) == ("quarantined", "none")
    record = load_event(ctx.redis, ctx.keys, ref("q-still"))
    assert record.status == "quarantined"
    assert record.error == "order.updatedAt: missing", "today's reason replaces the old one"
    assert result.detail == "still quarantined: order.updatedAt: missing", "and the replay says so"
    assert ctx.queue.count == 0, "nothing is enqueued"
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "77") is None


def test_replaying_a_quarantined_event_that_now_normalizes_applies_it(ctx):
    put(ctx, "q-fixed", "orders/create", order_body("orders/create", "78", "2024-01-01T00:00:00Z"), "quarantined",
        "an older release could not read it")
    result = replay(ctx, ref("q-fixed"))
    assert (result.status, result.action) == ("queued", "pipeline")
    jobs.process_events(*ctx.queue.jobs[0].args)
    record = load_event(ctx.redis, ctx.keys, ref("q-fixed"))
    assert (record.status, record.error) == ("processed", None)
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "78")["updatedAt"] == "2024-01-01T00:00:00Z"


def test_replaying_an_ignored_event(ctx):
    put(ctx, "i-unknown", "products/create", b'{"product": {}}', "ignored", "unknown topic 'products/create'")
    result = replay(ctx, ref("i-unknown"))
    assert (result.status, result.action) == ("ignored", "none")
    assert load_event(ctx.redis, ctx.keys, ref("i-unknown")).status == "ignored", "a topic still unknown stays ignored"
    # an event an older release ignored, whose topic this release knows: the whole pipeline runs
    put(ctx, "i-known", "orders/paid", order_body("orders/paid", "79", "2024-01-01T00:00:00Z"), "ignored",
        "unknown topic 'orders/paid'")
    calls = []
    on("orders/paid")(lambda event: calls.append(event.id))
    result = replay(ctx, ref("i-known"))
    assert (result.status, result.action) == ("queued", "pipeline")
    jobs.process_events(*ctx.queue.jobs[-1].args)
    assert load_event(ctx.redis, ctx.keys, ref("i-known")).status == "processed"
    assert calls == ["i-known"]
    assert get_order(ctx.redis, ctx.keys, GENSTORE, SHOP, "79") is not None


def test_replay_by_status_takes_only_failed_or_quarantined(ctx):
    put(ctx, "q-1", "orders/create", b"not json", "quarantined", "old")
    put(ctx, "q-2", "orders/create", order_body("orders/create", "80", "2024-01-01T00:00:00Z"), "quarantined", "old")
    results = {r.id: r for r in replay_status(ctx, "quarantined")}
    assert set(results) == {"q-1", "q-2"}
    assert results["q-1"].status == "quarantined"
    assert results["q-1"].detail.startswith("still quarantined: body is not valid JSON")
    assert results["q-2"].status == "queued"
    with pytest.raises(ValueError):
        replay_status(ctx, "ignored")


@pytest.fixture
def delayed(redis, redis_url):
    """A worker context whose retry delays come from ORDERHOOKS_RETRY_DELAYS."""
    registry.clear()
    settings = Settings.from_env({"REDIS_URL": redis_url, "ORDERHOOKS_SECRETS": SECRET,
                                  "ORDERHOOKS_RETRY_DELAYS": "7,600"})
    context = Context.create(settings, redis=redis, load=False)
    set_context(context)
    yield context
    set_context(None)
    registry.clear()


def seconds_until(iso: str) -> float:
    return (datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds()


def test_retry_delays_set_next_attempt_and_the_scheduled_gauge(delayed):
    ctx = delayed
    assert ctx.settings.retry_delays == (7, 600)

    @on("orders/create")
    def broken(event):
        raise RuntimeError("downstream is down")

    name = f"{broken.__module__}.{broken.__qualname__}"
    gauge = parse(render(ctx))
    assert value(gauge, "orderhooks_handler_retries_scheduled") == 0
    d = Delivery(id="r-1", topic="orders/create", shop=SHOP, raw=order_body("orders/create", "90"), order_id="90")
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ctx.settings.event_ttl)
    jobs.process_events([ref("r-1")])
    outcome = load_event(ctx.redis, ctx.keys, ref("r-1")).handlers[name]
    assert (outcome["status"], outcome["attempts"]) == ("retrying", 1)
    assert 5 < seconds_until(outcome["nextAttemptAt"]) <= 7, "the first delay"
    scheduled = ScheduledJobRegistry(queue=ctx.queue)
    [job_id] = scheduled.get_job_ids()
    due = ctx.redis.zscore(scheduled.key, job_id)  # RQ schedules the job for when nextAttemptAt says
    assert 5 < due - datetime.now(UTC).timestamp() <= 7
    assert value(parse(render(ctx)), "orderhooks_handler_retries_scheduled") == 1

    run_handler(ctx, ref("r-1"), name)  # the retry, as the scheduler would run it
    outcome = load_event(ctx.redis, ctx.keys, ref("r-1")).handlers[name]
    assert (outcome["status"], outcome["attempts"]) == ("retrying", 2)
    assert 590 < seconds_until(outcome["nextAttemptAt"]) <= 600, "the second delay"
    assert value(parse(render(ctx)), "orderhooks_handler_retries_scheduled") == 2, "the run one is still registered"

    run_handler(ctx, ref("r-1"), name)
    record = load_event(ctx.redis, ctx.keys, ref("r-1"))
    assert record.handlers[name]["status"] == "failed" and "nextAttemptAt" not in record.handlers[name]
    assert record.status == "failed"
    assert value(parse(render(ctx)), "orderhooks_handler_retries_scheduled") == 2, "no third retry is scheduled"
    assert value(parse(render(ctx)), "orderhooks_events", status="failed") == 1
