"""The read API's details over HTTP: exact error messages, the token, Redis away, how odd order ids
sort, and listing events page by page. In-process app, session Redis."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest

with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from orderhooks.embedded import free_port
from receiver.app import create_app
from storage.intake import make_delivery, store_deliveries
from tests.conftest import TOKEN
from tests.support.payloads import order_body
from tests.support.store import store
from workers import jobs

SHOP = "details.genmystore.com"


@pytest.fixture
def api(client):
    """The shared test client (`tests/conftest.py::client`), by the name these tests read best with."""
    return client


def error(api, path: str, params=None, status: int = 400) -> str:
    r = api.get(path, params=params)
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_bad_parameters_name_themselves_and_say_what_is_expected(api):
    orders = "/api/202412/orders"
    assert error(api, orders, {"limit": "0"}) == "limit: a whole number from 1 to 250"
    assert error(api, orders, {"limit": "9" * 5000}) == "limit: a whole number from 1 to 250"
    assert error(api, "/api/events", {"limit": "²"}) == "limit: a whole number from 1 to 250"
    assert error(api, orders, {"updatedAtMin": "2024-01-01T00:00:00"}) == (
        "updatedAtMin: the time needs an offset, e.g. 2024-01-01T00:00:00Z")
    assert error(api, orders, {"updatedAtMax": "soon"}) == (
        "updatedAtMax: an ISO 8601 time with offset, e.g. 2024-01-01T00:00:00-05:00")
    assert error(api, orders, {"sinceid": "1"}) == "sinceid: unknown parameter"
    assert error(api, orders, [("status", "open"), ("status", "open")]) == "status: given more than once"
    assert error(api, orders, {"status": "all"}) == "status: one of open, closed, cancelled, any"
    assert error(api, "/api/events", {"status": "done"}).startswith("status: one of queued, processed")
    assert api.get(orders, params={"limit": ""}).status_code == 200, "an empty limit is the default"


def test_the_token_is_required_and_nothing_opens_without_one(ctx, settings, api):
    assert api.get("/api/events", headers={"X-Genstore-Access-Token": ""}).status_code == 401
    r = TestClient(create_app(settings)).get("/api/events")
    assert r.status_code == 401 and r.json()["error"] == "missing or wrong X-Genstore-Access-Token"
    with TestClient(create_app(replace(settings, api_token=None))) as closed:
        for token in ("", "None", TOKEN):
            assert closed.get("/api/events", headers={"X-Genstore-Access-Token": token}).status_code == 401


def test_redis_away_is_503_with_retry_after(settings):
    gone = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(gone)) as client:
        r = client.get("/api/202412/orders", headers={"X-Genstore-Access-Token": TOKEN})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json() == {"error": "storage unavailable, retry later"}


def test_order_ids_sort_as_numbers_first_leading_zeros_ignored_then_the_rest(ctx, api):
    for order_id in ("Z", "40", "007", "8", "10", "A"):
        store(ctx, f"sort-{order_id}", "orders/create", order_body("orders/create", order_id), shop=SHOP,
              process=True)
    listed = api.get("/api/202412/orders", params={"shop": SHOP}).json()["orders"]
    assert [o["orderId"] for o in listed] == ["007", "8", "10", "40", "A", "Z"]
    assert {o["shop"] for o in listed} == {SHOP}
    one = api.get("/api/202412/orders/007", params={"shop": SHOP}).json()["order"]
    assert (one["orderId"], one["shop"]) == ("007", SHOP)
    assert [o["orderId"] for o in api.get("/api/202412/orders", params={"shop": SHOP, "sinceId": "9"})
            .json()["orders"]] == ["10", "40", "A", "Z"]


def test_events_are_listed_newest_first_page_after_page_with_every_filter(ctx, api):
    deliveries = [make_delivery(f"ev-{n:03d}", "orders/create" if n % 2 else "orders/update", SHOP,
                                order_body("orders/update", "1", f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z"),
                                received_at=1_700_000_000 + n)
                  for n in range(450)]
    other = order_body("orders/update", "1", "2024-01-01T00:00:00Z")
    deliveries.append(make_delivery("ev-other", "orders/update", "other.genmystore.com", other,
                                    received_at=1_600_000_000))
    deliveries.append(make_delivery("ev-bad", "orders/update", SHOP, b"not json", received_at=1_700_000_225.5))
    store_deliveries(ctx.redis, ctx.keys, ctx.queue, deliveries, ctx.settings.event_ttl)

    def ids(**params):
        r = api.get("/api/events", params=params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["events"]]

    assert ids(limit="250") == [f"ev-{n:03d}" for n in range(449, 225, -1)] + ["ev-bad"] + [
        f"ev-{n:03d}" for n in range(225, 200, -1)]
    assert len(ids()) == 50
    created = [f"ev-{n:03d}" for n in range(449, -1, -1) if n % 2]
    assert ids(topic="orders/create", limit="250") == created
    assert ids(status="queued", shop=SHOP, limit="3") == ["ev-449", "ev-448", "ev-447"]
    assert ids(orderId="1", limit="250") == [], "an event's order is known once the worker applied it"
    jobs.process_events([d.ref for d in deliveries])
    assert ids(topic="orders/update", status="quarantined") == ["ev-bad"]
    assert ids(topic="orders/create", status="quarantined") == []
    assert ids(orderId="1", shop="other.genmystore.com") == ["ev-other"]
    across = ids(orderId="1", limit="250")  # every shop's order 1, newest first
    assert across == [f"ev-{n:03d}" for n in range(449, 199, -1)]
    assert ids(shop="other.genmystore.com") == ["ev-other"], "a shop's events, past everyone else's"
