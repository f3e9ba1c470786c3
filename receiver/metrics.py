"""Prometheus metrics of the receiver."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from schemas import TOPICS

DELIVERIES = Counter(
    "orderhooks_deliveries_total", "Webhook deliveries by topic and outcome", ["topic", "outcome"]
)
ACK_SECONDS = Histogram(
    "orderhooks_ack_seconds", "Time from request start to acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def topic_label(topic: str) -> str:
    """Known topics as themselves; anything else as `other`, so labels stay few."""
    return topic if topic in TOPICS else "other"
