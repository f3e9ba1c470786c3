"""Losing the Redis primary: a primary, two replicas and three sentinels, the receiver and a worker
through the sentinels, a burst of signed deliveries and the primary SIGKILLed in its middle.

On loopback a bare kill loses nothing (what the primary wrote to its sockets still reaches the
replicas), so the replicas are made to lag first: `CLIENT PAUSE WRITE` on a replica stops it applying
the replication stream, and what it had received but not applied is discarded when its link to the
dead primary drops. With ORDERHOOKS_MIN_REPLICAS=1 those deliveries were never acknowledged (503);
with 0 they were, and are lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis as redislib

from orderhooks.config import secret_bytes
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from storage import codec
from storage.keys import GENSTORE, Keys, event_ref
from tests.conftest import SECRET
from tests.sentinel_cluster import SentinelCluster
from tests.support.stack import DB, ROOT, base_env, db_url, start_web, stop, wait_for

pytestmark = pytest.mark.e2e

KEYS = Keys()
SHOP = "failover.genmystore.com"
BURST = 1000
SENDERS = 8
SENDER_TIMEOUT = 5.0
PAUSE_AT = 350  # answers before the replicas are made to lag
KILL_AFTER = 0.6  # seconds of lag before the primary is killed
FLAKY_RETRY = 8  # seconds: the handler retry scheduled before the kill falls due after the failover


def _delivery(topic: str, order_id: str) -> tuple[str, bytes]:
    data = json.loads(example_for_topic(topic))
    data["order"]["orderId"] = order_id
    return str(uuid.uuid4()), json.dumps(data).encode()


def _headers(topic: str, event_id: str, body: bytes) -> dict[str, str]:
    return {"X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": SHOP, "X-Genstore-Event-Id": event_id,
            "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(SECRET), body),
            "Content-Type": "application/json"}


class Sender:
    """Senders with a 5 s timeout; what each delivery was answered (a status, or "timeout"/"error")."""

    def __init__(self, url: str) -> None:
        self.url = url + "/webhooks/genstore"
        self.local = threading.local()
        self.answered = 0
        self.lock = threading.Lock()

    def send(self, item: tuple[str, bytes]) -> int | str:
        event_id, body = item
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=SENDER_TIMEOUT)
        try:
            code: int | str = self.local.client.post(self.url, content=body,
                                                     headers=_headers("orders/create", event_id, body)).status_code
        except httpx.TimeoutException:
            code = "timeout"
        except httpx.HTTPError:
            code = "error"
        with self.lock:
            self.answered += 1
        return code

    def burst(self, items) -> list[int | str]:
        with ThreadPoolExecutor(SENDERS) as pool:
            return list(pool.map(self.send, items))


def _lag_and_kill(cluster: SentinelCluster, sender: Sender) -> float:
    """When PAUSE_AT deliveries are answered: replicas stop applying, then the primary is SIGKILLed; once each
    replica has seen its link drop (and discarded what it had not applied) it is resumed. The kill's time."""
    wait_for(lambda: sender.answered >= PAUSE_AT, 60, what="the burst to get going")
    replicas = [r.client() for r in cluster.replicas()]
    for client in replicas:
        client.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
    time.sleep(KILL_AFTER)
    cluster.first_primary.kill()
    killed = time.time()
    for client in replicas:
        wait_for(lambda c=client: c.info("replication")["master_link_status"] == "down", 10,
                 what="a replica to see its primary gone")
        client.execute_command("CLIENT", "UNPAUSE")
        client.close()
    return killed


