"""What a verified delivery becomes, decided without I/O.

The receiver decides from the topic and the shop alone (`triage`): it stores the raw bytes and leaves the
body to the worker, which normalizes each event once and quarantines a body that does not normalize. A
replay decides again with the body normalized (`retriage`), so that it can say at once why an event stays
quarantined.
"""

from __future__ import annotations

from typing import Literal

from .normalize import NormalizationError, NormalizedEvent, normalize
from .topics import TOPICS

# The statuses a delivery is stored with (the storage's `Status` members of the same names).
Verdict = Literal["queued", "ignored", "quarantined"]

NO_SHOP = "no shop: the X-Genstore-Shop-Domain header is missing"


def triage(topic: str, shop: str, known: tuple[str, ...] = TOPICS) -> tuple[Verdict, str | None]:
    """Pure, and blind to the body: (status, error) of a verified delivery. Topics outside `known` are
    ignored; a delivery without a shop is quarantined (its projection would have no place); any other is
    queued, whatever its body."""
    if topic not in known:
        return "ignored", f"unknown topic {topic!r}"
    if not shop:
        return "quarantined", NO_SHOP
    return "queued", None


def retriage(topic: str, shop: str, raw: bytes, known: tuple[str, ...] = TOPICS,
             ) -> tuple[Verdict, NormalizedEvent | None, str | None, str | None]:
    """Pure: (status, normalized event, order id, error) of a stored delivery, its body normalized: `triage`,
    then a body that does not normalize is quarantined with the reason. What a replay runs (it passes every
    topic the normalizer reads, `orders/reconcile` included, for a reconciled order).

    Only the raw body is stored: normalizing is pure, so whoever needs the event later (worker, read API)
    rebuilds exactly this one from it.
    """
    status, error = triage(topic, shop, known)
    if status != "queued":
        return status, None, None, error
    try:
        event = normalize(topic, raw)
    except NormalizationError as exc:
        return "quarantined", None, None, exc.reason
    return "queued", event, event.order_id, None
