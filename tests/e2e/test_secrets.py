"""`orderhooks web` and its webhook secrets, as a process: an empty key stops it, a short key is warned about."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from orderhooks.config import secret_bytes
from orderhooks.embedded import free_port
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from tests.conftest import SECRET
from tests.support.stack import ROOT, base_env, stop, wait_for

pytestmark = pytest.mark.e2e


def _web(env: dict, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _post(url: str, key: bytes) -> httpx.Response:
    body = example_for_topic("orders/create")
    return httpx.post(url + "/webhooks/genstore", content=body, timeout=10, headers={
        "X-Genstore-Topic": "orders/create", "X-Genstore-Shop-Domain": "acme.genmystore.com",
        "X-Genstore-Event-Id": str(uuid.uuid4()), "X-Genstore-Hmac-Sha256": genstore_signature(key, body),
        "Content-Type": "application/json"})


@pytest.mark.parametrize("secrets", ["whsec_", "whsec_AA==", f"{SECRET},whsec_", f"{SECRET},,{SECRET}"])
def test_an_empty_key_stops_the_receiver(redis_url, secrets):
    proc = _web(base_env(redis_url) | {"ORDERHOOKS_SECRETS": secrets}, free_port())
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("the receiver started with an empty webhook key")
    assert proc.returncode == 2
    assert stderr.startswith("configuration error: ORDERHOOKS_SECRETS: "), stderr
    assert SECRET not in stderr and len(stderr.splitlines()) == 1


def test_a_short_key_starts_with_a_warning_that_names_its_position(redis_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _web(base_env(redis_url) | {"ORDERHOOKS_SECRETS": f"{SECRET},whsec_AQ=="}, port)

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"receiver exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, what="receiver to start")
        assert _post(url, secret_bytes(SECRET)).status_code == 202
        assert _post(url, b"").status_code == 401
        assert _post(url, b"\x01").status_code == 202, "a short key still verifies"
    finally:
        stop(proc)
    stderr = proc.stderr.read()
    warnings = [json.loads(line) for line in stderr.splitlines() if '"weak_secret"' in line]
    assert len(warnings) == 1, stderr
    assert warnings[0]["variable"] == "ORDERHOOKS_SECRETS" and warnings[0]["position"] == 2
    assert warnings[0]["level"] == "warning"
    assert "AQ==" not in stderr and SECRET.removeprefix("whsec_") not in stderr
