"""Reconciliation in-process against the real Redis and a fake Genstore Orders API (a real HTTP server)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime

import pytest
from cryptography.fernet import Fernet

from schemas.samples import example_for_topic
from storage.events import load_event
from storage.intake import make_delivery, store_deliveries
from storage.keys import GENSTORE, event_ref
from storage.queries import get_order, list_events
from storage.shops import add_shop, get_shop
from tests.fake_genstore import FakeGenstore
from workers import jobs
from workers.genstore import GenstoreClient, Retry
from workers.handlers import on
from workers.reconcile import ReconcileRefused, reconcile_shop, schedule_due

SHOP = "acme.genmystore.com"


@pytest.fixture
def api():
    with FakeGenstore(shop=SHOP) as fake:
        yield fake


@pytest.fixture
def rctx(ctx, api):
    """The context with a token key, and the fake API's shop registered."""
    ctx.settings = replace(ctx.settings, secret_key=(Fernet.generate_key().decode(),))
    add_shop(ctx.redis, ctx.keys, ctx.settings, SHOP, api.token, api_url=api.url)
    return ctx


def quick_client(api) -> GenstoreClient:
    return GenstoreClient(SHOP, api.url, api.token, retry=Retry(sleep=lambda s: None))


def webhook(ctx, event_id: str, order_id: str, updated_at: str, note: str) -> None:
    data = json.loads(example_for_topic("orders/update"))
    data["order"].update(orderId=order_id, updatedAt=updated_at, note=note)
    d = make_delivery(event_id, "orders/update", SHOP, json.dumps(data).encode())
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], ctx.settings.event_ttl)
    jobs.process_events([d.ref])


def test_missing_orders_are_healed_older_ones_updated_newer_ones_untouched(rctx, api):
    webhook(rctx, "w-older", "1002", "2024-05-01T09:00:00+00:00", "local, older")
    webhook(rctx, "w-newer", "1003", "2024-05-01T11:00:00+00:00", "local, newer")
    webhook(rctx, "w-same", "1004", "2024-05-01T10:00:00+00:00", "local, same time")
    for oid in ("1001", "1002", "1003", "1004"):
        api.add_order(oid, updated_at="2024-05-01T10:00:00+00:00", note=f"api {oid}")
    summary = reconcile_shop(rctx, SHOP, client=quick_client(api))
    assert summary.to_json() == {"shop": SHOP, "pages": 1, "seen": 4, "healed": 1, "updated": 1, "unchanged": 2,
                                 "quarantined": 0, "errors": 0, "failed": None}
    notes = {oid: get_order(rctx.redis, rctx.keys, GENSTORE, SHOP, oid)["note"] for oid in ("1001", "1002", "1003",
                                                                                            "1004")}
    assert notes == {"1001": "api 1001", "1002": "api 1002", "1003": "local, newer", "1004": "local, same time"}
    healed = list_events(rctx.redis, rctx.keys, order_id="1001", shop=SHOP)
    assert [(e.topic, e.source, e.status) for e in healed] == [("orders/reconcile", "reconcile", "processed")]
    assert healed[0].id.startswith("reconcile:1001:")
    assert json.loads(healed[0].raw)["order"] == json.loads(api.order_text("1001")), "the page's text, as sent"
    assert not list_events(rctx.redis, rctx.keys, order_id="1003", shop=SHOP, topic="orders/reconcile"), \
        "unchanged orders store nothing"
    again = reconcile_shop(rctx, SHOP, client=quick_client(api), full=True)
    assert (again.healed, again.updated, again.unchanged) == (0, 0, 4), "a second run heals nothing"
    assert get_shop(rctx.redis, rctx.keys, SHOP).last_run.ok


def test_handlers_fire_on_the_workers_with_source_reconcile(rctx, api):
    seen = []
    on("orders/*")(lambda event: seen.append((event.topic, event.source, event.order_id)))
    api.add_order("2001")
    reconcile_shop(rctx, SHOP, client=quick_client(api))
    [job] = [j for j in rctx.queue.jobs if j.func_name == "workers.jobs.resume_pending"]
    jobs.resume_pending(*job.args)  # one job for the page's events, run as a worker runs it
    assert seen == [("orders/reconcile", "reconcile", "2001")]


