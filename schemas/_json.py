"""How this package reads JSON: UTF-8 only, numbers exact, NaN refused,
nesting bounded.

Used for delivery bodies and for the JSON text Genstore sends inside string
fields (``"[\\"authorize_net\\",\\"COD\\"]"``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic_core import from_json as _from_json

MAX_DEPTH = 32  # Genstore orders nest about 5 levels; this bounds hostile bodies
_BOM = b"\xef\xbb\xbf"


class NotUTF8(ValueError):
    """A body in another encoding (UTF-16, UTF-32) or with bytes that are not UTF-8."""


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


class LongInt(Decimal):
    """A JSON integer longer than Python's ``int()`` takes (4300 digits), kept exact."""


def _integer(literal: str) -> int | Decimal:
    return int(literal) if len(literal) <= _INT_DIGITS else LongInt(literal)


_INT_DIGITS = 4300  # sys.get_int_max_str_digits() by default
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=_integer, parse_constant=_refuse)  # built once


def loads(text: str | bytes) -> Any:
    """``json.loads`` with fractions as ``Decimal`` (and integers of more than
    4300 digits as ``LongInt``); raises ValueError for anything that is not JSON or is
    nested deeper than ``MAX_DEPTH``, and NotUTF8 for bytes that are not UTF-8."""
    if isinstance(text, (bytes, bytearray)):
        text = _utf8(bytes(text))
    elif not isinstance(text, str):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {text.__class__.__name__}")
    elif text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    # Each array or object opens with a bracket, so a text with few brackets cannot nest deep.
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than(data, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return data


def loads_strings(text: str) -> list[str] | None:
    """The list of strings a JSON text holds (``'["a","b"]'``), as :func:`loads` reads it; None for any other
    text, which :func:`loads` reads. Read by pydantic-core's parser: no number, no depth to check."""
    try:
        items = _from_json(text, allow_inf_nan=False, cache_strings=False)
        "".join(items)  # a TypeError unless a list (or other iterable) of strings only
    except Exception:
        return None
    return items if type(items) is list else None


def _utf8(body: bytes) -> str:
    """The text of a UTF-8 body (a leading byte order mark is skipped); NotUTF8 otherwise."""
    if body.startswith(_BOM):
        body = body[len(_BOM):]
    else:
        encoding = json.detect_encoding(body)  # UTF-16 and UTF-32 show in their BOM or their NUL bytes
        if encoding.startswith(("utf-16", "utf-32")):
            raise NotUTF8(f"it looks like {encoding.upper()}")
    try:
        return body.decode("utf-8")  # strict: no surrogates, no overlong forms, nothing above U+10FFFF
    except UnicodeDecodeError as exc:
        raise NotUTF8(f"{exc.reason} at byte {exc.start} (0x{body[exc.start]:02x})") from None


def _deeper_than(data: Any, limit: int) -> bool:
    """True when an array or object sits `limit` or more containers deep (the outermost is at 0)."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        if depth >= limit:
            return True
        children = []
        for value in level:
            for item in value.values() if isinstance(value, dict) else value:
                if isinstance(item, (dict, list)):
                    children.append(item)
        level = children
        depth += 1
    return False
