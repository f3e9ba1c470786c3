"""BigCommerce end to end: the real receiver and worker processes, the real Redis, a fake V2 API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import redis as redislib
from cryptography.fernet import Fernet

from orderhooks.embedded import free_port
from receiver.verify import standard_signature
from tests.conftest import TOKEN
from tests.fake_bigcommerce import SHOP, FakeBigCommerce
from tests.support.stack import DB, ROOT, base_env, db_url, start_web, stop, wait_for

CLIENT_SECRET = "bc-client-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def api():
    with FakeBigCommerce() as fake:
        yield fake


@pytest.fixture(scope="module")
def bc(redis_url, api):
    env = base_env(redis_url) | {
        "REDIS_URL": db_url(redis_url, DB["bigcommerce"]),
        "ORDERHOOKS_BIGCOMMERCE_SECRETS": f"old-secret-0123456789,{CLIENT_SECRET}",
        "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_bigcommerce",
        "ORDERHOOKS_SECRET_KEY": Fernet.generate_key().decode(),
        "ORDERHOOKS_MAX_BODY": "4096",
    }
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    added = subprocess.run([sys.executable, "-m", "orderhooks.cli", "shops", "add", SHOP, "--platform",
                            "bigcommerce", "--token", api.token, "--api-url", api.url], env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    web, url = start_web(env)
    worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)
    yield url, client, env
    stop(web, worker)
    client.close()


def envelope(scope: str, order_id=250, status: dict | None = None, **extra) -> bytes:
    data: dict = {"type": "order"}
    if order_id is not None:
        data["id"] = order_id
    if status:
        data["status"] = status
    return json.dumps({"scope": scope, "store_id": "1025646", "data": data, "hash": uuid.uuid4().hex,
                       "created_at": int(time.time()), "producer": "stores/abc123", **extra}).encode()


def post(url: str, body: bytes, *, secret: str = CLIENT_SECRET, msg_id: str | None = None,
         stamp: int | None = None, headers: dict | None = None, sign: bool = True) -> httpx.Response:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if stamp is None else stamp
    h = {"Content-Type": "application/json"}
    if sign:
        h |= {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
              "webhook-signature": standard_signature(secret.encode(), msg_id, stamp, body)}
    return httpx.post(url + "/webhooks/bigcommerce", content=body, headers=h | (headers or {}), timeout=10)


def api_get(url: str, path: str, **params) -> httpx.Response:
    return httpx.get(url + path, params=params, headers={"X-Genstore-Access-Token": TOKEN}, timeout=10)


def wait_status(url: str, event_id: str, *statuses: str) -> dict:
    def check():
        r = api_get(url, f"/api/events/{event_id}", shop=SHOP, platform="bigcommerce")
        return r.json()["event"] if r.status_code == 200 and r.json()["event"]["status"] in statuses else None
    return wait_for(check, 30, what=f"event {event_id} to become {statuses}")


def test_bad_missing_and_stale_signatures_are_401_and_not_stored(bc):
    url, client, _ = bc
    body = envelope("store/order/created")
    assert post(url, body, secret="not-the-secret-0123456789", msg_id="msg_bad").status_code == 401
    assert post(url, body, sign=False).status_code == 401
    assert post(url, body, stamp=int(time.time()) - 3600, msg_id="msg_stale").status_code == 401
    parsed = json.loads(body)
    for event_id in ("msg_bad", "msg_stale", f"store/order/created:250:{parsed['hash']}:{parsed['created_at']}"):
        assert api_get(url, f"/api/events/{event_id}").status_code == 404

    def recorded():  # other tests of this stack may have been refused too (413 ...): the 401s are ours
        rows = [r for r in api_get(url, "/api/rejected", platform="bigcommerce").json()["rejected"]
                if r["status"] == 401]
        return rows if len(rows) >= 3 else None
    rows = wait_for(recorded, 10, what="the refusals to be recorded")  # written in groups, shortly after
    assert {r["platform"] for r in rows} == {"bigcommerce"} and all(r["reason"] for r in rows)


def test_oversize_is_413(bc):
    url, _, _ = bc
    body = envelope("store/order/created", padding="x" * 5000)
    assert post(url, body).status_code == 413


def test_a_delivery_is_hydrated_processed_and_listed_beside_genstores(bc, api):
    url, client, _ = bc
    api.add_order(250)
    r = post(url, envelope("store/order/created"), msg_id="msg_created_250")
    assert r.status_code == 202 and r.json() == {"id": "msg_created_250", "status": "queued"}
    event = wait_status(url, "msg_created_250", "processed", "failed")
    assert event["status"] == "processed", event["error"]
    assert event["platform"] == "bigcommerce" and event["shop"] == SHOP and event["orderId"] == "250"
    order = api_get(url, "/api/202412/orders/250", shop=SHOP).json()["order"]
    assert order["status"] == "Awaiting Fulfillment" and order["totalPrice"] == "253.5600"
    assert order["shop"] == SHOP and order["currency"] == "EUR"
    listed = api_get(url, "/api/202412/orders", shop=SHOP).json()["orders"]
    assert "250" in [o["orderId"] for o in listed] and all(o["shop"] == SHOP for o in listed)
    calls = [json.loads(c) for c in client.lrange("e2e:bc:msg_created_250", 0, -1)]
    assert [(c["handler"], c["platform"], c["status"]) for c in calls] == [
        ("any_order", "bigcommerce", "Awaiting Fulfillment")]
    # a duplicate is a 200 and no second copy
    again = post(url, envelope("store/order/created"), msg_id="msg_created_250")
    assert again.status_code == 200 and again.json() == {"id": "msg_created_250", "status": "duplicate"}


def test_a_status_update_reaches_its_handlers_with_both_statuses(bc, api):
    url, client, _ = bc
    api.add_order(260)
    api.modify(260, status_id=2)
    r = post(url, envelope("store/order/statusUpdated", 260, {"previous_status_id": 11, "new_status_id": 2}),
             msg_id="msg_status_260")
    assert r.status_code == 202
    assert wait_status(url, "msg_status_260", "processed", "failed")["status"] == "processed"
    calls = wait_for(lambda: [json.loads(c) for c in client.lrange("e2e:bc:msg_status_260", 0, -1)]
                     if client.llen("e2e:bc:msg_status_260") == 2 else None, 20, what="both handlers")
    assert {c["handler"] for c in calls} == {"any_order", "status_changed"}
    assert all((c["previous"], c["new"], c["status"]) == (11, 2, "Shipped") for c in calls)


def quarantined_total(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("orderhooks_events_quarantined_total ")))


def test_other_scopes_are_ignored_and_bad_envelopes_quarantined(bc):
    url, _, _ = bc
    before = quarantined_total(url)
    r = post(url, envelope("store/order/message/created"), msg_id="msg_message")
    assert r.status_code == 200 and r.json() == {"id": "msg_message", "status": "ignored"}
    r = post(url, envelope("store/order/created", order_id=None), msg_id="msg_no_id")
    assert r.status_code == 202 and r.json()["status"] == "quarantined" and r.json()["error"] == "data.id: missing"
    r = post(url, b'{"scope": "store/order/created", "data": {"id": 1}}')  # no producer, no webhook-id reused
    assert r.status_code == 202 and r.json()["status"] == "quarantined"
    assert r.json()["error"] == "envelope has no producer stores/HASH"
    assert quarantined_total(url) == before + 2, "counted as Genstore's are"


def test_without_webhook_id_the_envelope_is_the_dedup_key(bc, api):
    url, _, env = bc
    body = envelope("store/order/created", 270)
    parsed = json.loads(body)
    # the custom-header scheme sends no webhook-id: a receiver configured with the header alone
    # and no Genstore secret: the receiver starts with BigCommerce alone, Genstore's route answering 404
    header_env = env | {"ORDERHOOKS_BIGCOMMERCE_SECRETS": "", "ORDERHOOKS_SECRETS": "",
                        "ORDERHOOKS_BIGCOMMERCE_HEADER": "X-Hook-Key: k-123456"}
    web, hurl = start_web(header_env)
    try:
        assert post(hurl, body, sign=False).status_code == 401
        r = post(hurl, body, sign=False, headers={"X-Hook-Key": "k-123456"})
        assert r.status_code == 202
        assert r.json()["id"] == f"store/order/created:270:{parsed['hash']}:{parsed['created_at']}"
        assert post(hurl, body, sign=False, headers={"X-Hook-Key": "k-123456"}).json()["status"] == "duplicate"
        assert httpx.post(hurl + "/webhooks/genstore", content=b"{}", timeout=10).status_code == 404
    finally:
        stop(web)


def test_a_platform_not_configured_answers_404(redis_url):
    env = base_env(redis_url) | {"REDIS_URL": db_url(redis_url, DB["bigcommerce"])}
    web, url = start_web(env)  # Genstore only
    try:
        r = post(url, envelope("store/order/created"))
        assert r.status_code == 404
    finally:
        stop(web)


def test_redis_unreachable_is_503_with_retry_after(redis_url):
    env = base_env(redis_url) | {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                                 "ORDERHOOKS_BIGCOMMERCE_SECRETS": CLIENT_SECRET}
    web, url = start_web(env)
    try:
        r = post(url, envelope("store/order/created"))
        assert r.status_code == 503 and r.headers["Retry-After"]
    finally:
        stop(web)


def test_send_signs_and_sends_a_thin_envelope(bc, api):
    url, _, env = bc
    api.add_order(280)
    done = subprocess.run([sys.executable, "-m", "orderhooks.cli", "send", "--platform", "bigcommerce",
                           "store/order/created", "--order-id", "280", "--shop", SHOP, "--event-id", "msg_sent_280",
                           "--url", url + "/webhooks/bigcommerce"], env=env | {"COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)  # piped: one JSON object, once the event's outcome is known
    assert outcome["httpStatus"] == 202 and outcome["status"] == "processed", outcome
    assert wait_status(url, "msg_sent_280", "processed", "failed")["status"] == "processed"
