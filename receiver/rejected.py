"""Refused deliveries (401, 400, 413, 431), kept so that a sender's set-up can be debugged.

Each refusal is recorded with what helps and nothing secret: the time, platform, client address,
status, the reason (as specific as verification can tell), the topic, shop and event-id headers as
sent (cut at 200 characters), the names of the headers sent, the body's size and SHA-256 — never
the body, a signature's value or a secret.

Records are buffered in memory and written in groups (one pipeline: LPUSH, then LTRIM to
`ORDERHOOKS_REJECTED_KEEP` per platform), so Redis memory for them stays bounded. Past a few hundred a
second (`ORDERHOOKS_REJECTED_RATE`, per receiver process) refusals are only counted (`dropped`), so a flood of refused
deliveries costs accepted ones next to nothing. 401s are counted for the `deliveries.rejected`
notification with each flush, dropped ones included.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import redis as redislib
import structlog
from redis import Redis

from orderhooks.config import Settings
from storage import notices
from storage.keys import GENSTORE, Keys

log = structlog.get_logger("orderhooks.rejected")

PLATFORMS = (GENSTORE, "bigcommerce")
FLUSH_EVERY = 0.25
MAX_TEXT = 200
MAX_HEADER_NAMES = 40
MAX_HEADER_NAME = 64
MAX_REASON = 300


def _cut(value: str | None, n: int = MAX_TEXT) -> str | None:
    return None if value is None else value[:n]


class RejectedLog:
    """One per receiver process: `record` is synchronous and cheap; `run` writes the buffer in groups."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis, self.keys, self.settings, self.rate = redis, keys, settings, settings.rejected_rate
        self.buffer: list[tuple[str, str]] = []  # (platform, JSON)
        self.dropped = 0
        self.unauthorized = 0
        self._second = 0
        self._in_second = 0
        self._wake = asyncio.Event()

    def record(self, status: int, reason: str, *, client: tuple[str, int] | None = None,
               headers: Sequence[tuple[bytes, bytes]] = (), platform: str = GENSTORE, body: bytes | None = None,
               size: int | None = None, topic: str | None = None, shop: str | None = None,
               event_id: str | None = None) -> None:
        """Buffer one refusal: `client` is the ASGI scope's (host, port), `headers` its raw header list (only
        the names are kept)."""
        if status == 401:
            self.unauthorized += 1
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        if self._in_second > self.rate or len(self.buffer) >= self.settings.rejected_keep * len(PLATFORMS):
            self.dropped += 1
            self._wake.set()
            return
        names = list(dict.fromkeys(k.decode("latin-1")[:MAX_HEADER_NAME] for k, _ in headers))
        entry = {
            "at": datetime.fromtimestamp(now, UTC).isoformat(),
            "platform": platform,
            "client": client[0] if client else None,
            "status": status,
            "reason": _cut(reason, MAX_REASON),
            "topic": _cut(topic),
            "shop": _cut(shop),
            "event_id": _cut(event_id),
            "headers": names[:MAX_HEADER_NAMES],
            "size": len(body) if body is not None else size,
            "sha256": hashlib.sha256(body).hexdigest() if body is not None else None,
        }
        self.buffer.append((platform, json.dumps(entry, ensure_ascii=False, separators=(",", ":"))))
        self._wake.set()

    async def run(self) -> None:
        """Flush until cancelled (the app's lifespan runs it)."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(FLUSH_EVERY)

    async def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        dropped, self.dropped = self.dropped, 0
        unauthorized, self.unauthorized = self.unauthorized, 0
        if not (batch or dropped or unauthorized):
            return
        try:
            await asyncio.to_thread(self._write, batch, dropped, unauthorized)
        except redislib.RedisError as exc:  # Redis away: these are lost, and counted as dropped next time
            self.dropped += len(batch) + dropped
            self.unauthorized += unauthorized
            log.warning("rejected_not_recorded", count=len(batch), error=type(exc).__name__)

    def _write(self, batch: list[tuple[str, str]], dropped: int, unauthorized: int) -> None:
        keep = self.settings.rejected_keep
        pipe = self.redis.pipeline(transaction=False)
        by_platform: dict[str, list[str]] = {}
        for platform, text in batch:
            by_platform.setdefault(platform, []).append(text)
        for platform, texts in by_platform.items():
            pipe.lpush(self.keys.rejected(platform), *texts)
            pipe.ltrim(self.keys.rejected(platform), 0, keep - 1)
        if dropped:
            pipe.incrby(self.keys.rejected_dropped, dropped)
        pipe.execute()
        if unauthorized:
            first = next((json.loads(t) for _, t in batch if '"status":401,' in t), None)
            examples = [{k: first[k] for k in ("client", "shop", "reason")}] if first else []
            notices.occurred(self.redis, self.keys, self.settings, "deliveries.rejected", None, unauthorized, examples)

    async def close(self) -> None:
        await self.flush()


def read(redis: Redis, keys: Keys, platform: str | None = None, limit: int = 100) -> dict:
    """`{"rejected": [...], "dropped": N}`, newest first, of one platform or all."""
    platforms = [platform] if platform else list(PLATFORMS)
    pipe = redis.pipeline(transaction=False)
    for p in platforms:
        pipe.lrange(keys.rejected(p), 0, limit - 1)
    pipe.get(keys.rejected_dropped)
    *lists, dropped = pipe.execute()
    entries = []
    for items in lists:
        for raw in items:
            try:
                entries.append(json.loads(raw))
            except ValueError:
                continue
    entries.sort(key=lambda e: e.get("at") or "", reverse=True)
    return {"rejected": entries[:limit], "dropped": int(dropped or 0)}
