"""The read API's order filters over HTTP, against a small hand-built set of orders: exactly which
orders come back for each filter, for combinations of them, and page by page.

The in-process app on the session's real Redis; the orders go in as deliveries and are applied by
the worker's own job, so what is filtered is what a client would see.
"""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from receiver.app import create_app
from tests.conftest import TOKEN
from tests.support.payloads import order_body
from tests.support.store import store

SHOP = "filters.genmystore.com"
OTHER = "other.genmystore.com"

# id: (financialStatus, fulfillmentStatus, closedAt, cancelledAt, updatedAt)
ORDERS = {
    "1": ("paid", "fulfilled", "2024-01-01T00:00:00Z", None, "2024-01-01T00:00:00Z"),
    "2": ("pending", None, None, None, "2024-01-02T00:00:00+02:00"),  # 2024-01-01T22:00Z
    "3": ("refunded", "partial", None, "2024-01-03T00:00:00Z", "2024-01-03T00:00:00Z"),
    "10": ("paid", "partial", None, None, "2024-01-04T00:00:00-05:00"),  # 2024-01-04T05:00Z
    "11": ("paid", None, "2024-01-05T00:00:00Z", "2024-01-05T00:00:00Z", "2024-01-05T00:00:00Z"),
    "A-1": ("pending", None, None, None, "2024-01-06T00:00:00Z"),
}
ALL = ["1", "2", "3", "10", "11", "A-1"]  # numeric ids as numbers, then the others


def put_orders(ctx, shop: str, orders: dict) -> None:
    for order_id, (financial, fulfillment, closed, cancelled, updated) in orders.items():
        body = order_body("orders/update", order_id, updated, financialStatus=financial,
                          fulfillmentStatus=fulfillment, closedAt=closed, cancelledAt=cancelled)
        assert store(ctx, f"{shop}-{order_id}", "orders/update", body, shop=shop, process=True)


@pytest.fixture
def api(ctx, settings):
    put_orders(ctx, SHOP, ORDERS)
    with TestClient(create_app(settings)) as client:
        client.headers["X-Genstore-Access-Token"] = TOKEN
        yield client


def ids(api, **params) -> list[str]:
    r = api.get("/api/202412/orders", params=params)
    assert r.status_code == 200, r.text
    return [o["orderId"] for o in r.json()["orders"]]


def count(api, **params) -> int:
    r = api.get("/api/202412/orders/count", params=params)
    assert r.status_code == 200, r.text
    return r.json()["count"]


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ALL),
    ({"status": "any"}, ALL),
    ({"financialStatus": "paid"}, ["1", "10", "11"]),
    ({"financialStatus": "pending"}, ["2", "A-1"]),
    ({"financialStatus": "voided"}, []),
    ({"fulfillmentStatus": "partial"}, ["3", "10"]),
    ({"fulfillmentStatus": "fulfilled"}, ["1"]),
    ({"status": "open"}, ["2", "10", "A-1"]),
    ({"status": "closed"}, ["1", "11"]),
    ({"status": "cancelled"}, ["3", "11"]),
    # times compare as instants, whatever their offsets; both bounds are inclusive
    ({"updatedAtMin": "2024-01-01T22:00:00Z"}, ["2", "3", "10", "11", "A-1"]),
    ({"updatedAtMin": "2024-01-01T22:00:01Z"}, ["3", "10", "11", "A-1"]),
    ({"updatedAtMax": "2024-01-02T00:00:00+02:00"}, ["1", "2"]),
    ({"updatedAtMax": "2024-01-01T21:59:59Z"}, ["1"]),
    ({"updatedAtMin": "2024-01-04T00:00:00-05:00", "updatedAtMax": "2024-01-04T05:00:00Z"}, ["10"]),
    ({"updatedAtMin": "2024-01-03T00:00:00Z", "updatedAtMax": "2024-01-05T00:00:00Z"}, ["3", "10", "11"]),
    ({"updatedAtMin": "2024-01-04T00:00:00 05:00"}, ["10", "11", "A-1"]),  # "+05:00" sent unescaped
    # combinations
    ({"financialStatus": "paid", "status": "open"}, ["10"]),
    ({"financialStatus": "paid", "status": "closed"}, ["1", "11"]),
    ({"financialStatus": "paid", "fulfillmentStatus": "partial"}, ["10"]),
    ({"fulfillmentStatus": "partial", "status": "cancelled"}, ["3"]),
    ({"financialStatus": "pending", "updatedAtMax": "2024-01-05T00:00:00Z"}, ["2"]),
    ({"status": "open", "updatedAtMin": "2024-01-02T00:00:00Z"}, ["10", "A-1"]),
    ({"financialStatus": "paid", "status": "cancelled", "updatedAtMin": "2024-01-05T00:00:00Z"}, ["11"]),
    ({"sinceId": "3", "financialStatus": "paid"}, ["10", "11"]),
    ({"sinceId": "3", "status": "open"}, ["10", "A-1"]),
    # empty values mean absent
    ({"financialStatus": "", "status": "", "updatedAtMin": ""}, ALL),
])
def test_each_filter_and_combination_returns_exactly_its_orders(api, params, expected):
    assert ids(api, **params) == expected
    assert count(api, **params) == len(expected)


