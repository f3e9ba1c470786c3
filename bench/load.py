"""Load generators: wrk for throughput, an open-loop asyncio sender for latency at a steady rate."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


class _Connection:
    """One keep-alive HTTP/1.1 connection; a lean client, so the sender costs little CPU of its own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def _steady(url: str, requests: list[tuple[str, bytes, dict]], rate: float) -> list[Sent]:
    parts = urlsplit(url)
    host, port, path = parts.hostname, parts.port or 80, parts.path or "/"
    idle: list[_Connection] = []
    sent: list[Sent] = []

    def raw(body: bytes, headers: dict) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + b"\r\n" + body

    async def one(event_id: str, request: bytes) -> None:
        record = Sent(event_id, time.time())
        sent.append(record)
        while True:
            reused = bool(idle)
            conn = idle.pop() if reused else _Connection(*await asyncio.open_connection(host, port))
            try:
                record.status = await conn.post(request)
                idle.append(conn)
                return
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                conn.writer.close()
                if not reused:  # a fresh connection failed: a real error
                    record.status = -1
                    return
                # else the server had closed this idle keep-alive connection: send on another

    prepared = [(event_id, raw(body, headers)) for event_id, body, headers in requests]
    tasks = []
    start = time.monotonic()
    for i, (event_id, request) in enumerate(prepared):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(event_id, request)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    return sent


def steady(url: str, requests: list[tuple[str, bytes, dict]], rate: float) -> list[Sent]:
    """Send every request at `rate` per second, open loop: a slow answer never delays the next send."""
    return asyncio.run(_steady(url, requests, rate))
