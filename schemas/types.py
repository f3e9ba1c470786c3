"""Reusable coercions for Genstore's loosely typed payloads.

Each type is declared once as ``Annotated[..., BeforeValidator(...)]`` and
reused by every model.  The rules (see CONTRACT.md, "Normalization"):
``"null"`` means null for typed values, ``""`` means absent, numbers arrive
as strings, money is ``Decimal`` and never float, times are timezone-aware.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, PlainSerializer

from . import _json

__all__ = ["Count", "Currency", "Id", "LooseBool", "Maybe", "Money", "StrList", "Tags", "Text", "Time", "clean_text"]

_DECIMAL = re.compile(r"[+-]?\d+(?:\.\d+)?")
_WHOLE = re.compile(r"[+-]?\d+(?:\.0+)?")
_MONEY_DIGITS = 30  # at most 30 digits before and 30 after the point: sums of them stay exact
_COUNT_LIMIT = 10**18  # quantities and grams; keeps them in a signed 64-bit range
_MINUTE = timedelta(minutes=1)
_SURROGATE = re.compile("[\ud800-\udfff]")  # only a \\u escape can put one in parsed text: UTF-8 has none
_BOOL_WORDS = {"true": True, "false": False}
_DIGITS_Z = frozenset("0123456789Z")
_fromisoformat = datetime.fromisoformat


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_null(value: Any) -> bool:
    """None, ``""`` and the word ``"null"`` (any case) all mean no value."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "null"))


