"""Numbers in unknown fields keep their exact value, identifiers of any
length are kept exactly, and the documented limits (nesting, ``""``) hold at
their edges."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from schemas import NormalizationError, NormalizedEvent, Projection, merge, normalize, order_view
from schemas.samples import load

SHOP = "acme.genmystore.com"


def _stored(data: Any) -> Any:
    """Through Redis as the worker writes and reads a projection."""
    return json.loads(json.dumps(data, sort_keys=True, separators=(",", ":")))


def _with(name: str, edit) -> bytes:
    data = json.loads(load(name))
    edit(data.get("order") or data["refund"])
    return json.dumps(data).encode()


def _raw(body: bytes, mark: str, literal: str) -> bytes:
    """Put a JSON number literal Python cannot write (1e400) where the string `mark` was."""
    return body.replace(json.dumps(mark).encode(), literal.encode())


def _reason(topic: str, body: bytes | str) -> str:
    with pytest.raises(NormalizationError) as caught:
        normalize(topic, body)
    return caught.value.reason


def _no_floats(value: Any) -> None:
    assert not isinstance(value, float), value
    if isinstance(value, dict):
        for item in value.values():
            _no_floats(item)
    elif isinstance(value, list):
        for item in value:
            _no_floats(item)


# --- unknown numbers ---------------------------------------------------------------------------------

EXACT = [
    "1.00000000000000000001",
    "1e400",
    "-1E-400",
    "123456789012345678901234567890.12",
    "0.1",
    "409.940",
    "4.0994E+2",
    "-0.0",
    "123456789012345678901234567890",  # an integer of 30 digits
    "-98765432109876543210987654321098765432109876543210",
]


def _same_number(literal: str, value: Any) -> None:
    assert not isinstance(value, (float, bool)), f"{literal} came back as {value!r}"
    assert isinstance(value, (int, str)), value
    assert Decimal(value) == Decimal(literal), f"{literal} came back as {value!r}"
    if isinstance(value, str):  # never a float's digits: the number as sent, perhaps in Decimal's notation
        assert value in (literal, str(Decimal(literal))), value


@pytest.mark.parametrize("literal", EXACT)
def test_an_unknown_number_keeps_its_exact_value_in_every_form(literal: str) -> None:
    def edit(order: dict) -> None:
        order["newTotal"] = "MARK"
        order["newThings"] = {"list": ["MARK", {"deep": "MARK"}]}
        order["fulfillments"][0]["trackingNumber"] = "MARK"

    body = _raw(_with("orders_fulfilled.json", edit), "MARK", literal)
    event = normalize("orders/fulfilled", body)
    assert event.order is not None

    def check(order: dict) -> None:
        _same_number(literal, order["newTotal"])
        _same_number(literal, order["newThings"]["list"][0])
        _same_number(literal, order["newThings"]["list"][1]["deep"])
        _same_number(literal, order["fulfillments"][0]["trackingNumber"])

    dumped = event.to_json()
    check(dumped["order"])
    check(_stored(dumped)["order"])
    again = NormalizedEvent.from_json(_stored(dumped))
    assert again == event and again.to_json() == dumped
    projection = merge(None, "orders/fulfilled", "e1", event).projection
    stored = _stored(projection.to_json())
    assert Projection.from_json(stored) == projection
    view = order_view(Projection.from_json(stored), SHOP)
    assert view is not None
    check(view)
    check(_stored(view))
    _no_floats(_stored(view))


def test_an_unknown_number_in_a_refund_transaction() -> None:
    def edit(refund: dict) -> None:
        refund["transactions"][0]["fee"] = "MARK"

    event = normalize("refunds/create", _raw(_with("refunds_create.json", edit), "MARK", "0.30000000000000000001"))
    assert event.refund is not None
    _same_number("0.30000000000000000001", _stored(event.to_json())["refund"]["transactions"][0]["fee"])


# --- identifiers of any length ----------------------------------------------------------------------


@pytest.mark.parametrize("order_id", ["9" * 5000, "1" * 201, "A-" + "x" * 10_000])
def test_ids_of_any_length_are_kept_exactly(order_id: str) -> None:
    as_text = normalize("orders/paid", _with("orders_paid.json", lambda o: o.update(orderId=order_id)))
    assert as_text.order_id == order_id
    assert as_text.to_json()["order"]["orderId"] == order_id
    refund = normalize("refunds/create", _with("refunds_create.json", lambda r: r.update(refundId=order_id)))
    assert refund.refund is not None and refund.refund.refund_id == order_id


def test_a_numeric_id_longer_than_python_converts_is_kept_exactly() -> None:
    digits = "9" * 5000  # int() refuses more than 4300 digits
    body = _raw(_with("orders_paid.json", lambda o: o.update(orderId="MARK", bigCounter="MARK2")), "MARK", digits)
    body = _raw(body, "MARK2", digits)
    event = normalize("orders/paid", body)
    assert event.order_id == digits
    assert Decimal(_stored(event.to_json())["order"]["bigCounter"]) == Decimal(digits)


# --- nesting: the outermost container is level 1; 32 levels are accepted, 33 refused ----------------


def _nest(levels: int, kind: str) -> str:
    return "[" * levels + "]" * levels if kind == "array" else '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_at_the_top_level(kind: str) -> None:
    for levels, accepted in ((32, True), (33, False)):
        reason = _reason("orders/paid", _nest(levels, kind))
        if accepted:
            assert reason == "order: not a JSON object" or reason.startswith("order.orderId"), reason
        else:
            assert reason == "body is not valid JSON: nested deeper than 32 levels", reason


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_inside_an_unknown_field(kind: str) -> None:
    # {"order": {"deep": ...}}: the value of "deep" starts at level 3
    ok = _raw(_with("orders_paid.json", lambda o: o.update(deep="MARK")), "MARK", _nest(30, kind))
    event = normalize("orders/paid", ok)
    assert event.order is not None and json.dumps(event.to_json())
    too_deep = _raw(_with("orders_paid.json", lambda o: o.update(deep="MARK")), "MARK", _nest(31, kind))
    assert _reason("orders/paid", too_deep) == "body is not valid JSON: nested deeper than 32 levels"


# --- "" ---------------------------------------------------------------------------------------------


def test_empty_string_is_null_for_typed_fields_and_kept_in_unknown_ones() -> None:
    def edit(order: dict) -> None:
        order.update(note="", email="", totalPrice="", taxesIncluded="", totalWeight="", closedAt="",
                     paymentGatewayNames="", lineItems="", currency="", tags="", newField="",
                     newObject={"inner": ""})
        order["customer"]["tags"] = ""
        order["customer"]["firstName"] = ""

    event = normalize("orders/fulfilled", _with("orders_fulfilled.json", edit))
    order = event.to_json()["order"]
    for name in ("note", "email", "totalPrice", "taxesIncluded", "totalWeight", "closedAt",
                 "paymentGatewayNames", "lineItems", "currency"):
        assert order[name] is None, name
    assert order["tags"] == [] and order["customer"]["tags"] == []
    assert order["customer"]["firstName"] is None
    assert order["newField"] == "" and order["newObject"] == {"inner": ""}
    assert order_view(merge(None, "orders/fulfilled", "e", event).projection, SHOP)["newField"] == ""  # type: ignore[index]


# --- money: at most 30 digits before and 30 after the point ----------------------------------------


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1" * 31, "more than 30 digits before the point"),
        ("0." + "0" * 30 + "1", "more than 30 digits after the point"),
        ("1e30", "more than 30 digits before the point"),
    ],
)
def test_money_beyond_30_digits_quarantines_naming_the_field(amount: str, reason: str) -> None:
    def edit(refund: dict) -> None:
        refund["transactions"][0]["amount"] = "MARK"

    literal = amount if "e" in amount else json.dumps(amount)  # 1e30 as a JSON number, the others as strings
    body = _raw(_with("refunds_create.json", edit), "MARK", literal)
    expected = f"refund.transactions[0].amount: decimal amount out of range: {reason}"
    assert _reason("refunds/create", body).startswith(expected)


def test_money_of_30_digits_a_side_is_accepted_and_dumps_without_an_exponent() -> None:
    amount = "9" * 30 + "." + "0" * 29 + "1"
    body = _with("refunds_create.json", lambda r: r["transactions"][0].update(amount=amount))
    event = normalize("refunds/create", body)
    assert event.to_json()["refund"]["transactions"][0]["amount"] == amount
