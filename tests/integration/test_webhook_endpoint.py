"""The webhook routes as plain ASGI endpoints: what the HTTP framework used to do for them, they now do
themselves — bodies in many pieces, clients that go away, other methods, odd ids in the JSON answers, and
no 500 whatever goes wrong inside."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import warnings
from dataclasses import replace
from urllib.parse import quote

import pytest

with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from receiver import intake
from receiver.app import create_app
from receiver.groupcommit import GroupWriter
from schemas.samples import example_for_topic
from tests.support.signing import post_delivery, signed_headers

BODY = example_for_topic("orders/create")
PATH = "/webhooks/genstore"


@pytest.fixture
def bc_client(ctx, settings):
    with TestClient(create_app(replace(settings, bigcommerce_secret_keys=(b"bigcommerce-client-secret",)))) as c:
        yield c


def asgi(client, headers: list[tuple[bytes, bytes]], messages: list[dict], path: str = PATH) -> list[dict]:
    """Drive the running app directly with these `receive` messages; what it sent."""
    sent: list[dict] = []
    pending = iter(messages)

    async def receive():
        try:
            return next(pending)
        except StopIteration:  # nothing more comes: wait, as a server would, until the answer is sent
            await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    client.portal.call(client.app, scope, receive, send)
    return sent


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


def answer(sent: list[dict]) -> tuple[int, dict[bytes, bytes], dict]:
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    return start["status"], dict(start["headers"]), json.loads(body["body"])


def test_a_body_arriving_in_many_small_pieces_is_stored(client):
    event_id = str(uuid.uuid4())
    pieces = [BODY[i:i + 7] for i in range(0, len(BODY), 7)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    status, headers, body = answer(asgi(client, raw_headers(signed_headers("orders/create", BODY, event_id=event_id)),
                                        messages))
    assert (status, body) == (202, {"id": event_id, "status": "queued"})
    assert headers[b"content-type"] == b"application/json"
    event = client.get(f"/api/events/{quote(event_id, safe='')}").json()["event"]
    assert event["raw"] == BODY.decode()


def test_a_body_growing_past_the_limit_in_pieces_is_413_and_closes_the_connection(client, settings):
    headers = raw_headers(signed_headers("orders/create", BODY))  # no Content-Length: chunked
    piece = b"x" * (settings.max_body // 4 + 1)
    messages = [{"type": "http.request", "body": piece, "more_body": True} for _ in range(8)]
    status, sent_headers, body = answer(asgi(client, headers, messages))
    assert status == 413 and sent_headers[b"connection"] == b"close"
    assert body == {"error": f"body larger than {settings.max_body} bytes"}


def test_a_client_gone_before_any_body_is_400_disconnected(client):
    headers = raw_headers(signed_headers("orders/create", BODY))
    status, _, body = answer(asgi(client, headers, [{"type": "http.disconnect"}]))
    assert (status, body) == (400, {"error": "client disconnected"})


def test_a_client_gone_mid_body_on_the_bigcommerce_route_is_400(bc_client):
    headers = raw_headers({"Content-Type": "application/json"})
    messages = [{"type": "http.request", "body": b'{"scope": ', "more_body": True}, {"type": "http.disconnect"}]
    status, _, body = answer(asgi(bc_client, headers, messages, path="/webhooks/bigcommerce"))
    assert (status, body) == (400, {"error": "client disconnected"})


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_other_methods_on_the_webhook_route_are_405(client, method):
    r = client.request(method, PATH)
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    if method != "HEAD":
        assert r.headers["content-type"] == "application/json" and r.json()["error"]


ODD_IDS = ['evt "quoted"', "back\\slash", "tab\there", "ünïcode-evt", "</script>", "{\"id\": 1}", "e" * 500]


@pytest.mark.parametrize("event_id", ODD_IDS)
def test_odd_ids_come_back_json_escaped(client, event_id):
    headers = signed_headers("orders/create", BODY, event_id=event_id)
    r = client.post(PATH, content=BODY, headers={k: v.encode() for k, v in headers.items()})
    assert r.status_code == 202 and r.json() == {"id": event_id, "status": "queued"}
    r = client.post(PATH, content=BODY, headers={k: v.encode() for k, v in headers.items()})
    assert r.status_code == 200 and r.json() == {"id": event_id, "status": "duplicate"}


def test_an_id_that_is_not_utf8_reads_as_latin1_in_the_answer(client):
    headers = raw_headers(signed_headers("orders/create", BODY))
    headers.append((b"x-genstore-event-id", b"evt-\xff\xfe-" + uuid.uuid4().hex.encode()))
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]
    status, _, body = answer(asgi(client, headers, messages))
    assert status == 202 and body["id"] == headers[-1][1].decode("latin-1")


def test_a_quarantined_answer_carries_the_reason(client):
    r = post_delivery(client, "orders/create", event_id=str(uuid.uuid4()), shop=None)
    assert r.status_code == 202 and r.json()["status"] == "quarantined" and r.json()["error"]


def test_an_exception_inside_the_genstore_endpoint_is_a_json_503_never_a_500(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(intake, "make_delivery", broken)
    r = post_delivery(client, "orders/create", event_id=str(uuid.uuid4()))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_an_exception_inside_a_platform_endpoint_is_a_json_503(bc_client, monkeypatch):
    endpoint = bc_client.app.webhooks["/webhooks/bigcommerce"]
    assert isinstance(endpoint, intake.PlatformWebhook)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(endpoint, "of", type("Broken", (), {"accept": staticmethod(broken)})())
    r = bc_client.post("/webhooks/bigcommerce", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 503 and r.json()["error"]


@contextlib.contextmanager
def writer(client, replacement: GroupWriter):
    state = client.app.state
    kept, state.writer = state.writer, replacement
    try:
        yield
    finally:
        state.writer = kept


def test_an_unexpected_error_from_the_store_is_a_json_503(client):
    async def failing(items):
        raise ValueError("not a Redis error")

    with writer(client, GroupWriter(failing)):
        r = post_delivery(client, "orders/create", event_id=str(uuid.uuid4()))
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and r.json()["error"]


def test_a_store_slower_than_the_deadline_is_503_with_retry_after(client, monkeypatch):
    async def slow(items):
        await asyncio.sleep(1.0)
        return [True] * len(items)

    monkeypatch.setattr(intake, "ANSWER_WITHIN", 0.05)
    with writer(client, GroupWriter(slow)):
        r = post_delivery(client, "orders/create", event_id=str(uuid.uuid4()))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json() == {"error": "storage unavailable, retry later"}
