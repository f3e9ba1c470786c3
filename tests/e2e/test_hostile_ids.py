"""Ids, shops and bodies as an attacker or a careless sender sends them, through the real processes.

Each case was found by probing a running instance: keys that collided, ids that could be stored but
not read back, and stored events whose pages answered 500.
"""

from __future__ import annotations

import base64
import html
import json
import uuid
from urllib.parse import quote

import httpx
import pytest

from storage import codec
from storage.keys import GENSTORE, Keys, part
from tests.conftest import TOKEN
from tests.support.payloads import order_body as with_order
from tests.support.stack import wait_for

API = "/api/202412"


@pytest.fixture
def inspector(stack):
    """An HTTP client signed in to the inspector of the stack's receiver."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        r = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303
        yield client


def order_path(order_id: str) -> str:
    return f"{API}/orders/{quote(order_id, safe='')}"


def event_path(event_id: str) -> str:
    return f"/api/events/{quote(event_id, safe='')}"


def processed(stack, event_id: str, shop: str) -> dict:
    def done():
        r = stack.api(event_path(event_id), shop=shop)
        return r.json()["event"] if r.status_code == 200 and r.json()["event"]["status"] != "queued" else None
    try:
        return wait_for(done, 20, what=f"event {event_id!r} to be processed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker's log ends:\n{stack.worker_says()}") from None


def test_keys_of_different_shops_and_orders_never_collide(stack):
    pairs = [("c1.genmystore.com:1", "2", "first"), ("c1.genmystore.com", "1:2", "second"),
             ("c1.genmystore.com", "5", "five"), ("c1.genmystore.com", "5:events", "reaches into 5's history")]
    ids = {}
    for shop, order_id, note in pairs:
        ids[(shop, order_id)] = event_id = str(uuid.uuid4())
        body = with_order("orders/create", order_id, "2024-05-01T00:00:00Z", note=note)
        assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    for shop, order_id, note in pairs:
        assert processed(stack, ids[(shop, order_id)], shop)["status"] == "processed"
        r = stack.api(order_path(order_id), shop=shop)
        assert r.status_code == 200, (shop, order_id, r.text)
        assert r.json()["order"]["note"] == note and r.json()["order"]["orderId"] == order_id
        history = stack.api("/api/events", shop=shop, orderId=order_id).json()["events"]
        assert [e["id"] for e in history] == [ids[(shop, order_id)]], (shop, order_id)
    listed = stack.api(f"{API}/orders", shop="c1.genmystore.com").json()["orders"]
    assert sorted(o["orderId"] for o in listed) == ["1:2", "5", "5:events"]


def test_ordinary_keys_stay_readable():
    keys = Keys()
    assert keys.order(GENSTORE, "acme.genmystore.com", "1001") == "orderhooks:order:genstore:acme.genmystore.com:1001"
    assert part("5:events") == "5%3Aevents" and part("a b*?[x]{y}%#\\") == "a%20b%2A%3F%5Bx%5D%7By%7D%25%23%5C"
    assert part("x" * 1000).startswith("#") and len(part("x" * 1000)) == 65
    assert part("#" + "0" * 64) != part("x" * 1000), "a literal can never look like a hashed component"


ODD_ORDER_IDS = ["a/b", "line\nbreak", "what?#frag", "100%", "sp ace", "ü-1", "x" * 300, "../..", "5:events"]


@pytest.mark.parametrize("order_id", ODD_ORDER_IDS)
def test_every_stored_order_id_reads_back_through_every_route(stack, inspector, order_id):
    shop = "odd.genmystore.com"
    event_id = str(uuid.uuid4())
    body = with_order("orders/create", order_id, "2024-05-01T00:00:00Z", note="odd")
    assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    assert processed(stack, event_id, shop)["orderId"] == order_id
    r = stack.api(order_path(order_id), shop=shop)
    assert r.status_code == 200 and r.json()["order"]["orderId"] == order_id
    history = stack.api("/api/events", shop=shop, orderId=order_id).json()["events"]
    assert [e["id"] for e in history] == [event_id]
    event_page = inspector.get(f"/ui/events/{event_id}", params={"shop": shop})
    assert event_page.status_code == 200
    link = html.unescape(event_page.text).split('href="/ui/orders/odd.genmystore.com/')[1].split('"')[0]
    order_page = inspector.get(f"/ui/orders/odd.genmystore.com/{link}")
    assert order_page.status_code == 200 and html.escape(order_id) in order_page.text


ODD_EVENT_IDS = ["evt/with/slashes", "evt with spaces", "evt?x=1#y", "evt%2F", "ünïcode-evt", "e" * 500]


@pytest.mark.parametrize("event_id", ODD_EVENT_IDS)
def test_every_event_id_is_kept_as_sent_and_reads_back(stack, inspector, event_id):
    shop = "ids.genmystore.com"
    raw_headers = {"X-Genstore-Event-Id": event_id.encode()}  # the UTF-8 bytes, as a sender sends them
    r = stack.post("orders/create", event_id="unused", shop=shop, headers=raw_headers)
    assert r.status_code in (200, 202) and r.json()["id"] == event_id
    again = stack.post("orders/create", event_id="unused", shop=shop, headers=raw_headers)
    assert again.json() == {"id": event_id, "status": "duplicate"}
    assert processed(stack, event_id, shop)["id"] == event_id
    page = inspector.get(f"/ui/events/{quote(event_id, safe='')}", params={"shop": shop})
    assert page.status_code == 200 and html.escape(event_id) in page.text


def test_a_utf8_shop_header_is_kept_and_a_shop_with_a_slash_reads_back(stack, inspector):
    for shop in ("bücher.genmystore.com", "a/b.genmystore.com"):
        event_id = str(uuid.uuid4())
        headers = {"X-Genstore-Shop-Domain": shop.encode()}
        assert stack.post("orders/create", event_id=event_id, shop="ignored", headers=headers).status_code == 202
        event = processed(stack, event_id, shop)
        assert event["shop"] == shop, "no mojibake"
        order = stack.api(order_path(event["orderId"]), shop=shop)
        assert order.status_code == 200 and order.json()["order"]["shop"] == shop
        page = inspector.get(f"/ui/events/{event_id}", params={"shop": shop})
        assert page.status_code == 200
        order_link = html.unescape(page.text.split('<dt>Order</dt><dd><a href="')[1].split('"')[0])
        assert inspector.get(order_link).status_code == 200, order_link
    listed = stack.api("/api/events", shop="bücher.genmystore.com").json()["events"]
    assert listed and all(e["shop"] == "bücher.genmystore.com" for e in listed)


@pytest.mark.parametrize("depth,shape", [(5000, "array"), (5000, "object"), (3000, "unknown field")])
def test_deeply_nested_bodies_are_quarantined_and_every_page_shows_them(stack, inspector, depth, shape):
    if shape == "array":
        body = ("[" * depth + "]" * depth).encode()
    elif shape == "object":
        body = ('{"a":' * depth + "1" + "}" * depth).encode()
    else:
        inner = '{"x":' * depth + "1" + "}" * depth
        body = with_order("orders/create", "7007", "2024-05-01T00:00:00Z").replace(
            b'"note"', b'"deep": ' + inner.encode() + b', "note"', 1)
    event_id = str(uuid.uuid4())
    shop = "deep.genmystore.com"
    assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    event = processed(stack, event_id, shop)
    assert event["status"] == "quarantined" and "nest" in event["error"]
    assert event["raw"] == body.decode()
    assert inspector.get(f"/ui/events/{event_id}", params={"shop": shop}).status_code == 200
    assert inspector.get("/ui", params={"shop": shop}).status_code == 200
    assert stack.api("/api/events", shop=shop).status_code == 200


def every_route_answers(stack, inspector, shop: str, order_id: str, event_id: str) -> None:
    """The order and event through the read API and the inspector: 200, and UTF-8 bodies."""
    for r in (stack.api(order_path(order_id), shop=shop), stack.api(f"{API}/orders", shop=shop),
              stack.api(event_path(event_id), shop=shop),
              inspector.get(f"/ui/orders/{shop}/{order_id}"),
              inspector.get(f"/ui/events/{event_id}", params={"shop": shop})):
        assert r.status_code == 200, (r.request.url, r.text[:200])
        r.content.decode("utf-8")


def test_a_stored_lone_surrogate_never_breaks_a_route(stack, inspector):
    """Text that cannot be UTF-8, as an older version could store it, still renders everywhere."""
    shop, order_id = "surrogate.genmystore.com", "8008"
    event_id = str(uuid.uuid4())
    assert stack.post("orders/create", with_order("orders/create", order_id, "2024-05-01T00:00:00Z"),
                      event_id=event_id, shop=shop).status_code == 202
    processed(stack, event_id, shop)
    key = Keys().order(GENSTORE, shop, order_id)
    projection = json.loads(codec.unpack(stack.redis.get(key)))  # stored compressed
    projection["order"]["note"] = "\ud800x"
    projection["order"]["email"] = "bob\udfff@example.com"
    stack.redis.set(key, json.dumps(projection))  # \ud800 escapes: valid JSON, not valid UTF-8 text
    every_route_answers(stack, inspector, shop, order_id, event_id)
    assert "\\ud800x" in stack.api(order_path(order_id), shop=shop).text


def test_a_lone_surrogate_in_a_signed_body_is_processed_and_readable(stack, inspector):
    shop, order_id = "halfemoji.genmystore.com", "8009"
    event_id = str(uuid.uuid4())
    body = with_order("orders/create", order_id, "2024-05-01T00:00:00Z").replace(
        b'"note"', b'"email": "bob\\ud800@example.com", "x-custom": "cut \\udfff", "note"', 1)
    body = body.replace(b'"note": ', b'"note": "\\ud800x", "ignored-note": ', 1)
    assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    event = processed(stack, event_id, shop)
    every_route_answers(stack, inspector, shop, order_id, event_id)
    if event["status"] == "processed":
        order = stack.api(order_path(order_id), shop=shop).json()["order"]
        assert order["note"] == "\ufffdx"


def test_a_body_that_is_not_utf8_is_kept_byte_for_byte(stack, inspector):
    shop, event_id = "latin.genmystore.com", str(uuid.uuid4())
    body = '{"order": {"orderId": "9009", "note": "caf\u00e9"}}'.encode("latin-1")
    assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    event = processed(stack, event_id, shop)
    assert event["status"] == "quarantined"
    assert event["raw"] is None and base64.b64decode(event["rawBase64"]) == body
    assert inspector.get(f"/ui/events/{event_id}", params={"shop": shop}).status_code == 200
