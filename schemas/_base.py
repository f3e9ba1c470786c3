"""The base of every model: camelCase or snake_case in, camelCase out,
unknown fields kept as they came."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Self

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel, to_snake

from .types import clean_text


def _camel_or_snake(name: str) -> AliasChoices:
    return AliasChoices(to_camel(name), name)


def _plain(value: Any) -> Any:
    """An unknown field's value as it will dump, store and reload unchanged.

    JSON numbers with a fraction or an exponent were parsed as Decimal: they
    are kept as the decimal string of that exact value (``"1.00000000000000000001"``,
    ``"1E+400"``), never through a float, which would round them or make them
    null. Integers stay integers. Text is cleaned of lone surrogates."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): _plain(item) for key, item in value.items()}
    return value


class GenstoreModel(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        alias_generator=AliasGenerator(validation_alias=_camel_or_snake, serialization_alias=to_camel),
    )

    @model_validator(mode="after")
    def _plain_extras(self) -> Self:
        extra = self.__pydantic_extra__
        if extra:
            plain = {clean_text(key): _plain(value) for key, value in extra.items()}
            extra.clear()
            extra.update(plain)
        return self

    def __getattr__(self, name: str) -> Any:
        """The camelCase names of Genstore's documents read too: `order.totalPrice` is `order.total_price`
        (Python attributes are snake_case; JSON is camelCase)."""
        snake = to_snake(name)
        if snake != name and snake in type(self).model_fields:
            return getattr(self, snake)
        return super().__getattr__(name)  # pydantic: private attributes and the fields it does not know

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON-safe form: Genstore's camelCase names, money as
        decimal strings, times ISO 8601 with their offset, extras as sent."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_json` output (or any payload)."""
        return cls.model_validate(data)


def created_at() -> Any:
    return Field(None, validation_alias=AliasChoices("createdAt", "createTime", "created_at"))


def updated_at() -> Any:
    return Field(None, validation_alias=AliasChoices("updatedAt", "updateTime", "updated_at"))


def cancelled_at() -> Any:
    return Field(None, validation_alias=AliasChoices("cancelledAt", "cancelledTime", "cancelled_at"))


def closed_at() -> Any:
    return Field(None, validation_alias=AliasChoices("closedAt", "closedTime", "closed_at"))
