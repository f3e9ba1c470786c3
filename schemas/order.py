"""The canonical order, as every Genstore order topic and the Orders API
send it (field names as in Genstore's docs)."""

from __future__ import annotations

from ._base import GenstoreModel, cancelled_at, closed_at, created_at, updated_at
from .types import Count, Currency, Id, LooseBool, Maybe, Money, StrList, Tags, Text, Time

__all__ = ["Address", "Customer", "DiscountCode", "Fulfillment", "LineItem", "Order", "PaymentTerms"]


class Address(GenstoreModel):
    first_name: Text = None
    last_name: Text = None
    name: Text = None
    company: Text = None
    address1: Text = None
    address2: Text = None
    city: Text = None
    province: Text = None
    province_code: Text = None
    country: Text = None
    country_code: Text = None
    zip: Text = None
    phone: Text = None
    latitude: Text = None  # kept as the strings they came as
    longitude: Text = None


class Customer(GenstoreModel):
    id: Id = None
    email: Text = None
    phone: Text = None
    first_name: Text = None
    last_name: Text = None
    state: Text = None
    currency: Currency = None
    note: Text = None
    tags: Tags = None
    tax_exempt: LooseBool = None
    tax_exemptions: StrList = None
    verified_email: LooseBool = None
    addresses: Maybe[list[Address]] = None
    default_address: Maybe[Address] = None
    created_at: Time = created_at()
    updated_at: Time = updated_at()


class LineItem(GenstoreModel):
    id: Id = None
    product_id: Id = None
    variant_id: Id = None
    title: Text = None
    variant_title: Text = None
    sku: Text = None
    quantity: Count = None
    current_quantity: Count = None
    fulfillable_quantity: Count = None
    fulfillment_status: Text = None
    price: Money = None
    total_discount: Money = None
    grams: Count = None
    taxable: LooseBool = None
    requires_shipping: LooseBool = None
    gift_card: LooseBool = None


class Fulfillment(GenstoreModel):
    """Tracking numbers, carriers and URLs are not named by Genstore's order
    docs; they are kept as extra fields exactly as sent."""

    fulfill_id: Id = None
    order_id: Id = None
    status: Text = None
    created_at: Time = created_at()
    updated_at: Time = updated_at()


class DiscountCode(GenstoreModel):
    code: Text = None
    amount: Money = None
    type: Text = None


class PaymentTerms(GenstoreModel):
    amount: Money = None
    currency: Currency = None


class Order(GenstoreModel):
    order_id: Id
    created_at: Time = created_at()
    updated_at: Time = updated_at()
    cancelled_at: Time = cancelled_at()
    closed_at: Time = closed_at()
    cancel_reason: Text = None
    financial_status: Text = None
    fulfillment_status: Text = None
    source_name: Text = None
    source_identifier: Text = None
    email: Text = None
    phone: Text = None
    note: Text = None
    tags: Tags = None
    currency: Currency = None
    presentment_currency: Currency = None
    buyer_accepts_marketing: LooseBool = None
    taxes_included: LooseBool = None
    duties_included: LooseBool = None
    total_price: Money = None
    subtotal_price: Money = None
    total_line_items_price: Money = None
    total_discounts: Money = None
    total_tax: Money = None
    total_outstanding: Money = None
    current_total_price: Money = None
    current_subtotal_price: Money = None
    current_total_discounts: Money = None
    current_total_tax: Money = None
    total_weight: Count = None
    payment_gateway_names: StrList = None
    payment_terms: Maybe[PaymentTerms] = None
    discount_codes: Maybe[list[DiscountCode]] = None
    line_items: Maybe[list[LineItem]] = None
    fulfillments: Maybe[list[Fulfillment]] = None
    customer: Maybe[Customer] = None
    billing_address: Maybe[Address] = None
    shipping_address: Maybe[Address] = None
