"""Soak test: many signed deliveries against the real processes, then an audit.

    python -m bench.soak [--deliveries 20000] [--duplicates 0.2] [--versions 4] [--concurrency 32]

Starts its own embedded Redis (AOF, `appendfsync always`, as `orderhooks dev`
runs it), one `orderhooks web` and one `orderhooks worker` on loopback, then
sends the deliveries, signed, with `--concurrency` requests in flight over
keep-alive connections (a minimal client: see `Connection`):

- every order gets `--versions` snapshots (create, update, paid, fulfilled)
  with growing `updatedAt`, and all snapshots of all orders are sent in one
  random order, so older versions often arrive after newer ones;
- `--duplicates` of the deliveries resend an event id already sent (at a
  random later point), as a sender retrying would.

When the worker has drained, it audits Redis: every accepted event id must be
stored and `processed` or `stale`, and every order must end at its newest
version. It prints a table and exits 1 if anything was lost or wrong (2 if it
did not finish within `--max-seconds`).

Also reported: Redis memory per stored event (the `used_memory` growth over
the run divided by the events stored, so it includes indexes, projections and
RQ's short-lived job keys; the `MEMORY USAGE` of one event hash and of one
order beside it), the receiver's RSS before and after, and the CPU seconds
each process spent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis as redislib

from orderhooks.config import secret_bytes
from orderhooks.embedded import EmbeddedRedis, free_port
from orderhooks.procs import terminate_all
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from storage.keys import GENSTORE, Keys, event_ref
from storage.status import Status

ROOT = Path(__file__).resolve().parents[1]
VERSION_TOPICS = ("orders/create", "orders/update", "orders/paid", "orders/fulfilled")
SHOPS = ("north.genmystore.com", "south.genmystore.com", "east.genmystore.com", "west.genmystore.com")
BASE_TIME = datetime(2024, 6, 1, tzinfo=UTC)


@dataclass
class Send:
    event_id: str
    topic: str
    shop: str
    order_id: str
    body: bytes
    duplicate: bool = False


@dataclass
class Tally:
    queued: set[str] = field(default_factory=set)  # refs of the events acknowledged as new
    duplicate_answers: int = 0
    other: dict[int, int] = field(default_factory=dict)
    retries: int = 0
    failed_sends: int = 0
    latencies: list[float] = field(default_factory=list)


def _body(topic: str, order_id: str, version: int) -> bytes:
    data = json.loads(example_for_topic(topic))
    order = data["order"]
    order["orderId"] = order_id
    order["updatedAt"] = (BASE_TIME + timedelta(minutes=version)).isoformat()
    order["totalPrice"] = f"{100 + version}.{version:02d}"
    return json.dumps(data, separators=(",", ":")).encode()


def plan(deliveries: int, duplicate_share: float, versions: int, rng: random.Random) -> tuple[list[Send], dict]:
    """The deliveries in sending order, and {(shop, orderId): newest updatedAt} to check against."""
    unique = round(deliveries * (1 - duplicate_share))
    orders = -(-unique // versions)
    events: list[Send] = []
    newest: dict[tuple[str, str], str] = {}
    for n in range(orders):
        shop, order_id = SHOPS[n % len(SHOPS)], str(100000 + n)
        for v in range(versions):
            if len(events) == unique:
                break
            topic = VERSION_TOPICS[min(v, len(VERSION_TOPICS) - 1)]
            events.append(Send(f"soak-{n}-{v}", topic, shop, order_id, _body(topic, order_id, v)))
            newest[(shop, order_id)] = (BASE_TIME + timedelta(minutes=v)).isoformat()
    rng.shuffle(events)
    # Each duplicate resends an event at a random point after its first sending.
    keyed = [(float(i), e) for i, e in enumerate(events)]
    for _ in range(deliveries - unique):
        i = rng.randrange(len(events))
        original = events[i]
        copy = Send(original.event_id, original.topic, original.shop, original.order_id, original.body, True)
        keyed.append((rng.uniform(i + 0.5, len(events)), copy))
    keyed.sort(key=lambda pair: pair[0])
    return [e for _, e in keyed], newest


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mean_usage(client: redislib.Redis, names: list[str]) -> float:
    """Mean MEMORY USAGE of some keys, in bytes."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    sizes = [s for s in pipe.execute() if s]
    return sum(sizes) / len(sizes) if sizes else 0.0


