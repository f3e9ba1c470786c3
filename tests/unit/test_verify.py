"""Signature verification: failures first."""

import base64
import time

import pytest

from orderhooks.config import secret_bytes
from receiver.verify import VerificationError, genstore_signature, standard_signature, verify

BODY = b'{"order": {"orderId": "1001"}}'
KEY = secret_bytes("whsec_" + base64.b64encode(b"k" * 24).decode())
OTHER = secret_bytes("plain-text-secret")


def genstore_headers(key=KEY, body=BODY):
    return {"x-genstore-hmac-sha256": genstore_signature(key, body)}


def standard_headers(key=KEY, body=BODY, stamp=None, msg_id="msg_1"):
    stamp = int(time.time()) if stamp is None else stamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": standard_signature(key, msg_id, stamp, body)}


def test_missing_signature_is_refused():
    with pytest.raises(VerificationError, match="missing signature"):
        verify({}, BODY, [KEY])


def test_wrong_signature_is_refused():
    with pytest.raises(VerificationError, match="does not match"):
        verify(genstore_headers(OTHER), BODY, [KEY])


def test_tampered_body_is_refused():
    with pytest.raises(VerificationError):
        verify(genstore_headers(), BODY + b" ", [KEY])


def test_non_base64_signature_is_refused():
    with pytest.raises(VerificationError, match="base64"):
        verify({"x-genstore-hmac-sha256": "not base64!!"}, BODY, [KEY])


def test_good_genstore_signature():
    assert verify(genstore_headers(), BODY, [KEY]) is None


def test_rotation_any_secret_verifies():
    assert verify(genstore_headers(OTHER), BODY, [KEY, OTHER]) is None
    assert verify(genstore_headers(KEY), BODY, [OTHER, KEY]) is None


def test_whsec_secret_is_used_as_decoded_bytes():
    raw = b"k" * 24
    headers = {"x-genstore-hmac-sha256": genstore_signature(raw, BODY)}
    assert verify(headers, BODY, [KEY]) is None


def test_standard_webhooks_good():
    assert verify(standard_headers(), BODY, [KEY]) == "msg_1"


def test_standard_webhooks_stale_timestamp_is_refused():
    with pytest.raises(VerificationError, match="tolerance"):
        verify(standard_headers(stamp=int(time.time()) - 301), BODY, [KEY], tolerance=300)


def test_standard_webhooks_future_timestamp_is_refused():
    with pytest.raises(VerificationError, match="tolerance"):
        verify(standard_headers(stamp=int(time.time()) + 600), BODY, [KEY], tolerance=300)


def test_standard_webhooks_wrong_secret_and_garbage_signatures():
    headers = standard_headers(OTHER)
    with pytest.raises(VerificationError):
        verify(headers, BODY, [KEY])
    headers["webhook-signature"] = "v1,@@@ v2,abc nonsense"
    with pytest.raises(VerificationError):
        verify(headers, BODY, [KEY])


def test_standard_webhooks_several_signatures_one_matches():
    good = standard_headers()
    good["webhook-signature"] = "v1,AAAA " + good["webhook-signature"]
    assert verify(good, BODY, [KEY]) == "msg_1"


def test_a_webhook_header_forces_standard_scheme():
    """A valid Genstore HMAC cannot bypass a stale Standard Webhooks timestamp."""
    headers = standard_headers(stamp=int(time.time()) - 3600) | genstore_headers()
    with pytest.raises(VerificationError, match="tolerance"):
        verify(headers, BODY, [KEY])
    with pytest.raises(VerificationError, match="incomplete"):
        verify({"webhook-id": "x"} | genstore_headers(), BODY, [KEY])


def test_standard_webhooks_non_utf8_body_is_refused():
    body = b"\xff\xfe"
    headers = {"webhook-id": "m", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"}
    with pytest.raises(VerificationError, match="UTF-8"):
        verify(headers, body, [KEY])
