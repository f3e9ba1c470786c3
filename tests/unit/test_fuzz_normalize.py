"""Fuzzing the normalizer with mutated seed payloads (hypothesis).

Every sample in `schemas/samples` is mutated: keys dropped, values swapped for
other types, "null", "", numbers as strings, nested junk, huge and tiny
numbers, unicode, JSON text, bytes truncated or made invalid UTF-8. Whatever
comes in:

- `normalize()` returns a `NormalizedEvent` or raises `NormalizationError`,
  never anything else (that error is what quarantines a delivery);
- no money field is ever a float, and none is ever a value other than the
  one sent: a returned amount equals `Decimal(str(input))`, so it is never a
  silent 0 (or None) for an input that was a non-zero amount; an input that
  is not a decimal at all is refused, not coerced;
- a body that is not UTF-8 (after an optional byte order mark) is refused;
- every form of an accepted event (`to_json()`, `model_dump()`, the stored
  projection and `order_view()`) encodes as UTF-8 and holds no surrogate: a
  lone surrogate escape became U+FFFD in free text and unknown fields, and
  refused the body in an id or a currency;
- numbers in unknown fields keep their exact value through every JSON form,
  never as a float; `NormalizedEvent.from_json` rebuilds the same event;
- `schemas.retriage()`, what a replay runs on a stored delivery, always
  answers queued, quarantined or ignored.
"""

from __future__ import annotations

import json
import re
import typing
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AliasChoices, BaseModel

from schemas import (
    ORDER_TOPICS,
    TOPICS,
    NormalizationError,
    NormalizedEvent,
    Order,
    Projection,
    Refund,
    merge,
    normalize,
    order_view,
    retriage,
)
from schemas.samples import load
from schemas.types import Count, Currency, Id, Money, Text

SAMPLES = [
    ("orders/create", "orders_create.json"),
    ("orders/paid", "orders_paid.json"),
    ("orders/update", "orders_update.json"),
    ("orders/fulfilled", "orders_fulfilled.json"),
    ("orders/partiallyFulfilled", "orders_partiallyFulfilled.json"),
    ("orders/cancelled", "orders_cancelled.json"),
    ("orders/update", "api_order_002.json"),
    ("refunds/create", "refunds_create.json"),
    ("refunds/create", "refunds_create_snake.json"),
]
SEEDS = {name: json.loads(load(name)) for _, name in SAMPLES}
FUZZ = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

_MONEY_META = typing.get_args(Money)[1:]
_COUNT_META = typing.get_args(Count)[1:]
_TEXT_META = typing.get_args(Text)[1:]
_WHOLE_TEXT_META = typing.get_args(Id)[1:] + typing.get_args(Currency)[1:]  # a lone surrogate refuses these
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"


class Raw:
    """A JSON number literal Python cannot write itself (1e400, -0.0, 4.0994E+2)."""

    def __init__(self, text: str) -> None:
        self.text = text


_RAW_NUMBERS = ["1e400", "-1e400", "1E-400", "-0.0", "0e0", "4.0994E+2", "1" + "0" * 40,
                "123456789012345678901234567890.12", "-1.5e-7", "409.940", "0.000000001"]
_ODD_TEXT = [
    "null", "NULL", " null ", "", " ", "true", "false", "0", "0.00", "-0", "+5", " 409.94 ", "409,94",
    "1e3", "1E+2", "NaN", "Infinity", "-Infinity", "0x10", "1_000", ".5", "12.", "١٢٣", "²", "9" * 40,
    "1" + "0" * 31, "0." + "0" * 31 + "1", "[", "{", "[]", "{}", '["a"]', '{"a": "1"}', '[1, 2.5]',
    "\x00", "\ud800", "a\udfffb", "\ud83d", "\ud800x\udc00", "🧾", "ß", "İ", '2022-01-01T11:00:00-01:00"',
    "2022-13-01T00:00:00Z", "imported, vip",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # NaN and Infinity too: json.dumps writes them, the normalizer must refuse them
    st.text(max_size=12),
    st.sampled_from(_ODD_TEXT),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),  # numbers as strings
    st.integers().map(str),
    st.sampled_from(_RAW_NUMBERS).map(Raw),
)
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# What a money field may be sent as: amounts in every spelling, zeros, and things that are not amounts.
_MONEYISH = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(lambda d: Raw(str(d))),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers().map(str),
    st.sampled_from(["0", "0.00", "-0.00", "0e0", "00.10", "+1.5", " 2.50 ", "1.", ".5", "1,5", "1e2", "$5"]),
    st.sampled_from(_RAW_NUMBERS).map(Raw),
    _SCALARS,
)


