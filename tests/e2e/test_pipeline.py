"""End to end: real receiver and worker processes, real Redis. Failure cases first."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from schemas import TOPICS
from schemas.samples import example_for_topic, load
from tests.conftest import TOKEN
from tests.support.payloads import SHOP
from tests.support.payloads import order_body as with_order
from tests.support.signing import post_delivery, signed_headers
from tests.support.stack import base_env, start_web, stop, wait_for

pytestmark = pytest.mark.e2e


def shop() -> str:
    return f"s{uuid.uuid4().hex[:10]}.genmystore.com"


def stored_ids(stack) -> list[str]:
    """The ids of every stored event (a list: the same id stored twice would show twice)."""
    refs = [m.decode() for m in stack.redis.zrange("orderhooks:events", 0, -1)]
    pipe = stack.redis.pipeline()
    for ref in refs:
        pipe.hget(f"orderhooks:event:{ref}", "id")
    return [i.decode() for i in pipe.execute() if i is not None]


def not_stored(stack, event_id: str) -> bool:
    return stack.api(f"/api/events/{event_id}").status_code == 404


# --- refused deliveries -------------------------------------------------------------

def test_bad_signature_is_401_and_nothing_is_stored(stack):
    event_id = str(uuid.uuid4())
    r = stack.post("orders/create", event_id=event_id, secret="wrong-secret")
    assert r.status_code == 401
    assert "signature" in r.json()["error"]
    assert not_stored(stack, event_id)
    r = stack.post("orders/create", event_id=event_id, headers={"X-Genstore-Hmac-Sha256": ""})
    assert r.status_code == 401


def test_oversize_body_is_413_and_not_stored(stack):
    event_id = str(uuid.uuid4())
    body = b'{"order": {"note": "' + b"x" * 70_000 + b'"}}'
    r = stack.post("orders/create", body, event_id=event_id)
    assert r.status_code == 413
    assert not_stored(stack, event_id)


def test_oversize_chunked_body_is_413(stack):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = httpx.post(stack.url + "/webhooks/genstore", content=chunks(),
                   headers={"X-Genstore-Topic": "orders/create", "X-Genstore-Hmac-Sha256": "AAAA"}, timeout=10)
    assert r.status_code == 413


def test_malformed_json_is_queued_then_quarantined_by_the_worker_with_raw_bytes_kept(stack):
    raw = load("malformed_bash_block.txt")
    r = stack.post("orders/create", raw)
    assert r.status_code == 202
    body = r.json()
    assert body == {"id": body["id"], "status": "queued"}, "the receiver does not read the body"
    event = stack.wait_status(body["id"], "quarantined")
    assert event["raw"].encode() == raw
    assert event["error"].startswith("body is not valid JSON")
    assert event["orderId"] is None and event["normalized"] is None


def test_the_receiver_answers_without_normalizing(stack):
    """A receiver whose normalizer takes 30 s still answers at once: it stores the raw bytes and the worker
    (the stack's own, with the normal normalizer) processes them."""
    slow, url = start_web(stack.env, module="tests.e2e.slow_normalizer")
    try:
        body = with_order("orders/create", "5005", note="answered at once")
        started = time.monotonic()
        r = post_delivery(url, "orders/create", body, shop=SHOP)
        assert time.monotonic() - started < 3
        assert r.status_code == 202 and r.json()["status"] == "queued"
    finally:
        stop(slow)
    event = stack.wait_status(r.json()["id"], "processed")
    assert event["raw"].encode() == body and event["orderId"] == "5005"


def test_missing_shop_is_quarantined(stack):
    r = stack.post("orders/create", shop="")
    assert r.status_code == 202 and r.json()["status"] == "quarantined"
    assert "shop" in stack.event(r.json()["id"])["error"].lower()


def test_unknown_topic_is_ignored_but_stored(stack):
    r = stack.post("products/create", b'{"product": {}}')
    assert r.status_code == 200
    assert r.json()["status"] == "ignored"
    assert stack.event(r.json()["id"])["status"] == "ignored"


def test_redis_unreachable_is_503_with_retry_after(stack, redis_url):
    from orderhooks.embedded import free_port

    env = base_env(redis_url) | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc, url = start_web(env)
    try:
        stack_url, stack.url = stack.url, url
        r = stack.post("orders/create")
        stack.url = stack_url
        assert r.status_code == 503
        assert r.headers["Retry-After"]
        ready = httpx.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503
    finally:
        stop(proc)


def test_read_api_token_checks(stack):
    for path in ("/api/202412/orders", "/api/202412/orders/count", "/api/202412/orders/1001", "/api/events",
                 "/api/events/x"):
        assert stack.api(path, token=None).status_code == 401, path
        assert stack.api(path, token="wrong").status_code == 401, path
    assert stack.api("/api/events", token=TOKEN).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert stack.api(path, token=None).status_code == 200, path


def test_read_api_bad_parameters_are_400_naming_them(stack):
    for params, name in (({"limit": "0"}, "limit"), ({"limit": "251"}, "limit"), ({"status": "weird"}, "status"),
                         ({"updatedAtMin": "yesterday"}, "updatedAtMin"), ({"colour": "red"}, "colour")):
        r = stack.api("/api/202412/orders", shop="acme.genmystore.com", **params)
        assert r.status_code == 400, params
        assert r.json()["error"].startswith(name)


# --- the pipeline ---------------------------------------------------------------------

def test_all_seven_topics_are_processed(stack):
    s = shop()
    ids = {}
    for topic in sorted(TOPICS):
        r = stack.post(topic, shop=s)
        assert r.status_code == 202, (topic, r.text)
        assert r.json()["status"] == "queued"
        ids[topic] = r.json()["id"]
    for topic, event_id in ids.items():
        event = stack.wait_status(event_id, "processed", "stale")  # failed would be a broken handler
        assert event["topic"] == topic
        assert event["orderId"] == "1001"
        assert event["normalized"]["topic"] == topic
        stack.wait_calls(event_id, "record_everything")  # handlers run after the status is set
    order = stack.api("/api/202412/orders/1001", shop=s).json()["order"]
    assert order["shop"] == s
    assert order["orderId"] == "1001"
    assert order["totalPrice"] == "409.94"
    assert order["taxesIncluded"] is False
    assert order["lineItems"][0]["quantity"] == 1 and order["lineItems"][0]["grams"] == 500
    assert order["tags"] == ["imported", "vip"]
    assert order["paymentGatewayNames"] == ["authorize_net", "Cash on Delivery (COD)"]
    assert order["createdAt"] == "2008-01-10T11:00:00-05:00"
    assert [r["refundId"] for r in order["refunds"]] == ["909011"]
    assert order["totalRefunded"] == "200.84"  # the example refund's one successful transaction
    listed = stack.api("/api/202412/orders", shop=s).json()["orders"]
    assert [o["orderId"] for o in listed] == ["1001"]
    assert stack.api("/api/202412/orders/count", shop=s).json() == {"count": 1}
    history = stack.api("/api/events", shop=s, orderId="1001", limit="50").json()["events"]
    assert {e["id"] for e in history} == set(ids.values())


def test_duplicate_delivery_is_stored_once(stack):
    event_id = str(uuid.uuid4())
    s = shop()
    first = stack.post("orders/create", event_id=event_id, shop=s)
    second = stack.post("orders/create", event_id=event_id, shop=s)
    assert first.status_code == 202 and first.json() == {"id": event_id, "status": "queued"}
    assert second.status_code == 200 and second.json() == {"id": event_id, "status": "duplicate"}
    stack.wait_status(event_id, "processed")
    assert stored_ids(stack).count(event_id) == 1
    third = stack.post("orders/create", event_id=event_id, shop=s)
    assert third.json()["status"] == "duplicate"
    history = stack.api("/api/events", shop=s, orderId="1001").json()["events"]
    assert [e["id"] for e in history] == [event_id], "one stored copy"
    wait_for(lambda: stack.event(event_id)["handlers"]["tests.e2e.handlers_app.record_everything"]["status"]
             == "ok", what="the handler's outcome")  # recorded after the call: nothing more will run
    assert [c["handler"] for c in stack.calls(event_id)] == ["record_everything"]


def test_the_same_event_id_from_another_shop_is_another_event(stack):
    """De-duplication is per platform and shop: an id is unique only within its shop."""
    event_id = str(uuid.uuid4())
    a, b = shop(), shop()
    assert stack.post("orders/create", event_id=event_id, shop=a).status_code == 202
    other = stack.post("orders/create", with_order("orders/create", "77"), event_id=event_id, shop=b)
    assert other.status_code == 202 and other.json() == {"id": event_id, "status": "queued"}
    assert stored_ids(stack).count(event_id) == 2
    assert stack.api(f"/api/events/{event_id}", shop=a).json()["event"]["shop"] == a
    assert stack.api(f"/api/events/{event_id}", shop=b).json()["event"]["orderId"] == "77"
    ambiguous = stack.api(f"/api/events/{event_id}")
    assert ambiguous.status_code == 409
    assert sorted(s["shop"] for s in ambiguous.json()["shops"]) == sorted([a, b])
    assert stack.api(f"/api/events/{event_id}", shop="nope.genmystore.com").status_code == 404


def test_out_of_order_older_snapshot_is_stale(stack):
    s = shop()
    newer = stack.post("orders/update", with_order("orders/update", "2001", "2024-05-02T10:00:00+02:00",
                                                   note="newer"), shop=s).json()["id"]
    stack.wait_status(newer, "processed")
    older = stack.post("orders/create", with_order("orders/create", "2001", "2024-05-01T10:00:00+02:00",
                                                   note="older"), shop=s).json()["id"]
    event = stack.wait_status(older, "stale")
    assert event["stale"] is True
    order = stack.api("/api/202412/orders/2001", shop=s).json()["order"]
    assert order["note"] == "newer"
    assert order["updatedAt"] == "2024-05-02T10:00:00+02:00"
    calls = wait_for(lambda: stack.calls(older), what="handler call on the stale event")
    assert calls[0]["stale"] is True
    assert calls[0]["order_updated"] == "2024-05-02T10:00:00+02:00"


def test_refund_before_order_is_applied_when_order_arrives(stack):
    s = shop()
    refund = stack.post("refunds/create", with_order("refunds/create", "3001"), shop=s).json()["id"]
    stack.wait_status(refund, "processed")
    assert stack.api("/api/202412/orders/3001", shop=s).status_code == 404
    calls = wait_for(lambda: stack.calls(refund), what="refund handler")
    assert calls[0]["orderId"] == "3001" and calls[0]["order_updated"] is None and calls[0]["refund"]
    created = stack.post("orders/create", with_order("orders/create", "3001"), shop=s).json()["id"]
    stack.wait_status(created, "processed")
    order = stack.api("/api/202412/orders/3001", shop=s).json()["order"]
    assert len(order["refunds"]) == 1
    assert order["totalRefunded"] == "200.84"
    again = stack.post("refunds/create", with_order("refunds/create", "3001"), shop=s).json()["id"]
    stack.wait_status(again, "processed")
    order = stack.api("/api/202412/orders/3001", shop=s).json()["order"]
    assert len(order["refunds"]) == 1, "the same refund id accumulates once"
    assert order["totalRefunded"] == "200.84", "and is added once"


def test_handler_failing_once_is_retried_alone(stack):
    r = stack.post("orders/paid", shop=shop())
    event_id = r.json()["id"]
    wait_for(lambda: stack.event(event_id)["handlers"].get("tests.e2e.handlers_app.flaky_once", {})
             .get("status") == "ok", timeout=30, what="flaky handler to succeed on retry")
    event = stack.event(event_id)
    assert event["status"] == "processed"
    assert event["handlers"]["tests.e2e.handlers_app.flaky_once"]["attempts"] == 2
    assert event["handlers"]["tests.e2e.handlers_app.record_everything"]["status"] == "ok"
    names = [c["handler"] for c in stack.calls(event_id)]
    assert names.count("flaky_once") == 2
    assert names.count("record_everything") == 1, "the other handler is not re-run"
    assert event["attempts"] == 2, "the highest attempt count among stages and handlers"
    assert event["error"] is None, "cleared once the handler succeeded"


def test_duplicated_signature_or_topic_header_is_400_and_not_stored(stack):
    body = example_for_topic("orders/create")
    sig = signed_headers("orders/create", body)["X-Genstore-Hmac-Sha256"]
    for duplicated in (("X-Genstore-Hmac-Sha256", sig), ("X-Genstore-Topic", "orders/paid"),
                       ("X-Genstore-Event-Id", "other")):
        event_id = str(uuid.uuid4())
        headers = [("X-Genstore-Topic", "orders/create"), ("X-Genstore-Shop-Domain", "acme.genmystore.com"),
                   ("X-Genstore-Event-Id", event_id), ("X-Genstore-Hmac-Sha256", sig), duplicated]
        r = httpx.post(stack.url + "/webhooks/genstore", content=body, headers=headers, timeout=10)
        assert r.status_code == 400, duplicated
        assert duplicated[0].lower() in r.json()["error"]
        assert not_stored(stack, event_id)


def test_content_type_does_not_matter_the_signed_body_does(stack):
    r = stack.post("orders/create", headers={"Content-Type": "text/plain"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    form = b"order=1001&total=409.94"
    r = stack.post("orders/create", form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    event = stack.wait_status(r.json()["id"], "quarantined")
    assert event["raw"] == form.decode() and "JSON" in event["error"]


def test_oversized_headers(stack):
    long_id = "x" * 5000
    s = shop()
    r = stack.post("orders/create", event_id=long_id, shop=s)
    assert r.status_code == 202
    assert r.json()["id"] == long_id, "an over-long event id is kept as sent"
    assert stack.api(f"/api/events/{long_id}", shop=s).json()["event"]["id"] == long_id, "and reads back"
    again = stack.post("orders/create", event_id=long_id, shop=s)
    assert again.json() == {"id": r.json()["id"], "status": "duplicate"}, "and still de-duplicates"
    event_id = str(uuid.uuid4())
    huge = stack.post("orders/create", event_id=event_id, headers={"X-Padding": "p" * 200_000})
    assert huge.status_code == 431
    assert "headers" in huge.json()["error"]
    assert not_stored(stack, event_id)
