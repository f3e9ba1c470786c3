"""The projection merge rule, pure: ``merge(current, event) -> new``.

A projection is one order as the read API shows it: the newest order
snapshot, replaced whole, plus the refunds received for it.  Snapshots are
ordered by ``(updatedAt, lifecycle rank of the topic, event id)``, so any
permutation or repetition of the same events converges on one projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from .normalize import NormalizedEvent
from .topics import REFUND_TOPICS, topic_rank

__all__ = ["MergeResult", "Outcome", "Projection", "Version", "merge", "order_view"]

Version = tuple[int, int, str]
"""(updatedAt as UTC epoch microseconds, topic lifecycle rank, event id)."""

Outcome = Literal["applied", "stale", "refund_added", "refund_duplicate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Projection:
    order: dict[str, Any] | None = None  # canonical order JSON of the winning snapshot
    version: Version | None = None
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # refundId -> JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "version": list(self.version) if self.version is not None else None,
            "refunds": self.refunds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Projection:
        version = data.get("version")
        return cls(
            order=data.get("order"),
            version=(int(version[0]), int(version[1]), str(version[2])) if version else None,
            refunds=dict(data.get("refunds") or {}),
        )


@dataclass(frozen=True)
class MergeResult:
    projection: Projection
    outcome: Outcome


def merge(current: Projection | None, topic: str, event_id: str, event: NormalizedEvent) -> MergeResult:
    """Apply one normalized event to the projection of its order.

    - an order snapshot newer than the current one replaces the order whole
      (``applied``); an older or equal one changes nothing (``stale``);
    - a refund is kept by its id (``refund_added``), whether or not the order
      has arrived; a refund id already kept changes nothing
      (``refund_duplicate``)."""
    current = current if current is not None else Projection()
    if topic in REFUND_TOPICS:
        if event.refund is None:
            raise ValueError(f"{topic} event without a refund")
        refund_id = event.refund.refund_id
        if refund_id is None:
            raise ValueError(f"{topic} event without a refund id")
        if refund_id in current.refunds:
            return MergeResult(current, "refund_duplicate")
        refunds = {**current.refunds, refund_id: event.refund.to_json()}
        return MergeResult(Projection(current.order, current.version, refunds), "refund_added")
    if event.order is None or event.order.updated_at is None:
        raise ValueError(f"{topic} event without an order snapshot and its updatedAt")
    version = (_micros(event.order.updated_at), topic_rank(topic), event_id)
    if current.version is not None and version <= current.version:
        return MergeResult(current, "stale")
    return MergeResult(Projection(event.order.to_json(), version, current.refunds), "applied")


def order_view(projection: Projection | None, shop: str) -> dict[str, Any] | None:
    """The read API's order: the canonical order plus ``shop``, ``refunds``
    (by createdAt, then refundId) and ``totalRefunded`` (a decimal string);
    None while only refunds have arrived."""
    if projection is None or projection.order is None:
        return None
    refunds = sorted(projection.refunds.values(), key=_refund_sort_key)
    return {
        **projection.order,
        "shop": shop,
        "refunds": refunds,
        "totalRefunded": _format_amount(_total_refunded(refunds)),
    }


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _refund_sort_key(refund: dict[str, Any]) -> tuple[bool, int, str]:
    created = refund.get("createdAt")
    micros = _micros(datetime.fromisoformat(created)) if created else 0
    return (created is None, micros, str(refund.get("refundId")))


def _total_refunded(refunds: list[dict[str, Any]]) -> Decimal:
    return sum(
        (
            Decimal(transaction["amount"])
            for refund in refunds
            for transaction in refund.get("transactions") or []
            if transaction.get("amount") is not None
        ),
        Decimal(0),
    )


def _format_amount(amount: Decimal) -> str:
    """At least two decimals: ``0`` -> ``"0.00"``, ``12.5`` -> ``"12.50"``."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(_CENTS)
    return format(amount, "f")  # never exponent notation: "0.0000001", not "1E-7"
