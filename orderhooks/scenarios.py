"""Scenarios for `orderhooks send --scenario NAME`: a sequence of deliveries a shop would send.

Each step is built from the topic's example payload (`schemas.samples`) for
one order, with `updatedAt` moved along the order's life, so the steps are
realistic and the projection has something to order them by.

`lifecycle`: create → paid → partiallyFulfilled → fulfilled → refund, then
one out-of-order pair: two `orders/update` snapshots sent newest first, so
the second one to arrive is older than the stored order and is `stale`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from schemas.samples import example_for_topic
from storage.status import Status

SHOP_OFFSET = timezone(timedelta(hours=-4))  # the seeds' shop clock (-04:00)


@dataclass(frozen=True)
class Step:
    topic: str
    body: bytes
    expect: Status  # the status the event should reach: processed or stale
    what: str


def _iso(moment: datetime) -> str:
    return moment.astimezone(SHOP_OFFSET).isoformat(timespec="seconds")


def _order(topic: str, order_id: str, updated: datetime, created: datetime, **changes) -> bytes:
    data = json.loads(example_for_topic(topic))
    order = data["order"]
    order["orderId"] = order_id
    order["createdAt"] = _iso(created)
    order["updatedAt"] = _iso(updated)
    fulfillments = changes.pop("fulfillments", None)
    order.update(changes)
    if fulfillments is not None:
        order["fulfillments"] = [
            {**f, "orderId": order_id, "createdAt": _iso(created), "updatedAt": _iso(updated)} for f in fulfillments
        ]
    for item in order.get("lineItems") or []:
        item["fulfillmentStatus"] = changes.get("fulfillmentStatus")
    return json.dumps(data, indent=2).encode()


def _refund(order_id: str, created: datetime) -> bytes:
    data = json.loads(example_for_topic("refunds/create"))
    refund = data["refund"]
    refund["orderId"] = order_id
    refund["refundId"] = f"{order_id}01"
    refund["createdAt"] = _iso(created)
    for t in refund.get("transactions") or []:
        t["createdAt"] = _iso(created)
    return json.dumps(data, indent=2).encode()


def lifecycle(order_id: str | None = None, now: datetime | None = None) -> list[Step]:
    """One order's life, oldest step first, ending shortly before `now`."""
    order_id = order_id or str(random.randint(10_000_000, 99_999_999))
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    t0 = now - timedelta(days=3)
    shipped = {"fulfillId": f"{order_id}1", "status": "success", "trackingCompany": "UPS",
               "trackingNumber": f"1Z999AA1{order_id}", "trackingUrl": f"https://www.ups.com/track?tracknum=1Z999AA1{order_id}"}
    rest = {"fulfillId": f"{order_id}2", "status": "success", "trackingCompany": "USPS",
            "trackingNumber": f"9400{order_id}", "trackingUrl": f"https://tools.usps.com/go/TrackConfirmAction?tLabels=9400{order_id}"}
    return [
        Step("orders/create", _order("orders/create", order_id, t0, t0, financialStatus="pending",
                                     fulfillmentStatus=None, fulfillments=[], closedAt=None),
             Status.PROCESSED, "the order is placed, payment pending"),
        Step("orders/paid", _order("orders/paid", order_id, t0 + timedelta(minutes=2), t0, financialStatus="paid",
                                   fulfillmentStatus=None, fulfillments=[], closedAt=None),
             Status.PROCESSED, "payment captured"),
        Step("orders/partiallyFulfilled", _order(
            "orders/partiallyFulfilled", order_id, t0 + timedelta(hours=20), t0, financialStatus="paid",
            fulfillmentStatus="partial", fulfillments=[shipped], closedAt=None),
             Status.PROCESSED, "first parcel shipped (UPS)"),
        Step("orders/fulfilled", _order(
            "orders/fulfilled", order_id, t0 + timedelta(days=1, hours=4), t0, financialStatus="paid",
            fulfillmentStatus="fulfilled", fulfillments=[shipped, rest], closedAt=None),
             Status.PROCESSED, "second parcel shipped (USPS): fulfilled"),
        Step("refunds/create", _refund(order_id, t0 + timedelta(days=2)),
             Status.PROCESSED, "one item returned and refunded"),
        Step("orders/update", _order(
            "orders/update", order_id, t0 + timedelta(days=2, minutes=5), t0, financialStatus="partially_refunded",
            fulfillmentStatus="fulfilled", fulfillments=[shipped, rest], closedAt=None,
            note="Refunded the returned item."),
             Status.PROCESSED, "out of order, 1/2: the newer update arrives first"),
        Step("orders/update", _order(
            "orders/update", order_id, t0 + timedelta(days=1, hours=6), t0, financialStatus="paid",
            fulfillmentStatus="fulfilled", fulfillments=[shipped, rest], closedAt=None,
            note="Gift wrap requested."),
             Status.STALE, "out of order, 2/2: an older update arrives late and must not win"),
    ]


SCENARIOS = {"lifecycle": lifecycle}

# The seed pages show the customer's e-mail as the scrape artefact "[email protected]".
EXAMPLE_EMAIL = "bob.norman@example.com"
_TIME_NAMES = {"createdAt": "createTime", "updatedAt": "updateTime", "cancelledAt": "cancelledTime",
               "closedAt": "closedTime"}


def _set_time(obj: dict, name: str, value: str) -> None:
    """Set a time under whichever of its names the payload uses (`orders/cancelled` sends `...Time`)."""
    variant = _TIME_NAMES[name]
    obj[variant if variant in obj and name not in obj else name] = value


def fresh_example(topic: str, order_id: str | None = None, now: datetime | None = None) -> bytes:
    """The topic's example payload as a new delivery: a new order id (unless given), times of now, a plausible
    e-mail; `orders/cancelled` cancelled now. The seed payloads themselves stay verbatim in `schemas.samples`."""
    data = json.loads(example_for_topic(topic))
    order_id = order_id or str(random.randint(10_000_000, 99_999_999))
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if "refund" in data:
        return _refund(order_id, now)
    order = data["order"]
    order["orderId"] = order_id
    _set_time(order, "createdAt", _iso(now - timedelta(minutes=5)))
    _set_time(order, "updatedAt", _iso(now))
    if topic == "orders/cancelled":
        _set_time(order, "cancelledAt", _iso(now))
    if "@" not in str(order.get("email", "@")) or "protected" in str(order.get("email")):
        order["email"] = EXAMPLE_EMAIL
    customer = order.get("customer")
    if isinstance(customer, dict) and "protected" in str(customer.get("email")):
        customer["email"] = EXAMPLE_EMAIL
    for f in order.get("fulfillments") or []:
        if isinstance(f, dict):
            f["orderId"] = order_id
    return json.dumps(data, indent=2).encode()
