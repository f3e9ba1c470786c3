"""ORDERHOOKS_MIN_REPLICAS: a 2xx only once a replica holds the delivery (a real primary and replica, a real
receiver process)."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from storage.keys import GENSTORE, Keys, event_ref
from tests.sentinel_cluster import Server
from tests.support.stack import Stack, base_env, start_web, stop

pytestmark = pytest.mark.e2e
KEYS = Keys()
SHOP = "acme.genmystore.com"


def _data_args(server: Server) -> list[str]:
    return ["--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(server.dir), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--logfile", str(server.dir / "redis.log")]


@pytest.fixture
def stack_post():
    """Post one signed delivery of `topic` (its example payload) to the receiver at `url`."""
    def post(url: str, topic: str, event_id: str) -> httpx.Response:
        stack = Stack(url, None, {}, [])
        return stack.post(topic, event_id=event_id, shop=SHOP)
    return post


def _start_primary(tmp_path) -> Server:
    server = Server(tmp_path / "primary", "primary")
    return server.start(*_data_args(server))


def _start_replica(tmp_path, primary: Server, name: str = "replica") -> Server:
    replica = Server(tmp_path / name, name)
    replica.start(*_data_args(replica), "--replicaof", "127.0.0.1", str(primary.port))
    client = primary.client()
    deadline = time.monotonic() + 20
    while not _online(client.info("replication"), replica.port):
        assert time.monotonic() < deadline, "replica did not come online"
        time.sleep(0.05)
    client.close()
    return replica


def _online(info: dict, port: int) -> bool:
    return any(info.get(f"slave{i}", {}).get("port") == port and info[f"slave{i}"].get("state") == "online"
               for i in range(info.get("connected_slaves", 0)))


def _receiver(primary: Server, **extra: str):
    env = base_env(f"redis://127.0.0.1:{primary.port}/0")
    env["REDIS_URL"] = f"redis://127.0.0.1:{primary.port}/0"
    env.update(extra)
    return start_web(env)


def _stored(server: Server, event_id: str) -> bool:
    client = server.client()
    try:
        return bool(client.exists(KEYS.event(event_ref(GENSTORE, SHOP, event_id))))
    finally:
        client.close()


def test_min_replicas_one_answers_503_without_a_replica_and_2xx_once_one_holds_the_event(stack_post, tmp_path):
    primary = _start_primary(tmp_path)
    web, url = _receiver(primary, ORDERHOOKS_MIN_REPLICAS="1", ORDERHOOKS_REPLICA_TIMEOUT_MS="200")
    replica = None
    try:
        ready = httpx.get(url + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "redis": "1 replica needed, 0 connected"}

        event_id = str(uuid.uuid4())
        r = stack_post(url, "orders/create", event_id)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json() == {"error": "storage unavailable, retry later"}
        assert _stored(primary, event_id)  # on the primary alone: not acknowledged
        again = stack_post(url, "orders/create", event_id)
        assert again.status_code == 503  # a duplicate is not acknowledged on the primary's word either

        replica = _start_replica(tmp_path, primary)
        assert httpx.get(url + "/readyz", timeout=5).json() == {"status": "ok", "redis": "ok"}
        retried = stack_post(url, "orders/create", event_id)
        assert retried.status_code == 200 and retried.json()["status"] == "duplicate"
        fresh = str(uuid.uuid4())
        accepted = stack_post(url, "orders/create", fresh)
        assert accepted.status_code == 202 and accepted.json() == {"id": fresh, "status": "queued"}
        assert _stored(replica, fresh) and _stored(replica, event_id)
    finally:
        stop(web)
        for server in (replica, primary):
            if server:
                server.stop()


def test_a_duplicate_is_acknowledged_only_once_a_replica_holds_the_original(stack_post, tmp_path):
    primary = _start_primary(tmp_path)
    replica = _start_replica(tmp_path, primary)
    web, url = _receiver(primary, ORDERHOOKS_MIN_REPLICAS="1", ORDERHOOKS_REPLICA_TIMEOUT_MS="300")
    paused = replica.client()
    try:
        paused.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # the replica stops applying the stream
        event_id = str(uuid.uuid4())
        assert stack_post(url, "orders/create", event_id).status_code == 503
        assert stack_post(url, "orders/create", event_id).status_code == 503
        assert not _stored(replica, event_id)
        paused.execute_command("CLIENT", "UNPAUSE")
        r = stack_post(url, "orders/create", event_id)
        assert (r.status_code, r.json()["status"]) == (200, "duplicate")
        assert _stored(replica, event_id)
    finally:
        paused.close()
        stop(web)
        replica.stop()
        primary.stop()


def test_every_answer_comes_within_five_seconds_and_a_lost_wait_is_a_503(stack_post, tmp_path):
    primary = _start_primary(tmp_path)
    replica = _start_replica(tmp_path, primary)
    web, url = _receiver(primary, ORDERHOOKS_MIN_REPLICAS="1", ORDERHOOKS_REPLICA_TIMEOUT_MS="20000")
    paused = replica.client()
    admin = primary.client()
    try:
        paused.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
        started = time.monotonic()
        r = stack_post(url, "orders/create", str(uuid.uuid4()))
        assert r.status_code == 503 and 4.5 < time.monotonic() - started < 6.5

        # The connection waiting for the replica is cut: a 503 at once, not a WAIT sent again elsewhere.
        answers = []
        sender = threading.Thread(target=lambda: answers.append(stack_post(url, "orders/create",
                                                                           str(uuid.uuid4()))))
        started = time.monotonic()
        sender.start()
        time.sleep(1.0)
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        sender.join(10)
        assert answers[0].status_code == 503 and time.monotonic() - started < 3.5
    finally:
        paused.execute_command("CLIENT", "UNPAUSE")
        paused.close()
        admin.close()
        stop(web)
        replica.stop()
        primary.stop()


def test_every_connected_replica_is_waited_for_and_n_suffice_after_the_timeout(stack_post, tmp_path):
    """Sentinel may promote any replica, so a 2xx waits for all those connected; one that lags past
    ORDERHOOKS_REPLICA_TIMEOUT_MS is not waited for longer when N others hold the write."""
    primary = _start_primary(tmp_path)
    ahead = _start_replica(tmp_path, primary, "ahead")
    behind = _start_replica(tmp_path, primary, "behind")
    web, url = _receiver(primary, ORDERHOOKS_MIN_REPLICAS="1", ORDERHOOKS_REPLICA_TIMEOUT_MS="1500")
    paused = behind.client()
    try:
        started = time.monotonic()
        assert stack_post(url, "orders/create", str(uuid.uuid4())).status_code == 202
        assert time.monotonic() - started < 1.0  # both replicas acknowledge at once
        time.sleep(1.5)  # the receiver has counted both replicas
        paused.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        event_id = str(uuid.uuid4())
        started = time.monotonic()
        r = stack_post(url, "orders/create", event_id)
        took = time.monotonic() - started
        assert r.status_code == 202 and 1.4 < took < 3.0, (r.status_code, took)
        assert _stored(ahead, event_id) and not _stored(behind, event_id)
    finally:
        paused.execute_command("CLIENT", "UNPAUSE")
        paused.close()
        stop(web)
        for server in (behind, ahead, primary):
            server.stop()
