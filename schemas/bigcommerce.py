"""BigCommerce, pure: its webhook envelope, and its V2 order mapped to the canonical order.

BigCommerce sends thin envelopes (`{"scope": "store/order/statusUpdated", "data": {"type": "order",
"id": 250, ...}, "producer": "stores/abc123", "hash": ..., "created_at": ...}`); the order itself is read
from the V2 Orders API (`GET /orders/{id}`, its `products` and `shipping_addresses`) and becomes the
canonical order here. No I/O: the worker fetches, this module maps.

An order's version is its `date_modified` alone: a hydrated snapshot that is not strictly newer than the
stored one leaves it (`stale`), whichever event brought it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from . import _json
from .normalize import NormalizationError, NormalizedEvent, _summarise
from .order import Order
from .topics import version_by_time_only

__all__ = [
    "FINANCIAL_STATUS",
    "PROCESSED_SCOPES",
    "SCOPE_PREFIX",
    "STATUS_NAMES",
    "Envelope",
    "EnvelopeError",
    "financial_status",
    "fulfillment_status",
    "is_cancelled",
    "is_closed",
    "normalize",
    "parse_envelope",
    "shop_for_store",
    "store_hash_of",
    "to_order",
]

SCOPE_PREFIX = "store/order/"
CREATED = "store/order/created"
UPDATED = "store/order/updated"
ARCHIVED = "store/order/archived"
STATUS_UPDATED = "store/order/statusUpdated"
REFUND_CREATED = "store/order/refund/created"
# Every processed scope re-reads the order from the V2 API (a refund too: V2 gives `refunded_amount`).
PROCESSED_SCOPES: tuple[str, ...] = (CREATED, UPDATED, ARCHIVED, STATUS_UPDATED, REFUND_CREATED)
version_by_time_only(*PROCESSED_SCOPES)

# V2 `status_id` 0-14, by position.
STATUS_NAMES: tuple[str, ...] = (
    "Incomplete", "Pending", "Shipped", "Partially Shipped", "Refunded", "Cancelled", "Declined",
    "Awaiting Payment", "Awaiting Pickup", "Awaiting Shipment", "Completed", "Awaiting Fulfillment",
    "Manual Verification Required", "Disputed", "Partially Refunded",
)
FINANCIAL_STATUS: dict[int, str] = {
    **dict.fromkeys((0, 1, 7, 12), "pending"),
    **dict.fromkeys((2, 3, 8, 9, 10, 11, 13), "paid"),
    4: "refunded",
    14: "partially_refunded",
    **dict.fromkeys((5, 6), "voided"),
}
CANCELLED_IDS = (5, 6)
COMPLETED_ID = 10

_PRODUCER = re.compile(r"^stores/([A-Za-z0-9]+)$")
_SHOP = re.compile(r"^store-([a-z0-9]+)\.mybigcommerce\.com$")


# -- the envelope ----------------------------------------------------------------------------------------------

class EnvelopeError(ValueError):
    """An envelope that cannot be read (not JSON, not an object, no usable `producer`)."""


@dataclass(frozen=True)
class Envelope:
    scope: str
    store_hash: str
    order_id: str | None  # `data.id`; None when missing
    hash: str
    created_at: str
    previous_status_id: int | None = None
    new_status_id: int | None = None

    @property
    def shop(self) -> str:
        return shop_for_store(self.store_hash)

    @property
    def dedup_key(self) -> str:
        """The de-duplication key when no `webhook-id` came: scope, order id, hash and created_at."""
        return f"{self.scope}:{self.order_id or ''}:{self.hash}:{self.created_at}"


def shop_for_store(store_hash: str) -> str:
    return f"store-{store_hash.lower()}.mybigcommerce.com"


def store_hash_of(shop: str) -> str | None:
    found = _SHOP.match(shop)
    return found.group(1) if found else None


def _scalar_text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value)


def _status_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_envelope(body: bytes | str) -> Envelope:
    """The envelope's fields; EnvelopeError when the body is not a JSON object with `producer` `stores/HASH`.
    Plain JSON (nesting bounded as for every body), no models."""
    try:
        data = _json.loads(body)
    except ValueError as exc:
        raise EnvelopeError(f"envelope is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("envelope is not a JSON object")
    producer = data.get("producer")
    found = _PRODUCER.match(producer) if isinstance(producer, str) else None
    if not found:
        raise EnvelopeError("envelope has no producer stores/HASH")
    scope = data.get("scope") if isinstance(data.get("scope"), str) else ""
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    order_id = _scalar_text(inner.get("id")).strip() or None
    status = inner.get("status") if isinstance(inner.get("status"), dict) else {}
    return Envelope(
        scope=scope, store_hash=found.group(1).lower(), order_id=order_id,
        hash=_scalar_text(data.get("hash")), created_at=_scalar_text(data.get("created_at")),
        previous_status_id=_status_id(status.get("previous_status_id")),
        new_status_id=_status_id(status.get("new_status_id")),
    )


# -- statuses --------------------------------------------------------------------------------------------------

def financial_status(status_id: int | None) -> str | None:
    return FINANCIAL_STATUS.get(status_id) if status_id is not None else None


def fulfillment_status(items_shipped: int | None, items_total: int | None) -> str | None:
    """None when nothing is shipped, `partial` when some items are, `fulfilled` when all are."""
    if not items_shipped or items_shipped <= 0:
        return None
    if items_total is not None and items_shipped < items_total:
        return "partial"
    return "fulfilled"


def is_cancelled(order: dict) -> bool:
    """The read API's `status=cancelled`: Cancelled (5) or Declined (6)."""
    return _status_id(order.get("status_id")) in CANCELLED_IDS


