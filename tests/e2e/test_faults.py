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

from orderhooks.config import Settings, secret_bytes
from orderhooks.embedded import EmbeddedRedis
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET
from tests.e2e.conftest import ROOT, base_env, start_web, stop, wait_for
from workers.context import make_queue
from workers.keys import GENSTORE, Keys, event_ref

KEYS = Keys()

ORDERS = 60
VERSIONS = 3


def deliveries(shop: str) -> list[tuple[str, str, bytes, str]]:
    """(event id, order id, body, updatedAt) for ORDERS orders x VERSIONS snapshots, shuffled."""
    base = json.loads(example_for_topic("orders/update"))
    out = []
    for n in range(ORDERS):
        for v in range(VERSIONS):
            data = json.loads(json.dumps(base))
            stamp = f"2024-03-01T10:00:{v:02d}Z"
            data["order"].update(orderId=str(5000 + n), updatedAt=stamp, note=f"v{v}")
            out.append((str(uuid.uuid4()), str(5000 + n), json.dumps(data).encode(), stamp))
    random.Random(7).shuffle(out)
    return out


def send_all(url: str, items, shop: str, workers: int = 16, attempts: int = 50) -> list[int]:
    """Send every delivery, retrying as a sender does; the final status of each (0: never acknowledged)."""
    key = secret_bytes(SECRET)
    clients = threading.local()

    def one(item):
        event_id, _, body, _ = item
        headers = {"X-Genstore-Topic": "orders/update", "X-Genstore-Shop-Domain": shop,
                   "X-Genstore-Event-Id": event_id, "X-Genstore-Hmac-Sha256": genstore_signature(key, body)}
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


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)


def event_key(shop: str, event_id: str) -> str:
    return KEYS.event(event_ref(GENSTORE, shop, event_id))


def assert_all_done(client: redislib.Redis, env: dict, items, shop: str) -> None:
    prefix = "orderhooks:"
    for event_id, _, _, _ in items:
        status = client.hget(event_key(shop, event_id), "status")
        assert status in (b"processed", b"stale"), (event_id, status)
    assert client.zcard(f"{prefix}events:status:queued") == 0
    queue = make_queue(client, Settings.from_env({"REDIS_URL": env["REDIS_URL"]}))
    assert StartedJobRegistry(queue=queue).count == 0
    for n in range(ORDERS):
        order = json.loads(client.get(KEYS.order(GENSTORE, shop, str(5000 + n))))["order"]
        assert order["updatedAt"] == f"2024-03-01T10:00:{VERSIONS - 1:02d}Z"
        assert order["note"] == f"v{VERSIONS - 1}"
    called = {c.decode() for c in client.lrange("faults:calls", 0, -1)}
    missing = [e for e, _, _, _ in items if e not in called]
    assert not missing, f"{len(missing)} events never reached their handler"


def drained(client: redislib.Redis, env: dict) -> bool:
    """Nothing queued, no handler pending, no job running."""
    queue = make_queue(client, Settings.from_env(env))
    return (client.zcard("orderhooks:events:status:queued") == 0 and client.zcard("orderhooks:dispatching") == 0
            and StartedJobRegistry(queue=queue).count == 0)


def fault_env(redis_url: str) -> dict:
    return base_env(redis_url) | {"REDIS_URL": redis_url, "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_slow",
                                  "ORDERHOOKS_RECOVER_AFTER": "4"}


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", fsync="always").start()
    yield server
    server.stop(kill=True)


def start_burst(server: EmbeddedRedis, shop: str):
    """A receiver on its own Redis, and the shuffled deliveries to send it."""
    env = fault_env(server.url)
    web, url = start_web(env)
    return env, redislib.Redis.from_url(server.url), deliveries(shop), web, url


def test_worker_killed_mid_burst_is_recovered_by_a_new_worker(own_redis):
    shop = "kill.genmystore.com"
    env, client, items, web, url = start_burst(own_redis, shop)
    first = start_worker(env)
    second = None
    try:
        codes = send_all(url, items, shop)
        assert all(c == 202 for c in codes)
        wait_for(lambda: client.llen("faults:calls") >= 20, 30, what="the first handler calls")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert client.zcard("orderhooks:events:status:queued") > 0, "the kill came mid-burst"
        second = start_worker(env)
        wait_for(lambda: drained(client, env), 60, interval=0.2, what="the new worker to finish everything")
        assert_all_done(client, env, items, shop)
    finally:
        stop(web, first, *([second] if second else []))


def test_redis_killed_after_acks_loses_nothing(own_redis, tmp_path):
    shop = "crash.genmystore.com"
    env, _, items, web, url = start_burst(own_redis, shop)
    worker = None
    try:
        codes = send_all(url, items, shop)
        assert all(c == 202 for c in codes), "every delivery acknowledged"
        own_redis.stop(kill=True)  # SIGKILL right after the last acknowledgement
        # meanwhile: the receiver says 503 with Retry-After, and /readyz tells the truth
        body = example_for_topic("orders/create")
        signed = {"X-Genstore-Topic": "orders/create", "X-Genstore-Shop-Domain": shop,
                  "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(SECRET), body)}
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers=signed)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert httpx.get(url + "/readyz", timeout=10).status_code == 503
        worker = start_worker(env)  # starts while Redis is away, and must wait for it
        time.sleep(1)
        restarted = EmbeddedRedis(own_redis.data_dir, port=own_redis.port, fsync="always").start()
        own_redis.process = restarted.process
        client = redislib.Redis.from_url(own_redis.url)
        stored = sum(client.exists(event_key(shop, e)) for e, _, _, _ in items)
        assert stored == len(items), "every acknowledged delivery survived the crash"
        wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 20, what="readyz to recover")
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers=signed)
        assert r.status_code == 202, "the receiver recovered by itself"
        items.append((r.json()["id"], "1001", body, ""))
        wait_for(lambda: all(client.hget(event_key(shop, e), "status") in (b"processed", b"stale")
                             for e, _, _, _ in items) and drained(client, env),
                 60, interval=0.3, what="everything to be processed")
        assert_all_done(client, env, items[:-1], shop)
    finally:
        stop(web, *([worker] if worker else []))


