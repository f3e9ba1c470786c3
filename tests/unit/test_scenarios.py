"""`orderhooks send --scenario lifecycle`: the steps normalize, and fold to the expected statuses and order."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from orderhooks.scenarios import SCENARIOS, lifecycle
from schemas import merge, normalize, order_view

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fold(steps):
    projection, outcomes = None, []
    for i, step in enumerate(steps):
        result = merge(projection, step.topic, f"e{i}", normalize(step.topic, step.body))
        projection = result.projection
        outcomes.append(result.outcome)
    return projection, outcomes


def test_lifecycle_topics_in_order_with_one_out_of_order_pair():
    steps = lifecycle("5001", NOW)
    assert [s.topic for s in steps] == [
        "orders/create", "orders/paid", "orders/partiallyFulfilled", "orders/fulfilled", "refunds/create",
        "orders/update", "orders/update",
    ]
    assert [s.expect for s in steps].count("stale") == 1 and steps[-1].expect == "stale"
    assert "lifecycle" in SCENARIOS


def test_lifecycle_outcomes_match_what_each_step_expects():
    steps = lifecycle("5001", NOW)
    projection, outcomes = fold(steps)
    expected = ["stale" if s.expect == "stale" else ("refund_added" if s.topic.startswith("refunds/") else "applied")
                for s in steps]
    assert outcomes == expected
    order = order_view(projection, "acme.genmystore.com")
    assert order["orderId"] == "5001"
    assert order["fulfillmentStatus"] == "fulfilled"
    assert order["note"] == "Refunded the returned item."
    assert [r["refundId"] for r in order["refunds"]] == ["500101"]
    assert len(order["fulfillments"]) == 2 and order["fulfillments"][1]["trackingCompany"] == "USPS"


def test_updated_at_moves_forward_except_for_the_late_update():
    steps = [s for s in lifecycle("5001", NOW) if s.topic != "refunds/create"]
    times = [datetime.fromisoformat(json.loads(s.body)["order"]["updatedAt"]) for s in steps]
    assert times[:-1] == sorted(times[:-1])
    assert times[-1] < times[-2]
    assert all(t < NOW for t in times)


def test_each_run_gets_a_new_order_by_default():
    assert lifecycle()[0].body != lifecycle()[0].body
