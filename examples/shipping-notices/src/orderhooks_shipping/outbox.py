"""Where the handlers put their messages: each idempotency key is sent once, however often a handler runs."""

from __future__ import annotations

import json
import os
from typing import Protocol


class Outbox(Protocol):
    def send_once(self, key: str, message: dict) -> bool:
        """Queue `message` unless `key` was already sent; True when it was queued now."""


class MemoryOutbox:
    def __init__(self) -> None:
        self.sent: dict[str, dict] = {}

    def send_once(self, key: str, message: dict) -> bool:
        if key in self.sent:
            return False
        self.sent[key] = message
        return True


class RedisOutbox:
    """`SET NX` of the key, then the message onto a list that a sender drains."""

    def __init__(self, url: str, prefix: str = "shipping:") -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix

    def send_once(self, key: str, message: dict) -> bool:
        if not self.redis.set(f"{self.prefix}sent:{key}", b"1", nx=True, ex=90 * 24 * 3600):
            return False
        self.redis.rpush(f"{self.prefix}outbox", json.dumps({"key": key, **message}))
        return True


_current: Outbox | None = None


def get() -> Outbox:
    global _current
    if _current is None:
        url = os.environ.get("REDIS_URL")
        _current = RedisOutbox(url) if url else MemoryOutbox()
    return _current


def use(outbox: Outbox | None) -> None:
    """Replace the outbox (tests use a MemoryOutbox); None goes back to the default."""
    global _current
    _current = outbox