def is_closed(order: dict) -> bool:
    """The read API's `status=closed`: Completed (10), or archived."""
    return _status_id(order.get("status_id")) == COMPLETED_ID or order.get("archived") is True


# -- the V2 order ----------------------------------------------------------------------------------------------

_ADDRESS = {"first_name": "firstName", "last_name": "lastName", "company": "company", "street_1": "address1",
            "street_2": "address2", "city": "city", "state": "province", "zip": "zip", "country": "country",
            "country_iso2": "countryCode", "phone": "phone"}
# V2 order fields that become canonical fields (the others are kept under their V2 names).
_ORDER_MAPPED = {"id", "date_created", "date_modified", "status", "billing_address", "default_currency_code",
                 "currency_code", "subtotal_ex_tax", "total_inc_tax", "total_tax", "discount_amount",
                 "customer_message", "payment_method", "order_source", "is_deleted", "products",
                 "shipping_addresses"}
_PRODUCT_MAPPED = {"id", "product_id", "variant_id", "name", "sku", "quantity", "price_inc_tax",
                   "quantity_shipped", "type"}


def _rfc2822(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NormalizationError(f"{where}: not an RFC 2822 date ({value!r:.40})")
    try:
        moment: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise NormalizationError(f"{where}: not an RFC 2822 date ({value!r:.40})") from None
    if moment.tzinfo is None:
        raise NormalizationError(f"{where}: an RFC 2822 date without a zone ({value!r:.40})")
    return moment.isoformat()


def _address(v2: Any) -> dict | None:
    if not isinstance(v2, dict):
        return None
    out = {canonical: v2.get(name) for name, canonical in _ADDRESS.items() if name in v2}
    out.update({k: v for k, v in v2.items() if k not in _ADDRESS})  # email, form_fields, id, ...
    return out


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.0+)?", value.strip()):
        return int(Decimal(value.strip()))
    return None


def _line_item(product: Any) -> Any:
    if not isinstance(product, dict):
        return product  # refused by the model, with its position
    quantity, shipped = _whole(product.get("quantity")), _whole(product.get("quantity_shipped"))
    item = {
        "id": product.get("id"), "productId": product.get("product_id"), "variantId": product.get("variant_id"),
        "title": product.get("name"), "sku": product.get("sku"), "quantity": product.get("quantity"),
        "price": product.get("price_inc_tax"),
        "fulfillableQuantity": quantity - shipped if quantity is not None and shipped is not None else None,
        "requiresShipping": product.get("type") != "digital" if "type" in product else None,
    }
    item.update({k: v for k, v in product.items() if k not in _PRODUCT_MAPPED or k in ("quantity_shipped", "type")})
    return item


def _customer(v2: dict, billing: dict | None) -> dict | None:
    customer_id = _whole(v2.get("customer_id"))
    email = billing.get("email") if billing else None
    if not customer_id and not email:
        return None
    return {"id": str(customer_id) if customer_id else None, "email": email,
            "firstName": billing.get("first_name") if billing else None,
            "lastName": billing.get("last_name") if billing else None}


