"""Reconciliation through the real processes: the `orderhooks reconcile` command, a worker's schedule, a
worker killed mid-run, two workers, and `event.api` acting back on the fake Orders API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis as redislib
from cryptography.fernet import Fernet

from orderhooks.config import secret_bytes
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET, TOKEN
from tests.fake_genstore import FakeGenstore
from tests.support.stack import DB, ROOT, base_env, db_url, start_web, stop, wait_for

SHOP = "heal.genmystore.com"


def _db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture
def env(redis_url):
    env = base_env(redis_url) | {
        "REDIS_URL": db_url(redis_url, DB["reconcile"]), "ORDERHOOKS_SECRET_KEY": Fernet.generate_key().decode(),
        "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_reconcile", "ORDERHOOKS_RECOVER_AFTER": "6",
        "ORDERHOOKS_RECONCILE_EVERY": "0",
    }
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    yield env
    client.flushdb()


@pytest.fixture
def api():
    with FakeGenstore(shop=SHOP) as fake:
        yield fake


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orderhooks.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def register(env: dict, api: FakeGenstore) -> None:
    done = cli(env, "shops", "add", SHOP, "--token", api.token, "--api-url", api.url)
    assert done.returncode == 0, done.stderr


def calls(client) -> list[dict]:
    return [json.loads(c) for c in client.lrange("reconcile:calls", 0, -1)]


def test_reconcile_command_heals_and_handlers_see_the_source(env, api):
    client = redislib.Redis.from_url(env["REDIS_URL"])
    register(env, api)
    for n in range(3):
        api.add_order(str(1001 + n), updated_at="2024-05-01T10:00:00+00:00", financialStatus="paid")
    web, url = start_web(env)
    w = worker(env)
    try:
        done = cli(env, "reconcile", "--shop", SHOP, "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary == {"shop": SHOP, "pages": 1, "seen": 3, "healed": 3, "updated": 0, "unchanged": 0,
                           "quarantined": 0, "errors": 0, "failed": None}
        listed = httpx.get(url + "/api/202412/orders", params={"shop": SHOP},
                           headers={"X-Genstore-Access-Token": TOKEN}).json()["orders"]
        assert [o["orderId"] for o in listed] == ["1001", "1002", "1003"], "in the projection when the run exits"
        wait_for(lambda: len(calls(client)) == 3, 20, what="the handlers on the worker")
        assert {(c["topic"], c["source"], c["api"]) for c in calls(client)} == {("orders/reconcile", "reconcile",
                                                                                 True)}
        again = json.loads(cli(env, "reconcile", "--shop", SHOP, "--full", "--json").stdout)
        assert (again["healed"], again["updated"], again["unchanged"]) == (0, 0, 3)
        listing = json.loads(cli(env, "shops", "list", "--json").stdout)
        assert listing[0]["lastRun"]["ok"] is True and listing[0]["lastRun"]["healed"] == 0
        metrics = httpx.get(url + "/metrics").text
        assert f'orderhooks_reconcile_orders_total{{result="healed",shop="{SHOP}"}} 3.0' in metrics
        assert f'orderhooks_reconcile_last_run_ok{{shop="{SHOP}"}} 1.0' in metrics
        with httpx.Client(base_url=url) as ui:
            ui.post("/ui/login", data={"token": TOKEN})
            event_id = listed and httpx.get(url + "/api/events", params={"shop": SHOP, "orderId": "1001"},
                                           headers={"X-Genstore-Access-Token": TOKEN}).json()["events"][0]["id"]
            assert "healed by reconciliation" in ui.get(f"/ui/events/{event_id}", params={"shop": SHOP}).text
            assert SHOP in ui.get("/ui/shops").text
    finally:
        stop(web, w)


def test_exit_codes(env, api):
    register(env, api)
    refused = cli(env, "reconcile", "--shop", "nobody.genmystore.com")
    assert refused.returncode == 2 and "not registered" in refused.stderr
    both = cli(env, "reconcile", "--shop", SHOP, "--full", "--since", "2024-01-01T00:00:00Z")
    assert both.returncode == 2
    api.fail(401, times=10)
    denied = cli(env, "reconcile", "--shop", SHOP, "--json")
    assert denied.returncode == 3 and SHOP in json.loads(denied.stdout)["failed"]


def test_a_worker_killed_mid_run_the_next_run_finishes_nothing_twice(env, api):
    client = redislib.Redis.from_url(env["REDIS_URL"])
    register(env, api)
    for n in range(1500):
        api.add_order(str(10000 + n), updated_at="2024-05-01T10:00:00+00:00")
    api.hang(0.8, times=6, method="GET", path="/api/202412/orders")  # each page slow: time to kill mid-run
    w = worker(env | {"ORDERHOOKS_RECONCILE_EVERY": "3600"})
    try:
        wait_for(lambda: client.exists("orderhooks:reconcile:lock:" + SHOP), 30, what="the scheduled run")
        wait_for(lambda: len(api.list_requests()) >= 2, 30, what="a page or two")
        w.send_signal(signal.SIGKILL)
        w.wait()
        wait_for(lambda: not client.exists("orderhooks:reconcile:lock:" + SHOP), 20, what="the dead run's lock")
        w = worker(env)
        done = cli(env, "reconcile", "--shop", SHOP, "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["failed"] is None and summary["seen"] == 1500
        refs = client.zrange("orderhooks:events:topic:orders/reconcile", 0, -1)
        assert len(refs) == 1500, "each order stored once, whichever run applied it"
        wait_for(lambda: len(calls(client)) >= 1500, 60, interval=0.3, what="every handler call")
        time.sleep(1)
        ids = [c["id"] for c in calls(client)]
        assert len(ids) == len(set(ids)) == 1500, "handlers fire once per change"
    finally:
        stop(w)


def test_two_workers_run_one_reconcile(env, api):
    register(env, api)
    for n in range(50):
        api.add_order(str(20000 + n))
    # Liveness keys long enough that a worker busy under load is not taken for dead (its job requeued).
    scheduled = env | {"ORDERHOOKS_RECONCILE_EVERY": "3600", "ORDERHOOKS_RECOVER_AFTER": "40"}
    workers = [worker(scheduled), worker(scheduled)]
    client = redislib.Redis.from_url(env["REDIS_URL"])
    try:
        wait_for(lambda: json.loads(cli(env, "shops", "list", "--json").stdout)[0]["lastRun"], 30,
                 what="the scheduled run")
        time.sleep(3)  # both workers have swept (every 1.5 s) at least once more
        firsts = [r for r in api.list_requests() if r.path.endswith("/orders")]
        assert len(firsts) == 1, ("one run, one page", [(r.method, r.path, r.query) for r in api.requests])
        assert client.zcard("orderhooks:events:topic:orders/reconcile") == 50
    finally:
        stop(*workers)


def test_a_handler_acts_back_on_the_order_through_event_api(env, api):
    register(env, api)
    api.add_order("1001", updated_at="2024-05-01T10:00:00+00:00")
    web, url = start_web(env)
    w = worker(env)
    try:
        body = example_for_topic("orders/paid")
        r = httpx.post(url + "/webhooks/genstore", content=body, headers={
            "X-Genstore-Topic": "orders/paid", "X-Genstore-Shop-Domain": SHOP,
            "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(SECRET), body)})
        assert r.status_code == 202

        def tagged():
            return [q for q in api.requests if q.method == "PUT" and q.path.endswith("/orders/1001")]
        [put] = wait_for(tagged, 20, what="the handler's call to the Orders API")
        assert "paid-seen" in json.dumps(put.json())
        assert put.headers.get("x-genstore-access-token") == api.token
    finally:
        stop(web, w)