def test_sigterm_finishes_what_was_started(own_redis):
    shop = "term.genmystore.com"
    env, client, items, web, url = start_burst(own_redis, shop)
    worker = start_worker(env)
    second = None
    try:
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send_all, url, items, shop, 16, 1)
            wait_for(lambda: client.zcard("orderhooks:events") >= 40 and client.llen("faults:calls") >= 1, 30,
                     what="deliveries to arrive and the worker to be at work")
            web.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish, the writer drains
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert web.wait(timeout=30) in (0, -signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)  # warm shutdown: the current job finishes
            assert worker.wait(timeout=60) == 0
            first_codes = sending.result()
        acknowledged = [item[0] for item, code in zip(items, first_codes, strict=True) if code]
        assert acknowledged, "some deliveries were acknowledged before the stop"
        for event_id in acknowledged:
            assert client.exists(event_key(shop, event_id)), "an acknowledged delivery was lost"
        web, url = start_web(env)
        late_codes = send_all(url, items, shop)  # the sender retries what was not acknowledged
        assert all(c in (200, 202) for c in late_codes)
        second = start_worker(env)
        wait_for(lambda: drained(client, env), 60, interval=0.2, what="the queue to drain")
        assert_all_done(client, env, items, shop)
        calls = [c.decode() for c in client.lrange("faults:calls", 0, -1)]
        assert len(calls) == len(set(calls)), "warm shutdowns call no handler twice"
        assert all(int(client.hget(event_key(shop, e), "attempts")) == 1 for e, _, _, _ in items)
    finally:
        stop(web, worker, *([second] if second else []))


def test_secrets_never_appear_in_logs_or_error_bodies(tmp_path, redis_url):
    env = base_env(redis_url) | {"ORDERHOOKS_LOG_FORMAT": "json", "ORDERHOOKS_LOG_LEVEL": "info"}
    log_file = tmp_path / "web.log"
    with open(log_file, "wb") as out:
        port_env = dict(env)
        from orderhooks.embedded import free_port
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1",
                                 "--port", str(port)], env=port_env, cwd=ROOT, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            def up():
                try:
                    return httpx.get(url + "/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for(up, 30, what="receiver")
            body = example_for_topic("orders/create")
            sig = genstore_signature(secret_bytes(SECRET), body)
            responses = [
                httpx.post(url + "/webhooks/genstore", content=body, headers={
                    "X-Genstore-Topic": "orders/create", "X-Genstore-Shop-Domain": "logs.genmystore.com",
                    "X-Genstore-Hmac-Sha256": sig}),
                httpx.post(url + "/webhooks/genstore", content=body + b" ", headers={
                    "X-Genstore-Topic": "orders/create", "X-Genstore-Hmac-Sha256": sig}),
                httpx.get(url + "/api/events", headers={"X-Genstore-Access-Token": env["ORDERHOOKS_API_TOKEN"]}),
                httpx.get(url + "/api/events", headers={"X-Genstore-Access-Token": "wrong" + SECRET}),
            ]
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
    event_id = responses[0].json()["id"]
    client = redislib.Redis.from_url(env["REDIS_URL"])
    headers = json.loads(client.hget(event_key("logs.genmystore.com", event_id), "headers"))
    assert headers["x-genstore-hmac-sha256"] == "****"


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
    try:
        wait_for(lambda: client.keys("orderhooks:worker:*:alive"), 30, what="the worker to start")
        body = example_for_topic("orders/paid")
        r = httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers={
            "X-Genstore-Topic": "orders/paid", "X-Genstore-Shop-Domain": "retry.genmystore.com",
            "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(SECRET), body)})
        event_id = r.json()["id"]
        field = "handler:tests.e2e.handlers_app.flaky_once"

        def outcome():
            raw = client.hget(event_key("retry.genmystore.com", event_id), field)
            return json.loads(raw) if raw else {}

        wait_for(lambda: outcome().get("status") == "retrying", 20, what="the handler to fail once")
        due = time.time() + 3
        own_redis.stop(kill=True)
        time.sleep(1)
        _restart(own_redis)
        client = redislib.Redis.from_url(own_redis.url)
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
        wait_for(lambda: drained(client, env), 20, what="the first events")
        own_redis.stop(kill=True)
        time.sleep(6)  # many reconnect attempts' worth
        assert worker.poll() is None, "the worker waits for Redis"
        _restart(own_redis)
        client = redislib.Redis.from_url(own_redis.url)
        assert send_all(url, items[3:], shop) == [202] * 3
        wait_for(lambda: all(client.hget(event_key(shop, e), "status") in (b"processed", b"stale")
                             for e, _, _, _ in items) and drained(client, env),
                 30, interval=0.2, what="the worker to carry on")
        assert worker.poll() is None
    finally:
        stop(web, worker)
    lines = log_path.read_text().splitlines()
    said = [json.loads(line).get("event") for line in lines if line.startswith("{")]
    assert said.count("redis_unavailable") in (1, 2), lines  # unreachable, then perhaps loading its data
    assert said.count("redis_available") == 1, lines
    assert len(lines) == len(said), "only our own one-line JSON records, no reconnect tracebacks"
