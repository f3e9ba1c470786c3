"""The fast path of `normalize` (schemas._fast: pydantic-core's parser, native first tries) against the
exact one (`_json.loads` and the models' own validation): whatever the body, the fast path gives the very
same model, or gives up.

The mutated bodies come from the fuzzing of the normalizer (test_fuzz_normalize.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import NormalizationError, Order, Refund, normalize
from schemas._fast import validator
from schemas.normalize import _fast, _parse, _validate
from schemas.samples import load
from tests.unit.test_fuzz_normalize import SAMPLES, _damage, _dumps, _fresh, _mutate
from tests.unit.test_schemas_pinned import typed, variant_cases

FUZZ = settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])


def _exact(model: type, body: bytes | str, wrapper: str) -> Any:
    """What the exact path gives: the model, or the NormalizationError."""
    try:
        return _validate(model, _parse(body), wrapper)
    except NormalizationError as exc:
        return exc


def _model(topic: str) -> tuple[type, str]:
    return (Refund, "refund") if topic.startswith("refunds/") else (Order, "order")


def _same(topic: str, body: bytes | str) -> None:
    model, wrapper = _model(topic)
    fast = _fast(model, body, wrapper)
    if fast is None:
        return
    exact = _exact(model, body, wrapper)
    assert not isinstance(exact, NormalizationError), f"the fast path took what the model refuses: {exact}"
    assert typed(fast) == typed(exact)
    assert fast == exact and fast.to_json() == exact.to_json()
    assert json.dumps(fast.to_json()) == json.dumps(exact.to_json())  # the same order of keys too


@given(data=st.data())
@FUZZ
def test_the_fast_path_gives_the_exact_model_or_gives_up(data: st.DataObject) -> None:
    topic, name = data.draw(st.sampled_from(SAMPLES), label="sample")
    tree = _mutate(data, _fresh(name))
    body = _damage(data, _dumps(tree).encode("utf-8", "surrogatepass"))
    _same(topic, body)
    if isinstance(tree, dict) and len(tree) == 1:  # the bare object, and as text
        _same(topic, _dumps(next(iter(tree.values()))))


@pytest.mark.parametrize(("label", "topic", "body"), variant_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_variant_gives_the_exact_model_or_gives_up(label: str, topic: str, body: bytes | str) -> None:
    _same(topic, body)


@pytest.mark.parametrize(("topic", "name"), [s for s in SAMPLES if s[1] != "refunds_create_snake.json"])
def test_the_samples_take_the_fast_path(topic: str, name: str) -> None:
    """So that the speed is not lost without a word (for one, by a pydantic that lays its schemas out
    otherwise): the samples, bare or in their envelope, with many brackets or few."""
    model, wrapper = _model(topic)
    body = load(name)
    assert _fast(model, body, wrapper) is not None
    assert _fast(model, body.decode(), wrapper) is not None
    many = json.loads(body)
    many[wrapper]["brackets"] = [[]] * 40
    assert _fast(model, json.dumps(many).encode(), wrapper) is not None
    _same(topic, json.dumps(many).encode())
    assert normalize(topic, body) == normalize(topic, body.decode())


@pytest.mark.parametrize("extra", [1.5, [1, {"x": 0.0}], -(10**4299), 10**4300],
                         ids=["float", "nested float", "4300 digits and a minus", "4301 digits"])
def test_the_fast_validator_refuses_numbers_the_exact_reader_reads_otherwise(extra: Any) -> None:
    for data in ({"orderId": "1", "x": extra}, {"orderId": "1", "lineItems": [{"x": extra}]}):
        with pytest.raises(ValueError):
            validator(Order).validate_python(data)


@pytest.mark.parametrize("body", [
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z"}, "x": NaN}',
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z", "x": -Infinity}}',
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z", "x": 1.5}}',
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z", "totalPrice": 1.5}}',
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z", "x": "\\ud800"}}',
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z"}, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    b'\xef\xbb\xbf{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z"}}',
    # a value replaced by the same key sent again is read but never validated: NaN there is not JSON still
    b'{"order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z", "note": NaN, "note": "x"}}',
    b'{"order": {"x": -Infinity}, "order": {"orderId": "1", "updatedAt": "2020-01-01T00:00:00Z"}}',
])
def test_the_fast_path_gives_up_on_what_it_cannot_read_exactly(body: bytes) -> None:
    assert _fast(Order, body, "order") is None
    assert _fast(Order, body.decode("utf-8", "replace"), "order") is None


def _nested(levels: int) -> Any:
    value: Any = "deep"
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("levels", range(24, 34))
@pytest.mark.parametrize("where", ["envelope", "order", "line item", "customer's address"])
def test_deep_values_give_the_exact_model_or_give_up(where: str, levels: int) -> None:
    data = json.loads(load("orders_create.json"))
    order = data["order"]
    order["customer"]["addresses"] = [dict(order["shippingAddress"])]
    node = {"envelope": data, "order": order, "line item": order["lineItems"][0],
            "customer's address": order["customer"]["addresses"][0]}[where]
    node["deep"] = _nested(levels)
    _same("orders/create", json.dumps(data).encode())
    if where == "envelope" and levels < 31 or levels < 26:
        assert _fast(Order, json.dumps(data).encode(), "order") is not None


def test_without_a_fast_validator_the_models_do_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pydantic-core that cannot leave the models' own validators out gives no fast validator: every body
    then takes the exact path, with the same results."""
    import schemas._fast as fast

    expected = {name: normalize(topic, load(name)) for topic, name in SAMPLES}

    def unable(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unexpected keyword argument '_use_prebuilt'")

    monkeypatch.setattr(fast, "_VALIDATORS", {})
    monkeypatch.setattr(fast, "SchemaValidator", unable)
    assert validator(Order, "order") is None
    for topic, name in SAMPLES:
        assert _fast(_model(topic)[0], load(name), _model(topic)[1]) is None
        assert normalize(topic, load(name)) == expected[name]
