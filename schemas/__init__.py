"""Genstore order events: normalization into canonical models, the pure
projection merge rule, and the triage of a verified delivery.  No I/O; imports
nothing from ``receiver``, ``storage`` or ``workers``."""

from .merge import MergeResult, Projection, merge, order_view
from .normalize import NormalizationError, NormalizedEvent, normalize
from .order import Order
from .refund import Refund
from .topics import (
    NORMALIZED_TOPICS,
    ORDER_TOPICS,
    ORDERS_RECONCILE,
    REFUND_TOPICS,
    TOPICS,
    UnknownTopic,
    topic_rank,
)
from .triage import Verdict, retriage, triage

__all__ = [
    "NORMALIZED_TOPICS",
    "ORDERS_RECONCILE",
    "ORDER_TOPICS",
    "REFUND_TOPICS",
    "TOPICS",
    "MergeResult",
    "NormalizationError",
    "NormalizedEvent",
    "Order",
    "Projection",
    "Refund",
    "UnknownTopic",
    "Verdict",
    "merge",
    "normalize",
    "order_view",
    "retriage",
    "topic_rank",
    "triage",
]

from . import bigcommerce  # noqa: E402,F401 -- declares its scopes' versioning
