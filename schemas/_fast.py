"""A faster validator for each model, with the same results for a body read by pydantic-core's parser.

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
- times: "2012-08-24T14:02:15-04:00" (an offset of ±HH:MM or Z, whole minutes) is what
  `datetime.fromisoformat` makes of it (`_time`);
- tags, lists of strings and other times: the coercion, as before, without the check of its result
  against the field's type (it always gives a datetime, a new list of strings, or None).

It is for a body that pydantic-core's JSON parser reads (`validate_json`), which differs from
:func:`schemas._json.loads` in ways that make the first tries above right, or need a check of their own:

- its strings never hold a lone surrogate (it refuses them: Rust strings cannot), so text needs no
  cleaning, nor do the keys of unknown fields (the model's `_plain_extras` is left out);
- a number with a fraction or an exponent is a float where `loads` gives a Decimal, and an integer of 4300
  digits and a minus sign an int where `loads` gives a `LongInt`: every first try refuses a float, so do
  the coercions, and the value of an unknown field is made plain by :func:`_unknown`, which refuses both
  (ValueError);
- NaN and Infinity are read (as floats): refused as above, but not in the earlier value of a key sent
  twice, which is never validated (the later one wins, as with `loads`): the caller does not use this
  validator for a body with those words in it;
- it does not refuse nesting deeper than ``MAX_DEPTH``: :func:`_unknown` refuses an unknown field's value
  that could sit that deep (all that can, the fields being what they are), and the envelope's other
  members (a value `loads` drops, the earlier one of a key sent twice, is not counted by `loads` either).

Its errors are not the model's (a union's), so when it fails the caller reads the body with
`_json.loads` and validates it with the model itself, which gives the model or the error to report.
tests/unit/test_schemas_pinned.py and test_schemas_fast.py hold both to the same results.
"""

from __future__ import annotations

