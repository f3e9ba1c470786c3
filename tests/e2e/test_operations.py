"""Operations end to end: refused deliveries recorded (and bounded), notifications to a real HTTP sink."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis as redislib
from standardwebhooks import Webhook

from orderhooks.config import secret_bytes
from orderhooks.embedded import EmbeddedRedis
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from storage.keys import Keys
from tests.conftest import SECRET, TOKEN
from tests.support.stack import DB, ROOT, base_env, db_url, start_web, stop, wait_for

NOTIFY_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()


class Sink:
    """A small HTTP receiver: records every request; answers `status` (or hangs `hang` seconds first)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.hang = 0.0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with sink.lock:
                    sink.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "status": sink.status, "hang": sink.hang})
                    status, hang = sink.status, sink.hang
                if hang:
                    time.sleep(hang)
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, type_: str | None = None) -> list[dict]:
        with self.lock:
            found = [json.loads(r["body"]) for r in self.requests]
        return [b for b in found if type_ is None or b["type"] == type_]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)


def _post(url: str, topic: str, shop: str, secret: str = SECRET, headers: dict | None = None,
          body: bytes | None = None, event_id: str | None = None) -> httpx.Response:
    body = example_for_topic(topic) if body is None else body
    h = {"X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": shop,
         "X-Genstore-Event-Id": event_id or str(uuid.uuid4()),
         "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(secret), body), "Content-Type": "application/json"}
    h.update(headers or {})
    return httpx.post(url + "/webhooks/genstore", content=body, headers={k: v for k, v in h.items() if v is not None},
                      timeout=10)


def _rejected(url: str, **params) -> dict:
    r = httpx.get(url + "/api/rejected", params=params, headers={"X-Genstore-Access-Token": TOKEN}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


# --- rejected deliveries -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver(redis_url):
    env = base_env(redis_url) | {"ORDERHOOKS_MAX_BODY": "8192", "ORDERHOOKS_SECRETS": SECRET + ",second-secret-123456",
                                 "REDIS_URL": db_url(redis_url, DB["ops_api"])}
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    yield url, env, client
    stop(web)
    client.close()


def test_each_refusal_is_recorded_with_a_reason_that_says_what_to_fix(receiver):
    url, env, _ = receiver
    shop = f"r{uuid.uuid4().hex[:8]}.genmystore.com"
    body = example_for_topic("orders/paid")
    hex_sig = hmac.new(secret_bytes(SECRET), body, hashlib.sha256).hexdigest()
    cases = [
        ({"X-Genstore-Hmac-Sha256": None}, 401, "X-Genstore-Hmac-Sha256 header was not sent"),
        ({"X-Genstore-Hmac-Sha256": hex_sig}, 401, "hex where base64 is expected"),
        ({"X-Genstore-Hmac-Sha256": genstore_signature(b"x" * 20, body)}, 401, "any of the 2 configured secrets"),
        ({"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()) - 1000),
          "webhook-signature": "v1,AAAA"}, 401, "seconds in the past"),
        ({"webhook-id": "msg_1", "webhook-signature": "v1,AAAA"}, 401, "webhook-timestamp missing"),
    ]
    for headers, status, _ in cases:
        assert _post(url, "orders/paid", shop, headers=headers, body=body).status_code == status
    assert _post(url, "orders/paid", shop, body=b"x" * 10000).status_code == 413
    dup = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers=[
        ("X-Genstore-Topic", "orders/paid"), ("X-Genstore-Shop-Domain", shop),
        ("X-Genstore-Hmac-Sha256", genstore_signature(secret_bytes(SECRET), body)), ("X-Genstore-Event-Id", "a"),
        ("X-Genstore-Event-Id", "b")])
    assert dup.status_code == 400
    big = httpx.post(url + "/webhooks/genstore", content=body, timeout=10,
                     headers={"X-Genstore-Topic": "orders/paid", "X-Big": "v" * 40_000})
    assert big.status_code == 431

    def mine():
        found = [r for r in _rejected(url, limit=1000)["rejected"] if r["shop"] == shop or r["status"] == 431]
        return found if len(found) >= len(cases) + 3 else None

    found = wait_for(mine, 10, what="the refusals to be recorded")
    reasons = [r["reason"] for r in found]
    for _, _, expected in cases:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert any("body larger than 8192 bytes" in r for r in reasons)
    assert any("x-genstore-event-id sent more than once" in r for r in reasons)
    assert any("request headers larger than" in r for r in reasons)
    one = next(r for r in found if "hex where base64" in r["reason"])
    assert one["platform"] == "genstore" and one["client"] == "127.0.0.1" and one["status"] == 401
    assert one["topic"] == "orders/paid" and one["event_id"] and one["size"] == len(body)
    assert one["sha256"] == hashlib.sha256(body).hexdigest()
    assert "x-genstore-hmac-sha256" in one["headers"] and "x-genstore-topic" in one["headers"]
    assert [r["at"] for r in found] == sorted((r["at"] for r in found), reverse=True)  # newest first
    assert set(one) == {"at", "platform", "client", "status", "reason", "topic", "shop", "event_id", "headers",
                        "size", "sha256"}
    # The CLI shows the same.
    cli = subprocess.run([sys.executable, "-m", "orderhooks.cli", "rejected", "--json", "--limit", "1000"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert any("hex where base64" in r["reason"] for r in json.loads(cli.stdout)["rejected"])


def test_nothing_secret_or_from_the_body_is_stored(receiver):
    url, _, client = receiver
    marker = "BODY-MARKER-" + uuid.uuid4().hex
    body = json.dumps({"order": {"orderId": marker}}).encode()
    wrong_sig = genstore_signature(b"wrong-secret-but-long-enough", body)
    assert _post(url, "orders/paid", "s.genmystore.com", body=body,
                 headers={"X-Genstore-Hmac-Sha256": wrong_sig}).status_code == 401
    hex_sig = hmac.new(secret_bytes(SECRET), body, hashlib.sha256).hexdigest()
    assert _post(url, "orders/paid", "s.genmystore.com", body=body,
                 headers={"X-Genstore-Hmac-Sha256": hex_sig}).status_code == 401
    wait_for(lambda: sum(hashlib.sha256(body).hexdigest() == r["sha256"]
                         for r in _rejected(url, limit=1000)["rejected"]) == 2, 10, what="both refusals recorded")
    stored = b"".join(client.lrange(Keys().rejected("genstore"), 0, -1))
    for secret in (marker.encode(), wrong_sig.encode(), hex_sig.encode(), SECRET.encode(),
                   SECRET.removeprefix("whsec_").encode(), b"second-secret-123456"):
        assert secret not in stored


def test_bad_parameters_are_named(receiver):
    url, _, _ = receiver
    for params in ({"limit": "0"}, {"limit": "1001"}, {"platform": "shopify"}, {"other": "1"}):
        r = httpx.get(url + "/api/rejected", params=params, headers={"X-Genstore-Access-Token": TOKEN}, timeout=10)
        assert r.status_code == 400 and r.json()["error"].split(":")[0] in params
    assert httpx.get(url + "/api/rejected", timeout=10).status_code == 401


def test_a_flood_of_refusals_stays_bounded_and_accepted_deliveries_go_through(redis_url, tmp_path):
    env = base_env(redis_url) | {"ORDERHOOKS_REJECTED_KEEP": "200", "REDIS_URL": db_url(redis_url, DB["ops_flood"])}
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    try:
        key = Keys().rejected("genstore")
        body = example_for_topic("orders/paid")
        good_sig = genstore_signature(secret_bytes(SECRET), body)

        async def flood():
            accepted = []
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:
                sem = asyncio.Semaphore(32)

                async def one(i: int):
                    async with sem:
                        good = i % 100 == 0
                        r = await http.post(url + "/webhooks/genstore", content=body, headers={
                            "X-Genstore-Topic": "orders/paid", "X-Genstore-Shop-Domain": "flood.genmystore.com",
                            "X-Genstore-Event-Id": f"flood-{i}",
                            "X-Genstore-Hmac-Sha256": good_sig if good else "bad" + "A" * 41})
                        if good:
                            accepted.append(r.status_code)
                        else:
                            assert r.status_code == 401

                await asyncio.gather(*(one(i) for i in range(10_102)))
            return accepted

        # a thread of its own: another test may have left an event loop running in this one
        with ThreadPoolExecutor(1) as pool:
            accepted = pool.submit(asyncio.run, flood()).result()
        assert accepted == [202] * 102  # every accepted delivery interleaved with the flood is accepted
        time.sleep(1.5)  # the last group is written
        kept = client.llen(key)
        assert 0 < kept <= 200
        assert client.memory_usage(key) <= 200 * 1024  # the bound times about 1 KB
        assert _rejected(url)["dropped"] >= 0
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'orderhooks_deliveries_refused_total{status="401"} 10000.0' in metrics  # each one counted
    finally:
        stop(web)
        client.flushdb()
        client.close()


# --- notifications -------------------------------------------------------------------------------------


def _notify_env(redis_url: str, db: int, sink: Sink, **extra) -> dict:
    env = base_env(redis_url) | {
        "REDIS_URL": db_url(redis_url, db),
        "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_ops",
        "ORDERHOOKS_RETRY_DELAYS": "0",
        "ORDERHOOKS_NOTIFY_URLS": sink.url,
        "ORDERHOOKS_NOTIFY_INTERVAL": "2",
        "ORDERHOOKS_NOTIFY_SECRET": NOTIFY_SECRET,
        "ORDERHOOKS_PUBLIC_URL": "https://hooks.example.com",
    }
    env.update(extra)
    return env


def test_failures_are_grouped_with_exact_counts_across_two_workers(redis_url, sink):
    env = _notify_env(redis_url, DB["ops_notify_groups"], sink)
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    workers = [_worker(env), _worker(env)]
    try:
        shop = "fail.genmystore.com"
        n = 60
        for i in range(n):
            assert _post(url, "orders/paid", shop, event_id=f"f-{i}").status_code == 202
            if i % 20 == 0:
                time.sleep(0.5)

        def all_counted():
            got = sum(b["count"] for b in sink.bodies("event.failed"))
            return got if got >= n else None

        wait_for(all_counted, 60, what="every failure to be notified")
        time.sleep(3)  # nothing more comes after
        bodies = sink.bodies("event.failed")
        assert sum(b["count"] for b in bodies) == n  # exact: nothing twice, nothing dropped
        assert len(bodies) < n / 4  # grouped
        first = bodies[0]
        assert first["shop"] == shop and 1 <= len(first["examples"]) <= 5
        assert first["url"] == "https://hooks.example.com/ui/events?status=failed&shop=fail.genmystore.com"
        assert first["text"].startswith(f"orderhooks: {first['count']} event") and first["url"] in first["text"]
        assert "tests.e2e.handlers_ops.always_fails: RuntimeError" in first["text"]
        assert first["examples"][0]["topic"] == "orders/paid"
        # signed with Standard Webhooks headers
        req = sink.requests[0]
        Webhook(NOTIFY_SECRET).verify(req["body"], req["headers"])
        # 401s and quarantined deliveries are notified too, with exact counts
        for i in range(12):
            r = _post(url, "orders/paid", shop, secret="wrong-secret-1234567890", event_id=f"w-{i}")
            assert r.status_code == 401
        assert _post(url, "orders/paid", "", event_id="no-shop").status_code == 202
        wait_for(lambda: sum(b["count"] for b in sink.bodies("deliveries.rejected")) >= 12, 30, what="401s notified")
        wait_for(lambda: sink.bodies("events.quarantined"), 30, what="the quarantined delivery notified")
        time.sleep(3)
        assert sum(b["count"] for b in sink.bodies("deliveries.rejected")) == 12
        rejected = sink.bodies("deliveries.rejected")[0]
        assert rejected["shop"] is None and "refused with 401" in rejected["text"]
        assert rejected["url"] == "https://hooks.example.com/ui/rejected"
        [quarantined] = sink.bodies("events.quarantined")
        assert quarantined["count"] == 1 and "X-Genstore-Shop-Domain" in quarantined["text"]
    finally:
        stop(web, *workers)
        client.flushdb()
        client.close()


def test_retries_repeat_body_and_id_and_processing_is_not_delayed(redis_url, sink):
    env = _notify_env(redis_url, DB["ops_notify_retries"], sink)
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    sink.status = 503
    web, url = start_web(env)
    worker = _worker(env)
    try:
        first_id = f"slow-{uuid.uuid4().hex}"
        assert _post(url, "orders/paid", "retry.genmystore.com", event_id=first_id).status_code == 202
        wait_for(lambda: len(sink.requests) >= 1, 30, what="a first attempt")
        sink.status, sink.hang = 200, 8.0  # now the sink hangs past the 5 s timeout
        # while the sink is down, processing goes on at its usual pace
        started = time.monotonic()
        for i in range(20):
            assert _post(url, "orders/create", "retry.genmystore.com", event_id=f"ok-{i}-{first_id}").status_code == 202
        r = httpx.get(url + f"/api/events/ok-19-{first_id}", headers={"X-Genstore-Access-Token": TOKEN}, timeout=10)
        assert r.status_code == 200

        def processed():
            e = httpx.get(url + f"/api/events/ok-19-{first_id}", headers={"X-Genstore-Access-Token": TOKEN},
                          timeout=10).json()["event"]
            return e["status"] in ("processed", "stale")

        wait_for(processed, 10, what="processing while the sink is down")
        assert time.monotonic() - started < 10
        wait_for(lambda: len(sink.requests) >= 2, 30, what="a retry after the 503")
        sink.hang = 0.0
        wait_for(lambda: len(sink.requests) >= 3, 40, what="a retry after the hang")
        attempts = [r for r in sink.requests if json.loads(r["body"])["type"] == "event.failed"]
        assert len({r["body"] for r in attempts}) == 1  # the same body every time
        assert len({r["headers"]["webhook-id"] for r in attempts}) == 1
        for r in attempts:
            Webhook(NOTIFY_SECRET).verify(r["body"], r["headers"])
    finally:
        stop(web, worker)
        client.flushdb()
        client.close()


def test_redis_unavailable_is_sent_without_redis(tmp_path, sink):
    server = EmbeddedRedis(tmp_path / "redis", fsync="everysec").start()
    env = _notify_env(server.url, 0, sink)
    env["REDIS_URL"] = server.url
    worker = _worker(env)
    try:
        time.sleep(2)
        server.stop()
        wait_for(lambda: sink.bodies("redis.unavailable"), 60, what="redis.unavailable")
        body = sink.bodies("redis.unavailable")[0]
        assert body["shop"] is None and body["count"] == 1 and "Redis" in body["text"]
    finally:
        stop(worker)
        server.stop()


def test_notify_test_command(redis_url, sink):
    env = _notify_env(redis_url, DB["ops_notify_test"], sink)
    out = subprocess.run([sys.executable, "-m", "orderhooks.cli", "notify", "test"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok: 200" in out.stdout and "/hook" not in out.stdout  # the URL's secret path is not printed
    [body] = sink.bodies("test")
    assert body["text"].startswith("orderhooks: test notification") and body["url"] == "https://hooks.example.com/ui"
    sink.status = 500
    out = subprocess.run([sys.executable, "-m", "orderhooks.cli", "notify", "test"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "failed: 500" in out.stdout
    env.pop("ORDERHOOKS_NOTIFY_URLS")
    out = subprocess.run([sys.executable, "-m", "orderhooks.cli", "notify", "test"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "ORDERHOOKS_NOTIFY_URLS" in out.stderr


def test_every_series_the_alert_rules_need_exists_from_the_first_scrape(redis_url):
    env = base_env(redis_url) | {"REDIS_URL": db_url(redis_url, DB["ops_redis_away"])}
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    try:
        text = httpx.get(url + "/metrics", timeout=10).text
        for line in ('orderhooks_deliveries_refused_total{status="401"} 0.0',
                     'orderhooks_deliveries_refused_total{status="413"} 0.0',
                     "orderhooks_events_failed_total 0.0", "orderhooks_events_quarantined_total 0.0",
                     'orderhooks_notifications_total{result="sent",type="event.failed"} 0.0',
                     'orderhooks_notifications_total{result="dropped",type="redis.unavailable"} 0.0',
                     "orderhooks_redis_up 1.0", "orderhooks_oldest_queued_age_seconds 0.0"):
            assert line in text, line
        # a quarantined delivery counts at once
        assert _post(url, "orders/paid", "", event_id="no-shop").status_code == 202
        assert "orderhooks_events_quarantined_total 1.0" in httpx.get(url + "/metrics", timeout=10).text
    finally:
        stop(web)
        client.flushdb()
        client.close()
