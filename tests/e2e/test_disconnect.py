"""A sender that goes away mid-body, over a real socket to the real receiver: answered, counted, nothing stored."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import pytest

from schemas.samples import example_for_topic
from tests.support.metrics import scrape, value
from tests.support.signing import signed_headers
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e


def test_a_sender_gone_mid_body_is_counted_as_disconnected_and_nothing_is_stored(stack):
    before = value(scrape(stack.url), "orderhooks_deliveries_total", topic="orders/paid", outcome="disconnected") or 0
    body = example_for_topic("orders/paid")
    event_id = str(uuid.uuid4())
    headers = signed_headers("orders/paid", body, event_id=event_id) | {"Content-Length": str(len(body))}
    where = urlsplit(stack.url)
    request = (f"POST /webhooks/genstore HTTP/1.1\r\nHost: {where.netloc}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    with socket.create_connection((where.hostname, where.port), timeout=5) as s:
        s.sendall(request + body[: len(body) // 2])
    wait_for(lambda: (value(scrape(stack.url), "orderhooks_deliveries_total", topic="orders/paid",
                            outcome="disconnected") or 0) == before + 1, 10, what="the disconnect to be counted")
    assert stack.api(f"/api/events/{event_id}").status_code == 404