def to_order(order: dict, products: list | None = None, shipping_addresses: list | None = None) -> Order:
    """The canonical order from a V2 order and its sub-resources (NormalizationError says which field fails).

    Field by field (the README's table): `id`→`orderId`; `date_created`/`date_modified` (RFC 2822)→
    `createdAt`/`updatedAt`; `status_id`→`status` (its name), `financialStatus`; `items_shipped` of
    `items_total`→`fulfillmentStatus`; `default_currency_code` (the transactional currency)→`currency`,
    `currency_code` (the display currency)→`presentmentCurrency`; `total_inc_tax`→`totalPrice`,
    `subtotal_ex_tax`→`subtotalPrice`, `total_tax`→`totalTax`, `discount_amount`→`totalDiscounts`;
    `billing_address`→`billingAddress` (and its `email`→`email`), the first shipping address→
    `shippingAddress`, products→`lineItems`, `customer_message`→`note`, `payment_method`→
    `paymentGatewayNames`, `order_source`→`sourceName`, `is_deleted`→`archived`. Every other V2 field is
    kept under its V2 name, money strings as sent.
    """
    if not isinstance(order, dict):
        raise NormalizationError("order: not a JSON object")
    status_id = _status_id(order.get("status_id"))
    if "status_id" in order and (status_id is None or not 0 <= status_id < len(STATUS_NAMES)):
        raise NormalizationError(f"order.status_id: not a status 0-14 ({order.get('status_id')!r:.40})")
    billing = order.get("billing_address") if isinstance(order.get("billing_address"), dict) else None
    addresses = shipping_addresses or []
    if not isinstance(addresses, list):
        raise NormalizationError("shipping_addresses: not a JSON array")
    if products is not None and not isinstance(products, list):
        raise NormalizationError("products: not a JSON array")
    payment = order.get("payment_method")
    canonical: dict[str, Any] = {
        "orderId": order.get("id"),
        "createdAt": _rfc2822(order.get("date_created"), "order.date_created"),
        "updatedAt": _rfc2822(order.get("date_modified"), "order.date_modified"),
        "status": STATUS_NAMES[status_id] if status_id is not None else None,
        "financialStatus": financial_status(status_id),
        "fulfillmentStatus": fulfillment_status(_whole(order.get("items_shipped")),
                                                _whole(order.get("items_total"))),
        "currency": order.get("default_currency_code"),
        "presentmentCurrency": order.get("currency_code"),
        "totalPrice": order.get("total_inc_tax"),
        "subtotalPrice": order.get("subtotal_ex_tax"),
        "totalTax": order.get("total_tax"),
        "totalDiscounts": order.get("discount_amount"),
        "email": billing.get("email") if billing else None,
        "note": order.get("customer_message"),
        "paymentGatewayNames": [payment] if isinstance(payment, str) and payment else None,
        "sourceName": order.get("order_source"),
        "billingAddress": _address(billing),
        "shippingAddress": _address(addresses[0]) if addresses else None,
        "lineItems": [_line_item(p) for p in products] if products is not None else None,
        "customer": _customer(order, billing),
        "archived": order.get("is_deleted") is True,
    }
    for name, value in order.items():
        if name not in _ORDER_MAPPED:
            canonical[name] = value
    canonical["shipping_addresses"] = addresses  # every address, as V2 sent them
    try:
        return Order.model_validate(canonical)
    except ValidationError as exc:
        raise NormalizationError(_summarise("order", exc)) from None


def normalize(scope: str, envelope: bytes | str, hydrated: dict | None) -> NormalizedEvent:
    """The canonical event of a BigCommerce delivery once its order was read from the V2 API.

    `hydrated` is `{"order": ..., "products": [...], "shipping_addresses": [...]}` as the API answered,
    or `{"archived": true}` when it answered 404 (the order was archived). NormalizationError when the
    envelope has no `data.id` or the order does not map."""
    try:
        env = parse_envelope(envelope)
    except EnvelopeError as exc:
        raise NormalizationError(str(exc)) from None
    if env.order_id is None:
        raise NormalizationError("data.id: missing")
    if hydrated is None:
        raise NormalizationError("not hydrated: the order has not been read from the V2 API yet")
    if hydrated.get("archived") is True:
        return NormalizedEvent(topic=scope, order_id=env.order_id, archived=True)
    order = to_order(hydrated.get("order"), hydrated.get("products"), hydrated.get("shipping_addresses"))
    if order.order_id != env.order_id:
        raise NormalizationError(f"order.id: {order.order_id!r} is not the envelope's data.id {env.order_id!r}")
    if order.updated_at is None:
        raise NormalizationError("order.date_modified: missing")
    return NormalizedEvent(topic=scope, order_id=env.order_id, order=order)
