"""Where a newcomer stumbled over HTTP: the root, wrong paths, a server without a token, replay wording."""

from __future__ import annotations

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
