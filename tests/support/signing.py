"""Signing and posting a delivery as Genstore (or a Standard Webhooks sender) would."""

from __future__ import annotations

import time
import uuid

import httpx

from orderhooks.config import secret_bytes
from receiver.verify import genstore_signature, standard_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET
from tests.support.payloads import SHOP


def signed_headers(topic: str | None, body: bytes, *, shop: str | None = SHOP, event_id: str | None = None,
                   secret: str = SECRET, scheme: str = "genstore", timestamp: int | None = None) -> dict[str, str]:
    """Headers of a signed delivery. None leaves a header out (topic, shop, event id)."""
    key = secret_bytes(secret)
    h = {"Content-Type": "application/json"}
    if topic is not None:
        h["X-Genstore-Topic"] = topic
    if shop is not None:
        h["X-Genstore-Shop-Domain"] = shop
    if scheme == "genstore":
        if event_id is not None:
            h["X-Genstore-Event-Id"] = event_id
        h["X-Genstore-Hmac-Sha256"] = genstore_signature(key, body)
    else:
        event_id = event_id or str(uuid.uuid4())
        stamp = int(time.time()) if timestamp is None else timestamp
        h |= {"webhook-id": event_id, "webhook-timestamp": str(stamp),
              "webhook-signature": standard_signature(key, event_id, stamp, body)}
    return h


def post_delivery(client, topic: str, body: bytes | None = None, *, event_id: str | None = "new",
                  shop: str | None = SHOP, secret: str = SECRET, headers: dict | None = None,
                  scheme: str = "genstore", path: str = "/webhooks/genstore"):
    """POST a signed delivery with `client` (an httpx.Client, a Starlette TestClient, or a base URL).

    `event_id="new"` sends a fresh uuid; None sends no event id header."""
    body = example_for_topic(topic) if body is None else body
    if event_id == "new":
        event_id = str(uuid.uuid4())
    h = signed_headers(topic, body, shop=shop, event_id=event_id, secret=secret, scheme=scheme)
    h.update(headers or {})
    if isinstance(client, str):
        return httpx.post(client + path, content=body, headers=h, timeout=10)
    return client.post(path, content=body, headers=h)
