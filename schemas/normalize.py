"""Turn a delivery body into one canonical, typed event."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from . import _json
from ._base import GenstoreModel
from ._fast import validator
from .order import Order
from .refund import Refund
from .topics import NORMALIZED_TOPICS, REFUND_TOPICS, UnknownTopic

__all__ = ["NormalizationError", "NormalizedEvent", "UnknownTopic", "normalize"]

_MAX_REASONS = 3
_NAN, _INFINITY = re.compile(b"NaN"), re.compile(b"Infinity")
_M = TypeVar("_M", bound=GenstoreModel)
_T = TypeVar("_T")


class NormalizationError(ValueError):
    """The body cannot become a canonical event; ``reason`` says why in one
    short line (e.g. ``order.totalPrice: not a decimal amount ('abc')``)."""

    def __init__(self, reason: str) -> None:
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")  # stored and shown: UTF-8 always
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NormalizedEvent:
    topic: str
    order_id: str
    order: Order | None = None
    refund: Refund | None = None
    archived: bool = False  # no snapshot: the platform's API says the order is gone (archived)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe canonical form: ``{"topic", "orderId", "order", "refund"}`` (and ``"archived": true``
        for an archived event)."""
        data = {
            "topic": self.topic,
            "orderId": self.order_id,
            "order": self.order.to_json() if self.order is not None else None,
            "refund": self.refund.to_json() if self.refund is not None else None,
        }
        if self.archived:
            data["archived"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NormalizedEvent:
        """Rebuild the event from :meth:`to_json` output."""
        order, refund = data.get("order"), data.get("refund")
        return cls(
            topic=data["topic"],
            order_id=data["orderId"],
            order=Order.from_json(order) if order is not None else None,
            refund=Refund.from_json(refund) if refund is not None else None,
            archived=data.get("archived") is True,
        )


def normalize(topic: str, body: bytes | str) -> NormalizedEvent:
    """Parse and normalize one delivery.

    Raises :class:`UnknownTopic` for a topic outside ``NORMALIZED_TOPICS``
    (the webhook topics and ``orders/reconcile``; checked first) and
    :class:`NormalizationError` for a body that is not JSON or does not fit
    the topic's model."""
    if topic not in NORMALIZED_TOPICS:
        raise UnknownTopic(topic)
    if topic in REFUND_TOPICS:
        refund = _fast(Refund, body, "refund") or _validate(Refund, _parse(body), "refund")
        _require(refund.refund_id, "refund.refundId")
        order_id = _require(refund.order_id, "refund.orderId")
        return NormalizedEvent(topic=topic, order_id=order_id, refund=refund)
    order = _fast(Order, body, "order") or _validate(Order, _parse(body), "order")
    order_id = _require(order.order_id, "order.orderId")
    _require(order.updated_at, "order.updatedAt")  # snapshots are ordered by it
    return NormalizedEvent(topic=topic, order_id=order_id, order=order)


def _fast(model: type[_M], body: bytes | str, wrapper: str) -> _M | None:
    """The model of a body, read and validated in one pass by pydantic-core with the fast validator; None
    when that fails, and :func:`_parse` and :func:`_validate` decide (see schemas._fast)."""
    if type(body) is bytes:
        named = _NAN.search(body) or _INFINITY.search(body)  # a literal pattern: quicker than `in` here
    elif type(body) is str:
        named = "NaN" in body or "Infinity" in body
    else:
        return None
    fast = validator(model, wrapper)
    if named or fast is None:  # that parser reads them, and may not validate where they are (a key sent twice)
        return None
    try:
        return fast.validate_json(body)[wrapper]
    except Exception:  # a float, a body not in an envelope, or an error the model itself will report
        return None


def _parse(body: bytes | str) -> Any:
    try:
        return _json.loads(body)
    except _json.NotUTF8 as exc:
        raise NormalizationError(f"body is not UTF-8: {exc}") from None
    except ValueError as exc:  # includes JSONDecodeError
        raise NormalizationError(f"body is not valid JSON: {exc}") from None


def _validate(model: type[_M], data: Any, wrapper: str) -> _M:
    """Validate the ``{wrapper: {...}}`` envelope or a bare object."""
    if isinstance(data, dict) and wrapper in data:
        data = data[wrapper]
    if not isinstance(data, dict):
        raise NormalizationError(f"{wrapper}: not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise NormalizationError(_summarise(wrapper, exc)) from None


def _summarise(wrapper: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{_where(wrapper, e['loc'])}: {_message(e)}" for e in errors[:_MAX_REASONS]]
    if len(errors) > _MAX_REASONS:
        parts.append(f"and {len(errors) - _MAX_REASONS} more")
    return "; ".join(parts)


def _where(wrapper: str, loc: tuple[int | str, ...]) -> str:
    return wrapper + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _message(error: Any) -> str:
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])  # our coercions' own words
    if error["type"] == "missing":
        return "missing"
    return str(error["msg"])


def _require(value: _T | None, where: str) -> _T:
    if value is None:
        raise NormalizationError(f"{where}: missing")
    return value
