"""Faults with real processes and a real Redis: killed workers, a killed Redis, SIGTERM.

Each test bounds its own time; the assertions are the promises: nothing
acknowledged is lost, nothing stays queued or started, every order ends at its
newest version, handlers fire at least once.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis as redislib
from rq.registry import StartedJobRegistry

from orderhooks.config import Settings
from orderhooks.embedded import EmbeddedRedis
from schemas.samples import example_for_topic
from storage.connection import make_queue
from tests.conftest import SECRET
from tests.support.payloads import order_body
from tests.support.proxy import Forwarder
from tests.support.signing import signed_headers
from tests.support.stack import DB, ROOT, Stack, base_env, start_web, start_worker, stop, wait_for

pytestmark = pytest.mark.e2e

ORDERS = 60
VERSIONS = 3


def deliveries(shop: str) -> list[tuple[str, str, bytes, str]]:
    """(event id, order id, body, updatedAt) for ORDERS orders x VERSIONS snapshots, shuffled."""
    out = []
    for n in range(ORDERS):
        for v in range(VERSIONS):
            stamp = f"2024-03-01T10:00:{v:02d}Z"
            out.append((str(uuid.uuid4()), str(5000 + n), order_body("orders/update", str(5000 + n), stamp,
                                                                      note=f"v{v}"), stamp))
    random.Random(7).shuffle(out)
    return out


def send_all(url: str, items, shop: str, workers: int = 16, attempts: int = 50) -> list[int]:
    """Send every delivery, retrying as a sender does; the final status of each (0: never acknowledged)."""
    clients = threading.local()

    def one(item):
        event_id, _, body, _ = item
        headers = signed_headers("orders/update", body, shop=shop, event_id=event_id)
        if not hasattr(clients, "c"):
            clients.c = httpx.Client(timeout=10)
        for _ in range(attempts):
            try:
                r = clients.c.post(url + "/webhooks/genstore", content=body, headers=headers)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if r.status_code in (200, 202):
                return r.status_code
            time.sleep(0.2)
        return 0

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, items))


def api(url: str) -> Stack:
    return Stack(url, None, {})


def events_of(url: str, shop: str) -> dict[str, dict]:
    """The shop's stored events, by id, as the read API lists them."""
    listed = api(url).api("/api/events", shop=shop, limit="250").json()["events"]
    return {e["id"]: e for e in listed}


def started_jobs(client: redislib.Redis, env: dict) -> int:
    return StartedJobRegistry(queue=make_queue(client, Settings.from_env(env))).count


def assert_all_done(url: str, client: redislib.Redis, env: dict, items, shop: str) -> None:
    events = events_of(url, shop)
    for event_id, _, _, _ in items:
        assert events[event_id]["status"] in ("processed", "stale"), (event_id, events[event_id])
    assert not api(url).api("/api/events", status="queued").json()["events"]
    assert started_jobs(client, env) == 0
    orders = {o["orderId"]: o for o in api(url).api("/api/202412/orders", shop=shop, limit="250").json()["orders"]}
    assert len(orders) == ORDERS
    for n in range(ORDERS):
        order = orders[str(5000 + n)]
        assert order["updatedAt"] == f"2024-03-01T10:00:{VERSIONS - 1:02d}Z"
        assert order["note"] == f"v{VERSIONS - 1}"
    called = {c.decode() for c in client.lrange("faults:calls", 0, -1)}
    missing = [e for e, _, _, _ in items if e not in called]
    assert not missing, f"{len(missing)} events never reached their handler"


def drained(url: str, client: redislib.Redis, env: dict, items) -> bool:
    """Nothing queued, every event's handler called, no job running."""
    called = {c.decode() for c in client.lrange("faults:calls", 0, -1)}
    return (not api(url).api("/api/events", status="queued").json()["events"]
            and all(e in called for e, _, _, _ in items) and started_jobs(client, env) == 0)


def fault_env(redis_url: str) -> dict:
    return base_env(redis_url) | {"REDIS_URL": redis_url, "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_slow",
                                  "ORDERHOOKS_RECOVER_AFTER": "4"}


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", fsync="always").start()
    yield server
    server.stop(kill=True)


def start_burst(redis_url: str, shop: str):
    """A receiver on a Redis of the test's own, and the shuffled deliveries to send it."""
    env = fault_env(redis_url)
    web, url = start_web(env)
    return env, redislib.Redis.from_url(redis_url), deliveries(shop), web, url


