"""How this package reads JSON: numbers exact, NaN refused, nesting bounded.

Used for delivery bodies and for the JSON text Genstore sends inside string
fields (``"[\\"authorize_net\\",\\"COD\\"]"``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

MAX_DEPTH = 32  # Genstore orders nest about 5 levels; this bounds hostile bodies


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse)  # built once, not per call


def loads(text: str | bytes) -> Any:
    """``json.loads`` with fractions as ``Decimal``; raises ValueError for
    anything that is not JSON or is nested deeper than ``MAX_DEPTH``."""
    if isinstance(text, (bytes, bytearray)):  # as json.loads decodes bytes
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif not isinstance(text, str):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {text.__class__.__name__}")
    elif text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    # Each array or object opens with a bracket, so a text with few brackets cannot nest deep.
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than(data, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return data


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
