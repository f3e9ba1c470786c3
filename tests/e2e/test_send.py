"""`orderhooks send` as a user runs it: a fresh example, the outcome awaited and printed, JSON when piped."""

from __future__ import annotations

import json
import subprocess
import sys

from schemas import TOPICS, normalize
from tests.conftest import SECRET
from tests.support.stack import ROOT


def send(stack, *args: str) -> subprocess.CompletedProcess:
    env = stack.env | {"ORDERHOOKS_SECRETS": SECRET}
    return subprocess.run([sys.executable, "-m", "orderhooks.cli", "send", *args, "--url",
                           stack.url + "/webhooks/genstore"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_send_waits_for_the_outcome_and_prints_json_when_piped(stack):
    done = send(stack, "orders/create", "--shop", "send.genmystore.com")
    assert done.returncode == 0, (done.stdout, done.stderr, stack.worker_says())
    [line] = done.stdout.splitlines()
    outcome = json.loads(line)
    assert outcome["httpStatus"] == 202 and outcome["status"] == "processed" and outcome["error"] is None
    event = stack.api(f"/api/events/{outcome['id']}", shop="send.genmystore.com").json()["event"]
    assert event["orderId"] != "1001", "a new order each time"
    assert json.loads(event["raw"])["order"]["email"] == "bob.norman@example.com"


def test_each_send_is_a_new_order_with_current_times_so_an_update_is_not_stale(stack):
    for topic in ("orders/update", "orders/cancelled"):
        done = send(stack, topic, "--shop", "send.genmystore.com")
        outcome = json.loads(done.stdout)
        assert outcome["status"] == "processed", (topic, outcome, stack.worker_says())
    event = stack.api(f"/api/events/{outcome['id']}", shop="send.genmystore.com").json()["event"]
    assert normalize("orders/cancelled", event["raw"]).order.cancelled_at is not None


def test_a_handler_waiting_for_its_retry_is_said_and_exits_1(stack):
    done = send(stack, "orders/paid", "--shop", "send-retry.genmystore.com")
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "retrying", (outcome, stack.worker_says())
    assert outcome["error"].startswith("tests.e2e.handlers_app.flaky_once: ")
    assert done.returncode == 1


def test_a_quarantined_body_says_why(stack, tmp_path):
    """The receiver answers `queued` without reading the body; the worker quarantines it, and `send`, which waits
    for the outcome, says so with the worker's reason."""
    from orderhooks.cli import _outcome_line

    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"order": {"orderId": "1", "updatedAt": "2024-01-01T00:00:00Z", "totalPrice": "abc"}}')
    done = send(stack, "orders/update", "--file", str(bad), "--shop", "send.genmystore.com")
    outcome = json.loads(done.stdout)
    assert outcome["httpStatus"] == 202 and done.returncode == 1
    assert (outcome["status"], outcome["error"]) == ("quarantined", "order.totalPrice: not a decimal amount ('abc')")
    assert _outcome_line(outcome) == "quarantined: order.totalPrice: not a decimal amount ('abc')", "on a terminal"


def test_a_refused_delivery_prints_the_status_and_the_error(stack):
    done = send(stack, "orders/create", "--secret", "not-the-secret-at-all")
    outcome = json.loads(done.stdout)
    assert outcome["httpStatus"] == 401 and outcome["error"].startswith("401: ") and done.returncode == 1


def test_an_unknown_topic_lists_the_valid_ones(stack):
    done = send(stack, "orders/bogus")
    assert done.returncode == 2
    assert all(t in done.stderr for t in TOPICS)


def test_no_wait_prints_the_answer_at_once(stack):
    done = send(stack, "orders/create", "--no-wait", "--shop", "send.genmystore.com")
    outcome = json.loads(done.stdout)
    assert outcome["httpStatus"] == 202 and outcome["status"] == "queued" and done.returncode == 0
