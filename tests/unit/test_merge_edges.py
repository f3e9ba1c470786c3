"""Edges of the merge rule that the examples and properties in test_merge.py leave open: events
without what their topic needs, the stored version's exact form, and the order refunds are listed in."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from schemas import Projection, merge, normalize, order_view
from schemas.samples import load

ORDER = json.loads(load("orders_create.json"))["order"]


def snapshot(updated_at: str) -> object:
    return normalize("orders/update", json.dumps({"order": {**ORDER, "updatedAt": updated_at}}))


def refund(refund_id: str, created_at: str | None) -> object:
    body = {"refundId": refund_id, "orderId": "1001",
            "transactions": [{"amount": "1.00", "currency": "USD", "kind": "refund"}]}
    if created_at is not None:
        body["createdAt"] = created_at
    return normalize("refunds/create", json.dumps({"refund": body}))


def test_a_refund_topic_without_a_refund_is_refused():
    with pytest.raises(ValueError, match="^refunds/create event without a refund$"):
        merge(None, "refunds/create", "e1", snapshot("2024-01-01T00:00:00Z"))
    event = refund("r1", "2024-01-01T00:00:00Z")
    no_id = replace(event, refund=event.refund.model_copy(update={"refund_id": None}))
    with pytest.raises(ValueError, match="^refunds/create event without a refund id$"):
        merge(None, "refunds/create", "e2", no_id)


def test_an_order_topic_without_a_snapshot_or_its_updated_at_is_refused():
    event = snapshot("2024-01-01T00:00:00Z")
    for broken in (replace(event, order=None),
                   replace(event, order=event.order.model_copy(update={"updated_at": None}))):
        with pytest.raises(ValueError, match="^orders/update event without an order snapshot and its updatedAt$"):
            merge(None, "orders/update", "e3", broken)


def test_the_version_is_whole_utc_microseconds_rank_and_event_id():
    result = merge(None, "orders/update", "e4", snapshot("2024-01-01T01:00:00.000001+01:00"))
    stored = result.projection.to_json()["version"]
    assert stored == [int(datetime.fromisoformat("2024-01-01T00:00:00Z").timestamp()) * 10**6 + 1, 1, "e4"]
    assert all(type(part) is int for part in stored[:2]), "exact integers, never floats"
    assert Projection.from_json(json.loads(json.dumps(result.projection.to_json()))) == result.projection


def test_refunds_are_listed_by_creation_time_then_id_and_undated_ones_last():
    projection = None
    for refund_id, created in (("r-undated-b", None), ("r-late", "2024-01-03T00:00:00Z"),
                               ("r-undated-a", None), ("r-early", "2024-01-01T00:00:00+05:00"),
                               ("r-tie", "2023-12-31T19:00:00Z")):
        projection = merge(projection, "refunds/create", f"e-{refund_id}", refund(refund_id, created)).projection
    projection = merge(projection, "orders/update", "e-order", snapshot("2024-01-01T00:00:00Z")).projection
    view = order_view(projection, "acme.genmystore.com")
    assert [r["refundId"] for r in view["refunds"]] == ["r-early", "r-tie", "r-late", "r-undated-a", "r-undated-b"]
