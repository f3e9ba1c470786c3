"""Signature verification: failures first."""

import base64
import hashlib
import hmac
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


def test_an_empty_key_never_verifies():
    """Were an empty key configured, HMAC under it is computable by anyone: it must match nothing."""
    empty = b""
    with pytest.raises(VerificationError, match="does not match"):
        verify(genstore_headers(empty), BODY, [empty])
    with pytest.raises(VerificationError, match="does not match"):  # HMAC pads a key with zeros: the same key
        verify(genstore_headers(empty), BODY, [b"\x00\x00"])
    stamp = int(time.time())
    mac = hmac.new(empty, f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()
    signed = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
              "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    with pytest.raises(VerificationError, match="does not match"):
        verify(signed, BODY, [empty, OTHER])
    assert verify(standard_headers(OTHER), BODY, [empty, OTHER]) == "msg_1"
    assert verify(genstore_headers(OTHER), BODY, [empty, OTHER]) is None


# Refusal reasons say what to fix (they are shown to the sender and kept with the refused delivery).

def test_reason_names_the_missing_genstore_header():
    with pytest.raises(VerificationError, match="X-Genstore-Hmac-Sha256 header was not sent"):
        verify({}, BODY, [KEY])


def test_reason_says_hex_where_base64_is_expected():
    hex_sig = hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    with pytest.raises(VerificationError, match="hex where base64 is expected"):
        verify({"x-genstore-hmac-sha256": hex_sig}, BODY, [KEY])
    h = standard_headers()
    h["webhook-signature"] = "v1," + hex_sig
    with pytest.raises(VerificationError, match="hex where base64 is expected"):
        verify(h, BODY, [KEY])


def test_reason_counts_the_secrets_tried():
    with pytest.raises(VerificationError, match="any of the 2 configured secrets"):
        verify(genstore_headers(b"x" * 20), BODY, [KEY, OTHER])
    with pytest.raises(VerificationError, match="any of the 1 configured secret "):
        verify(standard_headers(OTHER), BODY, [KEY])


def test_reason_says_how_far_off_the_timestamp_is():
    now = time.time()
    with pytest.raises(VerificationError, match=r"412 seconds in the past \(at most 300"):
        verify(standard_headers(stamp=int(now) - 412), BODY, [KEY], 300, now=int(now))
    with pytest.raises(VerificationError, match="1000 seconds in the future"):
        verify(standard_headers(stamp=int(now) + 1000), BODY, [KEY], 300, now=int(now))


def test_reason_names_the_missing_standard_header():
    h = standard_headers()
    del h["webhook-timestamp"]
    with pytest.raises(VerificationError, match="webhook-timestamp missing"):
        verify(h, BODY, [KEY])


def test_reason_for_a_digest_of_the_wrong_length():
    with pytest.raises(VerificationError, match="decodes to 3 bytes"):
        verify({"x-genstore-hmac-sha256": base64.b64encode(b"abc").decode()}, BODY, [KEY])


def test_no_reason_gives_a_secret_or_the_signature_away():
    sig = genstore_signature(OTHER, BODY)
    with pytest.raises(VerificationError) as caught:
        verify({"x-genstore-hmac-sha256": sig}, BODY, [KEY])
    text = str(caught.value)
    assert sig not in text and "k" * 24 not in text and base64.b64encode(b"k" * 24).decode() not in text
