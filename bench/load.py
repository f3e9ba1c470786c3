"""Load generators: wrk for throughput, an open-loop asyncio sender for latency at a steady rate."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

LUA = Path(__file__).with_name("deliveries.lua")


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int  # non-2xx answers (wrk counts status >= 400) plus socket errors and timeouts
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(url: str, body_file: Path, signature: str, prefix: str, seconds: float,
        connections: int = 32, threads: int = 1) -> WrkResult:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (make bench installs it: apt-get install wrk)")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(LUA), url, "--", str(body_file), signature, prefix]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("{"))
    data = json.loads(line)
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(data["requests"], data["duration_us"] / 1e6, errors, data["p50_us"] / 1000,
                     data["p99_us"] / 1000)


@dataclass
class Sent:
    event_id: str
    at: float  # time.time() just before the request was written
    status: int = 0


async def _steady(url: str, requests: list[tuple[str, bytes, dict]], rate: float) -> list[Sent]:
    sent: list[Sent] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(event_id: str, body: bytes, headers: dict) -> None:
            record = Sent(event_id, time.time())
            sent.append(record)
            try:
                record.status = (await client.post(url, content=body, headers=headers)).status_code
            except httpx.HTTPError:
                record.status = -1

        tasks = []
        start = time.monotonic()
        for i, (event_id, body, headers) in enumerate(requests):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(event_id, body, headers)))
        await asyncio.gather(*tasks)
    return sent


def steady(url: str, requests: list[tuple[str, bytes, dict]], rate: float) -> list[Sent]:
    """Send every request at `rate` per second, open loop: a slow answer never delays the next send."""
    return asyncio.run(_steady(url, requests, rate))
