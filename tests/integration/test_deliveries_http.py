"""`POST /webhooks/genstore` over HTTP (the in-process app on the session's real Redis): the
de-duplication key in each of its forms, every row of the response table with the metric label it is
counted under, and the receiver leaving the body to the worker."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
import warnings
from dataclasses import replace
from urllib.parse import quote

import pytest

with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from orderhooks.embedded import free_port
from receiver.app import create_app
from schemas.samples import example_for_topic
from storage.events import unpack_body
from storage.keys import GENSTORE, event_ref
from tests.support.metrics import parse, value
from tests.support.normalizer import refusing, replace_normalizer
from tests.support.payloads import SHOP
from tests.support.signing import post_delivery, signed_headers
from workers import jobs

BODY = example_for_topic("orders/create")


def stored(client, event_id: str) -> dict | None:
    r = client.get(f"/api/events/{quote(event_id, safe='')}")
    assert r.status_code in (200, 404), r.text
    return r.json()["event"] if r.status_code == 200 else None


def post(client, headers: dict | list, body: bytes = BODY):
    return client.post("/webhooks/genstore", content=body, headers=headers)


# --- the de-duplication key --------------------------------------------------------------------

def test_the_event_id_header_is_the_key(client):
    event_id = str(uuid.uuid4())
    first = post_delivery(client, "orders/create", event_id=event_id)
    assert first.status_code == 202 and first.json() == {"id": event_id, "status": "queued"}
    again = post_delivery(client, "orders/create", event_id=event_id)
    assert again.status_code == 200 and again.json() == {"id": event_id, "status": "duplicate"}
    other_body = post_delivery(client, "orders/create", BODY + b" ", event_id=event_id)
    assert other_body.json() == {"id": event_id, "status": "duplicate"}, "the id decides, not the body"


def test_the_webhook_id_header_is_the_fallback_key(client):
    webhook_id = f"wh-{uuid.uuid4()}"
    first = post_delivery(client, "orders/create", event_id=None, headers={"X-Genstore-Webhook-Id": webhook_id})
    assert first.status_code == 202 and first.json() == {"id": webhook_id, "status": "queued"}
    again = post_delivery(client, "orders/create", event_id=None, headers={"X-Genstore-Webhook-Id": webhook_id})
    assert again.json() == {"id": webhook_id, "status": "duplicate"}
    assert stored(client, webhook_id)["topic"] == "orders/create"
    event_id = f"ev-{uuid.uuid4()}"
    both = post_delivery(client, "orders/create", event_id=event_id, headers={"X-Genstore-Webhook-Id": webhook_id})
    assert both.json() == {"id": event_id, "status": "queued"}, "the event id comes before the webhook id"


def test_without_an_id_a_hash_of_topic_shop_and_body_is_the_key(client):
    body = BODY.replace(b"1001", b"1002")
    first = post_delivery(client, "orders/create", body, event_id=None)
    assert first.status_code == 202 and first.json()["status"] == "queued"
    key = first.json()["id"]
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    assert post_delivery(client, "orders/create", body, event_id=None).json() == {"id": key, "status": "duplicate"}
    assert stored(client, key)["raw"].encode() == body
    others = [post_delivery(client, "orders/create", body + b"\n", event_id=None),
              post_delivery(client, "orders/update", body, event_id=None),
              post_delivery(client, "orders/create", body, event_id=None, shop="other.genmystore.com")]
    assert [r.json()["status"] for r in others] == ["queued"] * 3, "body, topic and shop each make another event"
    assert len({key, *(r.json()["id"] for r in others)}) == 4
    assert post_delivery(client, "orders/create", body, event_id=None,
                         headers={"X-Genstore-Event-Id": "  "}).json() == {"id": key, "status": "duplicate"}, \
        "a blank id is no id"


def test_ids_with_white_space_still_identify_one_event(client):
    answers = {}
    for event_id in ("order 1001 paid", "order\t1001 paid", "order 1001  paid"):
        r = post_delivery(client, "orders/create", event_id=event_id)
        assert r.status_code == 202 and r.json()["status"] == "queued", event_id
        answers[event_id] = r.json()["id"]
        again = post_delivery(client, "orders/create", event_id=event_id)
        assert again.json() == {"id": answers[event_id], "status": "duplicate"}, event_id
        assert stored(client, answers[event_id])["topic"] == "orders/create", "the answered id reads the event back"
    assert len(set(answers.values())) == 3, "different ids stay different events"
    padded = post_delivery(client, "orders/create", event_id=" padded-id ")
    assert padded.json() == {"id": "padded-id", "status": "queued"}, "surrounding white space is not part of it"
    assert post_delivery(client, "orders/create", event_id="padded-id").json()["status"] == "duplicate"


@pytest.mark.parametrize("header", ["X-Genstore-Shop-Domain", "X-Genstore-Webhook-Id", "webhook-id"])
def test_a_repeated_identity_header_is_400_and_nothing_is_stored(client, header):
    event_id = str(uuid.uuid4())
    headers = list(signed_headers("orders/create", BODY, event_id=event_id).items())
    headers += [(header, "a.genmystore.com"), (header, "b.genmystore.com")]
    r = post(client, headers)
    assert r.status_code == 400
    assert r.json()["error"] == f"header {header.lower()} sent more than once"
    assert stored(client, event_id) is None


def test_standard_webhooks_use_the_webhook_id_as_the_key(client):
    msg_id = f"msg_{uuid.uuid4().hex}"
    first = post(client, signed_headers("orders/create", BODY, event_id=msg_id, scheme="standard"))
    assert first.status_code == 202 and first.json() == {"id": msg_id, "status": "queued"}
    resent = post(client, signed_headers("orders/create", BODY, event_id=msg_id, scheme="standard",
                                         timestamp=int(time.time()) - 60))  # a retry: new time, new signature
    assert resent.status_code == 200 and resent.json() == {"id": msg_id, "status": "duplicate"}
    event = stored(client, msg_id)
    assert event["shop"] == SHOP and event["headers"]["webhook-signature"] == "****"


def test_standard_webhooks_with_a_stale_timestamp_are_401_even_with_a_genstore_signature(client, settings):
    msg_id = f"msg_{uuid.uuid4().hex}"
    for skew in (-settings.tolerance - 5, settings.tolerance + 5):
        headers = signed_headers("orders/create", BODY, event_id=msg_id, scheme="standard",
                                 timestamp=int(time.time()) + skew)
        r = post(client, headers)
        assert r.status_code == 401, skew
        assert "tolerance" in r.json()["error"]
        genstore = signed_headers("orders/create", BODY)["X-Genstore-Hmac-Sha256"]
        assert post(client, headers | {"X-Genstore-Hmac-Sha256": genstore}).status_code == 401, \
            "a stale timestamp is not bypassed with the other scheme"
    assert stored(client, msg_id) is None
    inside = signed_headers("orders/create", BODY, event_id=msg_id, scheme="standard",
                            timestamp=int(time.time()) - settings.tolerance + 5)
    assert post(client, inside).status_code == 202, "within the tolerance it is accepted"


# --- every outcome, with its metric label ------------------------------------------------------

def counts(client) -> dict:
    return parse(client.get("/metrics").text)


def grew(client, before: dict, topic: str, outcome: str) -> float:
    after = counts(client)
    name = "orderhooks_deliveries_total"
    return (value(after, name, topic=topic, outcome=outcome) or 0) - (value(before, name, topic=topic,
                                                                             outcome=outcome) or 0)


def test_accepted_and_duplicate(client):
    before = counts(client)
    event_id = str(uuid.uuid4())
    assert post_delivery(client, "orders/paid", event_id=event_id).status_code == 202
    assert post_delivery(client, "orders/paid", event_id=event_id).status_code == 200
    assert grew(client, before, "orders/paid", "accepted") == 1
    assert grew(client, before, "orders/paid", "duplicate") == 1


def test_ignored_is_200_stored_as_ignored(client):
    before = counts(client)
    r = post_delivery(client, "products/create", b'{"product": {}}')
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert stored(client, r.json()["id"])["status"] == "ignored"
    assert grew(client, before, "other", "ignored") == 1, "unknown topics share one label"


def test_no_shop_header_is_202_quarantined_with_the_reason(client):
    before = counts(client)
    r = post_delivery(client, "orders/create", shop=None)
    assert r.status_code == 202 and r.json()["status"] == "quarantined"
    event = stored(client, r.json()["id"])
    assert event["status"] == "quarantined" and "X-Genstore-Shop-Domain" in event["error"]
    assert event["raw"].encode() == BODY, "the raw bytes are kept"
    assert grew(client, before, "orders/create", "quarantined") == 1


def quarantined_total(client) -> float:
    return value(counts(client), "orderhooks_events_quarantined_total") or 0


BAD_PRICE = b'{"order": {"orderId": "9001", "updatedAt": "2024-01-01T00:00:00Z", "totalPrice": "abc"}}'


@pytest.mark.parametrize(("body", "reason"), [
    (BAD_PRICE, "order.totalPrice: not a decimal amount ('abc')"),
    (b"{not json", "body is not valid JSON: "),
    (b"[" * 40 + b"]" * 40, "body is not valid JSON: nested deeper than 32 levels"),
    (b'\xff\xfe{"order": {}}', "body is not UTF-8: "),
])
def test_a_body_that_does_not_normalize_is_202_queued_then_quarantined_by_the_worker(client, body, reason):
    before, quarantined = counts(client), quarantined_total(client)
    event_id = str(uuid.uuid4())
    r = post_delivery(client, "orders/update", body, event_id=event_id)
    assert r.status_code == 202 and r.json() == {"id": event_id, "status": "queued"}, "the receiver parses nothing"
    assert grew(client, before, "orders/update", "accepted") == 1
    event = stored(client, event_id)
    assert (event["status"], event["error"], event["orderId"]) == ("queued", None, None)
    jobs.process_events([event_ref(GENSTORE, SHOP, event_id)])
    event = stored(client, event_id)
    assert event["status"] == "quarantined" and event["error"].startswith(reason), event["error"]
    kept = event["raw"].encode() if event["raw"] is not None else base64.b64decode(event["rawBase64"])
    assert kept == body, "the raw bytes are kept"
    assert quarantined_total(client) == quarantined + 1, "counted once, by the worker"
    jobs.process_events([event_ref(GENSTORE, SHOP, event_id)])  # the same event again: nothing more
    assert stored(client, event_id)["status"] == "quarantined" and quarantined_total(client) == quarantined + 1


def test_the_receiver_never_calls_the_normalizer(client, monkeypatch):
    """Whatever the body (one the normalizer would take long on, or refuse), the answer is `queued` and the
    stored bytes are exactly those sent: the receiver verifies, de-duplicates and stores, nothing more."""
    calls: list = []
    replace_normalizer(refusing(calls), monkeypatch.setattr)
    deep = b'{"order": ' * 20_000 + b"1" + b"}" * 20_000
    for body in (BODY, deep, b"{not json", b"\x00" * 1000):
        event_id = str(uuid.uuid4())
        r = post_delivery(client, "orders/create", body, event_id=event_id)
        assert r.status_code == 202 and r.json() == {"id": event_id, "status": "queued"}
        store, ref = client.app.state.store, event_ref(GENSTORE, SHOP, event_id)
        _, stored_raw = unpack_body(store.redis.get(store.keys.body(ref)),
                                    store.redis.hget(store.keys.event(ref), "encoding"))
        assert stored_raw == body
    assert calls == []


def test_unauthorized_is_401_and_not_stored(client):
    before = counts(client)
    event_id = str(uuid.uuid4())
    r = post_delivery(client, "orders/create", event_id=event_id, secret="not-the-secret")
    assert r.status_code == 401
    assert r.json()["error"].startswith("signature does not match any of the 1 configured secret ")
    assert stored(client, event_id) is None
    assert grew(client, before, "orders/create", "unauthorized") == 1


def test_too_large_body_413_and_headers_431(client, settings):
    before = counts(client)
    event_id = str(uuid.uuid4())
    big = b'{"order": {"note": "' + b"x" * settings.max_body + b'"}}'
    r = post_delivery(client, "orders/create", big, event_id=event_id)
    assert r.status_code == 413 and str(settings.max_body) in r.json()["error"]
    r = post_delivery(client, "orders/update", event_id=event_id, headers={"X-Padding": "p" * 40_000})
    assert r.status_code == 431 and "headers" in r.json()["error"]
    assert stored(client, event_id) is None
    assert grew(client, before, "orders/create", "too_large") == 1
    assert grew(client, before, "other", "too_large") == 1, "headers are refused before the topic is read"


def test_bad_request_for_a_repeated_header(client):
    before = counts(client)
    headers = list(signed_headers("orders/create", BODY, event_id=str(uuid.uuid4())).items())
    r = post(client, headers + [("X-Genstore-Event-Id", "another")])
    assert r.status_code == 400
    assert grew(client, before, "orders/create", "bad_request") == 1


def test_unavailable_is_503_with_retry_after(client, settings):
    before = counts(client)
    gone = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(gone)) as away:
        r = post_delivery(away, "orders/create")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json() == {"error": "storage unavailable, retry later"}
    assert grew(client, before, "orders/create", "unavailable") == 1


def test_a_client_gone_before_its_body_arrived_is_counted_as_disconnected(client, settings):
    """The ASGI server reports the client's disconnect while the body is being read."""
    app = create_app(settings)
    before = counts(client)
    messages = iter([{"type": "http.request", "body": b'{"order": ', "more_body": True},
                     {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in signed_headers("orders/create", BODY).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/webhooks/genstore", "raw_path": b"/webhooks/genstore",
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("testserver", 80), "app": app}
    # a thread of its own: the test may run where an event loop is already running (asyncio.run would refuse)
    runner = threading.Thread(target=lambda: asyncio.run(app(scope, receive, send)))
    runner.start()
    runner.join(timeout=30)
    assert sent[0]["status"] == 400
    assert grew(client, before, "orders/create", "disconnected") == 1
