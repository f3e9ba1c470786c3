"""`orderhooks send --scenario lifecycle` against the real receiver and worker: statuses, projection, metrics."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import SECRET
from tests.support.metrics import delta, scrape, value
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e


def test_lifecycle_scenario_end_to_end(stack):
    shop = f"sc{uuid.uuid4().hex[:8]}.genmystore.com"
    before = scrape(stack.url)
    done = stack.cli("send", "--scenario", "lifecycle", "--order-id", "7001", "--shop", shop,
                     "--url", stack.url + "/webhooks/genstore", "--secret", SECRET)
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]  # JSON: the output is piped
    assert [s["httpStatus"] for s in steps] == [202] * 7, done.stdout
    # Each step's outcome is awaited. This stack's flaky_once handler fails orders/paid once and is retried a
    # second later: the step says its handler waits for the retry (exit 1), or, when the retry was quicker than
    # the first look, processed.
    statuses = [s["status"] for s in steps]
    assert statuses[:1] + statuses[2:] == ["processed"] * 5 + ["stale"], (done.stdout, stack.worker_says())
    assert statuses[1] in ("retrying", "processed"), done.stdout
    assert [s["expect"] for s in steps] == ["processed"] * 6 + ["stale"]
    if statuses[1] == "retrying":
        assert steps[1]["error"] == "tests.e2e.handlers_app.flaky_once: RuntimeError: temporary failure"
    assert done.returncode == (1 if statuses[1] == "retrying" else 0)

    def settled():
        events = stack.api("/api/events", shop=shop, orderId="7001").json()["events"]
        return events if len(events) == 7 and all(e["status"] in ("processed", "stale") for e in events) else None

    events = wait_for(settled, what="the scenario's events to be applied")
    assert sorted(e["status"] for e in events) == ["processed"] * 6 + ["stale"]
    order = stack.api("/api/202412/orders/7001", shop=shop).json()["order"]
    assert order["fulfillmentStatus"] == "fulfilled"
    assert order["note"] == "Refunded the returned item."
    assert order["totalRefunded"] == "200.84", "the one refund's successful transaction"

    def stale_counted():
        s = scrape(stack.url)
        grown = (value(s, "orderhooks_events_processed_total", topic="orders/update", status="stale") or 0) > (
            value(before, "orderhooks_events_processed_total", topic="orders/update", status="stale") or 0)
        return s if grown else None

    after = wait_for(stale_counted, what="the stale update to be counted")
    assert delta(after, before, "orderhooks_deliveries_total", topic="refunds/create", outcome="accepted") == 1
    assert delta(after, before, "orderhooks_deliveries_total", topic="orders/update", outcome="accepted") == 2
    assert delta(after, before, "orderhooks_events_processed_total", topic="orders/update", status="stale") == 1


def test_send_refuses_a_topic_and_a_scenario_together(stack):
    done = stack.cli("send", "orders/paid", "--scenario", "lifecycle", "--url", stack.url + "/webhooks/genstore")
    assert done.returncode == 2
    assert "not both" in done.stderr


def test_send_an_unknown_topic_without_a_file_is_a_clear_error(stack):
    done = stack.cli("send", "products/create", "--url", stack.url + "/webhooks/genstore")
    assert done.returncode == 2
    assert "no example payload" in done.stderr
