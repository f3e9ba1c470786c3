"""Slow and idle connections against a real `orderhooks web` process with real sockets: headers must arrive
within ORDERHOOKS_HEADER_TIMEOUT, the body within ORDERHOOKS_BODY_TIMEOUT, and an idle keep-alive connection
is closed after ORDERHOOKS_KEEPALIVE_TIMEOUT; meanwhile a normal delivery gets its 202."""

from __future__ import annotations

import select
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis as redislib

from orderhooks.config import secret_bytes
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET
from tests.support.stack import DB, base_env, db_url, start_web, stop

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
KEEPALIVE_TIMEOUT = 1.0
SLACK = 1.5


@pytest.fixture(scope="module")
def web(redis_url):
    env = base_env(redis_url) | {
        "REDIS_URL": db_url(redis_url, DB["slow_clients"]),
        "ORDERHOOKS_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "ORDERHOOKS_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "ORDERHOOKS_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT),
    }
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    proc, url = start_web(env)
    parts = urlsplit(url)
    yield parts.hostname, parts.port
    stop(proc)
    client.flushdb()
    client.close()


def connect(address) -> socket.socket:
    return socket.create_connection(address, timeout=5)


def open_for(sock: socket.socket, limit: float, trickle: bytes = b"", interval: float = 0.25) -> float | None:
    """Send `trickle` a byte at a time every `interval` (then nothing) while reading until the server closes;
    the seconds the connection stayed open, or None if it was still open after `limit`."""
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < limit:
        if trickle:
            try:
                sock.send(trickle[:1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            trickle = trickle[1:]
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - started
            if not chunk:
                return time.monotonic() - started
            received += chunk
    return None


def delivery_bytes() -> bytes:
    body = example_for_topic("orders/create")
    head = (f"POST /webhooks/genstore HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"X-Genstore-Topic: orders/create\r\nX-Genstore-Shop-Domain: acme.genmystore.com\r\n"
            f"X-Genstore-Event-Id: {uuid.uuid4()}\r\n"
            f"X-Genstore-Hmac-Sha256: {genstore_signature(secret_bytes(SECRET), body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def response_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before answering"
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_connection_that_sends_nothing_is_closed(web):
    with connect(web) as sock:
        took = open_for(sock, HEADER_TIMEOUT + SLACK)
    assert took is not None and HEADER_TIMEOUT - 0.3 <= took, took


def test_headers_sent_a_byte_at_a_time_are_cut_off(web):
    with connect(web) as sock:
        took = open_for(sock, HEADER_TIMEOUT + SLACK, trickle=delivery_bytes())
    assert took is not None and HEADER_TIMEOUT - 0.3 <= took, took


def test_a_body_sent_a_byte_at_a_time_is_cut_off(web):
    data = delivery_bytes()
    head, body = data.split(b"\r\n\r\n", 1)
    with connect(web) as sock:
        sock.sendall(head + b"\r\n\r\n")
        took = open_for(sock, BODY_TIMEOUT + SLACK, trickle=body)
    assert took is not None and BODY_TIMEOUT - 0.3 <= took, took


def test_an_idle_keep_alive_connection_is_closed_and_a_second_slow_request_too(web):
    with connect(web) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert response_status(sock) == 200
        took = open_for(sock, KEEPALIVE_TIMEOUT + SLACK)
    assert took is not None and took >= KEEPALIVE_TIMEOUT - 0.3, took
    with connect(web) as sock:  # the header limit holds for a later request on the same connection
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert response_status(sock) == 200
        took = open_for(sock, HEADER_TIMEOUT + SLACK, trickle=delivery_bytes(), interval=0.2)
    assert took is not None and took >= HEADER_TIMEOUT - 0.3, took


def test_deliveries_are_answered_while_slow_clients_hang_on(web):
    slow = [connect(web) for _ in range(5)]
    try:
        for s in slow[:3]:
            s.sendall(b"POST /webhooks/genstore HTTP/1.1\r\nHost: te")
        for s in slow[3:]:
            s.sendall(delivery_bytes()[:-10])
        for _ in range(3):  # normal deliveries, and one that pauses briefly inside its body
            with connect(web) as sock:
                sock.sendall(delivery_bytes())
                assert response_status(sock) == 202
        with connect(web) as sock:
            data = delivery_bytes()
            sock.sendall(data[:-5])
            time.sleep(min(HEADER_TIMEOUT, BODY_TIMEOUT) - 1)
            sock.sendall(data[-5:])
            assert response_status(sock) == 202
    finally:
        for s in slow:
            s.close()
