"""The event object a handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas import NormalizedEvent, Order, Refund


@dataclass(frozen=True)
class HandlerEvent:
    """One processed event, as handlers see it.

    `order` is the typed projection after the event was applied (None for a
    refund whose order has not arrived yet); `stale` is True when the event
    was older than the stored order and did not change it.
    """

    id: str
    topic: str
    shop: str
    orderId: str | None
    order: Order | None
    refund: Refund | None
    stale: bool
    source: str
    receivedAt: datetime
    raw: bytes
    normalized: NormalizedEvent | None = None
    refunds: list[Refund] = field(default_factory=list)
    attempt: int = 1

    @property
    def order_id(self) -> str | None:
        return self.orderId

    @property
    def received_at(self) -> datetime:
        return self.receivedAt
