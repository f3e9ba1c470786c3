"""The handlers. Each one is idempotent: orderhooks runs handlers at least once per event."""

from __future__ import annotations

from workers.event import HandlerEvent
from workers.handlers import on

from orderhooks_shipping import outbox


@on("orders/paid")
def request_packing_slip(event: HandlerEvent) -> None:
    if event.stale or event.order is None:
        return  # a late, older snapshot: the order has moved on
    order = event.order
    outbox.get().send_once(f"packing-slip:{event.shop}:{order.order_id}", {
        "to": "warehouse",
        "order": order.order_id,
        "items": [{"sku": li.sku, "title": li.title, "quantity": li.quantity} for li in order.line_items or []],
        "ship_to": order.shipping_address.model_dump(mode="json") if order.shipping_address else None,
    })


PAID_TAG = "paid"


@on("orders/paid")
def tag_paid_order(event: HandlerEvent) -> None:
    """Act back on the order through the shop's Orders API: tag it `paid` (once: a retry finds the tag)."""
    if event.stale or event.order is None or event.api is None:
        return  # no API token registered for this shop (`orderhooks shops add`): nothing to call
    tags = list(event.order.tags or [])
    if PAID_TAG in tags:
        return
    event.api.update_order(event.order_id, tags=[*tags, PAID_TAG])


@on("orders/partiallyFulfilled", "orders/fulfilled")
def send_tracking_notices(event: HandlerEvent) -> None:
    if event.stale or event.order is None:
        return
    order = event.order
    for f in order.fulfillments or []:
        extra = f.model_extra or {}  # tracking fields are not modelled: they are kept as sent
        number = extra.get("trackingNumber") or extra.get("tracking_number")
        if not number or f.status == "failure":
            continue
        outbox.get().send_once(f"tracking:{event.shop}:{order.order_id}:{f.fulfill_id}", {
            "to": order.email,
            "order": order.order_id,
            "carrier": extra.get("trackingCompany") or extra.get("tracking_company"),
            "tracking_number": number,
            "tracking_url": extra.get("trackingUrl") or extra.get("tracking_url"),
        })


@on("refunds/create")
def confirm_refund(event: HandlerEvent) -> None:
    refund = event.refund
    if refund is None:
        return
    amount = sum((t.amount for t in refund.transactions or [] if t.amount is not None and t.kind == "refund"),
                 start=0)
    currency = next((t.currency for t in refund.transactions or [] if t.currency), None)
    outbox.get().send_once(f"refund:{event.shop}:{refund.refund_id}", {
        # The order may not have arrived yet: a refund can come first. Then there is no address yet.
        "to": event.order.email if event.order else None,
        "order": refund.order_id,
        "amount": str(amount),
        "currency": currency,
    })
