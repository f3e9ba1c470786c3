"""Where a newcomer stumbled over HTTP: the root, wrong paths, a server without a token, replay wording."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from receiver.app import create_app
from tests.ui.test_ui_http import deliver, sign_in


@pytest.fixture
def client(ctx, settings):
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def test_the_root_points_to_the_inspector(client):
    r = client.get("/")
    assert r.status_code == 200 and r.json()["inspector"] == "/ui"


def test_an_unknown_webhook_path_names_the_right_one(client):
    r = client.post("/webhooks/shopify", content=b"{}")
    assert r.status_code == 404
    assert "/webhooks/genstore" in r.json()["error"] and "/webhooks/shopify" in r.json()["error"]
    assert "/api/202412/orders" in client.get("/api/orders").json()["error"]


def test_the_read_api_without_a_configured_token_says_the_server_has_none(ctx, settings):
    with TestClient(create_app(replace(settings, api_token=None))) as c:
        r = c.get("/api/events", headers={"X-Genstore-Access-Token": "anything"})
    assert r.status_code == 401 and "no API token configured" in r.json()["error"]


def test_replaying_a_still_unprocessable_event_says_still_quarantined(ctx, client):
    deliver(ctx, "q-1", "orders/create", b'{"order": {"orderId": "1", "updatedAt": "2024-01-01T00:00:00Z", '
                                           b'"totalPrice": "abc"}}')
    csrf = sign_in(client)
    r = client.post("/ui/replay", data={"id": "q-1", "shop": "acme.genmystore.com", "csrf": csrf})
    page = client.get(r.headers["location"]).text
    assert "Still quarantined: order.totalPrice" in page and "Nothing to replay" not in page


def test_the_diff_names_the_line_item_and_field_that_changed(ctx, client):
    from tests.ui.test_ui_http import with_order

    deliver(ctx, "d-1", "orders/create", with_order("orders/create", "960", "2024-01-01T00:00:00Z"))
    body = json.loads(with_order("orders/update", "960", "2024-01-02T00:00:00Z"))
    body["order"]["lineItems"][0]["quantity"] = "3"
    deliver(ctx, "d-2", "orders/update", json.dumps(body).encode())
    sign_in(client)
    html = client.get("/ui/events/d-2", params={"shop": "acme.genmystore.com"}).text
    assert "lineItems[id=669751112].quantity" in html, "which line item, which field"
    row = html.split("lineItems[id=669751112].quantity")[1].split("</tr>")[0]
    assert ">1<" in row and ">3<" in row


def test_the_nav_says_which_view_is_shown(client):
    sign_in(client)
    failed = client.get("/ui", params={"status": "failed"}).text
    assert '<a href="/ui?status=failed" class="here">Failed</a>' in failed
    assert '<a href="/ui" class="here">' not in failed


def test_a_failed_event_explains_its_attempts_and_replaying_shows_the_handler_retrying(ctx, client):
    from tests.ui.test_ui_http import spend_retries
    from workers.handlers import on

    @on("orders/paid")
    def grumpy(event):
        raise RuntimeError("printer offline")

    deliver(ctx, "a-1", "orders/paid")
    spend_retries(ctx, "a-1")
    csrf = sign_in(client)
    page = client.get("/ui/events/a-1", params={"shop": "acme.genmystore.com"}).text
    assert 'id="attempts-why"' in page and "grumpy 3" in page
    assert "grumpy: RuntimeError: printer offline" in page
    r = client.post("/ui/replay", data={"id": "a-1", "shop": "acme.genmystore.com", "csrf": csrf})
    page = client.get(r.headers["location"]).text
    assert 'class="hint">handler <span class="mono">grumpy</span> retrying' in page