import typing
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from . import _json, types
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
    # An aware ISO 8601 time with nothing to strip and an offset of ±HH:MM or Z (whole minutes): for it,
    # _time is datetime.fromisoformat (which refuses, and _time then says why, a day or hour out of range)
    types._time: cs.no_info_after_validator_function(datetime.fromisoformat, cs.str_schema(strict=True, pattern=(
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([+-][0-9]{2}:[0-9]{2}|Z)$"))),
    types._loose_bool: cs.union_schema([
        cs.chain_schema([cs.literal_schema(["true", "false"]), cs.bool_schema()]),  # as Genstore sends them
        cs.bool_schema(strict=True),
    ], mode="left_to_right"),
}


def _str_list(value: Any) -> list[str] | None:
    """`_str_list`, refusing what `list[str]` refuses after it."""
    items = types._str_list(value)
    if items is not None:
        try:
            "".join(items)  # strings only
        except TypeError:
            raise ValueError("not a list of strings") from None
    return items


# Coercions whose result the field's type takes as it is (a datetime, a new list of str, or None): the
# check of that type after them is left out.
_WHOLE = {types._time: types._time, types._tags: types._tags, types._str_list: _str_list}
_FIRST_THEN_WHOLE = {types._time}  # a first try, then the coercion without the check after it

# Integers of over 4300 characters, which _json.loads makes LongInts, are not between these.
_SMALLEST_INT = -(10**4299)
_LARGEST_INT = 10**4300


def _unknown(value: Any, room: int) -> Any:
    """`_plain(value)`, for a value read by pydantic-core's parser with `room` levels of arrays and objects
    left before ``MAX_DEPTH``; ValueError for a number `_json.loads` reads otherwise, or no room."""
    kind = type(value)
    if kind is str:
        return value  # no lone surrogate
    if kind is int:
        if not _SMALLEST_INT < value < _LARGEST_INT:
            raise ValueError("an integer of over 4300 characters")
        return value
    if kind is list or kind is dict:
        if room <= 0:
            raise ValueError(f"nested deeper than {_json.MAX_DEPTH} levels, or it could be")
        if kind is list:
            return [_unknown(item, room - 1) for item in value]
        return {key: _unknown(item, room - 1) for key, item in value.items()}
    if kind is float:
        raise ValueError("a number with a fraction or an exponent, or NaN or Infinity")
    return _plain(value)  # None, a bool


def _unknown_schema(room: int) -> cs.CoreSchema:
    """The schema of the value of an unknown field or envelope member, `room` levels short of MAX_DEPTH."""
    return cs.no_info_plain_validator_function(lambda value: _unknown(value, room))


def _depth(model: type[BaseModel], depth: int, seen: frozenset[type[BaseModel]] = frozenset()) -> int:
    """How deep (objects and arrays from the body's top, at 0) an object of `model` or of a model it
    nests can sit when `model`'s own is `depth` deep."""
    if model in seen:
        return _json.MAX_DEPTH  # a model that nests itself: any depth
    deepest = depth
    for info in model.model_fields.values():
        for inner, levels in _nested_models(info.annotation):
            deepest = max(deepest, _depth(inner, depth + levels, seen | {model}))
    return deepest


def _nested_models(annotation: Any) -> list[tuple[type[BaseModel], int]]:
    """(model, levels below the field's object) for each model a field's type holds: 1 for a model, 2 for
    a list of models."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, 1)]
    levels = 1 if typing.get_origin(annotation) in (list, tuple, set, frozenset, dict) else 0
    return [(m, n + levels) for arg in typing.get_args(annotation) for m, n in _nested_models(arg)]


def _faster(node: Any, unknown: cs.CoreSchema) -> Any:
    """A copy of a core schema with the changes above, `unknown` the schema of unknown fields' values."""
    if isinstance(node, list):
        return [_faster(item, unknown) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _faster(value, unknown) for key, value in node.items()}
    kind = node.get("type")
    function = node.get("function", {}).get("function") if kind in ("function-before", "function-after") else None
    if kind == "function-after" and function is GenstoreModel._plain_extras and node["schema"]["type"] == "model":
        # each unknown field's value by _unknown as pydantic-core reads it, instead of the model's after
        model = {**node["schema"], **{key: node[key] for key in ("ref", "metadata") if key in node}}
        model["schema"] = {**model["schema"], "extras_schema": unknown}
        node = model
    elif kind == "function-before" and function is types._nested:
        node = cs.union_schema([node["schema"], node], mode="left_to_right")  # _nested keeps those as they are
    elif kind == "function-before" and function in _FIRST_TRIES:
        rest = cs.no_info_plain_validator_function(_WHOLE[function]) if function in _FIRST_THEN_WHOLE else node
        node = cs.union_schema([_FIRST_TRIES[function], rest], mode="left_to_right")
    elif kind == "function-before" and function in _WHOLE:
        node = cs.no_info_plain_validator_function(_WHOLE[function])
    return node


_VALIDATORS: dict[tuple[type[BaseModel], str | None], SchemaValidator | None] = {}


def validator(model: type[BaseModel], wrapper: str | None = None) -> SchemaValidator | None:
    """The fast validator of a model class, made on first use; with a `wrapper`, of the JSON document
    `{wrapper: {...}, ...}` (its other members checked as unknown fields are, then left out), which reads a
    body and validates its model in one pass (`validate_json`). Only for what pydantic-core's parser reads,
    never for a body with NaN or Infinity in it. None where this pydantic cannot make it (the models' own
    validation then does all the work)."""
    try:
        return _VALIDATORS[model, wrapper]
    except KeyError:
        pass
    # An unknown field's value sits one level below its object, which sits at most this deep (the body's
    # top at 0, the wrapped object at 1): levels left before MAX_DEPTH.
    room = _json.MAX_DEPTH - 1 - _depth(model, 1)
    schema = _faster(model.__pydantic_core_schema__, _unknown_schema(room))
    if wrapper is not None:
        schema = cs.typed_dict_schema({wrapper: cs.typed_dict_field(schema)}, extra_behavior="allow",
                                      extras_schema=_unknown_schema(_json.MAX_DEPTH - 1))
    try:
        # Not the models' own validators (pydantic-core would reuse them for every model node, keeping the
        # floats it reads): all from this schema. A pydantic-core without that choice gets no fast validator.
        made = SchemaValidator(schema, _use_prebuilt=False)
    except TypeError:
        made = None
    _VALIDATORS[model, wrapper] = made
    return made
