"""What a verified delivery becomes, decided without I/O."""

from __future__ import annotations

from typing import Literal

from .normalize import NormalizationError, NormalizedEvent, normalize
from .topics import TOPICS

# The statuses a delivery is stored with (the storage's `Status` members of the same names).
Verdict = Literal["queued", "ignored", "quarantined"]


def triage(topic: str, shop: str, raw: bytes, known: tuple[str, ...] = TOPICS,
           ) -> tuple[Verdict, NormalizedEvent | None, str | None, str | None]:
    """Pure: (status, normalized event, order id, error) for a verified delivery (topics outside `known`
    are ignored; a replay passes every topic the normalizer reads, `orders/reconcile` included).

    Only the raw body is stored: normalizing is pure, so whoever needs the event later
    (worker, read API) rebuilds exactly this one from it.
    """
    if topic not in known:
        return "ignored", None, None, f"unknown topic {topic!r}"
    if not shop:
        return "quarantined", None, None, "no shop: the X-Genstore-Shop-Domain header is missing"
    try:
        event = normalize(topic, raw)
    except NormalizationError as exc:
        return "quarantined", None, None, exc.reason
    return "queued", event, event.order_id, None