@pytest.fixture
def failover_stack(tmp_path, redis_url):
    """Start the set, then (per call) a receiver and a worker through the sentinels."""
    started: list = []
    witness = redislib.Redis.from_url(db_url(redis_url, DB["sentinel_witness"]))
    witness.flushdb()

    def start(min_replicas: int):
        cluster = SentinelCluster(tmp_path / "redis").start()
        started.append(cluster)
        env = base_env(redis_url)
        del env["REDIS_URL"]
        env.update(cluster.env(), ORDERHOOKS_MIN_REPLICAS=str(min_replicas), ORDERHOOKS_REPLICA_TIMEOUT_MS="1000",
                   ORDERHOOKS_HANDLERS="tests.e2e.handlers_witness",
                   E2E_WITNESS_URL=db_url(redis_url, DB["sentinel_witness"]),
                   ORDERHOOKS_RETRY_DELAYS=f"{FLAKY_RETRY},1,1")
        web, url = start_web(env)
        started.append(web)
        worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)
        started.append(worker)
        return cluster, url, env

    yield start, witness
    stop(*[p for p in started if isinstance(p, subprocess.Popen)])
    for cluster in started:
        if isinstance(cluster, SentinelCluster):
            cluster.stop()
    witness.close()


def _status(client: redislib.Redis, event_id: str) -> bytes | None:
    return client.hget(KEYS.event(event_ref(GENSTORE, SHOP, event_id)), "status")


def test_losing_the_primary_loses_no_acknowledged_delivery_with_one_replica_acknowledging(failover_stack):
    start, witness = failover_stack
    cluster, url, env = start(min_replicas=1)
    # A handler fails before the kill; its retry falls due after the failover.
    flaky_id, flaky_body = _delivery("orders/paid", "flaky-1")
    r = httpx.post(url + "/webhooks/genstore", content=flaky_body, headers=_headers("orders/paid", flaky_id,
                                                                                    flaky_body), timeout=5)
    assert r.status_code == 202
    wait_for(lambda: witness.get(f"flaky:{flaky_id}") == b"1", 20, what="the flaky handler's first failure")

    items = [_delivery("orders/create", str(900_000 + n)) for n in range(BURST)]
    sender = Sender(url)
    killer = ThreadPoolExecutor(1).submit(_lag_and_kill, cluster, sender)
    started = time.monotonic()
    codes = sender.burst(items)
    killed = killer.result()
    burst_seconds = time.monotonic() - started

    # Every answer is a 202 or a 503: never a 500, never past the sender's timeout.
    assert set(codes) <= {202, 503}, {c for c in codes if c not in (202, 503)}
    acknowledged = [i for (i, _), c in zip(items, codes, strict=True) if c == 202]
    refused = [item for item, c in zip(items, codes, strict=True) if c == 503]
    assert len(acknowledged) >= PAUSE_AT - SENDERS and refused, (len(acknowledged), len(refused))

    new = cluster.wait_failover(30)
    client = new.client()
    missing = [i for i in acknowledged if _status(client, i) is None]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged deliveries lost"

    # The senders retry the 503s: a few more 503s while the promoted replica gets its own replica, then 2xx.
    retry = Sender(url)
    deadline = time.monotonic() + 30
    while refused and time.monotonic() < deadline:
        answers = retry.burst(refused)
        assert set(answers) <= {200, 202, 503}, set(answers)
        refused = [item for item, c in zip(refused, answers, strict=True) if c == 503]
        if refused:
            time.sleep(0.5)
    assert not refused, f"{len(refused)} deliveries still refused 30 s after the failover"

    # Every delivery is stored once and processed; the worker and its scheduler follow the new primary.
    everyone = [i for i, _ in items]
    wait_for(lambda: all(_status(client, i) == b"processed" for i in everyone), 60, interval=0.5,
             what="every delivery to be processed on the new primary")
    assert client.zcard(KEYS.events) == BURST + 1
    for n, event_id in enumerate(everyone):
        history = client.zrange(KEYS.order_events(GENSTORE, SHOP, str(900_000 + n)), 0, -1)
        assert history == [event_ref(GENSTORE, SHOP, event_id).encode()]
        assert witness.llen(f"calls:{event_id}") >= 1, event_id
    order = json.loads(codec.unpack(client.get(KEYS.order(GENSTORE, SHOP, str(900_000 + BURST - 1)))))["order"]
    assert order["orderId"] == str(900_000 + BURST - 1)

    # The handler retry that fell due after the failover ran (RQ's scheduler on the new primary), and the
    # event ended well.
    def flaky_calls():
        return [json.loads(c) for c in witness.lrange(f"calls:{flaky_id}", 0, -1) if b"flaky_once" in c]
    wait_for(lambda: len(flaky_calls()) >= 2, 30, what="the flaky handler's retry")
    retried = flaky_calls()[-1]
    assert retried["attempt"] == 2 and retried["at"] > killed
    event = client.hgetall(KEYS.event(event_ref(GENSTORE, SHOP, flaky_id)))
    wait_for(lambda: not client.hget(KEYS.event(event_ref(GENSTORE, SHOP, flaky_id)), "error"), 10,
             what="the flaky event's error to clear")
    assert event[b"status"] == b"processed"
    print(f"\nmin_replicas=1: burst {burst_seconds:.1f}s, {len(acknowledged)} acknowledged, "
          f"{BURST - len(acknowledged)} refused (503) and retried, 0 lost")
    client.close()