def test_limit_truncates_in_order_and_count_ignores_it(api):
    assert ids(api, limit="1") == ["1"]
    assert ids(api, limit="4") == ["1", "2", "3", "10"]
    assert ids(api, limit="250") == ALL
    assert ids(api, limit="2", financialStatus="paid") == ["1", "10"]
    assert count(api, limit="1") == len(ALL)
    assert count(api, limit="1", financialStatus="paid") == 3


def test_limit_defaults_to_50_and_at_most_250(ctx, api):
    many = {str(100 + n): ("paid", None, None, None, "2024-02-01T00:00:00Z") for n in range(60)}
    put_orders(ctx, SHOP, many)
    assert len(ids(api)) == 50
    assert len(ids(api, limit="250")) == 66
    assert api.get("/api/202412/orders", params={"limit": "251"}).status_code == 400


def test_since_id_pages_through_every_order_once(api):
    pages, since = [], None
    while True:
        page = ids(api, limit="2", **({"sinceId": since} if since else {}))
        if not page:
            break
        pages.append(page)
        since = page[-1]
    assert pages == [["1", "2"], ["3", "10"], ["11", "A-1"]]
    assert ids(api, sinceId="2") == ["3", "10", "11", "A-1"], "10 comes after 2: ids compare as numbers"
    assert ids(api, sinceId="10") == ["11", "A-1"]
    assert ids(api, sinceId="A-1") == []
    assert ids(api, sinceId="0") == ALL


def test_since_id_pages_a_filtered_list(api):
    first = ids(api, limit="1", status="open")
    second = ids(api, limit="1", status="open", sinceId=first[-1])
    third = ids(api, limit="1", status="open", sinceId=second[-1])
    assert [first, second, third] == [["2"], ["10"], ["A-1"]]
    assert ids(api, limit="1", status="open", sinceId="A-1") == []


def test_shop_may_be_left_out_only_while_one_shop_is_known(ctx, api):
    assert ids(api) == ALL
    assert api.get("/api/202412/orders/2").json()["order"]["orderId"] == "2"
    put_orders(ctx, OTHER, {"2": ("paid", None, None, None, "2024-03-01T00:00:00Z")})
    for path in ("/api/202412/orders", "/api/202412/orders/count", "/api/202412/orders/2"):
        r = api.get(path)
        assert r.status_code == 400, path
        assert r.json()["error"].startswith("shop: required when several shops are known"), r.text
        assert OTHER in r.json()["error"] and SHOP in r.json()["error"]
    assert ids(api, shop=SHOP) == ALL
    assert ids(api, shop=OTHER) == ["2"]
    assert ids(api, shop=OTHER.upper()) == ["2"], "shop domains are case-insensitive"
    assert count(api, shop=OTHER, financialStatus="pending") == 0
    assert api.get("/api/202412/orders/2", params={"shop": OTHER}).json()["order"]["updatedAt"] == (
        "2024-03-01T00:00:00Z")
    assert ids(api, shop="unknown.genmystore.com") == []


def test_bad_filter_values_are_400_naming_the_parameter(api):
    for params, name in (({"status": "opened"}, "status"), ({"updatedAtMin": "2024-01-01T00:00:00"}, "updatedAtMin"),
                         ({"updatedAtMax": "soon"}, "updatedAtMax"), ({"limit": "0"}, "limit"),
                         ({"limit": "x"}, "limit"), ({"since_id": "1"}, "since_id")):
        for path in ("/api/202412/orders", "/api/202412/orders/count"):
            r = api.get(path, params=params)
            assert r.status_code == 400, (path, params)
            assert r.json()["error"].startswith(name + ":"), r.text