def test_worker_killed_mid_burst_is_recovered_by_a_new_worker(own_redis):
    shop = "kill.genmystore.com"
    env, client, items, web, url = start_burst(own_redis.url, shop)
    client.set("faults:hold", "1")  # the first handler call waits: the kill cannot come after the drain
    first = start_worker(env)
    second = None
    try:
        codes = send_all(url, items, shop)
        assert all(c == 202 for c in codes)
        wait_for(lambda: client.llen("faults:calls") >= 1, 30, what="the first handler call")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert not drained(url, client, env, items), "the kill came mid-burst"
        client.delete("faults:hold")
        second = start_worker(env)
        wait_for(lambda: drained(url, client, env, items), 60, interval=0.2,
                 what="the new worker to finish everything")
        assert_all_done(url, client, env, items, shop)
    finally:
        stop(web, first, second)


def test_redis_killed_after_acks_loses_nothing(own_redis, tmp_path):
    shop = "crash.genmystore.com"
    forwarder = Forwarder(own_redis.port)  # a fixed address for the receiver and worker, wherever Redis restarts
    env, _, items, web, url = start_burst(forwarder.url(), shop)
    worker = restarted = None
    try:
        codes = send_all(url, items, shop)
        assert all(c == 202 for c in codes), "every delivery acknowledged"
        own_redis.stop(kill=True)  # SIGKILL right after the last acknowledgement
        forwarder.drop_connections()
        # meanwhile: the receiver says 503 with Retry-After, and /readyz tells the truth
        body = example_for_topic("orders/create")
        signed = signed_headers("orders/create", body, shop="probe." + shop)
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers=signed)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert httpx.get(url + "/readyz", timeout=10).status_code == 503
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:  # starts while Redis is away, and must wait for it
            worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT,
                                      stdout=out, stderr=out)
        wait_for(lambda: b"redis_unavailable" in log.read_bytes(), 30, what="the worker to find Redis away")
        restarted = EmbeddedRedis(own_redis.data_dir, fsync="always").start()  # from its files, on a new port
        forwarder.target_port = restarted.port
        client = redislib.Redis.from_url(restarted.url)
        wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 20, what="readyz to recover")
        stored = events_of(url, shop)
        assert all(e in stored for e, _, _, _ in items), "every acknowledged delivery survived the crash"
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers=signed)
        assert r.status_code == 202, "the receiver recovered by itself"
        wait_for(lambda: drained(url, client, env, items), 60, interval=0.3, what="everything to be processed")
        assert_all_done(url, client, env, items, shop)
        assert api(url).wait_status(r.json()["id"], "processed")
    finally:
        stop(web, worker)
        if restarted:
            restarted.stop(kill=True)
        forwarder.close()


def test_sigterm_finishes_what_was_started(own_redis):
    shop = "term.genmystore.com"
    env, client, items, web, url = start_burst(own_redis.url, shop)
    worker = start_worker(env)
    second = None
    try:
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send_all, url, items, shop, 16, 1)
            wait_for(lambda: len(events_of(url, shop)) >= 40 and client.llen("faults:calls") >= 1, 30,
                     what="deliveries to arrive and the worker to be at work")
            web.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish, the writer drains
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert web.wait(timeout=30) in (0, -signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)  # warm shutdown: the current job finishes
            assert worker.wait(timeout=60) == 0
            first_codes = sending.result()
        acknowledged = [item[0] for item, code in zip(items, first_codes, strict=True) if code]
        assert acknowledged, "some deliveries were acknowledged before the stop"
        web, url = start_web(env)
        stored = events_of(url, shop)
        for event_id in acknowledged:
            assert event_id in stored, "an acknowledged delivery was lost"
        late_codes = send_all(url, items, shop)  # the sender retries what was not acknowledged
        assert all(c in (200, 202) for c in late_codes)
        second = start_worker(env)
        wait_for(lambda: drained(url, client, env, items), 60, interval=0.2, what="the queue to drain")
        assert_all_done(url, client, env, items, shop)
        calls = [c.decode() for c in client.lrange("faults:calls", 0, -1)]
        assert len(calls) == len(set(calls)), "warm shutdowns call no handler twice"
        assert all(e["attempts"] == 1 for e in events_of(url, shop).values())
    finally:
        stop(web, worker, second)


