"""The canonical refund (``refunds/create``).  Genstore's docs name the
topic but not its payload; we accept this shape, camelCase or snake_case::

    {"refund": {"refundId" | "id", "orderId", "createdAt", "note",
                "refundLineItems": [{"id", "lineItemId", "quantity", "subtotal", ...}],
                "transactions": [{"id", "amount", "currency", "kind", "gateway", "status", ...}]}}
"""

from __future__ import annotations

from pydantic import AliasChoices, Field

from ._base import GenstoreModel, created_at
from .types import Count, Currency, Id, Maybe, Money, Text, Time

__all__ = ["Refund", "RefundLineItem", "Transaction"]


class RefundLineItem(GenstoreModel):
    id: Id = None
    line_item_id: Id = None
    quantity: Count = None
    restock_type: Text = None
    subtotal: Money = None
    total_tax: Money = None


class Transaction(GenstoreModel):
    id: Id = None
    parent_id: Id = None
    amount: Money = None
    currency: Currency = None
    kind: Text = None
    gateway: Text = None
    status: Text = None
    created_at: Time = created_at()


class Refund(GenstoreModel):
    refund_id: Id = Field(validation_alias=AliasChoices("refundId", "id", "refund_id"))
    order_id: Id
    created_at: Time = created_at()
    note: Text = None
    refund_line_items: Maybe[list[RefundLineItem]] = None
    transactions: Maybe[list[Transaction]] = None
