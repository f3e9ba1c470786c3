"""Recovery with real processes and real redis-servers: a full Redis, a poison event swept up with
others, and `orderhooks dev` losing its embedded Redis. Nothing is restarted by the test but Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis as redislib

from orderhooks.config import Settings, secret_bytes
from orderhooks.embedded import EmbeddedRedis, free_port
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from storage.intake import make_delivery, store_deliveries
from storage.keys import GENSTORE, Keys, event_ref
from tests.conftest import SECRET
from tests.e2e.test_faults import fault_env
from tests.support.stack import ROOT, start_web, stop, wait_for
from workers.context import Context

SHOP = "recovery.genmystore.com"


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", fsync="always").start()
    yield server
    server.stop(kill=True)


def post(url: str, body: bytes | None = None, topic: str = "orders/create", secret: str = SECRET,
         shop: str = SHOP) -> httpx.Response:
    body = example_for_topic(topic) if body is None else body
    headers = {"X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": shop, "X-Genstore-Event-Id": str(uuid.uuid4()),
               "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(secret), body)}
    return httpx.post(url + "/webhooks/genstore", content=body, headers=headers, timeout=10)


def order_body(order_id: str) -> bytes:
    data = json.loads(example_for_topic("orders/update"))
    data["order"]["orderId"] = order_id
    return json.dumps(data).encode()


def ref(event_id: str, shop: str = SHOP) -> str:
    """The event's name in Redis (ids are unique per platform and shop)."""
    return event_ref(GENSTORE, shop, event_id)


def status(client: redislib.Redis, event_id: str, shop: str = SHOP) -> str | None:
    value = client.hget(Keys().event(ref(event_id, shop)), "status")
    return value.decode() if value else None


def start_logged_worker(env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT,
                                stdout=out, stderr=out)


def log_events(path: Path) -> list[str]:
    """The `event` of each JSON log line, and the first words of any other line."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line)["event"])
        except (ValueError, KeyError, TypeError):
            out.append(line[:120])
    return out


def fill(client: redislib.Redis) -> int:
    """Set `maxmemory` (noeviction) a little above what Redis holds, then write until it refuses; keep it
    full (a few bytes freed by a client buffer would let the odd write through)."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info("memory")["used_memory"] + 2_000_000)
    blob = b"x" * 100_000
    n = 0
    while True:
        try:
            client.set(f"filler:{n}", blob)
        except redislib.exceptions.OutOfMemoryError:
            client.config_set("maxmemory", client.info("memory")["used_memory"] - 1_000_000)
            return n
        n += 1


def free(client: redislib.Redis, n: int) -> None:
    client.config_set("maxmemory", 0)
    client.delete(*[f"filler:{i}" for i in range(n)])


def test_the_worker_survives_a_full_redis_and_resumes_by_itself(own_redis, tmp_path):
    env = fault_env(own_redis.url) | {"ORDERHOOKS_LOG_LEVEL": "info"}
    client = redislib.Redis.from_url(own_redis.url)
    web, url = start_web(env)
    log_path = tmp_path / "worker.log"
    worker = start_logged_worker(env, log_path)
    try:
        wait_for(lambda: client.keys("orderhooks:worker:*:alive"), 30, what="the worker to start")
        first = post(url).json()["id"]
        wait_for(lambda: status(client, first) == "processed", 20, what="the first event")
        # The worker waits for a job in a blocking BLMOVE: stopped there, it is handed the next job, and
        # finds Redis full when it goes on to start it (RQ's job preparation writes).
        worker.send_signal(signal.SIGSTOP)
        ids = []
        for n in range(5):
            r = post(url, order_body(str(7000 + n)), topic="orders/update")
            assert r.status_code == 202
            ids.append(r.json()["id"])
        fillers = fill(client)
        worker.send_signal(signal.SIGCONT)
        r = post(url)
        assert r.status_code == 503 and r.headers["Retry-After"], "a full Redis: the sender retries later"
        ready = httpx.get(url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "redis": "out of memory (maxmemory reached)"}
        time.sleep(4)  # several rounds of the worker's attempts
        assert worker.poll() is None, "the worker is still running"
        assert all(status(client, e) == "queued" for e in ids)

        free(client, fillers)
        wait_for(lambda: all(status(client, e) == "processed" for e in ids), 40, interval=0.3,
                 what="every event to be processed once memory is freed")
        assert httpx.get(url + "/readyz", timeout=10).status_code == 200
        late = post(url, order_body("7100"), topic="orders/update").json()["id"]
        wait_for(lambda: status(client, late) == "processed", 20, what="a delivery after the recovery")
        assert worker.poll() is None
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
        stop(web, worker)
    events = log_events(log_path)
    assert events.count("redis_unavailable") == 1, events
    assert events.count("redis_available") == 1, events
    assert not [e for e in events if "Traceback" in e or "could not connect" in e], events