def clean_text(text: str) -> str:
    """Free text as UTF-8 can carry it: a lone surrogate (``"\\ud800"``) becomes U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _whole_text(text: str) -> str:
    """Text that must stay exactly as sent (ids, currencies): a lone surrogate refuses it."""
    if not text.isascii() and _SURROGATE.search(text):
        raise ValueError(f"contains a lone surrogate escape, not text ({_short(text)})")
    return text


def _loose_bool(value: Any) -> bool | None:
    if type(value) is str:  # the usual "true" or "false"
        found = _BOOL_WORDS.get(value)
        if found is not None:
            return found
    if isinstance(value, bool):
        return value
    if _is_null(value):
        return None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"not a boolean ({_short(value)})")


def _money(value: Any) -> Decimal | None:
    if isinstance(value, str):  # the usual "409.94": 30 characters cannot hold more than 30 digits a side
        text = value.strip()
        if len(text) <= _MONEY_DIGITS and (
            # ASCII digits with at most one point inside them: quicker to check than with _DECIMAL
            (text.isascii() and text[:1] != "." and text[-1:] != "." and text.replace(".", "", 1).isdigit())
            or _DECIMAL.fullmatch(text)
        ):
            return Decimal(text)
    if _is_null(value):
        return None
    amount = value
    if isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        amount = Decimal(value.strip())
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"not a decimal amount ({_short(value)})")  # floats too
    if amount.adjusted() >= _MONEY_DIGITS:
        raise ValueError(f"decimal amount out of range: more than {_MONEY_DIGITS} digits before the point "
                         f"({_short(value)})")
    if _exponent(amount) < -_MONEY_DIGITS:
        raise ValueError(f"decimal amount out of range: more than {_MONEY_DIGITS} digits after the point "
                         f"({_short(value)})")
    return amount


def _exponent(amount: Decimal) -> int:
    return int(amount.as_tuple().exponent)  # an int for every finite Decimal


def _decimal_text(value: Decimal | None) -> str | None:
    """``"409.94"``, ``"0.00"``, ``"70"``: the digits as sent, never ``"1E+2"``."""
    return None if value is None else format(value, "f")


def _count(value: Any) -> int | None:
    text = value.strip() if isinstance(value, str) else None
    if text is not None:
        if text.isascii() and text.isdigit() and len(text) <= 18:  # the usual "500": 18 digits are below the limit
            return int(text)
    elif type(value) is int and -_COUNT_LIMIT < value < _COUNT_LIMIT:
        return value
    if _is_null(value):
        return None
    if text is not None and _WHOLE.fullmatch(text):
        value = Decimal(text)
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()
    )
    if not whole:
        raise ValueError(f"not a whole number ({_short(value)})")
    if abs(value) >= _COUNT_LIMIT:
        raise ValueError(f"whole number out of range ({_short(value)})")
    return int(value)


def _id(value: Any) -> str | None:
    if type(value) is str and value.isascii():  # the usual "1001": ASCII has no lone surrogate
        text = value.strip()
        return text if text and (len(text) != 4 or text.lower() != "null") else None
    if type(value) is int:
        return str(value)
    if _is_null(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, _json.LongInt):  # a JSON integer of over 4300 digits
        return str(value)
    if isinstance(value, str):
        return _whole_text(value.strip())
    raise ValueError(f"not an identifier ({_short(value)})")


def _time(value: Any) -> datetime | None:
    if type(value) is str:  # the usual "2012-08-24T14:02:15-04:00"; anything else as below
        text = value if value[-1:] in _DIGITS_Z else value.strip().strip('"').strip()  # else nothing to strip
        if text[:1].isdigit():  # neither "" nor "null"
            try:
                moment = _fromisoformat(text)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    return moment.replace(tzinfo=UTC)
                if text[-3] == ":" and text[-6] in "+-" or text[-1] == "Z":
                    return moment  # an offset of ±HH:MM or Z: whole minutes
                offset = moment.utcoffset()
                if offset is not None and not (offset.seconds % 60 or offset.microseconds):  # whole minutes
                    return moment
    moment = value
    if isinstance(value, str):
        text = value.strip().strip('"').strip()  # '...-01:00"' has been seen
        if text.lower() in ("", "null"):
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
    elif value is None:
        return None
    if not isinstance(moment, datetime):
        raise ValueError(f"not an ISO 8601 time ({_short(value)})")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    if offset is not None and offset % _MINUTE:
        raise ValueError(f"not an ISO 8601 offset, hours and minutes ({_short(value)})")
    return moment


def _json_text(value: Any, opener: str) -> Any:
    """Decode a JSON document sent as a string, if it looks like one."""
    if isinstance(value, str) and value.strip().startswith(opener):
        try:
            return _json.loads(value)
        except ValueError:
            pass
    return value


def _str_list(value: Any) -> list[Any] | None:
    if type(value) is str and value.strip().startswith("["):  # the usual JSON text of strings
        items = _json.loads_strings(value)
        if items is not None:
            return items  # no lone surrogate to clean: that parser refuses them
    if _is_null(value):
        return None
    value = _json_text(value, "[")
    if not isinstance(value, list):
        raise ValueError(f"not a list ({_short(value)})")
    return [clean_text(item) if isinstance(item, str) else item for item in value]


def _tags(value: Any) -> list[Any] | None:
    if type(value) is str and value.isascii():  # the usual "imported, vip"
        text = value.strip()
        if not text.startswith("[") and text.lower() != "null":
            return [tag for tag in map(str.strip, value.split(",")) if tag]
    if value is None or (isinstance(value, str) and value.strip().lower() == "null"):
        return None
    value = _json_text(value, "[")
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return [clean_text(tag.strip()) for tag in value if tag.strip()]
    raise ValueError(f"not a comma-separated tag list ({_short(value)})")


def _text(value: Any) -> str | None:
    if type(value) is str:
        if value.isascii():
            return value or None
        return _SURROGATE.sub("\ufffd", value)  # as clean_text: it is not ""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return clean_text(value)  # the word "null" is kept: free text may say it
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)  # a zip code or phone number sent as a number
    raise ValueError(f"not text ({_short(value)})")


def _currency(value: Any) -> str | None:
    if type(value) is str and value.isascii():
        return value or None
    return _text(_whole_text(value) if isinstance(value, str) else value)


def _nested(value: Any) -> Any:
    if type(value) is dict or type(value) is list:
        return value
    if _is_null(value):
        return None
    return _json_text(_json_text(value, "["), "{")


LooseBool = Annotated[bool | None, BeforeValidator(_loose_bool)]
"""``true``/``"true"``/``"FALSE"``; ``"null"``, ``""`` and None are None."""

Money = Annotated[Decimal | None, BeforeValidator(_money), PlainSerializer(_decimal_text, when_used="json")]
"""A Decimal amount from ``"409.94"``, ``70`` or a JSON number; never a float."""

Count = Annotated[int | None, BeforeValidator(_count)]
"""A whole number (quantities, grams, weights) from ``"500"`` or ``500``."""

Id = Annotated[str | None, BeforeValidator(_id)]
"""Identifiers are strings, whether sent as ``"1001"`` or ``1001``."""

Time = Annotated[datetime | None, BeforeValidator(_time)]
"""A timezone-aware datetime keeping its offset; naive times are UTC."""

StrList = Annotated[list[str] | None, BeforeValidator(_str_list)]
"""A list, or the JSON text of one (``"[\\"authorize_net\\",\\"COD\\"]"``)."""

Tags = Annotated[list[str] | None, BeforeValidator(_tags)]
"""``"imported, vip"`` becomes ``["imported", "vip"]``; ``""`` is ``[]``."""

Text = Annotated[str | None, BeforeValidator(_text)]
"""Free text; ``""`` is absent (None) but the word ``"null"`` is kept."""

Currency = Annotated[str | None, BeforeValidator(_currency)]
"""A currency code (``"USD"``), as sent; ``""`` is absent, a lone surrogate refuses it."""

T = TypeVar("T")
Maybe = Annotated[T | None, BeforeValidator(_nested)]
"""A nested object or array: ``""``/``"null"`` are None, JSON text is decoded."""