class Connection:
    """A minimal keep-alive HTTP/1.1 client. httpx spends about 5 ms of CPU per request here,
    on the same two cores as the receiver, worker and Redis it measures; this spends well
    under 1 ms, so the figures describe orderhooks rather than the sender."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
                   f"{head}\r\n").encode("latin-1") + body
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(request)
            await self.writer.drain()
            lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            payload = await self.reader.readexactly(int(fields.get("content-length", "0")))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise ConnectionError("the connection broke") from None
        if fields.get("connection") == "close":
            self.close()
        return status, payload


async def send_all(url: str, secret: bytes, sends: list[Send], concurrency: int, tally: Tally) -> None:
    host, port = url.removeprefix("http://").split(":")
    queue: asyncio.Queue[Send] = asyncio.Queue()
    for s in sends:
        queue.put_nowait(s)

    async def one(conn: Connection, s: Send) -> None:
        headers = {
            "X-Genstore-Topic": s.topic, "X-Genstore-Shop-Domain": s.shop, "X-Genstore-Event-Id": s.event_id,
            "X-Genstore-Hmac-Sha256": genstore_signature(secret, s.body), "Content-Type": "application/json",
        }
        for attempt in range(6):  # a sender retries 503s and broken connections
            start = time.perf_counter()
            try:
                status, payload = await conn.post("/webhooks/genstore", headers, s.body)
            except ConnectionError:
                status, payload = 0, b""
            if status not in (0, 503):
                tally.latencies.append(time.perf_counter() - start)
                answer = json.loads(payload) if payload else {}
                if status == 202 and answer.get("status") == "queued":
                    tally.queued.add(event_ref(GENSTORE, s.shop, answer["id"]))
                elif status == 200 and answer.get("status") == "duplicate":
                    tally.duplicate_answers += 1
                else:
                    tally.other[status] = tally.other.get(status, 0) + 1
                return
            tally.retries += 1
            await asyncio.sleep(0.2 * 2**attempt)
        tally.failed_sends += 1

    async def lane() -> None:
        conn = Connection(host, int(port))
        try:
            while not queue.empty():
                await one(conn, queue.get_nowait())
        finally:
            conn.close()

    await asyncio.gather(*(lane() for _ in range(concurrency)))


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the receiver exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the receiver did not start")


def stop(*procs: subprocess.Popen) -> None:
    terminate_all(procs, timeout=30)


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def audit(client: redislib.Redis, keys: Keys, accepted: set[str], newest: dict) -> dict[str, int]:
    """`accepted`: the refs (`storage.keys.event_ref`) of the events acknowledged as new."""
    ids = sorted(accepted)
    statuses: dict[str, int] = {}
    lost = 0
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for event_id in ids[start : start + 1000]:
            pipe.hget(keys.event(event_id), "status")
        for status in pipe.execute():
            name = status.decode() if status else "missing"
            statuses[name] = statuses.get(name, 0) + 1
            lost += name not in ("processed", "stale")
    wrong = 0
    items = sorted(newest.items())
    for start in range(0, len(items), 1000):
        part = items[start : start + 1000]
        stored = client.mget([keys.order(GENSTORE, shop, order_id) for (shop, order_id), _ in part])
        for (_, updated), raw in zip(part, stored, strict=True):
            order = json.loads(raw)["order"] if raw else None
            wrong += order is None or _moment(order.get("updatedAt")) != _moment(updated)
    return {"processed": statuses.get("processed", 0), "stale": statuses.get("stale", 0),
            "lost": lost, "orders_wrong": wrong, **{f"status_{k}": v for k, v in statuses.items()
                                                    if k not in ("processed", "stale")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of deliveries that resend an event id")
    parser.add_argument("--versions", type=int, default=4, help="snapshots per order, sent in random order")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fsync", default="always", choices=["always", "everysec", "no"])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=900, help="give up (exit 2) after this long")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    began = time.monotonic()

    sends, newest = plan(args.deliveries, args.duplicates, args.versions, rng)
    with tempfile.TemporaryDirectory(prefix="orderhooks-soak-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", fsync=args.fsync).start()
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        env = dict(os.environ) | {
            "REDIS_URL": server.url, "ORDERHOOKS_SECRETS": secret, "ORDERHOOKS_API_TOKEN": secrets.token_hex(16),
            "ORDERHOOKS_HANDLERS": "", "ORDERHOOKS_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
        log = (Path(tmp) / "processes.log").open("wb")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        web = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1", "--port",
                                str(port)], env=env, cwd=ROOT, stdout=log, stderr=log)
        worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=log, stderr=log)
        client = redislib.Redis.from_url(server.url)
        keys = Keys()
        try:
            wait_up(url, web)
            memory_before = client.info("memory")["used_memory"]
            rss_start = rss_kib(web.pid)
            pids = {"receiver": web.pid, "worker": worker.pid, "redis": server.process.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"sender": time.process_time()}
            tally = Tally()
            sending = time.monotonic()
            asyncio.run(asyncio.wait_for(
                send_all(url, secret_bytes(secret), sends, args.concurrency, tally),
                timeout=max(1.0, args.max_seconds - (time.monotonic() - began)),
            ))
            sent_in = time.monotonic() - sending
            rss_end = rss_kib(web.pid)

            drained = False
            while time.monotonic() - began < args.max_seconds:
                queued = client.zcard(keys.events_by_status(Status.QUEUED))
                if queued == 0 and client.llen("rq:queue:orderhooks") == 0:
                    drained = True
                    break
                time.sleep(0.25)
            drain_in = time.monotonic() - sending
            time.sleep(0.5)  # the last job records its outcome
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            cpu["sender"] = time.process_time() - cpu_before["sender"]
            memory_after = client.info("memory")["used_memory"]
            stored = client.zcard(keys.events)
            keys_total = client.dbsize()
            sample = rng.sample(sorted(tally.queued), min(500, len(tally.queued)))
            event_bytes = (mean_usage(client, [keys.event(i) for i in sample])
                           + mean_usage(client, [keys.body(i) for i in sample]))
            some_orders = rng.sample(sorted(newest), min(500, len(newest)))
            order_bytes = mean_usage(client, [keys.order(GENSTORE, shop, order_id) for shop, order_id in some_orders])
            result = audit(client, keys, tally.queued, newest)
            worker_rss = rss_kib(worker.pid)
        finally:
            stop(web, worker)
            client.close()
            server.stop()
            log.close()

        expected_duplicates = sum(s.duplicate for s in sends)
        lat = sorted(tally.latencies) or [0.0]
        rows = [
            ("deliveries sent", f"{len(sends)}  ({len(newest)} orders x up to {args.versions} versions, "
                                f"{expected_duplicates} resends, {args.concurrency} in flight, seed {seed})"),
            ("accepted (202 queued)", len(tally.queued)),
            ("duplicates detected (200)", f"{tally.duplicate_answers}  (expected {expected_duplicates})"),
            ("other answers", ", ".join(f"{k}: {v}" for k, v in sorted(tally.other.items())) or "none"),
            ("sender retries / gave up", f"{tally.retries} / {tally.failed_sends}"),
            ("processed", result["processed"]),
            ("stale (older snapshot, no-op)", result["stale"]),
            ("lost", result["lost"]),
            ("orders not at newest version", f"{result['orders_wrong']} of {len(newest)}"),
            ("send rate", f"{len(sends) / sent_in:.0f} deliveries/s ({sent_in:.1f} s)"),
            ("ack latency p50 / p99", f"{statistics.median(lat) * 1000:.1f} ms / "
                                      f"{lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms"),
            ("drained after", f"{drain_in:.1f} s" + ("" if drained else "  (NOT drained)")),
            ("Redis memory per stored event", f"{(memory_after - memory_before) / max(stored, 1):.0f} B "
                                              f"(used_memory +{(memory_after - memory_before) / 2**20:.1f} MiB "
                                              f"/ {stored} events, {keys_total} keys)"),
            ("  one event hash / one order", f"{event_bytes:.0f} B / {order_bytes:.0f} B (MEMORY USAGE, mean)"),
            ("receiver RSS start / end", f"{rss_start / 1024:.1f} MiB / {rss_end / 1024:.1f} MiB"),
            ("worker RSS end", f"{worker_rss / 1024:.1f} MiB"),
            ("CPU s: receiver/worker/redis/sender", " / ".join(f"{cpu[k]:.1f}" for k in
                                                              ("receiver", "worker", "redis", "sender"))),
        ]
        rows += [(f"status {k[7:]}", v) for k, v in result.items() if k.startswith("status_")]
        width = max(len(name) for name, _ in rows)
        print(f"\norderhooks soak (appendfsync {args.fsync})")
        print("-" * (width + 50))
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        print("-" * (width + 50))
        problems = (result["lost"] or result["orders_wrong"] or tally.failed_sends
                    or tally.duplicate_answers != expected_duplicates or tally.other)
        if not drained:
            print("FAILED: the worker did not drain in time")
            return 2
        if problems:
            print("FAILED: something was lost, refused or wrong")
            return 1
        print("OK: nothing lost; every order at its newest version")
        return 0


if __name__ == "__main__":
    sys.exit(main())
