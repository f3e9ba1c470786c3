"""A faster validator for each model, with the same results for what `_json.loads_fast` reads.

A `GenstoreModel` field's coercion (:mod:`schemas.types`) is a Python `BeforeValidator`: pydantic-core
calls Python for every field of every object. The fast validator of a model is made from the model's own
core schema (so the same names, aliases, unknown fields and fields set), with each such validator given a
first try done natively, for the forms a payload usually takes; anything else goes to the coercion as
before:

- free text and currency codes: a non-empty string is kept as it is (`_text`, `_currency`);
- identifiers: printable ASCII with a digit and no space is kept as it is (never "null") (`_id`);
- money: `[0-9]+(.[0-9]+)?`, 30 characters at most, is that Decimal (`_money`);
- counts: an integer below 10^18 either way, or 1 to 18 ASCII digits, is that int (`_count`);
- booleans: "true", "false", true and false (`_loose_bool`);
- nested objects and arrays: null, an object, a list (`_nested`: JSON text and "" still decoded);
- times, tags and lists of strings: the coercion, as before, without the check of its result against
  the field's type (it always gives a datetime, a new list of strings, or None).

It is only for what `_json.loads_fast` reads, which differs from `_json.loads` in ways that make the first
tries above right and need a check of their own:

- its strings never hold a lone surrogate (it refuses them: Rust strings cannot), so text needs no
  cleaning;
- a number with a fraction or an exponent is a float, not a Decimal, and an integer of 4300 digits and a
  minus sign an int, not a `LongInt`: every first try refuses a float, so do the coercions, and unknown
  fields are made plain by :func:`_plain_extras` instead of the model's `_plain_extras`, which refuses
  both (ValueError). A body with such a number anywhere in the model fails here.

Its errors are not the model's (a union's), so when it fails the caller reads the body again with
`_json.loads` and validates it with the model itself, which gives the model or the error to report.
tests/unit/test_schemas_pinned.py holds both to the same results.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from . import types
from ._base import GenstoreModel, _plain

__all__ = ["validator"]

_TEXT = cs.str_schema(strict=True, min_length=1)  # no lone surrogate to clean here
_PLAIN_ID = cs.str_schema(strict=True, pattern=r"^[!-~]*[0-9][!-~]*$")
_MONEY_DIGITS = types._MONEY_DIGITS
_COUNT_DIGITS = len(str(types._COUNT_LIMIT)) - 2  # 18: every count of so many digits is below the limit

_FIRST_TRIES: dict[Any, cs.CoreSchema] = {
    types._text: _TEXT,
    types._currency: _TEXT,
    types._id: _PLAIN_ID,
    types._money: cs.no_info_after_validator_function(  # Decimal(text), as _money
        Decimal, cs.str_schema(strict=True, max_length=_MONEY_DIGITS, pattern=r"^[0-9]+(\.[0-9]+)?$")),
    types._count: cs.union_schema([
        cs.int_schema(strict=True, gt=-types._COUNT_LIMIT, lt=types._COUNT_LIMIT),
        cs.chain_schema([cs.str_schema(strict=True, pattern=rf"^[0-9]{{1,{_COUNT_DIGITS}}}$"), cs.int_schema()]),
    ], mode="left_to_right"),
    types._loose_bool: cs.union_schema([
        cs.chain_schema([cs.literal_schema(["true", "false"]), cs.bool_schema()]),  # as Genstore sends them
        cs.bool_schema(strict=True),
    ], mode="left_to_right"),
}


def _str_list(value: Any) -> list[str] | None:
    """`_str_list`, refusing what `list[str]` refuses after it."""
    items = types._str_list(value)
    if items is not None and not all(type(item) is str for item in items):
        raise ValueError("not a list of strings")
    return items


# Coercions whose result the field's type takes as it is (a datetime, a new list of str, or None): the
# check of that type after them is left out.
_WHOLE = {types._time: types._time, types._tags: types._tags, types._str_list: _str_list}

# Integers of over 4300 characters, which _json.loads makes LongInts, are not between these.
_SMALLEST_INT = -(10**4299)
_LARGEST_INT = 10**4300


def _unknown(value: Any) -> Any:
    """`_plain(value)` for a value `_json.loads_fast` read; ValueError for a number `_json.loads` reads
    otherwise."""
    kind = type(value)
    if kind is str:
        return value  # no lone surrogate
    if kind is int:
        if not _SMALLEST_INT < value < _LARGEST_INT:
            raise ValueError("an integer of over 4300 characters")
        return value
    if kind is list:
        return [_unknown(item) for item in value]
    if kind is dict:
        return {key: _unknown(item) for key, item in value.items()}
    if kind is float:
        raise ValueError("a number with a fraction or an exponent")
    return _plain(value)  # None, a bool


def _plain_extras(model: Any) -> Any:
    """`GenstoreModel._plain_extras`, by `_unknown`."""
    extra = model.__pydantic_extra__
    if extra:
        plain = {key: _unknown(value) for key, value in extra.items()}
        extra.clear()
        extra.update(plain)
    return model


def _faster(node: Any) -> Any:
    """A copy of a core schema with the changes above."""
    if isinstance(node, list):
        return [_faster(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _faster(value) for key, value in node.items()}
    kind = node.get("type")
    function = node.get("function", {}).get("function") if kind in ("function-before", "function-after") else None
    if kind == "function-after" and function is GenstoreModel._plain_extras:
        node["function"] = {**node["function"], "function": _plain_extras}
    elif kind == "function-before" and function is types._nested:
        node = cs.union_schema([node["schema"], node], mode="left_to_right")  # _nested keeps those as they are
    elif kind == "function-before" and function in _FIRST_TRIES:
        node = cs.union_schema([_FIRST_TRIES[function], node], mode="left_to_right")
    elif kind == "function-before" and function in _WHOLE:
        node = cs.no_info_plain_validator_function(_WHOLE[function])
    return node


_VALIDATORS: dict[tuple[type[BaseModel], str | None], SchemaValidator] = {}


def validator(model: type[BaseModel], wrapper: str | None = None) -> SchemaValidator:
    """The fast validator of a model class, made on first use: for what `_json.loads_fast` reads only.

    With a `wrapper`, the validator of a JSON document `{wrapper: {...}, ...}` (its other members read and
    left out), whose `validate_json` reads a body and validates its model in one pass: for a body that
    `_json.loads_fast` reads (the same parser), holds no NaN or Infinity (which that parser reads here) and
    has ``MAX_DEPTH`` brackets at most (so it is not nested too deep)."""
    try:
        return _VALIDATORS[model, wrapper]
    except KeyError:
        pass
    schema = _faster(model.__pydantic_core_schema__)
    if wrapper is not None:
        schema = cs.typed_dict_schema({wrapper: cs.typed_dict_field(schema)}, extra_behavior="ignore")
    # Not the model's own validators for the models it nests (pydantic-core would reuse them): all from here.
    made = _VALIDATORS[model, wrapper] = SchemaValidator(schema, _use_prebuilt=False)
    return made
