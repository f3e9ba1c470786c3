"""BigCommerce hydration in-process: the real Redis, the worker's processing job, a fake V2 API (a real HTTP
server) with scripted faults, latency and a quota."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import pytest
from cryptography.fernet import Fernet

from orderhooks.config import Settings
from platforms import bigcommerce as platform
from storage.events import load_event
from storage.intake import store_deliveries
from storage.queries import OrderFilter, get_order, list_orders
from storage.replay import replay
from storage.shops import add_shop
from tests.fake_bigcommerce import SHOP, FakeBigCommerce
from workers import jobs
from workers.handlers import on

HEADER = ("x-orderhooks-key", "hook-key-1234567890")


@pytest.fixture
def api():
    with FakeBigCommerce() as fake:
        yield fake


@pytest.fixture
def bctx(ctx, api, monkeypatch):
    """The context with a token key and BigCommerce's custom header configured, the fake store registered,
    and V2 requests that time out after half a second."""
    ctx.settings = replace(ctx.settings, secret_key=(Fernet.generate_key().decode(),), bigcommerce_header=HEADER)
    add_shop(ctx.redis, ctx.keys, ctx.settings, SHOP, api.token, api_url=api.url, platform="bigcommerce")
    pool, _ = platform._shared()
    monkeypatch.setattr(platform, "_http", httpx.Client(timeout=httpx.Timeout(0.5, connect=1.0)))
    monkeypatch.setattr(platform.BigCommerceClient, "base", 0.01)
    return ctx


def envelope(scope: str, order_id: int | None = 250, n: int = 0, status: dict | None = None) -> bytes:
    data: dict = {"type": "order"}
    if order_id is not None:
        data["id"] = order_id
    if status:
        data["status"] = status
    return json.dumps({"scope": scope, "store_id": "1025646", "data": data, "hash": f"h{n}",
                       "created_at": 1561479335 + n, "producer": "stores/abc123"}).encode()


def deliver(ctx, *bodies: bytes) -> list[str]:
    """Triage and store deliveries as the receiver does; their refs."""
    deliveries = [platform.accept({HEADER[0]: HEADER[1]}, body, ctx.settings, {}) for body in bodies]
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, deliveries, ctx.settings.event_ttl)
    return [d.ref for d in deliveries]


def event(ctx, ref: str):
    return load_event(ctx.redis, ctx.keys, ref)


def test_an_event_is_hydrated_from_the_v2_api_and_becomes_the_canonical_order(bctx, api):
    api.add_order(250)
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "processed", rec.error
    assert [r.path.rsplit("/v2", 1)[1] for r in api.requests] == [
        "/orders/250", "/orders/250/products", "/orders/250/shipping_addresses"]
    assert all(r.headers["x-auth-token"] == api.token for r in api.requests)
    order = get_order(bctx.redis, bctx.keys, "bigcommerce", SHOP, "250")
    assert order["orderId"] == "250" and order["status"] == "Awaiting Fulfillment"
    assert order["financialStatus"] == "paid" and order["currency"] == "EUR"
    assert order["totalPrice"] == "253.5600" and order["lineItems"][0]["sku"] == "SLCTBS"
    assert order["totalRefunded"] == "0.0000" and order["refunds"] == [] and order["refundedByCurrency"] == {}
    assert rec.normalized["order"]["updatedAt"] == "2019-06-25T16:17:20Z"  # rebuilt from what was kept


def test_handlers_get_the_canonical_order_the_platform_and_the_status_change(bctx, api):
    seen = []

    @on("store/order/statusUpdated")
    def status_changed(e):
        seen.append(("status", e))

    @on("store/order/*")
    def any_order(e):
        seen.append(("any", e))

    api.add_order(250, status_id=2)
    [ref] = deliver(bctx, envelope("store/order/statusUpdated",
                                   status={"previous_status_id": 11, "new_status_id": 2}))
    jobs.process_events([ref])
    assert sorted(kind for kind, _ in seen) == ["any", "status"]
    e = seen[0][1]
    assert e.platform == "bigcommerce" and e.order.status == "Shipped" and e.order.financial_status == "paid"
    assert (e.previous_status_id, e.new_status_id) == (11, 2)
    assert e.order_id == "250" and e.shop == SHOP and e.api is None


def test_5xx_then_success_is_retried_inside_the_attempt(bctx, api):
    api.add_order(250)
    api.fail(503, times=2)
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    assert event(bctx, ref).status == "processed"
    assert len(api.requests) == 5


def test_a_failing_api_keeps_the_event_queued_then_failed_then_replayable(bctx, api):
    api.add_order(250)
    api.fail(503, times=1000)
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "queued" and rec.attempts == 1
    assert rec.error.startswith("hydrate: 503 from GET " + api.url + "/orders/250")
    for _ in range(2):  # the retries (ORDERHOOKS_RETRY_DELAYS=0,0 here), run as their jobs would
        jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "failed" and rec.error.startswith("hydrate: 503 from") and rec.attempts == 3
    api.faults.clear()
    assert replay(bctx, ref).action == "pipeline"
    jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "processed" and not rec.error


def test_a_timeout_is_a_retried_failure_naming_it(bctx, api):
    api.add_order(250)
    api.fail(200, times=1000, hang=2.0)
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "queued" and rec.error.startswith("hydrate: timeout from GET ")


def test_a_404_archives_a_stored_order_and_creates_nothing_for_an_unknown_one(bctx, api):
    api.add_order(250)
    [first] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([first])
    api.archive(250)
    [gone, unknown] = deliver(bctx, envelope("store/order/archived", n=1), envelope("store/order/archived", 999, 2))
    jobs.process_events([gone, unknown])
    assert event(bctx, gone).status == "processed"
    assert get_order(bctx.redis, bctx.keys, "bigcommerce", SHOP, "250")["archived"] is True
    closed = list_orders(bctx.redis, bctx.keys, "bigcommerce", SHOP, OrderFilter(status="closed"), 10)
    assert [o["orderId"] for o in closed] == ["250"]
    assert event(bctx, unknown).status == "processed"
    assert get_order(bctx.redis, bctx.keys, "bigcommerce", SHOP, "999") is None
    assert not bctx.redis.exists(bctx.keys.order("bigcommerce", SHOP, "999"))


def test_an_unregistered_store_fails_with_a_clear_reason_and_replays_once_added(bctx, api):
    api.add_order(250)
    bctx.redis.delete(bctx.keys.shop(SHOP))
    bctx.redis.srem(bctx.keys.shops_registered, SHOP)
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    rec = event(bctx, ref)
    assert rec.status == "failed"
    assert rec.error == (f"hydrate: store {SHOP} is not registered: orderhooks shops add {SHOP} "
                         "--platform bigcommerce --token TOKEN, then replay the event")
    assert api.requests == []
    add_shop(bctx.redis, bctx.keys, bctx.settings, SHOP, api.token, api_url=api.url, platform="bigcommerce")
    replay(bctx, ref)
    jobs.process_events([ref])
    assert event(bctx, ref).status == "processed"


def test_two_updates_out_of_order_the_newest_wins_and_the_late_one_is_stale(bctx, api):
    api.add_order(250)
    [created] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([created])
    api.modify(250, status_id=2)
    older, newer = deliver(bctx, envelope("store/order/updated", n=1), envelope("store/order/updated", n=2))
    jobs.process_events([newer])  # the newer envelope arrives first
    jobs.process_events([older])  # the older one, late: hydrating fetches the current state again
    assert event(bctx, newer).status == "processed"
    assert event(bctx, older).status == "stale"
    order = get_order(bctx.redis, bctx.keys, "bigcommerce", SHOP, "250")
    assert order["status"] == "Shipped" and order["updatedAt"] == "2019-06-25T16:17:21Z"


def test_a_spent_quota_is_waited_for_not_hammered(bctx, api):
    for oid in range(1, 5):
        api.add_order(oid)
    api.quota(limit=4, window_ms=600)
    refs = deliver(bctx, *(envelope("store/order/created", oid, oid) for oid in range(1, 5)))
    started = time.monotonic()
    jobs.process_events(refs)
    elapsed = time.monotonic() - started
    assert [event(bctx, r).status for r in refs] == ["processed"] * 4
    assert api.breaches == 0
    assert elapsed >= 1.0  # 12 requests at 4 per 600 ms: two waits for the reset
    assert bctx.redis.exists(bctx.keys.bigcommerce_quota(SHOP))


def test_a_429_is_waited_out_for_its_reset(bctx, api):
    api.add_order(250)
    api.fail(429, times=1, headers={"X-Rate-Limit-Time-Reset-Ms": "400", "X-Rate-Limit-Requests-Left": "0"})
    [ref] = deliver(bctx, envelope("store/order/created"))
    jobs.process_events([ref])
    assert event(bctx, ref).status == "processed"
    first, second = api.requests[0], api.requests[1]
    assert second.at - first.at >= 0.35  # not at once: after the reset the 429 named


def test_hydration_overlaps_within_a_bound_per_store(bctx, api):
    api.latency = 0.05
    n = 40
    for oid in range(1, n + 1):
        api.add_order(oid)
    refs = deliver(bctx, *(envelope("store/order/created", oid, oid) for oid in range(1, n + 1)))
    started = time.monotonic()
    jobs.process_events(refs)
    elapsed = time.monotonic() - started
    assert [event(bctx, r).status for r in refs] == ["processed"] * n
    assert 1 < api.max_in_flight <= platform.PER_STORE
    assert elapsed < n * 3 * 0.05 / 2  # at least twice as fast as one request at a time
    print(f"\n{n} events hydrated (3 requests each, 50 ms answers) in {elapsed:.2f} s: {n / elapsed:.0f} events/s")


def test_settings_read_bigcommerce_variables():
    s = Settings.from_env({"ORDERHOOKS_BIGCOMMERCE_SECRETS": "a-client-secret, another",
                           "ORDERHOOKS_BIGCOMMERCE_HEADER": "X-Hook-Key: abc 123"})
    assert s.bigcommerce_secret_keys == (b"a-client-secret", b"another")
    assert s.bigcommerce_header == ("x-hook-key", "abc 123")
    assert s.bigcommerce_configured and not s.genstore_configured
    s.require_verification()  # one platform configured is enough


def test_replaying_a_quarantined_envelope_triages_it_as_bigcommerce(bctx, api):
    [ref] = deliver(bctx, envelope("store/order/created", order_id=None))
    assert event(bctx, ref).error == "data.id: missing"
    result = replay(bctx, ref)
    assert (result.status, result.detail) == ("quarantined", "still quarantined: data.id: missing")
    assert event(bctx, ref).status == "quarantined"
