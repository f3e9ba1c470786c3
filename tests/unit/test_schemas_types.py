"""Table tests for each reusable coercion in schemas.types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.types import Count, Id, LooseBool, Money, StrList, Tags, Text, Time

MINUS_ONE = timezone(timedelta(hours=-1))


def _check(kind: Any, raw: Any, expected: Any) -> None:
    value = TypeAdapter(kind).validate_python(raw)
    assert value == expected
    assert type(value) is type(expected)


def _refuses(kind: Any, raw: Any, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(kind).validate_python(raw)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (" False ", False),
        (True, True),
        (False, False),
        ("null", None),
        ("", None),
        (None, None),
    ],
)
def test_loose_bool_accepts(raw: Any, expected: Any) -> None:
    _check(LooseBool, raw, expected)


@pytest.mark.parametrize("raw", ["maybe", "yes", "1", 1, 0, Decimal("1"), [], {}])
def test_loose_bool_refuses(raw: Any) -> None:
    _refuses(LooseBool, raw, "not a boolean")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("409.94", Decimal("409.94")),
        ("0.00", Decimal("0.00")),
        ("70", Decimal("70")),
        ("-5.00", Decimal("-5.00")),
        (" 1.10 ", Decimal("1.10")),
        (70, Decimal(70)),
        (Decimal("10.10"), Decimal("10.10")),
        (Decimal("1E+2"), Decimal("100")),
        ("null", None),
        ("", None),
        (None, None),
    ],
)
def test_money_accepts(raw: Any, expected: Any) -> None:
    _check(Money, raw, expected)


@pytest.mark.parametrize(
    ("raw", "dumped"),
    [("409.94", "409.94"), ("0.00", "0.00"), ("70", "70"), (Decimal("1E+2"), "100"), (Decimal("1E-7"), "0.0000001")],
)
def test_money_dumps_plain_decimal_strings(raw: Any, dumped: str) -> None:
    adapter = TypeAdapter(Money)
    value = adapter.validate_python(raw)
    assert adapter.dump_python(value, mode="json") == dumped
    assert adapter.validate_python(dumped) == value


@pytest.mark.parametrize("raw", [Decimal("1E+999999"), Decimal("1E-40"), "1" * 40])
def test_money_refuses_absurd_magnitudes(raw: Any) -> None:
    _refuses(Money, raw, "decimal amount out of range")


_30 = "9" * 30


@pytest.mark.parametrize(
    "raw",
    [_30, "-" + _30, f"{_30}.{_30}", f"-{_30}.{_30}", "0." + "0" * 29 + "1", "1" + "0" * 29, f" {_30} ",
     Decimal(_30), Decimal("1E+29"), Decimal("1E-30"), Decimal(f"{_30}.{_30}"), int(_30)],
)
def test_money_accepts_30_digits_before_and_after_the_point(raw: Any) -> None:
    value = TypeAdapter(Money).validate_python(raw)
    assert value == Decimal(str(raw).strip())


@pytest.mark.parametrize(
    ("raw", "side"),
    [
        ("1" * 31, "before"),
        ("1" + "0" * 30, "before"),
        ("-" + "1" * 31, "before"),
        ("1" * 31 + ".5", "before"),
        (Decimal("1E+30"), "before"),
        (int("1" * 31), "before"),
        ("0." + "0" * 30 + "1", "after"),
        ("1." + "0" * 31, "after"),
        (Decimal("1E-31"), "after"),
        (Decimal("0E-31"), "after"),
    ],
)
def test_money_refuses_more_than_30_digits_before_or_after_the_point(raw: Any, side: str) -> None:
    _refuses(Money, raw, f"decimal amount out of range: more than 30 digits {side} the point")


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "1e3",
        "1_000",
        "1,00",
        "5.",
        True,
        False,
        0.1,
        1.0,
        Decimal("NaN"),
        Decimal("Infinity"),
        [],
        {},
    ],
)
def test_money_refuses(raw: Any) -> None:
    _refuses(Money, raw, "not a decimal amount")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("500", 500),
        (500, 500),
        (" 1 ", 1),
        ("-2", -2),
        ("500.0", 500),
        (Decimal("3"), 3),
        (Decimal("3.00"), 3),
        ("null", None),
        ("", None),
        (None, None),
    ],
)
def test_count_accepts(raw: Any, expected: Any) -> None:
    _check(Count, raw, expected)


@pytest.mark.parametrize("raw", ["1.5", Decimal("1.5"), "abc", "1e3", "NaN", True, False, 2.0, Decimal("NaN"), []])
def test_count_refuses(raw: Any) -> None:
    _refuses(Count, raw, "not a whole number")


@pytest.mark.parametrize("raw", [10**18, "9" * 6000, Decimal("1E+9999")])
def test_count_refuses_absurd_magnitudes(raw: Any) -> None:
    _refuses(Count, raw, "whole number out of range")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1001", "1001"),
        (1001, "1001"),
        (" 1001 ", "1001"),
        ("gid-abc", "gid-abc"),
        ("null", None),
        ("", None),
        (None, None),
    ],
)
def test_id_accepts(raw: Any, expected: Any) -> None:
    _check(Id, raw, expected)


@pytest.mark.parametrize("raw", [True, 1.5, Decimal("1001"), [], {}])
def test_id_refuses(raw: Any) -> None:
    _refuses(Id, raw, "not an identifier")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2022-01-01T11:00:00-01:00", datetime(2022, 1, 1, 11, tzinfo=MINUS_ONE)),
        ('2022-01-01T11:00:00-01:00"', datetime(2022, 1, 1, 11, tzinfo=MINUS_ONE)),
        (' 2022-01-01T11:00:00-01:00" ', datetime(2022, 1, 1, 11, tzinfo=MINUS_ONE)),
        ("2022-01-01T11:00:00Z", datetime(2022, 1, 1, 11, tzinfo=UTC)),
        ("2022-01-01T11:00:00", datetime(2022, 1, 1, 11, tzinfo=UTC)),
        ("2022-01-01T11:00:00.250+05:30", datetime(2022, 1, 1, 5, 30, 0, 250000, tzinfo=UTC)),
        (datetime(2022, 1, 1), datetime(2022, 1, 1, tzinfo=UTC)),
        ("null", None),
        ("", None),
        ('"', None),
        (None, None),
    ],
)
def test_time_accepts(raw: Any, expected: Any) -> None:
    value = TypeAdapter(Time).validate_python(raw)
    assert value == expected
    assert value is None or value.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "dumped"),
    [
        ('2022-01-01T11:00:00-01:00"', "2022-01-01T11:00:00-01:00"),
        ("2008-01-10T11:00:00-05:00", "2008-01-10T11:00:00-05:00"),
        ("2022-01-01T11:00:00.250+05:30", "2022-01-01T11:00:00.250000+05:30"),
        ("2022-01-01T11:00:00", "2022-01-01T11:00:00Z"),
    ],
)
def test_time_keeps_its_original_offset(raw: str, dumped: str) -> None:
    adapter = TypeAdapter(Time)
    assert adapter.dump_python(adapter.validate_python(raw), mode="json") == dumped


@pytest.mark.parametrize("raw", ["yesterday", "2022-13-01T00:00:00Z", "12/01/2022", 1700000000, True])
def test_time_refuses(raw: Any) -> None:
    _refuses(Time, raw, "not an ISO 8601 time")


def test_time_refuses_offsets_with_seconds() -> None:
    _refuses(Time, "2020-01-01T00:00:00+05:30:15", "not an ISO 8601 offset")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["authorize_net","Cash on Delivery (COD)"]', ["authorize_net", "Cash on Delivery (COD)"]),
        (["authorize_net", "COD"], ["authorize_net", "COD"]),
        ("[]", []),
        ([], []),
        ("null", None),
        ("", None),
        (None, None),
    ],
)
def test_str_list_accepts(raw: Any, expected: Any) -> None:
    _check(StrList, raw, expected)


@pytest.mark.parametrize("raw", ["authorize_net", '["a",', '{"a": 1}', 5, True])
def test_str_list_refuses(raw: Any) -> None:
    _refuses(StrList, raw, "not a list")


def test_str_list_items_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(StrList).validate_python("[1, 2]")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("imported, vip", ["imported", "vip"]),
        (" a ,b,, c ,", ["a", "b", "c"]),
        ("loyal", ["loyal"]),
        (["  x ", "y", " "], ["x", "y"]),
        ('["a", "b"]', ["a", "b"]),
        ("", []),
        ("null", None),
        (None, None),
    ],
)
def test_tags_accept(raw: Any, expected: Any) -> None:
    _check(Tags, raw, expected)


@pytest.mark.parametrize("raw", [5, True, [1, 2], {"a": "b"}])
def test_tags_refuse(raw: Any) -> None:
    _refuses(Tags, raw, "not a comma-separated tag list")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Customer changed their mind.", "Customer changed their mind."),
        ("null", "null"),
        ("  ", "  "),
        ("", None),
        (None, None),
        (12345, "12345"),
        (Decimal("45.41634"), "45.41634"),
    ],
)
def test_text_accepts(raw: Any, expected: Any) -> None:
    _check(Text, raw, expected)


@pytest.mark.parametrize("raw", [True, 1.5, [], {}])
def test_text_refuses(raw: Any) -> None:
    _refuses(Text, raw, "not text")
