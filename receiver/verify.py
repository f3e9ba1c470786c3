"""Signature verification, and nothing else.

Two schemes: Genstore's `X-Genstore-Hmac-Sha256` (base64 HMAC-SHA256 of the
raw body) and Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), signed with the `standardwebhooks` library. If any
`webhook-*` header is present only Standard Webhooks is tried, so a stale
timestamp cannot be bypassed with the other scheme. Any configured secret may
verify (rotation). Comparisons are constant-time. An empty key (or one of
zero bytes only, which HMAC pads to the same key) never verifies: anyone can
sign with it. Settings refuse one at start too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

GENSTORE_HEADER = "x-genstore-hmac-sha256"
SHA256_BYTES = 32
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class VerificationError(Exception):
    """The delivery is not authentic; the message is safe to return (no secret in it)."""


def genstore_signature(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def standard_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64>` as the standardwebhooks library signs it."""
    stamp = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret).sign(msg_id, stamp, body.decode("utf-8"))


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def _no_match(secrets: Sequence[bytes]) -> VerificationError:
    n = len(secrets)
    return VerificationError(f"signature does not match any of the {n} configured secret{'' if n == 1 else 's'} "
                             "(a secret out of date, or the body changed on the way)")


def _verify_genstore(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes]) -> None:
    given = headers.get(GENSTORE_HEADER)
    if not given:
        raise VerificationError("missing signature: the X-Genstore-Hmac-Sha256 header was not sent "
                                "(nor Standard Webhooks headers)")
    if _HEX_DIGEST.fullmatch(given.strip()):
        raise VerificationError("X-Genstore-Hmac-Sha256 is hex where base64 is expected: "
                                "send the base64 of the HMAC-SHA256 digest")
    given_bytes = _b64(given)
    if given_bytes is None:
        raise VerificationError("X-Genstore-Hmac-Sha256 is not base64")
    if len(given_bytes) != SHA256_BYTES:
        raise VerificationError(f"X-Genstore-Hmac-Sha256 decodes to {len(given_bytes)} bytes; "
                                "an HMAC-SHA256 has 32")
    matched = False
    for secret in secrets:  # no early exit: every secret is tried
        expected = hmac.digest(secret, body, "sha256")  # one-shot: OpenSSL's HMAC, no Python HMAC object
        matched |= hmac.compare_digest(expected, given_bytes)
    if not matched:
        raise _no_match(secrets)


def _verify_standard(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], tolerance: int, now: float
) -> str:
    msg_id, stamp, signatures = (headers.get(h, "") for h in STANDARD_HEADERS)
    missing = [h for h, v in zip(STANDARD_HEADERS, (msg_id, stamp, signatures), strict=True) if not v]
    if missing:
        raise VerificationError(
            f"incomplete Standard Webhooks headers: {', '.join(missing)} missing "
            "(need webhook-id, webhook-timestamp, webhook-signature)"
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not a Unix time in seconds") from None
    if abs(now - timestamp) > tolerance:
        off = round(abs(now - timestamp))
        when = "in the past" if timestamp < now else "in the future"
        raise VerificationError(f"webhook-timestamp is outside the tolerance: {off} seconds {when} "
                                f"(at most {tolerance}; check the sender's clock, or a replayed delivery)")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("body is not UTF-8, so it cannot carry a Standard Webhooks signature") from None
    given = []
    hex_seen = False
    for part in signatures.split():
        version, _, sig = part.partition(",")
        if version == "v1" and _HEX_DIGEST.fullmatch(sig):
            hex_seen = True
            continue
        decoded = _b64(sig) if version == "v1" else None
        if decoded is not None:
            given.append(decoded)
    if not given:
        if hex_seen:
            raise VerificationError("webhook-signature is hex where base64 is expected: send v1,<base64>")
        raise VerificationError("webhook-signature has no v1,<base64> signature")
    matched = False
    for secret in secrets:
        expected = _b64(standard_signature(secret, msg_id, timestamp, body).split(",", 1)[1])
        for sig in given:
            matched |= hmac.compare_digest(expected, sig)
    if not matched:
        raise _no_match(secrets)
    return msg_id


def verify(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], tolerance: int = 300,
    now: float | None = None,
) -> str | None:
    """Raise VerificationError unless authentic; return the `webhook-id` under Standard Webhooks.

    `headers` must have lower-case names (Starlette's Headers do).
    """
    secrets = [s for s in secrets if s.strip(b"\0")]  # HMAC pads keys with zeros: b"\0" is the empty key
    if any(h.startswith("webhook-") for h in headers):
        return _verify_standard(headers, body, secrets, tolerance, time.time() if now is None else now)
    _verify_genstore(headers, body, secrets)
    return None


def verify_standard(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], tolerance: int = 300,
                    now: float | None = None) -> str:
    """Standard Webhooks only (another platform's deliveries): raise VerificationError unless authentic;
    return the `webhook-id`."""
    secrets = [s for s in secrets if s.strip(b"\0")]
    return _verify_standard(headers, body, secrets, tolerance, time.time() if now is None else now)
