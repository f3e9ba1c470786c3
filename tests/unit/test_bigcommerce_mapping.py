"""The pure BigCommerce side: the envelope, the V2 order → canonical order table, statuses, versions."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from importlib.resources import files

import pytest

from schemas import NormalizationError, NormalizedEvent, merge
from schemas import bigcommerce as bc


def sample() -> dict:
    return json.loads(files("schemas.samples").joinpath("bigcommerce_order.json").read_text())


def envelope(scope="store/order/updated", order_id=250, **extra) -> bytes:
    data = {"type": "order", "id": order_id} if order_id is not None else {"type": "order"}
    body = {"scope": scope, "store_id": "1025646", "data": data, "hash": "3f9ea420af83450d7ef9f78b08c8af25b2213637",
            "created_at": 1561479335, "producer": "stores/abc123", **extra}
    return json.dumps(body).encode()


def test_the_sample_order_maps_field_by_field():
    s = sample()
    order = bc.to_order(s["order"], s["products"], s["shipping_addresses"])
    out = order.to_json()
    assert out["orderId"] == "250"
    assert out["createdAt"] == "2019-06-25T16:15:35Z"
    assert out["updatedAt"] == "2019-06-25T16:17:20Z"
    assert (out["status"], out["financialStatus"], out["fulfillmentStatus"]) == ("Awaiting Fulfillment", "paid", None)
    assert out["currency"] == "EUR" and out["presentmentCurrency"] == "EUR"
    assert order.total_price == Decimal("253.5600") and out["totalPrice"] == "253.5600"
    assert (out["subtotalPrice"], out["totalTax"], out["totalDiscounts"]) == ("225.0000", "18.5600", "0.0000")
    assert out["email"] == "janedoe@example.com" and out["note"] == "Please leave at the back door"
    assert out["paymentGatewayNames"] == ["Cash on Delivery"] and out["sourceName"] == "www"
    assert out["billingAddress"]["address1"] == "455 Main Street"
    assert out["billingAddress"]["countryCode"] == "US" and out["billingAddress"]["province"] == "Texas"
    assert out["shippingAddress"]["address1"] == "455 Main Street"
    assert out["shippingAddress"]["shipping_method"] == "Flat Rate"
    assert out["customer"] == {**out["customer"], "id": "11", "email": "janedoe@example.com"}
    [item] = out["lineItems"]
    assert (item["id"], item["productId"], item["variantId"], item["title"], item["sku"]) == (
        "1", "77", "301", "Fog Linen Chambray Towel - Beige Stripe", "SLCTBS")
    assert (item["quantity"], item["price"], item["fulfillableQuantity"], item["requiresShipping"]) == (
        3, "81.1867", 3, True)
    assert out["archived"] is False
    # V2 fields with no canonical name stay under their V2 names, money strings as sent
    assert out["status_id"] == 11 and out["refunded_amount"] == "0.0000"
    assert out["store_default_to_transactional_exchange_rate"] == "100.0000000000"
    assert out["currency_exchange_rate"] == 1 and out["items_total"] == 3
    assert "date_modified" not in out and "id" not in out and "total_inc_tax" not in out


STATUS_TABLE = [
    (0, "Incomplete", "pending"), (1, "Pending", "pending"), (2, "Shipped", "paid"),
    (3, "Partially Shipped", "paid"), (4, "Refunded", "refunded"), (5, "Cancelled", "voided"),
    (6, "Declined", "voided"), (7, "Awaiting Payment", "pending"), (8, "Awaiting Pickup", "paid"),
    (9, "Awaiting Shipment", "paid"), (10, "Completed", "paid"), (11, "Awaiting Fulfillment", "paid"),
    (12, "Manual Verification Required", "pending"), (13, "Disputed", "paid"),
    (14, "Partially Refunded", "partially_refunded"),
]


@pytest.mark.parametrize(("status_id", "name", "financial"), STATUS_TABLE)
def test_every_status_id_has_its_name_and_financial_status(status_id, name, financial):
    s = sample()
    s["order"]["status_id"] = status_id
    out = bc.to_order(s["order"], s["products"], s["shipping_addresses"]).to_json()
    assert (out["status"], out["financialStatus"]) == (name, financial)


@pytest.mark.parametrize(("shipped", "total", "expected"), [(0, 3, None), (1, 3, "partial"), (3, 3, "fulfilled")])
def test_fulfillment_status_from_items_shipped(shipped, total, expected):
    s = sample()
    s["order"].update(items_shipped=shipped, items_total=total)
    assert bc.to_order(s["order"], s["products"], []).fulfillment_status == expected


def test_cancelled_and_closed_for_the_status_filter():
    assert bc.is_cancelled({"status_id": 5}) and bc.is_cancelled({"status_id": 6})
    assert not bc.is_cancelled({"status_id": 10})
    assert bc.is_closed({"status_id": 10}) and bc.is_closed({"status_id": 1, "archived": True})
    assert not bc.is_closed({"status_id": 11, "archived": False})


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("date_modified", "2019-06-25T16:17:20Z", "order.date_modified: not an RFC 2822 date"),
    ("date_modified", "Tue, 25 Jun 2019 16:17:20", "order.date_modified: an RFC 2822 date without a zone"),
    ("status_id", 15, "order.status_id: not a status 0-14"),
    ("total_inc_tax", "abc", "order.totalPrice: not a decimal amount"),
])
def test_a_bad_field_is_named(field, value, reason):
    s = sample()
    s["order"][field] = value
    with pytest.raises(NormalizationError) as caught:
        bc.to_order(s["order"], s["products"], s["shipping_addresses"])
    assert caught.value.reason.startswith(reason)


def test_envelope_fields_and_dedup_key():
    env = bc.parse_envelope(envelope("store/order/statusUpdated"))
    assert (env.scope, env.store_hash, env.order_id, env.shop) == (
        "store/order/statusUpdated", "abc123", "250", "store-abc123.mybigcommerce.com")
    assert env.dedup_key == "store/order/statusUpdated:250:3f9ea420af83450d7ef9f78b08c8af25b2213637:1561479335"
    body = json.loads(envelope("store/order/statusUpdated"))
    body["data"]["status"] = {"previous_status_id": 0, "new_status_id": 11}
    env = bc.parse_envelope(json.dumps(body))
    assert (env.previous_status_id, env.new_status_id) == (0, 11)


@pytest.mark.parametrize("body", [b"not json", b"[1]", json.dumps({"scope": "store/order/created"}).encode(),
                                  json.dumps({"producer": "shops/x"}).encode(), b"[" * 40 + b"]" * 40])
def test_an_unreadable_envelope_is_refused(body):
    with pytest.raises(bc.EnvelopeError):
        bc.parse_envelope(body)


def test_an_envelope_without_data_id_does_not_normalize():
    with pytest.raises(NormalizationError, match=r"^data\.id: missing$"):
        bc.normalize("store/order/created", envelope(order_id=None), sample())


def test_an_envelope_of_another_order_than_hydrated_is_refused():
    with pytest.raises(NormalizationError, match="not the envelope's data.id"):
        bc.normalize("store/order/created", envelope(order_id=251), sample())


def snapshot(modified: str, status_id: int = 11, scope: str = "store/order/updated") -> NormalizedEvent:
    s = sample()
    s["order"].update(date_modified=modified, status_id=status_id)
    return bc.normalize(scope, envelope(scope), s)


def test_newest_date_modified_wins_and_not_newer_is_stale_whatever_the_event():
    older = snapshot("Tue, 25 Jun 2019 16:17:20 +0000", 11)
    newer = snapshot("Tue, 25 Jun 2019 17:00:00 +0000", 2, "store/order/statusUpdated")
    first = merge(None, "store/order/statusUpdated", "b", newer)
    assert first.outcome == "applied"
    assert merge(first.projection, "store/order/updated", "a", older).outcome == "stale"
    # the same snapshot read again by another event (hydrating twice): not newer, so stale, whatever its id
    assert merge(first.projection, "store/order/updated", "zzz", copy.copy(newer)).outcome == "stale"
    assert merge(first.projection, "store/order/created", "0", newer).outcome == "stale"


def test_a_404_marks_the_stored_order_archived_and_changes_nothing_else():
    stored = merge(None, "store/order/created", "a", snapshot("Tue, 25 Jun 2019 16:17:20 +0000")).projection
    gone = bc.normalize("store/order/archived", envelope("store/order/archived"), {"archived": True})
    assert gone.to_json()["archived"] is True and gone.order is None
    result = merge(stored, "store/order/archived", "b", gone)
    assert result.outcome == "applied"
    assert result.projection.order == {**stored.order, "archived": True}
    assert result.projection.version == stored.version
    assert merge(result.projection, "store/order/archived", "c", gone).outcome == "stale"
    assert merge(None, "store/order/archived", "c", gone).outcome == "stale"
    assert NormalizedEvent.from_json(gone.to_json()) == gone
