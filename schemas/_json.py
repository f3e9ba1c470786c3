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


def loads(text: str | bytes) -> Any:
    """``json.loads`` with fractions as ``Decimal``; raises ValueError for
    anything that is not JSON or is nested deeper than ``MAX_DEPTH``."""
    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=_refuse)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if _deeper_than(data, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return data


def _deeper_than(data: Any, limit: int) -> bool:
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth >= limit:
                return True
            stack.extend((item, depth + 1) for item in value)
    return False
