"""The command line as a user runs it: each command a process of its own, against a real receiver and Redis.

The stack here has no worker running: `orderhooks worker --burst` applies what was sent, as a user
draining a queue by hand would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from storage.events import unpack_body
from storage.keys import GENSTORE, Keys, event_ref
from tests.conftest import SECRET
from tests.support.payloads import order_body
from tests.support.stack import DB, ROOT, free_port, run_cli, running_stack, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cli_stack(redis_url):
    with running_stack(redis_url, DB["cli"], worker=False, COLUMNS="250") as stack:  # tables unwrapped
        yield stack


def shop() -> str:
    return f"cli{uuid.uuid4().hex[:8]}.genmystore.com"


def send(stack, *args: str) -> subprocess.CompletedProcess:
    return stack.cli("send", *args, "--url", stack.url + "/webhooks/genstore", "--secret", SECRET, "--no-wait")


def burst(stack) -> None:
    try:
        done = stack.cli("worker", "--burst", timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"burst worker hung: {exc.stderr}") from None
    assert done.returncode == 0, done.stderr
    assert not stack.api("/api/events", status="queued").json()["events"], "a burst worker drains the queue"


def as_json(done: subprocess.CompletedProcess):
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_send_a_file_with_an_event_id_then_read_it_back(cli_stack, tmp_path):
    s, event_id = shop(), f"cli-{uuid.uuid4()}"
    payload = tmp_path / "order.json"
    payload.write_bytes(order_body("orders/create", "501", "2024-06-01T10:00:00Z", note="from a file"))
    done = send(cli_stack, "orders/create", "--file", str(payload), "--shop", s, "--event-id", event_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "202" in done.stdout and event_id in done.stdout
    again = send(cli_stack, "orders/create", "--file", str(payload), "--shop", s, "--event-id", event_id)
    assert again.returncode == 0 and "duplicate" in again.stdout
    event = as_json(cli_stack.cli("event", event_id))
    assert event["raw"].encode() == payload.read_bytes(), "the file is sent byte for byte"
    assert (event["id"], event["shop"], event["status"]) == (event_id, s, "queued")
    burst(cli_stack)
    event = as_json(cli_stack.cli("event", event_id))
    assert event["status"] == "processed"
    assert event["handlers"]["tests.e2e.handlers_app.record_everything"]["status"] == "ok"
    order = as_json(cli_stack.cli("order", "501", "--shop", s))
    assert (order["orderId"], order["note"], order["shop"]) == ("501", "from a file", s)


def test_a_body_is_stored_compressed_and_event_raw_prints_it_byte_for_byte(cli_stack, tmp_path):
    s, event_id = shop(), f"cli-raw-{uuid.uuid4()}"
    payload = tmp_path / "order.json"
    body = order_body("orders/create", "502", "2024-06-01T10:00:00Z", note="caf\u00e9 \u2615")
    payload.write_bytes(body + b"\n")  # a trailing newline is part of the body too
    assert send(cli_stack, "orders/create", "--file", str(payload), "--shop", s, "--event-id", event_id).returncode == 0
    ref = event_ref(GENSTORE, s, event_id)
    stored, encoding = cli_stack.redis.get(Keys().body(ref)), cli_stack.redis.hget(Keys().event(ref), "encoding")
    assert encoding == b"zstd:orders-1" and len(stored) < len(body) * 0.5, "compressed with the orders dictionary"
    headers, raw = unpack_body(stored, encoding)
    assert raw == payload.read_bytes() and headers["x-genstore-event-id"] == event_id
    done = subprocess.run([sys.executable, "-m", "orderhooks.cli", "event", event_id, "--shop", s, "--raw"],
                          env=cli_stack.env, cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == payload.read_bytes(), "the body as received, not the stored bytes"


def test_send_with_the_standard_webhooks_scheme(cli_stack):
    s, msg_id = shop(), f"msg_{uuid.uuid4().hex}"
    done = send(cli_stack, "orders/update", "--scheme", "standard", "--event-id", msg_id, "--shop", s)
    assert done.returncode == 0, done.stdout + done.stderr
    event = cli_stack.event(msg_id)
    assert event["headers"]["webhook-id"] == msg_id and event["headers"]["webhook-signature"] == "****"
    assert "x-genstore-hmac-sha256" not in event["headers"]


def test_send_refused_exits_1_and_says_why(cli_stack):
    done = cli_stack.cli("send", "orders/create", "--url", cli_stack.url + "/webhooks/genstore",
                         "--secret", "not-the-secret")
    assert done.returncode == 1
    assert "401" in done.stdout and "signature does not match" in done.stdout
    gone = cli_stack.cli("send", "orders/create", "--url", f"http://127.0.0.1:{free_port()}/webhooks/genstore",
                         "--secret", SECRET)
    assert gone.returncode == 1 and "could not reach" in gone.stderr


def test_events_filters(cli_stack):
    s = shop()
    sent = {}
    for topic, order_id in (("orders/create", "601"), ("orders/update", "601"), ("orders/create", "602")):
        event_id = f"ev-{uuid.uuid4()}"
        assert send(cli_stack, topic, "--file", _file(cli_stack, topic, order_id), "--shop", s,
                    "--event-id", event_id).returncode == 0
        sent[(topic, order_id)] = event_id
    bad = f"bad-{uuid.uuid4()}"
    sent_bad = send(cli_stack, "orders/create", "--file", _raw_file(b"{not json"), "--shop", s, "--event-id", bad)
    assert sent_bad.returncode == 0 and "queued" in sent_bad.stdout, "the receiver does not read the body"
    burst(cli_stack)  # the worker normalizes: it quarantines `bad` and indexes the others by order

    def listed(*args):
        return [e["id"] for e in as_json(cli_stack.cli("events", "--shop", s, "--json", *args))]

    every = listed()
    assert set(every) == {*sent.values(), bad} and len(every) == 4
    assert every[0] == bad, "newest first"
    assert set(listed("--topic", "orders/create")) == {sent[("orders/create", "601")], sent[("orders/create", "602")],
                                                       bad}
    assert set(listed("--order", "601")) == {sent[("orders/create", "601")], sent[("orders/update", "601")]}
    assert listed("--status", "quarantined") == [bad]
    assert listed("--topic", "orders/update", "--order", "601") == [sent[("orders/update", "601")]]
    assert len(listed("--limit", "2")) == 2
    table = cli_stack.cli("events", "--shop", s, "--status", "quarantined")
    assert table.returncode == 0 and "quarantined" in table.stdout and bad in table.stdout


def test_event_and_order_that_do_not_exist_exit_1(cli_stack):
    missing = cli_stack.cli("event", "no-such-event")
    assert missing.returncode == 1 and "event no-such-event not found" in missing.stderr
    missing = cli_stack.cli("order", "no-such-order", "--shop", shop())
    assert missing.returncode == 1 and "order no-such-order not found" in missing.stderr


def test_orders_filters(cli_stack):
    s = shop()
    for order_id, financial, closed in (("701", "paid", None), ("702", "pending", None),
                                        ("703", "paid", "2024-06-02T00:00:00Z")):
        body = order_body("orders/update", order_id, "2024-06-01T00:00:00Z", financialStatus=financial,
                          closedAt=closed, cancelledAt=None)
        assert send(cli_stack, "orders/update", "--file", _raw_file(body), "--shop", s).returncode == 0
    burst(cli_stack)

    def listed(*args):
        return [o["orderId"] for o in as_json(cli_stack.cli("orders", "--shop", s, "--json", *args))]

    assert listed() == ["701", "702", "703"]
    assert listed("--financial-status", "paid") == ["701", "703"]
    assert listed("--status", "open") == ["701", "702"]
    assert listed("--status", "closed") == ["703"]
    assert listed("--since-id", "701") == ["702", "703"]
    assert listed("--limit", "1") == ["701"]
    assert listed("--financial-status", "paid", "--status", "open") == ["701"]
    table = cli_stack.cli("orders", "--shop", s)
    assert table.returncode == 0 and all(i in table.stdout for i in ("701", "702", "703"))


def test_replay_by_status_and_by_id(cli_stack):
    s = shop()
    assert cli_stack.cli("replay").returncode == 2
    both = cli_stack.cli("replay", "x", "--status", "failed")
    assert both.returncode == 2 and "not both" in both.stderr
    assert cli_stack.cli("replay", "no-such-event").returncode == 1
    unprocessable = f"q-{uuid.uuid4()}"
    assert send(cli_stack, "orders/create", "--file", _raw_file(b"[1, 2"), "--shop", s,
                "--event-id", unprocessable).returncode == 0, "queued: the receiver does not read the body"
    burst(cli_stack)
    assert cli_stack.event(unprocessable)["status"] == "quarantined"
    done = cli_stack.cli("replay", "--status", "quarantined")
    assert done.returncode == 0, done.stderr
    assert unprocessable in done.stdout
    event = cli_stack.event(unprocessable)
    assert event["status"] == "quarantined" and "JSON" in event["error"], "still unprocessable: still quarantined"
    processed = f"p-{uuid.uuid4()}"
    assert send(cli_stack, "orders/create", "--shop", s, "--event-id", processed).returncode == 0
    burst(cli_stack)
    again = cli_stack.cli("replay", processed)
    assert again.returncode == 0 and "nothing to replay" in again.stdout
    assert cli_stack.event(processed)["status"] == "processed"


def _file(stack, topic: str, order_id: str) -> str:
    return _raw_file(order_body(topic, order_id))


def _raw_file(body: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    return f.name


def test_dev_starts_everything_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "ORDERHOOKS_SECRETS", "ORDERHOOKS_API_TOKEN", "ORDERHOOKS_HANDLERS")}
    env |= {"PORT": str(port), "ORDERHOOKS_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
            "ORDERHOOKS_LOG_FORMAT": "json", "ORDERHOOKS_LOG_LEVEL": "warning"}
    dev = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "dev"], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=open(tmp_path / "dev.log", "w"), text=True)
    try:
        lines = []
        while not any("Press Ctrl-C" in line for line in lines):
            line = dev.stdout.readline()
            assert line, f"dev exited early ({dev.poll()}): {''.join(lines)}"
            lines.append(line)
        banner = "".join(lines)
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/webhooks/genstore" in banner
        token = (tmp_path / "data" / "dev-token").read_text().strip()
        assert token in banner and (tmp_path / "data" / "dev-secret").read_text().strip() in banner

        def up():
            try:
                return httpx.get(url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, what="the dev receiver")
        sent = run_cli(env, "send", "orders/create", "--event-id", "dev-1", cwd=tmp_path)  # the dev secret
        assert sent.returncode == 0 and "202" in sent.stdout, sent.stdout + sent.stderr

        def processed():
            r = httpx.get(url + "/api/events/dev-1", headers={"X-Genstore-Access-Token": token}, timeout=5)
            return r.status_code == 200 and r.json()["event"]["status"] == "processed"

        wait_for(processed, 30, what="the dev worker to apply the event")
        listed = run_cli(env, "events", "--json", cwd=tmp_path)  # finds the dev Redis by itself
        assert [e["id"] for e in json.loads(listed.stdout)] == ["dev-1"]
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert not (tmp_path / "data" / "redis.url").exists(), "the embedded Redis was stopped"
    gone = run_cli(env, "events", cwd=tmp_path)
    assert gone.returncode == 2 and "REDIS_URL" in gone.stderr


def test_replay_of_an_event_quarantined_by_a_buggy_release_after_the_fix(cli_stack):
    s, event_id = shop(), f"bug-{uuid.uuid4()}"
    body = order_body("orders/create", "4001", "2024-06-01T00:00:00Z", note="bug-trigger")
    assert send(cli_stack, "orders/create", "--file", _raw_file(body), "--shop", s,
                "--event-id", event_id).returncode == 0
    buggy = subprocess.run([sys.executable, "-m", "tests.e2e.buggy_worker", "worker", "--burst"],
                           env=cli_stack.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert buggy.returncode == 0, buggy.stderr
    event = cli_stack.event(event_id)
    assert event["status"] == "quarantined" and event["error"] == "simulated normalization bug in this release"
    assert event_id in [e["id"] for e in as_json(cli_stack.cli("events", "--status", "quarantined", "--json"))]
    done = cli_stack.cli("replay", event_id, "--shop", s)
    assert done.returncode == 0, done.stderr
    burst(cli_stack)  # the fixed release
    event = cli_stack.event(event_id)
    assert (event["status"], event["error"], event["orderId"]) == ("processed", None, "4001")
    assert as_json(cli_stack.cli("order", "4001", "--shop", s))["note"] == "bug-trigger"
    assert event["handlers"]["tests.e2e.handlers_app.record_everything"]["status"] == "ok"
