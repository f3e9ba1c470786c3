"""The projection merge rule, pure: ``merge(current, event) -> new``.

A projection is one order as the read API shows it: the newest order
snapshot, replaced whole, plus the refunds received for it.  Snapshots are
ordered by ``(updatedAt, lifecycle rank of the topic, event id)``; the
bodies of one refund id by ``(createdAt, settled, event id)``.  So any
permutation or repetition of the same events converges on one projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, Literal

from .normalize import NormalizedEvent
from .topics import REFUND_TOPICS, topic_rank, versioned_by_time_only

__all__ = ["MergeResult", "Outcome", "Projection", "RefundVersion", "Version", "merge", "order_view"]

Version = tuple[int, int, str]
"""(updatedAt as UTC epoch microseconds, topic lifecycle rank, event id)."""

RefundVersion = tuple[bool, int, bool, str]
"""(has createdAt, createdAt as UTC epoch microseconds, settled, event id)."""

Outcome = Literal["applied", "stale", "refund_added", "refund_duplicate"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Projection:
    order: dict[str, Any] | None = None  # canonical order JSON of the winning snapshot
    version: Version | None = None
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # refundId -> JSON of the kept body
    refund_events: dict[str, str] = field(default_factory=dict)  # refundId -> event id of the kept body

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "version": list(self.version) if self.version is not None else None,
            "refunds": self.refunds,
            "refundEvents": self.refund_events,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Projection:
        version = data.get("version")
        return cls(
            order=data.get("order"),
            version=(int(version[0]), int(version[1]), str(version[2])) if version else None,
            refunds=dict(data.get("refunds") or {}),
            refund_events=dict(data.get("refundEvents") or {}),  # stored before it was kept: "" for each
        )


@dataclass(frozen=True)
class MergeResult:
    projection: Projection
    outcome: Outcome


def merge(current: Projection | None, topic: str, event_id: str, event: NormalizedEvent) -> MergeResult:
    """Apply one normalized event to the projection of its order.

    - an order snapshot newer than the current one replaces the order whole
      (``applied``); an older or equal one changes nothing (``stale``);
    - a refund is kept by its id, whether or not the order has arrived. Of
      several bodies for one refund id the one with the greatest
      ``(createdAt, settled, event id)`` is kept (a missing createdAt sorts
      lowest; settled: none of its transactions is ``pending``): a body
      that is new or greater is ``refund_added``, a different body that is
      not greater is ``stale``, and the kept body again (the same event, or
      another event with the same body) is ``refund_duplicate``."""
    current = current if current is not None else Projection()
    if topic in REFUND_TOPICS:
        return _merge_refund(current, topic, event_id, event)
    if event.archived:  # the platform's API no longer has the order: the stored one is marked archived
        if current.order is None or current.order.get("archived") is True:
            return MergeResult(current, "stale")
        return MergeResult(replace(current, order={**current.order, "archived": True}), "applied")
    if event.order is None or event.order.updated_at is None:
        raise ValueError(f"{topic} event without an order snapshot and its updatedAt")
    version = (_micros(event.order.updated_at), topic_rank(topic),
               "" if versioned_by_time_only(topic) else event_id)
    if current.version is not None and version <= current.version:
        return MergeResult(current, "stale")
    return MergeResult(replace(current, order=event.order.to_json(), version=version), "applied")


def _merge_refund(current: Projection, topic: str, event_id: str, event: NormalizedEvent) -> MergeResult:
    if event.refund is None:
        raise ValueError(f"{topic} event without a refund")
    refund_id = event.refund.refund_id
    if refund_id is None:
        raise ValueError(f"{topic} event without a refund id")
    body = event.refund.to_json()
    version = _refund_version(body, event_id)
    kept = current.refunds.get(refund_id)
    if kept is not None:
        kept_version = _refund_version(kept, current.refund_events.get(refund_id, ""))
        if body == kept:  # the same body again: nothing to show, but the greatest event id is the one kept
            if version <= kept_version:
                return MergeResult(current, "refund_duplicate")
            events = {**current.refund_events, refund_id: event_id}
            return MergeResult(replace(current, refund_events=events), "refund_duplicate")
        if version <= kept_version:
            return MergeResult(current, "stale")
    refunds = {**current.refunds, refund_id: body}
    events = {**current.refund_events, refund_id: event_id}
    return MergeResult(replace(current, refunds=refunds, refund_events=events), "refund_added")


def _refund_version(refund: dict[str, Any], event_id: str) -> RefundVersion:
    created = refund.get("createdAt")
    settled = not any(_status(t) == "pending" for t in refund.get("transactions") or [])
    return (created is not None, _micros(datetime.fromisoformat(created)) if created else 0, settled, event_id)


def order_view(projection: Projection | None, shop: str) -> dict[str, Any] | None:
    """The read API's order: the canonical order plus ``shop``, ``refunds``
    (by createdAt, then refundId), ``totalRefunded`` and ``refundedByCurrency``;
    None while only refunds have arrived.

    ``totalRefunded`` (a decimal string, at least two decimals) is the exact
    sum of the refunds' transactions whose ``status`` is ``success`` (or
    absent) and ``kind`` is ``refund`` (or absent), in the order's currency
    or with no currency given. Such transactions in another currency are
    summed per currency code in ``refundedByCurrency`` (``{"JPY": "700"}``)."""
    if projection is None or projection.order is None:
        return None
    refunds = sorted(projection.refunds.values(), key=_refund_sort_key)
    total, by_currency = _refunded(refunds, projection.order.get("currency"))
    return {
        **projection.order,
        "shop": shop,
        "refunds": refunds,
        "totalRefunded": _format_amount(total),
        "refundedByCurrency": {code: format(amount, "f") for code, amount in by_currency.items()},
    }


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _refund_sort_key(refund: dict[str, Any]) -> tuple[bool, int, str]:
    created = refund.get("createdAt")
    micros = _micros(datetime.fromisoformat(created)) if created else 0
    return (created is None, micros, str(refund.get("refundId")))


def _refunded(refunds: list[dict[str, Any]], currency: Any) -> tuple[Decimal, dict[str, Decimal]]:
    """(the sum in the order's currency, {other currency code: its sum}) of the successful refund transactions."""
    home = _currency_code(currency)
    same: list[Decimal] = []
    other: dict[str, list[Decimal]] = {}
    for refund in refunds:
        for transaction in refund.get("transactions") or []:
            if transaction.get("amount") is None or not _is_refunded(transaction):
                continue
            code = _currency_code(transaction.get("currency"))
            found = same if code is None or code == home else other.setdefault(code, [])
            found.append(Decimal(transaction["amount"]))
    return _exact_sum(same), {code: _exact_sum(found) for code, found in sorted(other.items())}


def _is_refunded(transaction: dict[str, Any]) -> bool:
    kind = str(transaction.get("kind") or "refund").strip().lower()
    return _status(transaction) in ("", "success") and kind == "refund"


def _status(transaction: dict[str, Any]) -> str:
    return str(transaction.get("status") or "").strip().lower()


def _currency_code(value: Any) -> str | None:
    code = str(value).strip().upper() if value is not None else ""
    return code or None


def _exact_sum(amounts: list[Decimal]) -> Decimal:
    """The exact sum, whatever the global decimal context: the precision
    is sized to the operands (the normalizer bounds them to 30 digits a side)."""
    total = Decimal(0)
    if not amounts:
        return total
    top = max(amount.adjusted() for amount in amounts)
    low = min(0, *(int(amount.as_tuple().exponent) for amount in amounts))
    context = Context(prec=max(top, 0) - low + len(str(len(amounts))) + 2, traps=[InvalidOperation, Inexact])
    for amount in amounts:
        total = context.add(total, amount)
    return total


def _format_amount(amount: Decimal) -> str:
    """At least two decimals: ``0`` -> ``"0.00"``, ``12.5`` -> ``"12.50"``;
    never exponent notation: ``"0.0000001"``, not ``"1E-7"``. Exact for any size."""
    if int(amount.as_tuple().exponent) > -2:
        return format(amount, ".2f")  # only adds zeros: no rounding, no context
    return format(amount, "f")