def test_without_replica_acknowledgement_losing_the_primary_loses_acknowledged_deliveries(failover_stack):
    """The same fault with ORDERHOOKS_MIN_REPLICAS=0: deliveries answered 202 while the replicas lagged are
    gone after the failover. (This also shows the lag is real: the test above proves something.)"""
    start, _ = failover_stack
    cluster, url, _ = start(min_replicas=0)
    items = [_delivery("orders/create", str(800_000 + n)) for n in range(BURST)]
    sender = Sender(url)
    killer = ThreadPoolExecutor(1).submit(_lag_and_kill, cluster, sender)
    codes = sender.burst(items)
    killer.result()
    assert set(codes) <= {202, 503}, set(codes)
    acknowledged = [i for (i, _), c in zip(items, codes, strict=True) if c == 202]
    client = cluster.wait_failover(30).client()
    lost = [i for i in acknowledged if _status(client, i) is None]
    print(f"\nmin_replicas=0: {len(acknowledged)} acknowledged, {len(lost)} of them lost with the primary")
    assert lost
    client.close()


def test_dev_and_the_cli_find_the_primary_through_the_sentinels(tmp_path):
    """`orderhooks dev` starts no embedded Redis when REDIS_SENTINELS is set; one-shot commands follow a
    failover without being told."""
    import os
    import signal

    from orderhooks.embedded import free_port

    cluster = SentinelCluster(tmp_path / "redis").start()
    data_dir, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "ORDERHOOKS_SECRETS", "ORDERHOOKS_API_TOKEN", "ORDERHOOKS_HANDLERS")}
    env |= cluster.env() | {"ORDERHOOKS_DATA_DIR": str(data_dir), "PORT": str(port), "PYTHONPATH": str(ROOT),
                            "ORDERHOOKS_LOG_FORMAT": "json", "ORDERHOOKS_LOG_LEVEL": "warning"}
    out_path = tmp_path / "dev.log"
    with open(out_path, "wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "dev"], env=env, cwd=tmp_path,
                               stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orderhooks.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    try:
        def ready():
            assert dev.poll() is None, out_path.read_text()
            try:
                return httpx.get(url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, interval=0.2, what="orderhooks dev to start")
        assert not (data_dir / "redis.url").exists()  # no embedded Redis
        assert f"orderhooks via sentinels {cluster.sentinel_addresses}" in " ".join(out_path.read_text().split())
        secret = (data_dir / "dev-secret").read_text().strip()
        event_id, body = _delivery("orders/create", "4242")
        headers = _headers("orders/create", event_id, body) | {
            "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(secret), body)}
        assert httpx.post(url + "/webhooks/genstore", content=body, headers=headers, timeout=5).status_code == 202
        primary = cluster.primary().client()
        wait_for(lambda: _status(primary, event_id) == b"processed", 20, what="the event to be processed")
        primary.close()
        cluster.wait_replicas(cluster.first_primary, 2)

        cluster.first_primary.kill()
        cluster.wait_failover(30)
        listed = cli("events", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [e["id"] for e in json.loads(listed.stdout)] == [event_id]
        shown = cli("event", event_id)
        assert shown.returncode == 0 and event_id in shown.stdout, shown.stderr
        shops = cli("shops", "list", "--json")
        assert shops.returncode == 0, shops.stderr
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
        cluster.stop()
