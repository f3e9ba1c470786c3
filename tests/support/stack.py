"""Real `orderhooks web` and `orderhooks worker` processes on a database of the session's Redis.

Each stack has a database of its own (`DB`), so no test writes where another one reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis as redislib
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from orderhooks.config import Settings
from orderhooks.embedded import free_port
from orderhooks.procs import terminate_all
from tests.conftest import SECRET, TOKEN
from tests.support.payloads import SHOP
from tests.support.signing import post_delivery

ROOT = Path(__file__).resolve().parents[2]

# One database per stack of the session's Redis (in-process tests use database 0).
# One database per suite of tests that flushes its own, so they never meet in random order.
DB = {"e2e": 1, "ui": 2, "schemathesis": 3, "cli": 4, "metrics": 5, "faults": 6, "outcomes": 7, "sessions": 8,
      "slow_clients": 9, "shops_cli": 10, "replay_cli": 11, "reconcile": 12, "handler_api": 13,
      "sentinel_witness": 14, "ops_api": 15, "ops_flood": 16, "ops_notify_groups": 17, "ops_notify_retries": 18,
      "ops_notify_test": 19, "ops_redis_away": 20, "prometheus": 21,
      "bigcommerce": 22}  # the embedded test Redis has 64


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def db_url(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def base_env(redis_url: str, db: int = DB["e2e"]) -> dict:
    env = dict(os.environ)
    env.update({
        "REDIS_URL": db_url(redis_url, db),
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


def start_web(env: dict, module: str = "orderhooks.cli", **popen) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "web", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, **popen)
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


def start_worker(env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker", *args], env=env, cwd=ROOT, **popen)


def stop(*procs: subprocess.Popen | None) -> None:
    terminate_all([p for p in procs if p is not None], timeout=15)


def run_cli(env: dict, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """`orderhooks ARGS` as a user runs it: a process of its own, output captured."""
    return subprocess.run([sys.executable, "-m", "orderhooks.cli", *args], env=env, cwd=kwargs.pop("cwd", ROOT),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@dataclass
class Stack:
    url: str
    redis: redislib.Redis
    env: dict
    processes: list = field(default_factory=list)
    worker_log: Path | None = None

    def worker_says(self, lines: int = 80) -> str:
        """The end of the worker's log (info level), and where its threads are (SIGUSR1), for a failure's message."""
        if self.worker_log is None or not self.worker_log.exists():
            return "(no worker log)"
        worker = self.processes[-1]
        if worker.poll() is None:
            worker.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        queue = Queue(Settings.from_env(self.env).queue, connection=self.redis)
        state = (f"queue {self.redis.lrange(queue.key, 0, 5)} ({self.redis.llen(queue.key)}), intermediate "
                 f"{self.redis.lrange(queue.intermediate_queue_key, 0, 5)}, started "
                 f"{self.redis.zrange(StartedJobRegistry(queue=queue).key, 0, 5)}, "
                 f"scheduled {self.redis.zcard(ScheduledJobRegistry(queue=queue).key)}, "
                 f"clients {self.redis.info('clients').get('connected_clients')}")
        return "\n".join([*self.worker_log.read_text(errors="replace").splitlines()[-lines:], state])

    def post(self, topic: str, body: bytes | None = None, *, event_id: str | None = "new", shop: str | None = SHOP,
             secret: str = SECRET, headers: dict | None = None, scheme: str = "genstore"):
        return post_delivery(self.url, topic, body, event_id=event_id, shop=shop, secret=secret, headers=headers,
                             scheme=scheme)

    def api(self, path: str, token: str | None = TOKEN, **params):
        headers = {"X-Genstore-Access-Token": token} if token is not None else {}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=10)

    def event(self, event_id: str) -> dict:
        return self.api(f"/api/events/{event_id}").json()["event"]

    def wait_status(self, event_id: str, *statuses: str, timeout: float = 20.0) -> dict:
        def check():
            e = self.event(event_id)
            return e if e["status"] in statuses else None
        try:
            return wait_for(check, timeout, what=f"event {event_id} to become {statuses}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the worker's log ends:\n{self.worker_says()}") from None

    def calls(self, event_id: str) -> list[dict]:
        """What the recording handlers of `tests.e2e.handlers_app` saw of this event."""
        return [json.loads(c) for c in self.redis.lrange(f"e2e:calls:{event_id}", 0, -1)]

    def wait_calls(self, event_id: str, handler: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
        """Wait until `handler` was called `count` times for the event (handlers run after its status is set)."""
        def enough():
            calls = self.calls(event_id)
            return calls if sum(c["handler"] == handler for c in calls) >= count else None
        return wait_for(enough, timeout, what=f"{count} call(s) of {handler} for {event_id}")

    def cli(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_cli(self.env, *args, **kwargs)


@contextlib.contextmanager
def running_stack(redis_url: str, db: int, worker: bool = True, **env):
    """A receiver (and a worker) on database `db`, flushed first; stopped on exit."""
    environment = base_env(redis_url, db) | env
    client = redislib.Redis.from_url(environment["REDIS_URL"])
    client.flushdb()
    web = work = None
    log_dir = Path(tempfile.mkdtemp(prefix="orderhooks-stack-"))
    worker_log = log_dir / "worker.log"
    try:
        web, url = start_web(environment)
        if worker:
            with open(worker_log, "wb") as out:
                work = start_worker(environment | {"ORDERHOOKS_LOG_LEVEL": "info"}, stdout=out, stderr=out)
        yield Stack(url, client, environment, [p for p in (web, work) if p], worker_log if worker else None)
    finally:
        stop(web, work)
        client.close()
        shutil.rmtree(log_dir, ignore_errors=True)
