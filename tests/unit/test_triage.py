"""What a verified delivery becomes at the receiver: decided from its topic and shop alone, never from its body.

The receiver verifies, de-duplicates and stores the raw bytes; the worker normalizes each event once
(`schemas.retriage` is what a replay runs, body included).
"""

from __future__ import annotations

import inspect

import pytest

from schemas import TOPICS, retriage, triage
from storage.intake import make_delivery
from storage.status import Status
from tests.support.normalizer import refusing, replace_normalizer

NOT_JSON = b"{not json"
TOO_DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.fixture
def no_normalizer(monkeypatch):
    """Every binding of the normalizer raises: whoever calls it fails the test (the calls are listed)."""
    calls: list = []
    replace_normalizer(refusing(calls), monkeypatch.setattr)
    return calls


def test_triage_reads_no_body():
    assert "raw" not in inspect.signature(triage).parameters
    assert "normalize" not in triage.__code__.co_names


@pytest.mark.parametrize("topic", TOPICS)
def test_a_known_topic_with_a_shop_is_queued(topic):
    assert triage(topic, "acme.genmystore.com") == ("queued", None)


def test_an_unknown_topic_is_ignored_and_a_missing_shop_quarantined():
    assert triage("products/create", "acme.genmystore.com") == ("ignored", "unknown topic 'products/create'")
    assert triage("orders/create", "") == ("quarantined", "no shop: the X-Genstore-Shop-Domain header is missing")
    assert triage("products/create", "")[0] == "ignored", "the topic is checked first"


@pytest.mark.parametrize("body", [NOT_JSON, TOO_DEEP, b"\xff\xfe{}", b'{"order": {"orderId": "1"}}'])
def test_a_delivery_is_stored_queued_as_it_came_whatever_its_body(no_normalizer, body):
    d = make_delivery("ev-1", "orders/create", "acme.genmystore.com", body)
    assert (d.status, d.order_id, d.error) == (Status.QUEUED, None, None)
    assert d.raw is body, "the raw bytes, untouched"
    assert no_normalizer == []


def test_without_a_shop_or_with_an_unknown_topic_the_delivery_says_why(no_normalizer):
    d = make_delivery("ev-2", "orders/create", "", NOT_JSON)
    assert (d.status, d.error) == (Status.QUARANTINED, "no shop: the X-Genstore-Shop-Domain header is missing")
    d = make_delivery("ev-3", "products/create", "acme.genmystore.com", NOT_JSON)
    assert (d.status, d.error) == (Status.IGNORED, "unknown topic 'products/create'")
    assert no_normalizer == []


def test_retriage_normalizes_the_body_as_a_replay_needs():
    status, event, order_id, error = retriage("orders/create", "acme.genmystore.com", NOT_JSON)
    assert (status, event, order_id) == ("quarantined", None, None) and error.startswith("body is not valid JSON")
    status, event, order_id, error = retriage("orders/create", "acme.genmystore.com", TOO_DEEP)
    assert status == "quarantined" and error == "body is not valid JSON: nested deeper than 32 levels"
    body = b'{"order": {"orderId": "7", "updatedAt": "2024-01-01T00:00:00Z"}}'
    status, event, order_id, error = retriage("orders/create", "acme.genmystore.com", body)
    assert (status, order_id, error) == ("queued", "7", None) and event.order_id == "7"
    assert retriage("orders/create", "", body)[0] == "quarantined"
    assert retriage("orders/reconcile", "acme.genmystore.com", body)[0] == "ignored", "webhook topics by default"
