"""The event object a handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic.alias_generators import to_snake

from schemas import NormalizedEvent, Order, Refund


@dataclass(frozen=True)
class HandlerEvent:
    """One processed event, as handlers see it.

    `order` is the typed projection after the event was applied (None for a
    refund whose order has not arrived yet); `stale` is True when the event
    was older than the stored order and did not change it. `source` is
    `webhook`, or `reconcile` for an order healed from the Orders API; `api`
    is the Orders API client bound to the event's shop (`workers.genstore`),
    or None when the shop has no token registered (and for BigCommerce stores). `platform` is `genstore` or
    `bigcommerce`; a BigCommerce status update carries `previous_status_id` and `new_status_id` (None
    otherwise).
    """

    id: str
    topic: str
    shop: str
    order_id: str | None
    order: Order | None
    refund: Refund | None
    stale: bool
    source: str
    received_at: datetime
    raw: bytes
    normalized: NormalizedEvent | None = None
    refunds: list[Refund] = field(default_factory=list)
    attempt: int = 1
    platform: str = "genstore"
    api: Any = field(default=None, repr=False, compare=False)
    previous_status_id: int | None = None
    new_status_id: int | None = None

    def __getattr__(self, name: str) -> Any:
        """The camelCase names of Genstore's documents read too (`event.orderId` is `event.order_id`)."""
        snake = to_snake(name)
        if snake != name and snake in self.__dataclass_fields__:
            return getattr(self, snake)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