def test_a_poison_event_swept_up_with_others_fails_alone_and_replays(own_redis, tmp_path):
    env = fault_env(own_redis.url) | {"ORDERHOOKS_RECOVER_AFTER": "1", "ORDERHOOKS_RETRY_DELAYS": "1,1"}
    client = redislib.Redis.from_url(own_redis.url)
    ctx = Context.create(Settings.from_env(env), redis=client, load=False)
    ids = {f"sw-{n}": str(8000 + n) for n in range(4)}
    ds = [make_delivery(e, "orders/update", SHOP, order_body(o)) for e, o in ids.items()]
    store_deliveries(client, ctx.keys, ctx.queue, ds, ctx.settings.event_ttl)
    ctx.queue.empty()  # their jobs were lost: the sweeper sends them round again, together
    client.hset(ctx.keys.order(GENSTORE, SHOP, "8002"), "planted", "not a projection")
    worker = start_logged_worker(env, tmp_path / "worker.log")
    try:
        wait_for(lambda: status(client, "sw-2") == "failed", 40, interval=0.2, what="the poison event to fail")
        assert [status(client, e) for e in ("sw-0", "sw-1", "sw-3")] == ["processed"] * 3
        poison = {k.decode(): v.decode() for k, v in client.hgetall(ctx.keys.event(ref("sw-2"))).items()
                  if k != b"raw"}
        assert poison["attempts"] == "3", "the first attempt and two retries"
        assert poison["error"].startswith("apply: WRONGTYPE"), poison
        time.sleep(3)
        assert int(client.hget(ctx.keys.event(ref("sw-2")), "attempts")) == 3, "not sent round again"
        client.delete(ctx.keys.order(GENSTORE, SHOP, "8002"))
        replayed = subprocess.run([sys.executable, "-m", "orderhooks.cli", "replay", "sw-2"], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
        assert replayed.returncode == 0, replayed.stderr
        wait_for(lambda: status(client, "sw-2") == "processed", 20, what="the replayed event")
        assert client.hget(ctx.keys.event(ref("sw-2")), "error") == b""
        called = {c.decode() for c in client.lrange("faults:calls", 0, -1)}
        assert called == set(ids)
    finally:
        stop(worker)


def _dev_env(data_dir: Path, port: int) -> dict:
    env = dict(os.environ)
    for name in ("REDIS_URL", "ORDERHOOKS_SECRETS", "ORDERHOOKS_API_TOKEN", "ORDERHOOKS_HANDLERS"):
        env.pop(name, None)
    return env | {"ORDERHOOKS_DATA_DIR": str(data_dir), "PORT": str(port), "ORDERHOOKS_LOG_FORMAT": "json",
                  "ORDERHOOKS_RECOVER_AFTER": "4", "PYTHONPATH": str(ROOT)}


def test_dev_restarts_its_redis_when_it_dies(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    out_path = tmp_path / "dev.log"
    with open(out_path, "wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "dev"], env=_dev_env(data_dir, port),
                               cwd=tmp_path, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert dev.poll() is None, out_path.read_text()
            try:
                return httpx.get(url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, interval=0.2, what="orderhooks dev to start")
        secret = (data_dir / "dev-secret").read_text().strip()
        token = (data_dir / "dev-token").read_text().strip()
        client = redislib.Redis.from_url((data_dir / "redis.url").read_text().strip())

        def processed(event_id: str) -> bool:
            r = httpx.get(f"{url}/api/events/{event_id}", headers={"X-Genstore-Access-Token": token}, timeout=5)
            return r.status_code == 200 and r.json()["event"]["status"] == "processed"

        before = post(url, secret=secret).json()["id"]
        wait_for(lambda: processed(before), 20, what="an event before the crash")
        os.kill(client.info("server")["process_id"], signal.SIGKILL)
        wait_for(lambda: "redis-server" in out_path.read_text() and ready(), 30, interval=0.2,
                 what="dev to restart its Redis")
        time.sleep(3)  # the worker and receiver carry on; their reconnect loops say so once
        after = post(url, order_body("9100"), topic="orders/update", secret=secret)
        assert after.status_code == 202
        wait_for(lambda: processed(after.json()["id"]), 20, what="an event after the restart")
        assert processed(before), "the data survived: it is on disk"
        assert dev.poll() is None
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
    text = out_path.read_text(errors="replace")
    lines = text.splitlines()
    said = [line for line in lines if "redis-server" in line and "restart" in line]
    assert len(said) == 1, text
    redis_port = client.connection_pool.connection_kwargs["port"]
    assert said[0].startswith(f"redis-server was killed by SIGKILL; restarted it on port {redis_port} "), said
    events = log_events(out_path)
    assert events.count("redis_unavailable") <= 2, text  # the worker's, and the receiver's /readyz
    assert not [e for e in events if "could not connect" in e or "Traceback" in e], text
    assert len(lines) < 40, text


def test_a_redis_turned_read_only_replica_is_waited_for(own_redis, tmp_path):
    env = fault_env(own_redis.url) | {"ORDERHOOKS_LOG_LEVEL": "info"}
    client = redislib.Redis.from_url(own_redis.url)
    web, url = start_web(env)
    log_path = tmp_path / "worker.log"
    worker = start_logged_worker(env, log_path)
    try:
        wait_for(lambda: client.keys("orderhooks:worker:*:alive"), 30, what="the worker to start")
        client.replicaof("127.0.0.1", free_port())  # a replica of a master that is not there: read-only
        r = post(url)
        assert r.status_code == 503
        ready = httpx.get(url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["redis"] == "read-only replica"
        time.sleep(4)
        assert worker.poll() is None, "the worker waits"
        client.replicaof("NO", "ONE")
        wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 20, what="readyz")
        event_id = post(url).json()["id"]
        wait_for(lambda: status(client, event_id) == "processed", 20, what="the worker to carry on")
    finally:
        stop(web, worker)
    events = log_events(log_path)
    assert events.count("redis_unavailable") == 1 and events.count("redis_available") == 1, events
    assert not [e for e in events if "Traceback" in e or "unhandled" in e], events


def test_a_worker_whose_waiting_connection_is_dropped_picks_up_the_next_event_at_once(own_redis, tmp_path):
    """RQ answers an error of its blocking wait for a job with a sleep that doubles up to a minute while the
    errors last, though Redis itself is fine: the worker starts waiting again at once instead."""
    env = fault_env(own_redis.url) | {"ORDERHOOKS_LOG_LEVEL": "info"}
    client = redislib.Redis.from_url(own_redis.url)
    web, url = start_web(env)
    log_path = tmp_path / "worker.log"
    worker = start_logged_worker(env, log_path)

    def waiting() -> list[dict]:
        return [c for c in client.client_list() if c.get("cmd") == "blmove"]

    try:
        for _ in range(4):  # under RQ's own retry, 1 + 2 + 4 s of sleep by now, 8 more to come
            [blocked] = wait_for(waiting, 30, what="the worker to wait for a job")
            client.client_kill_filter(_id=blocked["id"])
            wait_for(lambda: not waiting(), 5, what="the connection to go")
        event_id = post(url).json()["id"]
        wait_for(lambda: status(client, event_id) == "processed", 4, what="the worker to pick the event up")
    finally:
        stop(web, worker)
    events = log_events(log_path)
    assert "redis_unavailable" in events and events.count("redis_unavailable") == events.count("redis_available")
    assert not [e for e in events if "Traceback" in e or "could not connect" in e], events
