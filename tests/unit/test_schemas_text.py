"""Text in delivery bodies: bodies are UTF-8, and an escaped lone surrogate
(``\\ud800``) never reaches a stored or served form.

A lone surrogate becomes U+FFFD in free text and unknown fields; in an
identifier or a currency it refuses the body, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import NormalizationError, NormalizedEvent, Projection, merge, normalize, order_view
from schemas.samples import load

LONE = "\\ud800x"  # as the JSON text carries it: a backslash escape, not a character
SHOP = "acme.genmystore.com"


def _body(name: str, edit) -> bytes:
    """A seed with `edit(inner)` applied; `LONE_MARK` in a value becomes the escape in the JSON text."""
    data = json.loads(load(name))
    inner = data.get("order") or data["refund"]
    edit(inner)
    return json.dumps(data).replace("LONE_MARK", LONE).encode()


def _order(edit) -> bytes:
    return _body("orders_fulfilled.json", edit)


def _refund(edit) -> bytes:
    return _body("refunds_create.json", edit)


def _reason(topic: str, body: bytes) -> str:
    with pytest.raises(NormalizationError) as caught:
        normalize(topic, body)
    return caught.value.reason


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _assert_utf8(value: Any, *, is_json: bool = True) -> None:
    if is_json:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # what the read API and the inspector do
    for text in _strings(value):
        assert not any("\ud800" <= ch <= "\udfff" for ch in text), text


def _every_form(topic: str, event: NormalizedEvent) -> None:
    _assert_utf8(event.to_json())
    model = event.order if event.order is not None else event.refund
    assert model is not None
    _assert_utf8(model.model_dump(), is_json=False)  # what a handler reads
    _assert_utf8(model.model_dump(mode="json", by_alias=True))
    projection = merge(None, topic, "e1", event).projection
    stored = json.loads(json.dumps(projection.to_json(), sort_keys=True, separators=(",", ":")))
    _assert_utf8(stored)
    if event.order is not None:
        _assert_utf8(order_view(Projection.from_json(stored), SHOP))


# --- free text and unknown fields keep the rest of the text ---------------------------------------------


def _set(*path: str | int, value: Any = "LONE_MARK"):
    def edit(inner: Any) -> None:
        node = inner
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("path", "read"),
    [
        (("note",), lambda o: o.note),
        (("email",), lambda o: o.email),
        (("customer", "firstName"), lambda o: o.customer.first_name),
        (("customer", "lastName"), lambda o: o.customer.last_name),
        (("lineItems", 0, "title"), lambda o: o.line_items[0].title),
        (("shippingAddress", "city"), lambda o: o.shipping_address.city),
        (("fulfillments", 0, "trackingNumber"), lambda o: o.fulfillments[0].trackingNumber),
        (("aNewGenstoreField",), lambda o: o.aNewGenstoreField),
    ],
)
def test_a_lone_surrogate_in_free_text_becomes_the_replacement_character(path, read) -> None:
    event = normalize("orders/fulfilled", _order(_set(*path)))
    assert event.order is not None
    assert read(event.order) == "\ufffdx"
    _every_form("orders/fulfilled", event)


def test_lone_surrogates_inside_unknown_structures_and_keys_are_replaced() -> None:
    def edit(inner: dict) -> None:
        inner["extraStuff"] = {"LONE_MARK": ["a", {"deep": "LONE_MARK"}], "pair": "\U0001f9fe"}

    event = normalize("orders/fulfilled", _order(edit))
    assert event.order is not None
    assert event.order.to_json()["extraStuff"] == {"\ufffdx": ["a", {"deep": "\ufffdx"}], "pair": "\U0001f9fe"}
    _every_form("orders/fulfilled", event)


def test_tags_and_gateway_names_are_text_too() -> None:
    def edit(inner: dict) -> None:
        inner["tags"] = "vip, LONE_MARK"
        inner["paymentGatewayNames"] = ["LONE_MARK"]

    event = normalize("orders/fulfilled", _order(edit))
    assert event.order is not None
    assert event.order.tags == ["vip", "\ufffdx"]
    assert event.order.payment_gateway_names == ["\ufffdx"]
    _every_form("orders/fulfilled", event)


def test_a_refund_note_and_unknown_transaction_field() -> None:
    def edit(inner: dict) -> None:
        inner["note"] = "LONE_MARK"
        inner["transactions"][0]["authorization"] = "LONE_MARK"

    event = normalize("refunds/create", _refund(edit))
    assert event.refund is not None and event.refund.note == "\ufffdx"
    _every_form("refunds/create", event)


def test_a_valid_surrogate_pair_escape_is_one_character() -> None:
    event = normalize("orders/fulfilled", _order(_set("note", value="PAIR")).replace(b"PAIR", b"\\ud83e\\uddfe"))
    assert event.order is not None and event.order.note == "\U0001f9fe"


# --- identifiers and currencies refuse the body ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("orderId",), "order.orderId"),
        (("lineItems", 0, "id"), "order.lineItems[0].id"),
        (("lineItems", 0, "productId"), "order.lineItems[0].productId"),
        (("customer", "id"), "order.customer.id"),
        (("fulfillments", 0, "fulfillId"), "order.fulfillments[0].fulfillId"),
        (("currency",), "order.currency"),
        (("presentmentCurrency",), "order.presentmentCurrency"),
    ],
)
def test_a_lone_surrogate_in_an_id_or_currency_quarantines(path, where) -> None:
    reason = _reason("orders/fulfilled", _order(_set(*path)))
    assert reason.startswith(f"{where}: ")
    assert "surrogate" in reason
    reason.encode("utf-8")  # the reason itself is stored and shown


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (_set("refundId"), "refund.refundId"),
        (_set("orderId"), "refund.orderId"),
        (_set("transactions", 0, "currency"), "refund.transactions[0].currency"),
        (_set("transactions", 0, "id"), "refund.transactions[0].id"),
        (_set("refundLineItems", 0, "lineItemId"), "refund.refundLineItems[0].lineItemId"),
    ],
)
def test_a_lone_surrogate_in_a_refund_id_or_currency_quarantines(edit, where) -> None:
    reason = _reason("refunds/create", _refund(edit))
    assert reason.startswith(f"{where}: ") and "surrogate" in reason
    reason.encode("utf-8")


# --- bodies are UTF-8 ----------------------------------------------------------------------------------


def test_a_leading_byte_order_mark_is_skipped() -> None:
    body = load("orders_paid.json")
    assert normalize("orders/paid", b"\xef\xbb\xbf" + body) == normalize("orders/paid", body)
    assert normalize("orders/paid", "\ufeff" + body.decode()) == normalize("orders/paid", body)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_bodies_are_refused(encoding: str) -> None:
    body = load("orders_paid.json").decode().encode(encoding)
    reason = _reason("orders/paid", body)
    assert reason.startswith("body is not UTF-8"), reason
    assert "UTF-" in reason.split(":", 1)[1]


@pytest.mark.parametrize(
    "damage",
    # a bad byte, a cut sequence, an encoded surrogate, beyond U+10FFFF, an overlong form
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"],
)
def test_bytes_that_are_not_utf8_are_refused(damage: bytes) -> None:
    body = load("orders_paid.json").replace(b'"note": ', b'"note": "' + damage + b'", "x": ', 1)
    assert b'"x": ' in body
    reason = _reason("orders/paid", body)
    assert reason.startswith("body is not UTF-8: "), reason
    assert "byte" in reason