def test_a_malformed_order_is_quarantined_and_the_run_goes_on(rctx, api):
    api.add_order("3001")
    api.add_raw_order("3002", '{"orderId": "3002", "updatedAt": "2024-05-01T10:00:00Z", "totalPrice": "abc"}')
    api.add_order("3003")
    summary = reconcile_shop(rctx, SHOP, client=quick_client(api))
    assert (summary.healed, summary.quarantined, summary.failed) == (2, 1, None)
    [bad] = list_events(rctx.redis, rctx.keys, order_id="3002", shop=SHOP)
    assert bad.status == "quarantined" and "totalPrice" in bad.error and bad.source == "reconcile"
    assert summary.exit_code == 0


def test_a_refused_token_fails_the_run_with_exit_3_and_keeps_what_was_applied(rctx, api):
    api.add_order("4001")
    client = GenstoreClient(SHOP, api.url, "wrong-token", retry=Retry(sleep=lambda s: None))
    summary = reconcile_shop(rctx, SHOP, client=client)
    assert summary.exit_code == 3 and SHOP in summary.failed
    run = get_shop(rctx.redis, rctx.keys, SHOP).last_run
    assert not run.ok and run.error == summary.failed


def test_429_and_503_are_waited_out(rctx, api):
    for n in range(300):
        api.add_order(str(5000 + n))
    api.fail(429, times=1, retry_after="0")
    api.fail(503, times=2)
    summary = reconcile_shop(rctx, SHOP, client=quick_client(api))
    assert (summary.pages, summary.seen, summary.healed, summary.failed) == (2, 300, 300, None)


def test_a_page_repeating_ids_counts_each_once(rctx, api):
    for n in range(260):
        api.add_order(str(6000 + n))
    api.repeat_ids(repeat=5)
    summary = reconcile_shop(rctx, SHOP, client=quick_client(api))
    assert summary.seen == 260 and summary.healed == 260


def test_the_next_run_reads_from_the_last_successful_start_less_the_overlap(rctx, api):
    api.add_order("7001")
    before = time.time()
    reconcile_shop(rctx, SHOP, client=quick_client(api))
    reconcile_shop(rctx, SHOP, client=quick_client(api))
    asked = api.list_requests()[-1].query.get("updatedAtMin")
    moment = datetime.fromisoformat(asked.replace("Z", "+00:00"))
    assert before - 300 - 1 <= moment.timestamp() <= time.time() - 300
    assert api.list_requests()[0].query.get("updatedAtMin") is None, "a shop's first run reads all"


def test_one_run_per_shop_at_a_time(rctx, api):
    rctx.redis.set(rctx.keys.reconcile_lock(SHOP), "someone-else", ex=60)
    with pytest.raises(ReconcileRefused) as info:
        reconcile_shop(rctx, SHOP, client=quick_client(api))
    assert info.value.exit_code == 1 and "in progress" in str(info.value)


def test_an_unregistered_or_bigcommerce_shop_is_refused(rctx, api):
    with pytest.raises(ReconcileRefused) as info:
        reconcile_shop(rctx, "other.genmystore.com")
    assert info.value.exit_code == 2
    add_shop(rctx.redis, rctx.keys, rctx.settings, "store-abc.mybigcommerce.com", "tok-123456", platform="bigcommerce")
    with pytest.raises(ReconcileRefused) as info:
        reconcile_shop(rctx, "store-abc.mybigcommerce.com")
    assert info.value.exit_code == 2


def test_the_schedule_enqueues_each_shop_once_per_interval(rctx, api):
    rctx.settings = replace(rctx.settings, reconcile_every=3600)
    assert schedule_due(rctx) == [SHOP]
    assert schedule_due(rctx) == [], "another worker in the same interval enqueues nothing"
    [job] = [j for j in rctx.queue.jobs if j.func_name == "workers.jobs.reconcile_shop"]
    assert job.args == [SHOP]
    rctx.settings = replace(rctx.settings, reconcile_every=0)
    rctx.redis.delete(rctx.keys.reconcile_due(SHOP))
    assert schedule_due(rctx) == [], "0 turns the schedule off"


def test_a_reconcile_event_quarantined_then_fixed_is_replayable(rctx, api):
    api.add_raw_order("8001", '{"orderId": "8001", "updatedAt": "2024-05-01T10:00:00Z", "totalPrice": "abc"}')
    reconcile_shop(rctx, SHOP, client=quick_client(api))
    [bad] = list_events(rctx.redis, rctx.keys, order_id="8001", shop=SHOP)
    from storage.replay import replay

    result = replay(rctx, bad.ref)
    assert result.status == "quarantined" and "totalPrice" in result.detail, "still unprocessable: says why"
    assert load_event(rctx.redis, rctx.keys, event_ref(GENSTORE, SHOP, bad.id)).status == "quarantined"
