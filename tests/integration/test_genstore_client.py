"""The Orders API client against the fake Genstore API (a real HTTP server on loopback), faults first."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from tests.fake_genstore import FakeGenstore, seed_list_text
from workers.genstore import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    GenstoreAuthError,
    GenstoreClient,
    GenstoreHTTPError,
    GenstoreNotFound,
    GenstorePagingError,
    GenstoreResponseError,
    GenstoreUnavailable,
    Retry,
    list_query,
    retry_after,
    split_orders,
)

SHOP = "acme.genmystore.com"


class Sleeps:
    """Records the waits the client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def api():
    with FakeGenstore() as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(api, sleeps):
    retry = Retry(attempts=4, base=0.5, cap=8.0, budget=60.0, sleep=sleeps, random=lambda: 1.0)
    with GenstoreClient(SHOP, api.url, api.token, retry=retry) as c:
        yield c


def _orders(api: FakeGenstore, n: int, start: int = 1001) -> list[str]:
    ids = [str(i) for i in range(start, start + n)]
    for i in ids:
        api.add_order(i, updated_at=f"2024-05-01T10:{int(i) % 60:02d}:00+00:00")
    return ids


# -- faults ------------------------------------------------------------------------------------------------------

def test_a_wrong_token_fails_at_once_naming_the_shop(api, sleeps):
    _orders(api, 1)
    with GenstoreClient(SHOP, api.url, "shpat_wrong", retry=Retry(sleep=sleeps)) as c:
        with pytest.raises(GenstoreAuthError) as info:
            c.get_order("1001")
    assert info.value.status == 401 and SHOP in str(info.value) and "Invalid API key" in str(info.value)
    assert "shpat_wrong" not in str(info.value)
    assert len(api.requests) == 1 and sleeps.waits == []


def test_403_fails_at_once_too(api, client, sleeps):
    api.fail(403, body={"errors": "read_orders scope missing"})
    with pytest.raises(GenstoreAuthError, match="403: read_orders scope missing"):
        client.count_orders()
    assert len(api.requests) == 1 and sleeps.waits == []


def test_429_is_retried_after_the_seconds_retry_after_asks(api, client, sleeps):
    _orders(api, 1)
    api.fail(429, times=2, retry_after="7")
    assert client.get_order("1001").order_id == "1001"
    assert sleeps.waits == [7.0, 7.0] and len(api.requests) == 3


def test_429_with_an_http_date_retry_after(api, client, sleeps):
    _orders(api, 1)
    api.fail(429, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True))
    client.get_order("1001")
    assert len(sleeps.waits) == 1 and 17 <= sleeps.waits[0] <= 20


def test_429_asking_for_more_than_the_budget_gives_up_at_once(api, client, sleeps):
    api.fail(429, retry_after="3600")
    with pytest.raises(GenstoreUnavailable, match="retry budget"):
        client.count_orders()
    assert sleeps.waits == [] and len(api.requests) == 1


def test_503_is_retried_with_exponential_backoff(api, client, sleeps):
    _orders(api, 1)
    api.fail(503, times=3)
    assert client.count_orders() == 1
    assert sleeps.waits == [0.5, 1.0, 2.0]  # random() is 1 here: the top of each full-jitter range


def test_backoff_is_full_jitter_and_capped():
    draws = iter([0.25, 0.0, 1.0])
    retry = Retry(base=1.0, cap=4.0, random=lambda: next(draws))
    assert [retry.backoff(0), retry.backoff(1), retry.backoff(10)] == [0.25, 0.0, 4.0]


def test_5xx_until_the_tries_are_spent_is_a_clear_error(api, client, sleeps):
    api.fail(502, times=10, body={"errors": "bad gateway"})
    with pytest.raises(GenstoreUnavailable) as info:
        client.count_orders()
    assert "502: bad gateway" in str(info.value) and "gave up after 4 tries" in str(info.value)
    assert SHOP in str(info.value) and len(api.requests) == 4 and len(sleeps.waits) == 3


def test_a_hang_longer_than_the_read_timeout_is_retried(api, sleeps):
    _orders(api, 1)
    api.hang(3.0, times=1)
    timeout = httpx.Timeout(0.3, connect=1.0)
    with GenstoreClient(SHOP, api.url, api.token, retry=Retry(sleep=sleeps), timeout=timeout) as c:
        started = time.monotonic()
        assert c.get_order("1001").order_id == "1001"
    assert time.monotonic() - started < 2.5 and len(sleeps.waits) == 1 and len(api.requests) == 2


def test_a_network_error_is_retried_then_reported(sleeps):
    with FakeGenstore() as fake:
        url = fake.url  # a port nothing listens on once the fake has stopped
    with GenstoreClient(SHOP, url, "t", retry=Retry(attempts=3, sleep=sleeps)) as c:
        with pytest.raises(GenstoreUnavailable, match="ConnectError.*gave up after 3 tries"):
            c.count_orders()
    assert len(sleeps.waits) == 2


