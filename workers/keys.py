"""Every Redis key orderhooks writes, in one place.

All keys live under one prefix (`ORDERHOOKS_PREFIX`, default `orderhooks:`);
RQ keeps its own keys under `rq:`. The README's keyspace table mirrors this
module.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("queued", "processed", "stale", "failed", "quarantined", "ignored")


@dataclass(frozen=True)
class Keys:
    prefix: str = "orderhooks:"

    def event(self, event_id: str) -> str:
        """HASH: one stored delivery (raw body, status, handler outcomes)."""
        return f"{self.prefix}event:{event_id}"

    @property
    def events(self) -> str:
        """ZSET: every event id, scored by received time (newest first when read in reverse)."""
        return f"{self.prefix}events"

    def events_by_status(self, status: str) -> str:
        """ZSET: event ids with this status, scored by received time."""
        return f"{self.prefix}events:status:{status}"

    def events_by_topic(self, topic: str) -> str:
        """ZSET: event ids of this topic, scored by received time."""
        return f"{self.prefix}events:topic:{topic}"

    @property
    def dispatching(self) -> str:
        """ZSET: events whose projection is applied but whose handlers are not all recorded yet."""
        return f"{self.prefix}dispatching"

    @property
    def sweeper_lock(self) -> str:
        """STRING: held by the one worker that sweeps for stuck events at a time."""
        return f"{self.prefix}sweeper:lock"

    @property
    def metrics(self) -> str:
        """HASH: the workers' counters and latency buckets, read by /metrics at scrape time."""
        return f"{self.prefix}metrics"

    def worker_alive(self, name: str) -> str:
        """STRING with a short TTL: refreshed while the worker process `name` is alive."""
        return f"{self.prefix}worker:{name}:alive"

    def order(self, shop: str, order_id: str) -> str:
        """STRING (JSON): the projection of one order: winning snapshot, its version, refunds."""
        return f"{self.prefix}order:{shop}:{order_id}"

    def order_events(self, shop: str, order_id: str) -> str:
        """ZSET: the ids of every event about this order, scored by received time."""
        return f"{self.prefix}order:{shop}:{order_id}:events"

    def orders(self, shop: str) -> str:
        """SET: the order ids known for a shop."""
        return f"{self.prefix}orders:{shop}"

    @property
    def shops(self) -> str:
        """SET: every shop domain seen."""
        return f"{self.prefix}shops"

    def status_keys(self) -> list[str]:
        return [self.events_by_status(s) for s in STATUSES]

    @property
    def probe(self) -> str:
        """STRING, expiring within seconds: written to tell whether Redis takes writes (`/readyz`, the worker)."""
        return f"{self.prefix}probe"
