"""Real receiver and worker processes against the session's real Redis (database 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redislib

from orderhooks.config import secret_bytes
from orderhooks.embedded import free_port
from orderhooks.procs import terminate_all
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET, TOKEN

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def _db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


@dataclass
class Stack:
    url: str
    redis: redislib.Redis
    env: dict
    processes: list

    def post(self, topic: str, body: bytes | None = None, *, event_id: str | None = None,
             shop: str = "acme.genmystore.com", secret: str = SECRET, headers: dict | None = None):
        body = example_for_topic(topic) if body is None else body
        event_id = event_id or str(uuid.uuid4())
        h = {"X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": shop, "X-Genstore-Event-Id": event_id,
             "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(secret), body),
             "Content-Type": "application/json"}
        h.update(headers or {})
        return httpx.post(self.url + "/webhooks/genstore", content=body, headers=h, timeout=10)

    def api(self, path: str, token: str | None = TOKEN, **params):
        headers = {"X-Genstore-Access-Token": token} if token is not None else {}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=10)

    def event(self, event_id: str) -> dict:
        return self.api(f"/api/events/{event_id}").json()["event"]

    def wait_status(self, event_id: str, *statuses: str, timeout: float = 20.0) -> dict:
        def check():
            e = self.event(event_id)
            return e if e["status"] in statuses else None
        return wait_for(check, timeout, what=f"event {event_id} to become {statuses}")

    def calls(self, event_id: str) -> list[dict]:
        return [json.loads(c) for c in self.redis.lrange(f"e2e:calls:{event_id}", 0, -1)]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orderhooks.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=60)


def start_web(env: dict, module: str = "orderhooks.cli") -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "web", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"receiver exited with {proc.returncode}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 30, what="receiver to start")
    return proc, url


def stop(*procs: subprocess.Popen) -> None:
    terminate_all(procs, timeout=15)


def base_env(redis_url: str) -> dict:
    env = dict(os.environ)
    env.update({
        "REDIS_URL": _db(redis_url, 1),
        "ORDERHOOKS_SECRETS": SECRET,
        "ORDERHOOKS_API_TOKEN": TOKEN,
        "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_app",
        "ORDERHOOKS_RETRY_DELAYS": "1,1,1",
        "ORDERHOOKS_RECOVER_AFTER": "5",
        "ORDERHOOKS_MAX_BODY": "65536",
        "ORDERHOOKS_LOG_FORMAT": "json",
        "ORDERHOOKS_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    })
    return env


@pytest.fixture(scope="package")
def stack(redis_url):
    env = base_env(redis_url)
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)
    yield Stack(url, client, env, [web, worker])
    stop(web, worker)
    client.close()