def test_creating_is_not_retried_after_a_5xx_or_a_timeout(api, sleeps):
    api.fail(500, path="/orders", method="POST")
    with GenstoreClient(SHOP, api.url, api.token, retry=Retry(sleep=sleeps)) as c:
        with pytest.raises(GenstoreHTTPError, match="500.*not retried"):
            c.create_order({"email": "a@example.com"})
        api.hang(3.0, path="/orders", method="POST")
    with GenstoreClient(SHOP, api.url, api.token, retry=Retry(sleep=sleeps),
                        timeout=httpx.Timeout(0.3, connect=1.0)) as c:
        with pytest.raises(GenstoreUnavailable, match="ReadTimeout.*not retried"):
            c.create_order({"email": "a@example.com"})
    assert sleeps.waits == [] and len([r for r in api.requests if r.method == "POST"]) == 2


def test_creating_is_retried_after_a_429(api, client, sleeps):
    api.fail(429, retry_after="1", method="POST", path="/orders")
    assert client.create_order({"email": "a@example.com"}).email == "a@example.com"
    assert sleeps.waits == [1.0]


def test_other_4xx_fail_at_once_with_status_and_message(api, client, sleeps):
    with pytest.raises(GenstoreNotFound) as info:
        client.get_order("999")
    assert info.value.status == 404 and "404 from the Orders API: Not Found" in str(info.value)
    api.fail(422, body={"errors": {"email": ["is invalid"]}})
    with pytest.raises(GenstoreHTTPError, match='422 from the Orders API: {"email": \\["is invalid"\\]}'):
        client.update_order("1001", email="x")
    assert sleeps.waits == []


def test_a_2xx_that_is_not_an_order_is_a_response_error(api, client):
    api.fail(200, body={"order": {"orderId": "1001"}}, path="/orders/1001")  # no updatedAt
    with pytest.raises(GenstoreResponseError, match="order.updatedAt: missing"):
        client.get_order("1001")
    api.fail(200, body={"orders": "nope"}, path="/orders")
    with pytest.raises(GenstoreResponseError, match="not .*orders.* JSON"):
        client.list_orders()
    api.fail(200, body={"count": "many"})
    with pytest.raises(GenstoreResponseError, match="count: not a count"):
        client.count_orders()


def test_a_malformed_order_does_not_fail_its_page(api, client):
    _orders(api, 2)
    bad = api.add_raw_order("1003", '{"orderId": "1003", "updatedAt": "2024-05-01T10:00:00+00:00", '
                                    '"totalPrice": "abc"}')
    no_id = api.add_raw_order("1004", '{"note": "no id", "updatedAt": "2024-05-01T10:00:00+00:00"}')
    page = client.list_orders(limit=10)
    assert [o.ok for o in page.orders] == [True, True, False, False]
    assert page.orders[2].raw == bad and page.orders[2].order_id == "1003"
    assert page.orders[2].error == "order.totalPrice: not a decimal amount ('abc')"
    assert page.orders[3].raw == no_id and page.orders[3].order_id is None
    assert page.orders[3].error == "order.orderId: missing"


def test_a_page_that_ignores_since_id_raises_instead_of_looping(api, client):
    _orders(api, 5)
    api.ignore_since_id(times=5)
    pages = client.iter_pages(limit=2)
    assert [o.order_id for o in next(pages).orders] == ["1001", "1002"]
    with pytest.raises(GenstorePagingError, match="the API ignored sinceId"):
        next(pages)
    assert len(api.list_requests()) == 2


def test_a_page_repeating_ids_yields_each_order_once(api, client):
    ids = _orders(api, 5)
    api.repeat_ids(repeat=1, times=5)
    assert [o.order_id for o in client.iter_orders(limit=2)] == ids
    # pages: 1001,1002 | 1002,1003 | 1003,1004 | 1004,1005 | 1005 (short)
    assert [r.query.get("sinceId") for r in api.list_requests()] == [None, "1002", "1003", "1004", "1005"]


# -- paging ------------------------------------------------------------------------------------------------------

def test_paging_walks_every_order_by_numeric_id_and_stops_on_a_short_page(api, client):
    ids = [str(i) for i in (5, 40, 300, 1001, 1002, 20000)]
    for i in reversed(ids):
        api.add_order(i)
    assert [o.order_id for o in client.iter_orders(limit=2)] == ids
    queries = [r.query for r in api.list_requests()]
    assert queries == [{"limit": "2"}, {"limit": "2", "sinceId": "40"}, {"limit": "2", "sinceId": "1001"},
                       {"limit": "2", "sinceId": "20000"}]  # the last page is empty: short


def test_paging_stops_on_a_short_page_without_asking_again(api, client):
    _orders(api, 3)
    assert len(list(client.iter_orders(limit=2))) == 3
    assert len(api.list_requests()) == 2


