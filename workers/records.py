"""Stored events: reading them back from Redis into plain records, and setting their status."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from redis import Redis

from schemas import NormalizationError, NormalizedEvent, UnknownTopic, normalize
from workers.keys import GENSTORE, STATUSES, Keys, event_ref, part, split_shop_member
from workers.scripts import SET_STATUS

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
    error: str | None = None
    attempts: int = 0
    state: str | None = None
    outcome: str | None = None
    processed_at: float | None = None
    headers: dict = field(default_factory=dict)
    handlers: dict[str, dict] = field(default_factory=dict)
    platform: str = GENSTORE
    hydrated: bytes | None = None  # the order as the platform's API answered it, for platforms that hydrate

    @property
    def ref(self) -> str:
        """The event's name inside Redis (its hash key's suffix, its member in every index)."""
        return event_ref(self.platform, self.shop, self.id)

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
            error=_s(text.get("error")) or None,
            attempts=int(text.get("attempts") or 0),
            state=_s(text.get("state")),
            outcome=_s(text.get("outcome")),
            processed_at=float(processed) if processed else None,
            headers=json.loads(text["headers"]) if text.get("headers") else {},
            handlers=handlers,
            platform=_s(text.get("platform")) or GENSTORE,
            hydrated=text.get("hydrated") or None,
        )

    @cached_property
    def _normalization(self) -> tuple[NormalizedEvent | None, str | None]:
        if self.status in ("quarantined", "ignored"):
            return None, None
        normalizer = None
        if self.platform != GENSTORE:
            from platforms import get

            try:
                normalizer = get(self.platform).normalize
            except KeyError:
                return None, f"unknown platform {self.platform!r}"
        try:
            if normalizer is None:
                return normalize(self.topic, self.raw), None
            return normalizer(self.topic, self.raw, self.hydrated), None
        except (NormalizationError, UnknownTopic) as exc:
            return None, getattr(exc, "reason", str(exc))

    def prime(self, event: NormalizedEvent) -> None:
        """Give the record the event its raw body normalizes to, when the caller has it already."""
        self.__dict__["_normalization"] = (event, None)

    @property
    def event(self) -> NormalizedEvent | None:
        """The canonical event, rebuilt from the raw body.

        Normalizing is pure, so this is the event the receiver checked when it accepted the
        delivery. None for a quarantined or ignored event, or a body that no longer normalizes
        (`normalize_error` says why).
        """
        return self._normalization[0]

    @property
    def normalize_error(self) -> str | None:
        return self._normalization[1]

    @property
    def normalized(self) -> dict | None:
        """The canonical event's JSON form, or None."""
        event = self.event
        return event.to_json() if event is not None else None

    @property
    def received_iso(self) -> str:
        return datetime.fromtimestamp(self.received_at, UTC).isoformat()

    def summary(self) -> dict:
        """The event as listed by the read API."""
        return {
            "id": self.id,
            "platform": self.platform,
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
            **_raw_fields(self.raw),
            "normalized": self.normalized,
            "handlers": self.handlers,
        }


def _raw_fields(raw: bytes) -> dict:
    """`raw` is the body's text; a body that is not UTF-8 has `raw` null and its bytes in `rawBase64`."""
    try:
        return {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw": None, "rawBase64": base64.b64encode(raw).decode()}


def load_events(redis: Redis, keys: Keys, refs: Sequence[str]) -> list[EventRecord | None]:
    pipe = redis.pipeline(transaction=False)
    for ref in refs:
        pipe.hgetall(keys.event(ref))
    return [EventRecord.from_hash(h) for h in pipe.execute()]


def load_event(redis: Redis, keys: Keys, ref: str) -> EventRecord | None:
    return EventRecord.from_hash(redis.hgetall(keys.event(ref)))


def find_events(redis: Redis, keys: Keys, event_id: str, shop: str | None = None,
                platform: str | None = None) -> list[EventRecord]:
    """Every stored event with this id, among the shops given or known (an id is unique only per shop).

    The shops looked in are `shop` (as a request gives it: trimmed and lower-cased here, empty meaning none; with
    `platform`, or on every platform a shop of that name is known on), else every known shop and the shopless
    events (no shop header) of each platform.
    """
    shop = (shop or "").strip().lower() or None
    known = [split_shop_member(m.decode("utf-8", "replace")) for m in redis.smembers(keys.shops)]
    platforms = sorted({p for p, _ in known} | {GENSTORE})
    if shop is not None:
        candidates = {(p, shop) for p in ([platform] if platform else platforms)}
    else:
        candidates = {(p, s) for p, s in known if not platform or p == platform}
        candidates |= {(p, "") for p in ([platform] if platform else platforms)}
    refs = [event_ref(p, s, event_id) for p, s in sorted(candidates)]
    return [r for r in load_events(redis, keys, refs) if r is not None and r.id == event_id]


def find_events_by_prefix(redis: Redis, keys: Keys, prefix: str, shop: str | None = None,
                          platform: str | None = None, most: int = 100) -> list[EventRecord]:
    """Stored events whose id starts with `prefix` (at most `most`), by scanning event keys: for the command
    line, not for a hot path."""
    if not prefix:
        return []
    pattern = keys.event(f"{platform or '*'}:{'*' if shop is None else part(shop)}:{part(prefix)}*")
    refs = []
    for key in redis.scan_iter(match=pattern, count=1000):
        refs.append(key.decode()[len(keys.event("")):])
        if len(refs) >= most * 4:
            break
    found = [r for r in load_events(redis, keys, refs) if r is not None and r.id.startswith(prefix)]
    return sorted(found, key=lambda r: (r.platform, r.shop, r.id))[:most]


def set_status(redis: Redis, keys: Keys, ref: str, status: str, *fields: str, client=None) -> None:
    """Move an event to `status` (and its status index), setting `fields` (name, value, ...) beside it."""
    redis.register_script(SET_STATUS)(
        keys=[keys.event(ref), *keys.status_keys()],
        args=[status, " ".join(STATUSES), ref, *fields],
        client=client or redis,
    )