# --- building mutated bodies ---------------------------------------------------------

def _dumps(tree: Any) -> str:
    text = json.dumps(tree, default=lambda o: f"@@RAW{o.text}@@")
    return re.sub(r'"@@RAW(.*?)@@"', r"\1", text)


def _slots(tree: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in the tree: the places a mutation can hit."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            stack.append(value)
    return out


def _swap_type(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = Decimal(value)
            return Raw(value) if number.is_finite() else [value]
        except InvalidOperation:
            return [value]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return _dumps(value)  # an object or array sent as JSON text
    return "null"


def _mutate(data: st.DataObject, tree: Any) -> Any:
    for _ in range(data.draw(st.integers(1, 5), label="mutations")):
        slots = _slots(tree)
        if not slots:
            break
        container, key = data.draw(st.sampled_from(slots), label="where")
        op = data.draw(st.sampled_from(["drop", "junk", "swap", "null", "empty", "wrap", "add"]), label="op")
        if op == "drop":
            del container[key]
        elif op == "junk":
            container[key] = data.draw(_JUNK, label="junk")
        elif op == "swap":
            container[key] = _swap_type(container[key])
        elif op == "null":
            container[key] = "null"
        elif op == "empty":
            container[key] = ""
        elif op == "wrap":
            container[key] = {"value": container[key]}
        elif isinstance(container, dict):
            key = data.draw(st.text(max_size=10) | st.sampled_from(["\ud800", "a\udfffb", "1.5"]), label="new key")
            container[key] = data.draw(_JUNK, label="junk")
    return tree


def _damage(data: st.DataObject, body: bytes) -> bytes:
    op = data.draw(st.sampled_from(["none", "none", "truncate", "flip", "insert", "bom", "utf-16"]), label="bytes")
    if op == "bom":
        return _BOM + body
    if op == "utf-16":
        return body.decode("utf-8").encode("utf-16")
    if op == "none" or not body:
        return body
    at = data.draw(st.integers(0, len(body) - 1), label="at")
    if op == "truncate":
        return body[:at]
    if op == "flip":
        return body[:at] + bytes([body[at] ^ data.draw(st.integers(1, 255), label="mask")]) + body[at + 1:]
    return body[:at] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b'"', b"}"])) + body[at:]


def _fresh(name: str) -> Any:
    return json.loads(json.dumps(SEEDS[name]))


# --- the oracle ------------------------------------------------------------------------

def _choices(info) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return [alias] if isinstance(alias, str) else []


def _given(raw: dict, info) -> tuple[bool, Any]:
    """What the body said for a field, read with the field's aliases in the model's order."""
    for name in _choices(info):
        if name in raw:
            return True, raw[name]
    return False, None