def test_secrets_never_appear_in_logs_or_error_bodies(tmp_path, redis_url):
    env = base_env(redis_url, DB["faults"]) | {"ORDERHOOKS_LOG_FORMAT": "json", "ORDERHOOKS_LOG_LEVEL": "info"}
    redislib.Redis.from_url(env["REDIS_URL"]).flushdb()
    log_file = tmp_path / "web.log"
    with open(log_file, "wb") as out:
        proc, url = start_web(env, stdout=out, stderr=out)
        try:
            body = example_for_topic("orders/create")
            headers = signed_headers("orders/create", body, shop="logs.genmystore.com")
            sig = headers["X-Genstore-Hmac-Sha256"]
            responses = [
                httpx.post(url + "/webhooks/genstore", content=body, headers=headers),
                httpx.post(url + "/webhooks/genstore", content=body + b" ", headers={
                    "X-Genstore-Topic": "orders/create", "X-Genstore-Hmac-Sha256": sig}),
                httpx.get(url + "/api/events", headers={"X-Genstore-Access-Token": env["ORDERHOOKS_API_TOKEN"]}),
                httpx.get(url + "/api/events", headers={"X-Genstore-Access-Token": "wrong" + SECRET}),
            ]
            event = api(url).event(responses[0].json()["id"])
        finally:
            stop(proc)
    logs = log_file.read_text()
    assert "delivery_stored" in logs and "delivery_unauthorized" in logs, "the logs were captured"
    secret_b64 = SECRET.removeprefix("whsec_")
    for needle in (SECRET, secret_b64, env["ORDERHOOKS_API_TOKEN"], sig):
        assert needle not in logs
        for r in responses:
            if r.request.url.path.startswith("/webhooks"):
                assert needle not in r.text
    assert event["headers"]["x-genstore-hmac-sha256"] == "****"


def _restart(server: EmbeddedRedis) -> EmbeddedRedis:
    """Start Redis again from its files, on the same data dir and port."""
    restarted = EmbeddedRedis(server.data_dir, port=server.port, fsync="always").start()
    server.process = restarted.process
    return server


def test_a_handler_retry_runs_when_due_after_redis_restarts(own_redis):
    """RQ's scheduler process died with Redis and nothing woke it: a due retry waited for the next delivery."""
    env = base_env(own_redis.url) | {"REDIS_URL": own_redis.url, "ORDERHOOKS_RETRY_DELAYS": "3"}
    client = redislib.Redis.from_url(own_redis.url)
    web, url = start_web(env)
    worker = start_worker(env)
    shop = "retry.genmystore.com"
    try:
        wait_for(lambda: client.keys("orderhooks:worker:*:alive"), 30, what="the worker to start")
        body = example_for_topic("orders/paid")
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10,
                       headers=signed_headers("orders/paid", body, shop=shop))
        event_id = r.json()["id"]
        name = "tests.e2e.handlers_app.flaky_once"

        def outcome():
            got = api(url).api(f"/api/events/{event_id}", shop=shop)
            return got.json()["event"]["handlers"].get(name, {}) if got.status_code == 200 else {}

        wait_for(lambda: outcome().get("status") == "retrying", 20, what="the handler to fail once")
        due = time.time() + 3
        own_redis.stop(kill=True)
        time.sleep(1)
        _restart(own_redis)
        wait_for(lambda: outcome(), 20, what="the read API to answer again")
        assert outcome().get("status") == "retrying", "the retry survived the restart"
        wait_for(lambda: outcome().get("status") == "ok", max(0.0, due - time.time()) + 6, interval=0.1,
                 what="the retry to run within a few seconds of being due, nothing else arriving")
        assert outcome()["attempts"] == 2
        assert worker.poll() is None
    finally:
        stop(web, worker)


def test_a_running_worker_carries_on_after_losing_redis(own_redis, tmp_path):
    env = fault_env(own_redis.url) | {"ORDERHOOKS_LOG_LEVEL": "info"}
    client = redislib.Redis.from_url(own_redis.url)
    web, url = start_web(env)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=out, stderr=out)
    shop = "reconnect.genmystore.com"
    items = deliveries(shop)[:6]
    try:
        wait_for(lambda: client.keys("orderhooks:worker:*:alive"), 30, what="the worker to start")
        assert send_all(url, items[:3], shop) == [202] * 3
        wait_for(lambda: drained(url, client, env, items[:3]), 20, what="the first events")
        own_redis.stop(kill=True)
        time.sleep(6)  # many reconnect attempts' worth
        assert worker.poll() is None, "the worker waits for Redis"
        _restart(own_redis)
        client = redislib.Redis.from_url(own_redis.url)
        assert send_all(url, items[3:], shop) == [202] * 3
        wait_for(lambda: drained(url, client, env, items), 30, interval=0.2, what="the worker to carry on")
        events = events_of(url, shop)
        assert all(events[e]["status"] in ("processed", "stale") for e, _, _, _ in items)
        assert worker.poll() is None
    finally:
        stop(web, worker)
    lines = log_path.read_text().splitlines()
    said = [json.loads(line).get("event") for line in lines if line.startswith("{")]
    assert said.count("redis_unavailable") in (1, 2), lines  # unreachable, then perhaps loading its data
    assert said.count("redis_available") == 1, lines
    assert len(lines) == len(said), "only our own one-line JSON records, no reconnect tracebacks"
