"""The webhook topics Genstore sends, and their lifecycle order."""

from __future__ import annotations

__all__ = [
    "ORDERS_CANCELLED",
    "ORDERS_CREATE",
    "ORDERS_FULFILLED",
    "ORDERS_PAID",
    "ORDERS_PARTIALLY_FULFILLED",
    "ORDERS_RECONCILE",
    "ORDERS_UPDATE",
    "ORDER_TOPICS",
    "REFUNDS_CREATE",
    "NORMALIZED_TOPICS",
    "REFUND_TOPICS",
    "TOPICS",
    "UnknownTopic",
    "topic_rank",
    "version_by_time_only",
    "versioned_by_time_only",
]

ORDERS_CREATE = "orders/create"
ORDERS_UPDATE = "orders/update"
ORDERS_PAID = "orders/paid"
ORDERS_PARTIALLY_FULFILLED = "orders/partiallyFulfilled"
ORDERS_FULFILLED = "orders/fulfilled"
ORDERS_CANCELLED = "orders/cancelled"
REFUNDS_CREATE = "refunds/create"
# Not a webhook topic: an order read from the Orders API by reconciliation. Its snapshot ranks below
# every webhook topic, so a webhook with the same `updatedAt` wins.
ORDERS_RECONCILE = "orders/reconcile"

# In lifecycle order: the position is the tie-breaking rank of a snapshot.
ORDER_TOPICS: tuple[str, ...] = (
    ORDERS_CREATE,
    ORDERS_UPDATE,
    ORDERS_PAID,
    ORDERS_PARTIALLY_FULFILLED,
    ORDERS_FULFILLED,
    ORDERS_CANCELLED,
)
REFUND_TOPICS: tuple[str, ...] = (REFUNDS_CREATE,)
TOPICS: tuple[str, ...] = ORDER_TOPICS + REFUND_TOPICS  # what webhooks may carry
NORMALIZED_TOPICS: tuple[str, ...] = TOPICS + (ORDERS_RECONCILE,)  # what `normalize` reads


# Topics of platforms whose order snapshots are versioned by their time alone (`version_by_time_only`).
_TIME_ONLY: set[str] = set()


def version_by_time_only(*topics: str) -> None:
    """Declare topics (another platform's, from its module in this package) whose snapshots are ordered by
    `updatedAt` alone: one not strictly newer than the stored snapshot is stale, whatever its event."""
    _TIME_ONLY.update(topics)


def versioned_by_time_only(topic: str) -> bool:
    return topic in _TIME_ONLY


class UnknownTopic(ValueError):
    """A topic this package does not know how to normalize."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"unknown topic {topic!r}")
        self.topic = topic


def topic_rank(topic: str) -> int:
    """Lifecycle rank of an order topic: reconcile (-1) < create (0) < update <
    paid < partiallyFulfilled < fulfilled < cancelled (5).  Breaks ties between
    snapshots with the same ``updatedAt``.  Refund topics have no rank."""
    if topic == ORDERS_RECONCILE:
        return -1
    if topic in _TIME_ONLY:
        return 0
    try:
        return ORDER_TOPICS.index(topic)
    except ValueError:
        if topic in REFUND_TOPICS:
            raise ValueError(f"{topic} has no lifecycle rank") from None
        raise UnknownTopic(topic) from None