def _decoded(value: Any) -> Any:
    """A nested object or array may come as JSON text."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value, parse_float=Decimal)
        except ValueError:
            return value
    return value


def _expected_amount(given: Any) -> Decimal | None | str:
    """The amount a money input stands for: None for no value, "invalid" for something that is not one."""
    if given is None or (isinstance(given, str) and given.strip().lower() in ("", "null")):
        return None
    if isinstance(given, bool) or not isinstance(given, (int, Decimal, str)):
        return "invalid"
    try:
        amount = Decimal(str(given).strip())
    except InvalidOperation:
        return "invalid"
    return amount if amount.is_finite() else "invalid"


def _check_money(value: Any, present: bool, given: Any, dumped: Any, where: str) -> None:
    assert not isinstance(value, float) and not isinstance(dumped, float), f"{where} is a float"
    expected = _expected_amount(given) if present else None
    if value is None:
        assert expected is None, f"{where}: {given!r} was dropped to None"
        assert dumped is None
        return
    assert type(value) is Decimal, f"{where}: {type(value).__name__}"
    assert expected != "invalid", f"{where}: {given!r} is not an amount, yet became {value!r}"
    assert value == expected and value.as_tuple() == expected.as_tuple(), f"{where}: {given!r} became {value!r}"
    assert isinstance(dumped, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", dumped), f"{where} dumps as {dumped!r}"
    assert Decimal(dumped) == value


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _check_unknown(given: Any, out: Any, where: str) -> None:
    """An unknown field's value, as sent, against its JSON form: text cleaned of lone
    surrogates, integers as integers, other numbers as the decimal string of the same value."""
    if isinstance(given, bool) or given is None:
        assert out is given, f"{where}: {given!r} became {out!r}"
    elif isinstance(given, int):
        assert type(out) is int and out == given, f"{where}: {given!r} became {out!r}"
    elif isinstance(given, Decimal):
        assert isinstance(out, str) and Decimal(out) == given, f"{where}: {given!r} became {out!r}"
    elif isinstance(given, str):
        assert out == _clean(given), f"{where}: {given!r} became {out!r}"
    elif isinstance(given, list):
        assert isinstance(out, list) and len(out) == len(given), f"{where}: {out!r}"
        for i, (g, o) in enumerate(zip(given, out, strict=True)):
            _check_unknown(g, o, f"{where}[{i}]")
    else:
        assert isinstance(given, dict) and isinstance(out, dict), f"{where}: {given!r} became {out!r}"
        cleaned = {_clean(k): v for k, v in given.items()}  # two keys that differ only in a surrogate merge
        assert set(out) == set(cleaned), f"{where}: keys {sorted(out)} for {sorted(cleaned)}"
        for key, value in cleaned.items():
            _check_unknown(value, out[key], f"{where}.{key}")


def _check_model(model: BaseModel, raw: dict, where: str) -> None:
    dumped = model.to_json()
    known: set[str] = set()
    for name, info in type(model).model_fields.items():
        known.update(_choices(info))
        value = getattr(model, name)
        present, given = _given(raw, info)
        out = dumped.get(info.serialization_alias or name)
        if present and isinstance(given, str) and any(m in _WHOLE_TEXT_META for m in info.metadata):
            assert not _SURROGATE.search(given), f"{where}.{name}: {given!r} has a lone surrogate, yet was accepted"
        if any(m in _MONEY_META for m in info.metadata):
            _check_money(value, present, given, out, f"{where}.{name}")
        elif any(m in _COUNT_META for m in info.metadata):
            assert value is None or type(value) is int, f"{where}.{name}: {value!r}"
        elif any(m in _TEXT_META for m in info.metadata) and present and isinstance(given, str) and given:
            assert value == out == _clean(given), f"{where}.{name}: {given!r} became {value!r}"
        if isinstance(value, BaseModel):
            _check_model(value, _decoded(given), f"{where}.{name}")
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            items = _decoded(given)
            assert isinstance(items, list) and len(items) == len(value)
            for i, item in enumerate(value):
                _check_model(item, items[i], f"{where}.{name}[{i}]")
    unknown = [key for key in raw if key not in known]
    for key in unknown:
        if sum(_clean(k) == _clean(key) for k in unknown) == 1:  # keys merged by cleaning: either value may win
            _check_unknown(raw[key], dumped[_clean(key)], f"{where}.{key}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _check_utf8(value: Any, what: str, *, is_json: bool = True) -> None:
    if is_json:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # as the read API and the inspector answer
        _no_floats(value, what)
    for text in _strings(value):
        assert not _SURROGATE.search(text), f"{what}: {text!r}"


def _no_floats(value: Any, what: str) -> None:
    assert not isinstance(value, float), f"{what}: the float {value!r}"
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        _no_floats(item, what)


def _stored(data: Any) -> Any:
    """Through Redis as the worker stores a projection."""
    return json.loads(json.dumps(data, sort_keys=True, separators=(",", ":")))


_BASE_ORDER = normalize("orders/create", load("orders_create.json"))


def _check_every_form(topic: str, event: NormalizedEvent) -> None:
    """Every form an accepted event takes: UTF-8, no surrogate, no float, and the same after storage."""
    dumped = event.to_json()
    _check_utf8(dumped, "to_json()")
    assert _stored(dumped) == dumped
    again = NormalizedEvent.from_json(_stored(dumped))
    assert again == event and again.to_json() == dumped
    model = event.order if event.order is not None else event.refund
    assert model is not None
    _check_utf8(model.model_dump(), "model_dump()", is_json=False)
    _check_utf8(model.model_dump(mode="json"), "model_dump(mode='json')")
    start = merge(None, "orders/create", "base", _BASE_ORDER).projection if topic not in ORDER_TOPICS else None
    projection = merge(start, topic, "e1", event).projection
    stored = _stored(projection.to_json())
    assert stored == projection.to_json()
    _check_utf8(stored, "the stored projection")
    assert Projection.from_json(stored) == projection
    view = order_view(Projection.from_json(stored), "acme.genmystore.com")
    assert view is not None
    _check_utf8(view, "order_view()")
    assert _stored(view) == view


def check_normalize(topic: str, body: bytes) -> NormalizedEvent | None:
    """The oracle (also used by `bench/fuzz_normalize.py`): normalizes with exact money, or refuses."""
    try:
        event = normalize(topic, body)
    except NormalizationError as exc:
        assert exc.reason and "\n" not in exc.reason and "Traceback" not in exc.reason
        exc.reason.encode("utf-8")
        return None
    # Anything else propagates and fails the test: it would crash the receiver or the worker.
    assert isinstance(event, NormalizedEvent)
    try:
        text = body.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError(f"a body that is not UTF-8 was accepted: {body[:60]!r}") from None
    data = json.loads(text, parse_float=Decimal)
    wrapper = "order" if topic in ORDER_TOPICS else "refund"
    inner = data[wrapper] if isinstance(data, dict) and wrapper in data else data
    model = event.order if topic in ORDER_TOPICS else event.refund
    assert isinstance(model, Order if topic in ORDER_TOPICS else Refund)
    _check_model(model, inner, wrapper)
    _check_every_form(topic, event)
    return event


# --- the tests -------------------------------------------------------------------------

@FUZZ
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_mutated_seeds_normalize_or_are_refused(sample: tuple[str, str], data: st.DataObject) -> None:
    topic, name = sample
    body = _damage(data, _dumps(_mutate(data, _fresh(name))).encode())
    check_normalize(topic, body)


def _money_slots(tree: Any) -> list[tuple[Any, Any]]:
    names = {alias for model in _models(Order) | _models(Refund) for alias in _money_aliases(model)}
    return [(c, k) for c, k in _slots(tree) if isinstance(c, dict) and k in names]


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for info in model.model_fields.values():
        for arg in _flatten(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in found:
                found |= _models(arg)
    return found


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [a for arg in args for a in _flatten(arg)]


def _money_aliases(model: type[BaseModel]) -> set[str]:
    return {c for info in model.model_fields.values() if any(m in _MONEY_META for m in info.metadata)
            for c in _choices(info)}


def test_every_seed_has_money_to_fuzz() -> None:
    for _, name in SAMPLES:
        assert _money_slots(_fresh(name)), name


@FUZZ
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_money_is_exact_or_refused(sample: tuple[str, str], data: st.DataObject) -> None:
    """Every amount sent, in any spelling, comes out as exactly that Decimal, or the body is refused."""
    topic, name = sample
    tree = _fresh(name)
    slots = _money_slots(tree)
    for container, key in data.draw(st.lists(st.sampled_from(slots), min_size=1, max_size=4), label="fields"):
        container[key] = data.draw(_MONEYISH, label="amount")
    check_normalize(topic, _dumps(tree).encode())


@FUZZ
@given(sample=st.sampled_from(SAMPLES), amount=st.decimals(allow_nan=False, allow_infinity=False, places=2,
                                                            min_value=Decimal("0.01"), max_value=Decimal(10**9)),
       spelling=st.sampled_from(["string", "number", "padded"]))
def test_a_valid_non_zero_amount_always_survives(sample: tuple[str, str], amount: Decimal, spelling: str) -> None:
    """A well-formed amount in an otherwise intact seed is never refused, dropped or zeroed."""
    topic, name = sample
    tree = _fresh(name)
    for container, key in _money_slots(tree):
        container[key] = {"string": str(amount), "number": Raw(str(amount)), "padded": f" {amount} "}[spelling]
    event = check_normalize(topic, _dumps(tree).encode())
    assert event is not None


_TOPICS_AND_JUNK = st.one_of(st.sampled_from(TOPICS), st.sampled_from(["", "orders/deleted", "ORDERS/CREATE",
                                                                       "products/create", "orders/*"]),
                             st.text(max_size=20))
_SHOPS = st.one_of(st.just("acme.genmystore.com"), st.just(""), st.text(max_size=30))


@FUZZ
@given(topic=_TOPICS_AND_JUNK, shop=_SHOPS, sample=st.sampled_from(SAMPLES), data=st.data())
def test_retriage_never_crashes(topic: str, shop: str, sample: tuple[str, str], data: st.DataObject) -> None:
    """What a replay decides for a stored delivery: always one of three answers, never an exception."""
    tree = _fresh(sample[1])
    if data.draw(st.booleans(), label="mutate"):
        tree = _mutate(data, tree)
    body = _damage(data, _dumps(tree).encode())
    status, event, order_id, error = retriage(topic, shop, body)
    assert status in ("queued", "quarantined", "ignored")
    if status == "queued":
        assert event is not None and order_id == event.order_id and error is None
        canonical = event.to_json()
        assert json.loads(json.dumps(canonical)) == canonical
        assert normalize(topic, body).to_json() == canonical  # the worker rebuilds it from the raw body
        assert NormalizedEvent.from_json(canonical).to_json() == canonical
    else:
        assert event is None and error and "\n" not in error


@settings(deadline=None, max_examples=200)
@given(body=st.binary(max_size=300), topic=st.sampled_from(TOPICS))
def test_arbitrary_bytes_are_refused_not_crashed_on(body: bytes, topic: str) -> None:
    check_normalize(topic, body)