def test_updated_at_min_and_since_id_are_sent_and_applied(api, client):
    api.add_order("1001", updated_at="2024-01-01T00:00:00+00:00")
    api.add_order("1002", updated_at="2024-06-01T00:00:00+00:00")
    api.add_order("1003", updated_at="2024-06-02T00:00:00-04:00")
    since = datetime(2024, 5, 1, tzinfo=UTC)
    assert [o.order_id for o in client.iter_orders(updated_at_min=since)] == ["1002", "1003"]
    assert api.list_requests()[0].query == {"limit": "250", "updatedAtMin": "2024-05-01T00:00:00+00:00"}
    assert [o.order_id for o in client.iter_orders(since_id="1002")] == ["1003"]
    assert client.count_orders(updated_at_min=since) == 2


def test_the_list_query_is_built_in_one_place_and_limits_are_checked():
    assert list_query(250, "1001", "2024-05-01T00:00:00Z") == {"limit": "250", "sinceId": "1001",
                                                               "updatedAtMin": "2024-05-01T00:00:00Z"}
    with pytest.raises(ValueError, match="limit"):
        list_query(251)
    with pytest.raises(ValueError, match="timezone"):
        list_query(10, updated_at_min=datetime(2024, 1, 1))


def test_the_timeouts_are_five_and_thirty_seconds(api):
    assert (CONNECT_TIMEOUT, READ_TIMEOUT) == (5.0, 30.0)
    with GenstoreClient(SHOP, api.url, api.token) as c:
        assert c._http.timeout.connect == 5.0 and c._http.timeout.read == 30.0


# -- the seed's shapes -------------------------------------------------------------------------------------------

def test_the_seed_list_response_normalizes_and_keeps_each_orders_text():
    text = seed_list_text()
    [(raw, value)] = split_orders(text)
    assert raw in text and json.loads(raw) == json.loads(text)["orders"][0]
    assert raw.startswith('{\n"note": "Customer changed their mind."') and raw.endswith('"defaultAddress": ""\n}\n}')


def test_the_seed_order_read_through_the_api_is_normalized(api, client):
    served = api.add_order("1001", updated_at="2012-08-24T14:02:15-04:00")
    page = client.list_orders()
    [listed] = page.orders
    assert listed.raw == served  # exactly as the page sent it
    assert json.loads(listed.body) == {"order": json.loads(served)}
    order = listed.order
    assert order.payment_gateway_names == ["authorize_net", "Cash on Delivery (COD)"]  # JSON text in the seed
    assert order.customer.tax_exemptions == ["CA_STATUS_CARD_EXEMPTION", "CA_BC_RESELLER_EXEMPTION"]
    assert order.fulfillments[0].updated_at == datetime.fromisoformat("2022-01-01T11:00:00-01:00")  # stray quote
    assert order.tags == ["imported", "vip"] and order.total_price == Decimal("409.94")
    assert order.updated_at == datetime.fromisoformat("2012-08-24T14:02:15-04:00")
    assert client.get_order("1001") == order
    assert client.count_orders() == 1  # the seed sends {"count": "500"}: a string


def test_every_request_sends_the_access_token(api, client):
    _orders(api, 1)
    client.get_order("1001")
    client.count_orders()
    list(client.iter_orders())
    assert {r.headers["x-genstore-access-token"] for r in api.requests} == {api.token}


def test_update_sends_what_the_seed_shows_and_returns_the_order(api, client):
    _orders(api, 1)
    order = client.update_order("1001", tags=["gift", " vip"], note="Leave at the door")
    sent = api.requests[-1]
    assert (sent.method, sent.path) == ("PUT", "/orders/1001")
    assert sent.json() == {"order": {"orderId": "1001", "tags": "gift, vip", "note": "Leave at the door"}}
    assert order.tags == ["gift", "vip"] and order.note == "Leave at the door"


def test_cancel_sends_reason_and_order_id(api, client):
    _orders(api, 1)
    order = client.cancel_order("1001", reason="customer")
    assert api.requests[-1].json() == {"reason": "customer", "orderId": "1001"}
    assert api.requests[-1].path == "/orders/1001/cancel"
    assert order.cancelled_at is not None and order.cancel_reason == "customer"


def test_create_sends_the_order_wrapped_and_returns_it(api, client):
    created = client.create_order({"email": "new@example.com", "totalPrice": "12.50",
                                   "paymentGatewayNames": ["COD"]})
    assert api.requests[-1].json() == {"order": {"email": "new@example.com", "totalPrice": "12.50",
                                                 "paymentGatewayNames": ["COD"]}}
    assert created.order_id == "1001" and created.total_price == Decimal("12.50")
    assert client.get_order(created.order_id).email == "new@example.com"


def test_order_ids_are_escaped_in_the_path(api, client):
    api.add_order("A 1:x?y#z")
    assert client.get_order("A 1:x?y#z").order_id == "A 1:x?y#z"


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("12") == 12.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None
