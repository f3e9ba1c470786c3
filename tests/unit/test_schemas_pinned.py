"""The normalizer's output, pinned: any change in what it gives fails here.

`fixtures/normalized/<sample>.json` holds, for every sample body in `schemas/samples/`, the canonical JSON
of its event (`to_json()`: every field, unknown fields and exact numbers included), the projection `merge`
makes of it, and the Python values of every field (type and repr: `Decimal`, the datetime with its tzinfo,
which model class, which fields were set). `fixtures/normalized/variants.json` does the same in short (a
digest of the same, or the error's reason) for the orders/create and refunds/create samples with one
field, key or body changed to each of many loose forms.

After a change of behaviour that is meant, write the files again and review their diff:

    python -m tests.unit.test_schemas_pinned --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemas import NormalizationError, NormalizedEvent, merge, normalize
from schemas import bigcommerce as bc
from schemas.samples import NAMES, load

FIXTURES = Path(__file__).parent / "fixtures" / "normalized"
VARIANTS = FIXTURES / "variants.json"

SAMPLE_TOPICS = {
    "orders_create.json": "orders/create",
    "orders_paid.json": "orders/paid",
    "orders_update.json": "orders/update",
    "orders_fulfilled.json": "orders/fulfilled",
    "orders_partiallyFulfilled.json": "orders/partiallyFulfilled",
    "orders_cancelled.json": "orders/cancelled",
    "api_order_002.json": "orders/update",
    "refunds_create.json": "refunds/create",
    "refunds_create_snake.json": "refunds/create",
    "malformed_bash_block.txt": "orders/create",
}
BIGCOMMERCE = "bigcommerce_order.json"


def typed(value: Any) -> Any:
    """Every value as its type and repr; a model as its class, its fields, its extras and the fields set."""
    if isinstance(value, BaseModel):
        return {
            "model": type(value).__name__,
            "fields_set": sorted(value.model_fields_set),
            "fields": {name: typed(getattr(value, name)) for name in type(value).model_fields},
            "extra": typed(value.__pydantic_extra__),
        }
    if isinstance(value, dict):
        return {repr(key): typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return f"{type(value).__name__} {value!r}"


def event_output(topic: str, body: bytes) -> dict[str, Any]:
    try:
        event = normalize(topic, body)
    except NormalizationError as exc:
        return {"topic": topic, "error": exc.reason}
    return {
        "topic": topic,
        "event": {"topic": typed(event.topic), "order_id": typed(event.order_id), "archived": typed(event.archived)},
        "json": event.to_json(),
        "python": typed(event.order if event.order is not None else event.refund),
        "merge": merge(None, topic, "event-1", event).projection.to_json(),
        "rebuilt": NormalizedEvent.from_json(event.to_json()) == event,
    }


def bigcommerce_output() -> dict[str, Any]:
    sample = json.loads(files("schemas.samples").joinpath(BIGCOMMERCE).read_text())
    order = bc.to_order(sample["order"], sample["products"], sample["shipping_addresses"])
    return {"json": order.to_json(), "python": typed(order)}


def sample_output(name: str) -> dict[str, Any]:
    return bigcommerce_output() if name == BIGCOMMERCE else event_output(SAMPLE_TOPICS[name], load(name))


def text(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=True) + "\n"


# --- variants of the samples -----------------------------------------------------------------------------------

# Raw JSON literals, put into the body as written (so 1E+400 and 1.50 reach the parser unchanged).
VALUES = [
    'null', '""', '" "', '"null"', '"NULL"', '" Null "', 'true', 'false', '"true"', '"FALSE"', '" True "',
    '"yes"', '0', '1', '-1', '70', '1.5', '1.50', '-0.0', '0.0', '1e2', '1E+400', '1e-400', '4.0994E+2',
    '123456789012345678901234567890', '1234567890123456789012345678901', '0.000000000000000000000000000001',
    '0.0000000000000000000000000000001', '1.00000000000000000001', '999999999999999999', '1000000000000000000',
    '-999999999999999999.000', '"409.94"', '" 409.94 "', '"+5"', '"-5.00"', '"1."', '".5"', '"1e2"', '"abc"',
    '"500"', '"500.0"', '"500.5"', '"-0"', '"1000000000000000000"', '"\\u0661\\u0662\\u0663"', '"\\u00b2"',
    '"1_000"', '"0x1A"', '"2012-08-24T14:02:15-04:00"', '"2012-08-24T14:02:15-04:00\\""',
    '"\\"2012-08-24T14:02:15Z\\""', '"2012-08-24T14:02:15"', '"2012-08-24 14:02:15Z"', '"2012-08-24"',
    '"2012-08-24T14:02:15+05:30:30"', '"2012-08-24T14:02:15.5+05:30"', '"20120824T140215Z"', '"2012-W34-5"',
    '"2012-08-24T14:02:15.123456789Z"', '"2012-08-24T24:00:00Z"', '"2012-08-24T14:02:15+14:00"',
    '"2012-08-24T14:02:15.000001-00:00"', '"[\\"a\\",\\"b\\"]"', '" [1, 2] "', '"[\\"a\\""',
    '"{\\"amount\\": \\"5\\", \\"currency\\": \\"EUR\\"}"', '"{bad"', '"a, b, ,c"', '" vip "', '","',
    '["a", " b ", ""]', '[" a ", 1]', '[1, 2]', '[]', '{}', '{"x": 1.10}',
    '[{"id": "1", "price": "2.50", "x": 1e400}]', '{"amount": 5, "currency": "JPY", "z": [1.0, {"k": "\\ud800"}]}',
    '"\\ud800"', '"caf\\u00e9 \\ud83d\\ude00"', '"a\\udfffb"', '"  padded  "', '"\\u0000"', '"\\t1\\n"',
    '[[["deep"]]]', '{"\\ud800k": 1, "\\udc00k": 2}',
]

# (sample, path to a field): every value above is put there in turn.
ORDER_PATHS = [
    "totalPrice", "lineItems.0.price", "paymentTerms.amount", "discountCodes.0.amount",
    "totalWeight", "lineItems.0.quantity", "lineItems.0.grams",
    "createdAt", "updatedAt", "cancelledAt", "fulfillments.0.updatedAt", "customer.createdAt",
    "note", "shippingAddress.zip", "email", "cancelReason",
    "taxesIncluded", "lineItems.0.taxable",
    "tags", "customer.tags",
    "paymentGatewayNames", "customer.taxExemptions",
    "orderId", "lineItems.0.id", "customer.id", "fulfillments.0.fulfillId",
    "currency", "paymentTerms.currency",
    "customer", "lineItems", "paymentTerms", "shippingAddress", "customer.addresses", "discountCodes",
    "fulfillments", "customer.defaultAddress",
    "someExtra", "lineItems.0.someExtra", "shippingAddress.extraField", "lineItems.0.properties",
]
REFUND_PATHS = [
    "refundId", "orderId", "createdAt", "note", "refundLineItems", "refundLineItems.0.subtotal",
    "refundLineItems.0.quantity", "refundLineItems.0.lineItemId", "transactions", "transactions.0.amount",
    "transactions.0.currency", "transactions.0.createdAt", "transactions.0.status", "someExtra",
]
FIELD_CASES = [("orders_create.json", "orders/create", path) for path in ORDER_PATHS] + [
    ("refunds_create.json", "refunds/create", path) for path in REFUND_PATHS
]

_ORDER_SEED = "orders_create.json"
_REFUND_SEED = "refunds_create.json"


def _seed(name: str) -> Any:
    return json.loads(load(name))


def _with_raw(data: Any, path: str, raw: str) -> bytes:
    """The body with the value at `path` (under the envelope) replaced by the JSON literal `raw`."""
    marker = "\x00raw\x00"
    wrapper = "order" if "order" in data else "refund"
    node = data[wrapper]
    *parents, last = path.split(".")
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    node[int(last) if isinstance(node, list) else last] = marker
    return json.dumps(data).replace(json.dumps(marker), raw).encode()


def _edited(name: str, where: str = "", renamed: dict[str, str | None] | None = None,
           added: dict[str, Any] | None = None) -> bytes:
    """The sample with keys of the object at `where` renamed (None: removed), then keys added."""
    data = _seed(name)
    wrapper = "order" if "order" in data else "refund"
    node = data[wrapper]
    for step in filter(None, where.split(".")):
        node = node[int(step)] if isinstance(node, list) else node[step]
    for old, new in (renamed or {}).items():
        value = node.pop(old)
        if new is not None:
            node[new] = value
    node.update(added or {})
    return json.dumps(data).encode()


def _body_cases() -> list[tuple[str, str, bytes | str]]:
    """(label, topic, body): names, aliases, envelopes and encodings."""
    order, refund = load(_ORDER_SEED), load(_REFUND_SEED)
    bare = json.dumps(_seed(_ORDER_SEED)["order"]).encode()
    cases = [
        ("snake_case names", "orders/create", _edited(_ORDER_SEED, renamed={
            "totalPrice": "total_price", "orderId": "order_id", "updatedAt": "updated_at", "lineItems": "line_items",
            "paymentGatewayNames": "payment_gateway_names", "buyerAcceptsMarketing": "buyer_accepts_marketing"})),
        ("*Time names", "orders/cancelled", _edited(_ORDER_SEED, renamed={
            "createdAt": "createTime", "updatedAt": "updateTime", "cancelledAt": "cancelledTime",
            "closedAt": "closedTime"})),
        ("*Time names in an order/create", "orders/create", _edited(_ORDER_SEED, renamed={
            "updatedAt": "updateTime", "closedAt": "closed_at"})),
        ("both names, camelCase first", "orders/create", _edited(_ORDER_SEED, added={
            "total_price": "1.00", "updateTime": "2020-01-01T00:00:00Z", "updated_at": "2021-01-01T00:00:00Z",
            "order_id": "77", "createTime": "x"})),
        ("snake_case and *Time names, no camelCase", "orders/create", _edited(
            _ORDER_SEED, renamed={"updatedAt": None},
            added={"updated_at": "2021-01-01T00:00:00Z", "updateTime": "2020-01-01T00:00:00Z"})),
        ("no updatedAt", "orders/create", _edited(_ORDER_SEED, renamed={"updatedAt": None})),
        ("no orderId", "orders/create", _edited(_ORDER_SEED, renamed={"orderId": None})),
        ("line item snake names", "orders/create", _edited(_ORDER_SEED, renamed={
            "variantTitle": "variant_title", "productId": "product_id", "fulfillableQuantity": "fulfillable_quantity",
            "requiresShipping": "requires_shipping"}, where="lineItems.0")),
        ("duplicate keys, the last wins", "orders/create",
         order.replace(b'"totalPrice": "409.94"', b'"totalPrice": "1.00", "totalPrice": "2.00"')),
        ("an unknown key that is another field's snake name", "orders/create",
         _edited(_ORDER_SEED, added={"total_tax": "99.00", "id": 5, "Order_id": 6, "TotalPrice": "7"})),
        ("bare order", "orders/create", bare),
        ("bare order, reconcile", "orders/reconcile", bare),
        ("order as a refund", "refunds/create", order),
        ("refund as an order", "orders/paid", refund),
        ("refund, id name", "refunds/create", _edited(_REFUND_SEED, renamed={"refundId": "id"})),
        ("refund, both ids", "refunds/create", _edited(_REFUND_SEED, added={"id": "1", "refund_id": "2"})),
        ("refund, no refundId", "refunds/create", _edited(_REFUND_SEED, renamed={"refundId": None})),
        ("refund, no orderId", "refunds/create", _edited(_REFUND_SEED, renamed={"orderId": None})),
        ("byte order mark", "orders/create", b"\xef\xbb\xbf" + order),
        ("text with a byte order mark", "orders/create", "\ufeff" + order.decode()),
        ("text", "orders/create", order.decode()),
        ("UTF-16", "orders/create", order.decode().encode("utf-16")),
        ("not UTF-8", "orders/create", order.replace(b"IPod", b"IP\xffd")),
        ("a lone surrogate encoded", "orders/create", order.replace(b"IPod", b"IP\xed\xa0\x80d")),
        ("not JSON", "orders/create", order[:-3]),
        ("NaN", "orders/create", order.replace(b'"totalPrice": "409.94"', b'"totalPrice": NaN')),
        ("Infinity extra", "orders/create", order.replace(b'"totalPrice": "409.94"', b'"x": -Infinity')),
        ("nested 31 deep", "orders/create", order.replace(b'"note": ', b'"deep": ' + b"[" * 30 + b"]" * 30
                                                           + b', "note": ', 1)),
        ("nested 32 deep", "orders/create", order.replace(b'"note": ', b'"deep": ' + b"[" * 31 + b"]" * 31
                                                           + b', "note": ', 1)),
        ("an integer of 5000 digits", "orders/create", order.replace(b'"orderId": "1001"',
                                                                     b'"orderId": ' + b"7" * 5000)),
        ("an unknown integer of 5000 digits", "orders/create",
         order.replace(b'"note": ', b'"big": ' + b"7" * 5000 + b', "note": ', 1)),
        ("many errors", "orders/create", _edited(_ORDER_SEED, added={
            "totalPrice": "a", "subtotalPrice": "b", "totalTax": [1], "taxesIncluded": "maybe", "tags": 5})),
        ("errors in nested items", "orders/create", _edited(_ORDER_SEED, added={
            "lineItems": [{"price": "x"}, {"quantity": "1.5"}, "not an object", None]})),
        ("not an object", "orders/create", b'{"order": []}'),
        ("array body", "orders/create", b"[]"),
        ("empty object", "orders/create", b"{}"),
        ("only ids", "orders/create", b'{"order": {"orderId": 1, "updatedAt": "2020-01-01T00:00:00Z"}}'),
        ("order wrapper and extras", "orders/create", b'{"order": {"orderId": 1, "updatedAt": "2020-01-01"}, "x": 1}'),
        ("order is null", "orders/create", b'{"order": null}'),
        ("order as JSON text", "orders/create", b'{"order": "{\\"orderId\\": 1}"}'),
    ]
    assert len({(topic, body) for _, topic, body in cases}) == len(cases), "every case is another"
    same = [label for label, _, body in cases if body in (order, refund)]
    assert same == ["order as a refund", "refund as an order"], same
    return cases


def short(output: dict[str, Any]) -> str:
    """`error: <reason>`, or `ok <digest of the whole output>`."""
    if "error" in output:
        return "error: " + output["error"]
    return "ok " + hashlib.sha256(text(output).encode()).hexdigest()[:16]


def variant_cases() -> list[tuple[str, str, bytes | str]]:
    """(label, topic, body) for every variant."""
    cases = [(f"{topic} {path} = {raw}", topic, _with_raw(_seed(name), path, raw))
             for name, topic, path in FIELD_CASES for raw in VALUES]
    return cases + _body_cases()


def variants_output() -> dict[str, Any]:
    """{"<topic> <path>": [the short output with each of VALUES there], ..., "bodies": {label: short output}}."""
    out: dict[str, Any] = {}
    for name, topic, path in FIELD_CASES:
        out[f"{topic} {path}"] = [short(event_output(topic, _with_raw(_seed(name), path, raw))) for raw in VALUES]
    out["bodies"] = {label: short(event_output(topic, body)) for label, topic, body in _body_cases()}
    return out


# --- the tests ---------------------------------------------------------------------------------------------------

def fixture(name: str) -> Path:
    return FIXTURES / (Path(name).stem + ".json")


def test_every_sample_is_pinned() -> None:
    samples = [name for name in files("schemas.samples").iterdir() if not name.name.endswith(".py")]
    assert {fixture(p.name) for p in samples} | {VARIANTS} == set(FIXTURES.glob("*.json"))
    assert sorted(p.name for p in samples) == sorted([*NAMES, BIGCOMMERCE])


@pytest.mark.parametrize("name", [*NAMES, BIGCOMMERCE])
def test_a_sample_normalizes_as_pinned(name: str) -> None:
    expected = fixture(name).read_text()
    assert text(sample_output(name)) == expected


def test_the_variants_normalize_as_pinned() -> None:
    expected, actual = json.loads(VARIANTS.read_text()), variants_output()
    assert list(actual) == list(expected) and list(actual["bodies"]) == list(expected["bodies"])
    changed = [f"{case}\n  was {was}\n  now {now}" for case, was, now in _cases(expected, actual) if was != now]
    assert not changed, f"{len(changed)} variants changed:\n" + "\n".join(changed[:20])


def _cases(expected: dict[str, Any], actual: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(case, expected, actual) for every variant."""
    out = [(f"body: {label}", was, actual["bodies"][label]) for label, was in expected["bodies"].items()]
    for key, outputs in expected.items():
        if key != "bodies":
            out.extend((f"{key} = {raw}", was, now) for raw, was, now in zip(VALUES, outputs, actual[key], strict=True))
    return out


def write() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in [*NAMES, BIGCOMMERCE]:
        fixture(name).write_text(text(sample_output(name)))
    VARIANTS.write_text(text(variants_output()))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_schemas_pinned --write")
    write()
