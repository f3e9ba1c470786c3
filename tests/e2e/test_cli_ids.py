"""Ids are what users copy: tables at 80 columns keep them whole, and a unique prefix is enough."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid

from tests.support.payloads import order_body as with_order
from tests.support.stack import DB, ROOT, db_url


def on_a_terminal(stack, *args: str, columns: int = 80) -> str:
    """Run a command on a pseudo-terminal `columns` wide, as a user at a terminal sees it."""
    leader, follower = pty.openpty()
    env = stack.env | {"COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", *args], env=env, cwd=ROOT, stdout=follower,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_an_80_column_table_never_cuts_an_id(stack):
    shop = "narrow-terminal.genmystore.com"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for n, event_id in enumerate(ids):
        body = with_order("orders/partiallyFulfilled", f"90000000{n}", "2024-05-01T10:00:00Z")
        assert stack.post("orders/partiallyFulfilled", body, event_id=event_id, shop=shop).status_code == 202
    for event_id in ids:
        stack.wait_status(event_id, "processed")
    shown = on_a_terminal(stack, "events", "--shop", shop)
    for event_id in ids:
        assert event_id in shown, shown
    assert shop in shown and "900000000" in shown
    orders = on_a_terminal(stack, "orders", "--shop", shop)
    assert "900000001" in orders and shop in orders, orders


def test_a_unique_prefix_finds_the_event_and_an_ambiguous_one_lists_them(stack):
    shop = "prefix.genmystore.com"
    event_id = "pfx-" + uuid.uuid4().hex
    assert stack.post("orders/create", event_id=event_id, shop=shop).status_code == 202
    stack.wait_status(event_id, "processed")
    done = stack.cli("event", event_id[:12])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == event_id
    other = event_id[:12] + "zzz"
    assert stack.post("orders/create", event_id=other, shop=shop).status_code == 202
    ambiguous = stack.cli("event", event_id[:12])
    assert ambiguous.returncode == 2 and event_id in ambiguous.stderr and other in ambiguous.stderr
    assert stack.cli("event", event_id).returncode == 0, "an exact id beats prefixes"
    assert stack.cli("event", "no-such-prefix-" + uuid.uuid4().hex).returncode == 1


def test_a_unique_prefix_finds_the_order(stack):
    shop = "prefix-orders.genmystore.com"
    body = with_order("orders/create", "777123456789", "2024-05-01T10:00:00Z")
    event_id = str(uuid.uuid4())
    assert stack.post("orders/create", body, event_id=event_id, shop=shop).status_code == 202
    stack.wait_status(event_id, "processed")
    done = stack.cli("order", "777123", "--shop", shop)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orderId"] == "777123456789"


def test_replay_says_what_it_needs_and_when_there_is_nothing_to_do(stack):
    env = stack.env | {"REDIS_URL": db_url(stack.env["REDIS_URL"], DB["replay_cli"])}
    bare = subprocess.run([sys.executable, "-m", "orderhooks.cli", "replay"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "an event id" in bare.stderr and "--status" in bare.stderr
    nothing = subprocess.run([sys.executable, "-m", "orderhooks.cli", "replay", "--status", "failed"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 0 and "nothing to replay: no event is failed" in nothing.stdout
