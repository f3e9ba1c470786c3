"""Reading stored events back from Redis into plain records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis

from workers.keys import Keys

HANDLER_FIELD = "handler:"


def _s(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


@dataclass
class EventRecord:
    id: str
    topic: str
    shop: str
    status: str
    received_at: float
    raw: bytes
    source: str = "webhook"
    order_id: str | None = None
    normalized: dict | None = None
    error: str | None = None
    attempts: int = 0
    state: str | None = None
    outcome: str | None = None
    processed_at: float | None = None
    headers: dict = field(default_factory=dict)
    handlers: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes]) -> EventRecord | None:
        if not h or b"id" not in h:
            return None
        text = {k.decode(): v for k, v in h.items()}
        handlers = {
            k[len(HANDLER_FIELD):]: json.loads(v) for k, v in text.items() if k.startswith(HANDLER_FIELD)
        }
        processed = _s(text.get("processed_at"))
        return cls(
            id=_s(text["id"]) or "",
            topic=_s(text.get("topic")) or "",
            shop=_s(text.get("shop")) or "",
            status=_s(text.get("status")) or "",
            received_at=float(text.get("received_at") or 0),
            raw=text.get("raw") or b"",
            source=_s(text.get("source")) or "webhook",
            order_id=_s(text.get("order_id")),
            normalized=json.loads(text["normalized"]) if text.get("normalized") else None,
            error=_s(text.get("error")) or None,
            attempts=int(text.get("attempts") or 0),
            state=_s(text.get("state")),
            outcome=_s(text.get("outcome")),
            processed_at=float(processed) if processed else None,
            headers=json.loads(text["headers"]) if text.get("headers") else {},
            handlers=handlers,
        )

    @property
    def received_iso(self) -> str:
        return datetime.fromtimestamp(self.received_at, UTC).isoformat()

    def summary(self) -> dict:
        """The event as listed by the read API."""
        return {
            "id": self.id,
            "topic": self.topic,
            "shop": self.shop,
            "orderId": self.order_id,
            "status": self.status,
            "receivedAt": self.received_iso,
            "attempts": self.attempts,
            "error": self.error,
        }

    def detail(self) -> dict:
        """The event with its raw body, normalized form and handler outcomes."""
        return {
            **self.summary(),
            "source": self.source,
            "stale": self.state == "stale",
            "outcome": self.outcome,
            "processedAt": (
                datetime.fromtimestamp(self.processed_at, UTC).isoformat() if self.processed_at else None
            ),
            "headers": self.headers,
            "raw": self.raw.decode("utf-8", "replace"),
            "normalized": self.normalized,
            "handlers": self.handlers,
        }


def load_events(redis: Redis, keys: Keys, ids: Sequence[str]) -> list[EventRecord | None]:
    pipe = redis.pipeline(transaction=False)
    for event_id in ids:
        pipe.hgetall(keys.event(event_id))
    return [EventRecord.from_hash(h) for h in pipe.execute()]


def load_event(redis: Redis, keys: Keys, event_id: str) -> EventRecord | None:
    return EventRecord.from_hash(redis.hgetall(keys.event(event_id)))
