"""BigCommerce, as a platform: verification, the envelope's triage, the V2 Orders API client and hydration.

Deliveries are thin envelopes (the pure side is `schemas.bigcommerce`). The receiver verifies them (Standard
Webhooks signed with the app's client secret, and/or a custom header), reads the envelope for the store and the
de-duplication key, and stores them. The worker then *hydrates* each event: it reads the order, its products and
its shipping addresses from the V2 API of the store (registered with `orderhooks shops add
store-HASH.mybigcommerce.com --platform bigcommerce --token T`), keeps that answer on the event (field
`hydrated`) and applies the canonical order it maps to.

The V2 API's quota belongs to the store and is shared by every app on it, so it is kept in Redis (requests left
and when the window resets, from `X-Rate-Limit-Requests-Left` / `X-Rate-Limit-Time-Reset-Ms`): every request of
every worker takes one request from it first, and none is sent while it is spent. Events are hydrated
concurrently, at most `PER_STORE` requests in flight per store in a worker process.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import structlog
from redis import Redis

from orderhooks.config import ConfigError, Settings
from platforms import HydrateFailure, Platform
from schemas import NormalizedEvent, Projection, order_view
from schemas import bigcommerce as bc
from storage.keys import Keys
from storage.projection import read_projection
from storage.status import Status

__all__ = ["PLATFORM", "BigCommerceClient", "BigCommerceError", "Quota", "V2Error", "accept", "hydrate"]

log = structlog.get_logger("orderhooks.bigcommerce")

NAME = "bigcommerce"
ARCHIVED = '{"archived": true}'  # kept as the hydrated form of an order the API answered 404 for
PER_STORE = 8  # requests in flight per store, per worker process
PAGE_LIMIT = 250
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
UNSTATED = 10**6  # requests left when an answer states no quota
PROBE_MS = 2000  # while a store's quota is unknown, one request at a time, each given this long to answer
MAX_QUOTA_WAIT = 60.0  # a quota spent for longer than this fails the attempt (retried later), not the thread


# -- intake ------------------------------------------------------------------------------------------------------

def verify(headers: Mapping[str, str], body: bytes, settings: Settings) -> str | None:
    """Raise VerificationError unless authentic; return the `webhook-id` when Standard Webhooks verified it.

    With client secrets configured a valid Standard Webhooks signature is required (a stale timestamp is
    refused), and the custom header must match too when it is set; with only the header, it alone decides."""
    from receiver.verify import VerificationError, verify_standard

    msg_id = None
    if settings.bigcommerce_secret_keys:
        msg_id = verify_standard(headers, body, settings.bigcommerce_secret_keys, settings.tolerance)
    if settings.bigcommerce_header is not None:
        name, expected = settings.bigcommerce_header
        given = headers.get(name)
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise VerificationError(f"missing or wrong {name} header")
    return msg_id


def triage(body: bytes) -> tuple[Status, str | None, str | None]:
    """(status, order id, error) of a stored envelope, as `accept` decides it (a replay asks again)."""
    try:
        env = bc.parse_envelope(body)
    except bc.EnvelopeError as exc:
        return Status.QUARANTINED, None, str(exc)
    if env.scope not in bc.PROCESSED_SCOPES:
        return Status.IGNORED, env.order_id, f"scope {env.scope!r} is not processed"
    if env.order_id is None:
        return Status.QUARANTINED, None, "data.id: missing"
    return Status.QUEUED, env.order_id, None


def accept(headers: Mapping[str, str], body: bytes, settings: Settings, recorded: dict[str, str]):
    """Verify a delivery and triage its envelope into a Delivery (not stored yet).

    The shop is `store-{hash}.mybigcommerce.com` from `producer`; the de-duplication key is `webhook-id`, else
    `{scope}:{data.id}:{hash}:{created_at}`. Processed scopes are queued; other scopes are ignored; an envelope
    that does not parse, or has no producer, is quarantined under `sha256:<hex of the body>`, one without
    `data.id` with the reason `data.id: missing`."""
    from storage.intake import Delivery

    msg_id = verify(headers, body, settings)
    try:
        env = bc.parse_envelope(body)
    except bc.EnvelopeError as exc:
        return Delivery(id=msg_id or "sha256:" + hashlib.sha256(body).hexdigest(), topic="", shop="", raw=body,
                        headers=recorded, status=Status.QUARANTINED, error=str(exc), platform=NAME)
    status, order_id, error = triage(body)
    return Delivery(id=msg_id or env.dedup_key, topic=env.scope, shop=env.shop, raw=body, headers=recorded,
                    platform=NAME, order_id=order_id, status=status, error=error)


# -- the V2 API ----------------------------------------------------------------------------------------------------

class BigCommerceError(Exception):
    """A V2 request that failed; the message says what and where, never the token."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class V2Error(BigCommerceError):
    def __init__(self, status: int, method: str, url: str, message: str = "") -> None:
        retryable = status == 429 or status >= 500
        super().__init__(f"{status} from {method} {url}{': ' + message if message else ''}", retryable)
        self.status = status


class NotFound(V2Error):
    pass


# KEYS: the store's quota hash. ARGV: now (ms), how long a probe may take (ms). Takes one request from the
# quota when it is not spent: returns 0 (go), or the milliseconds to wait. While the quota is unknown (never
# seen, or its window passed) one request goes alone, as a probe, and the others wait for its answer to say
# how many are left: a burst never goes out blind.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local left = tonumber(redis.call('HGET', KEYS[1], 'left') or '')
local reset = tonumber(redis.call('HGET', KEYS[1], 'reset_at') or '')
if left and reset and now >= reset then
  redis.call('HDEL', KEYS[1], 'left', 'reset_at')
  left = nil
end
if not left or not reset then
  local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '')
  if probe and probe > now then return 25 end
  redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 60000)
  return 0
end
if left <= 0 then return reset - now end
redis.call('HINCRBY', KEYS[1], 'left', -1)
return 0
"""

# KEYS: the quota hash. ARGV: requests left, reset time (ms), expiry (ms). Within one window (reset times
# within a second of each other) the smaller count wins: answers arrive out of order.
_RECORD = """
local left = tonumber(ARGV[1])
local reset = tonumber(ARGV[2])
local old_reset = tonumber(redis.call('HGET', KEYS[1], 'reset_at') or '')
local old_left = tonumber(redis.call('HGET', KEYS[1], 'left') or '')
if old_reset and old_left and math.abs(old_reset - reset) < 1000 and old_left < left then left = old_left end
redis.call('HSET', KEYS[1], 'left', left, 'reset_at', reset, 'probe_until', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return left
"""


@dataclass
class Quota:
    """A store's V2 quota, in Redis (`Keys.bigcommerce_quota`), honoured by every worker."""

    redis: Redis
    key: str
    sleep: Callable[[float], None] = time.sleep
    max_wait: float = MAX_QUOTA_WAIT

    def acquire(self) -> None:
        """Take one request from the quota, waiting for the reset while it is spent."""
        waited = 0.0
        while True:
            wait_ms = int(self.redis.eval(_ACQUIRE, 1, self.key, int(time.time() * 1000), PROBE_MS))
            if wait_ms <= 0:
                return
            if waited + wait_ms / 1000 > self.max_wait:
                raise BigCommerceError(f"the store's API quota is spent for {wait_ms / 1000:.1f} s more")
            if wait_ms > 25:
                log.info("bigcommerce_quota_wait", ms=wait_ms)
            self.sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    def record(self, left: int, reset_ms: int) -> None:
        now = int(time.time() * 1000)
        self.redis.eval(_RECORD, 1, self.key, left, now + reset_ms, reset_ms + 60_000)


def _header_int(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


@dataclass
class BigCommerceClient:
    """The V2 Orders API of one store: `X-Auth-Token`, timeouts, the shared quota, retries with backoff and
    jitter for 429s, 5xx and network errors."""

    http: httpx.Client
    shop: str
    api_url: str
    token: str
    quota: Quota
    attempts: int = 4
    base: float = 0.2
    cap: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def get(self, path: str, params: dict | None = None) -> str:
        """The JSON text of a 2xx answer (`[]` for a 204); V2Error / NotFound / BigCommerceError otherwise."""
        url = f"{self.api_url}{path}"
        for attempt in range(1, self.attempts + 1):
            self.quota.acquire()
            try:
                response = self.http.get(url, params=params, headers={"X-Auth-Token": self.token,
                                                                      "Accept": "application/json"})
            except httpx.TimeoutException:
                error: BigCommerceError = BigCommerceError(f"timeout from GET {url}")
            except httpx.HTTPError as exc:
                error = BigCommerceError(f"{type(exc).__name__} from GET {url}")
            else:
                left = _header_int(response, "x-rate-limit-requests-left")
                reset = _header_int(response, "x-rate-limit-time-reset-ms")
                if response.status_code == 429:
                    retry_after = _header_int(response, "retry-after")
                    reset = reset if reset is not None else (retry_after or 1) * 1000
                    self.quota.record(0, reset)
                elif left is not None and reset is not None:
                    self.quota.record(left, reset)
                else:  # an API that states no quota: nothing to wait for, for a second
                    self.quota.record(UNSTATED, 1000)
                if response.status_code == 204:
                    return "[]"
                if response.is_success:
                    try:
                        text = response.content.decode("utf-8")
                        json_loads(text)
                    except ValueError:
                        raise BigCommerceError(f"a body that is not JSON from GET {url}", retryable=True) from None
                    return text
                cls = NotFound if response.status_code == 404 else V2Error
                error = cls(response.status_code, "GET", url)
                if response.status_code == 429:
                    continue  # the quota now says when to go again
            if not error.retryable or attempt == self.attempts:
                raise error
            self.sleep(random.random() * min(self.cap, self.base * 2 ** attempt))
        raise AssertionError("unreachable")

    def _paged(self, path: str) -> str:
        """Every page until a short one, as one JSON array's text (each item's text as the API sent it)."""
        items: list[str] = []
        page = 1
        while True:
            text = self.get(path, {"page": page, "limit": PAGE_LIMIT})
            found = json_loads(text)
            if not isinstance(found, list):
                raise BigCommerceError(f"GET {self.api_url}{path}: expected a JSON array", retryable=False)
            inner = text.strip()[1:-1].strip()
            if inner:
                items.append(inner)
            if len(found) < PAGE_LIMIT:
                return "[" + ",".join(items) + "]"
            page += 1

    def order(self, order_id: str) -> str:
        """`{"order", "products", "shipping_addresses"}` as the API answered them (its JSON text, numbers
        exact); NotFound when the order is archived."""
        order = self.get(f"/orders/{order_id}")
        products = self._paged(f"/orders/{order_id}/products")
        addresses = self._paged(f"/orders/{order_id}/shipping_addresses")
        return f'{{"order": {order}, "products": {products}, "shipping_addresses": {addresses}}}'


def json_loads(text: str | bytes) -> Any:
    from schemas._json import loads

    return loads(text)


# -- hydration -----------------------------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_http: httpx.Client | None = None
_gates: dict[str, threading.BoundedSemaphore] = {}
_lock = threading.Lock()


def _shared() -> tuple[ThreadPoolExecutor, httpx.Client]:
    global _pool, _http
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4 * PER_STORE, thread_name_prefix="bigcommerce")
            _http = httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                                 limits=httpx.Limits(max_connections=4 * PER_STORE),
                                 headers={"User-Agent": "orderhooks"})
        assert _http is not None
        return _pool, _http


def _gate(shop: str) -> threading.BoundedSemaphore:
    with _lock:
        return _gates.setdefault(shop, threading.BoundedSemaphore(PER_STORE))


def client_for(redis: Redis, keys: Keys, settings: Settings, shop: str, http: httpx.Client) -> BigCommerceClient:
    """The store's client; HydrateFailure (final) when the store is not registered for BigCommerce."""
    from storage.shops import TokenUnreadable, get_shop, token

    found = get_shop(redis, keys, shop)
    if found is None or found.platform != NAME:
        return _unregistered(shop)
    try:
        secret = token(redis, keys, settings, shop)
    except (ConfigError, TokenUnreadable) as exc:
        raise _Final(str(exc)) from None
    if secret is None:
        return _unregistered(shop)
    return BigCommerceClient(http, shop, found.api_url, secret, Quota(redis, keys.bigcommerce_quota(shop)))


class _Final(Exception):
    pass


def _unregistered(shop: str):
    raise _Final(f"store {shop} is not registered: orderhooks shops add {shop} --platform bigcommerce "
                 "--token TOKEN, then replay the event")


def _stored_order(redis: Redis, keys: Keys, shop: str, order_id: str) -> bool:
    projection = read_projection(redis.get(keys.order(NAME, shop, order_id)))
    return projection is not None and projection.order is not None


def hydrate(ctx, records: Sequence[Any]) -> dict[str, Any]:
    """Read each event's order from its store's V2 API, concurrently (`PER_STORE` per store).

    Returns, per event ref: the hydrated JSON text to keep on the event; None when there is nothing to apply
    (the API answered 404 for an order never stored: the event is processed and creates nothing); or a
    HydrateFailure (`final` when retrying cannot help: the store is not registered)."""
    pool, http = _shared()
    out: dict[str, Any] = {}
    clients: dict[str, BigCommerceClient | HydrateFailure] = {}
    for rec in records:
        if rec.shop not in clients:
            try:
                clients[rec.shop] = client_for(ctx.redis, ctx.keys, ctx.settings, rec.shop, http)
            except _Final as exc:
                clients[rec.shop] = HydrateFailure(str(exc), final=True)

    def one(rec, client: BigCommerceClient) -> Any:
        with _gate(rec.shop):
            try:
                return client.order(rec.order_id)
            except NotFound:
                if _stored_order(ctx.redis, ctx.keys, rec.shop, rec.order_id):
                    return ARCHIVED
                return None
            except BigCommerceError as exc:
                return HydrateFailure(str(exc), final=not exc.retryable)

    futures = {}
    for rec in records:
        client = clients[rec.shop]
        if isinstance(client, HydrateFailure):
            out[rec.ref] = client
        elif rec.order_id is None:
            out[rec.ref] = HydrateFailure("data.id: missing", final=True)
        else:
            futures[rec.ref] = pool.submit(one, rec, client)
    for ref, future in futures.items():
        try:
            out[ref] = future.result()
        except Exception as exc:  # Redis gone while reading the quota, ...
            out[ref] = HydrateFailure(f"{type(exc).__name__}: {exc}")
    return out


# -- what the rest of orderhooks asks of a platform ---------------------------------------------------------------

def _normalize(topic: str, raw: bytes, hydrated: bytes | str | None) -> NormalizedEvent:
    from schemas import NormalizationError

    data = None
    if hydrated:
        try:
            data = json_loads(hydrated)
        except ValueError as exc:
            raise NormalizationError(f"hydrated order is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise NormalizationError("hydrated order is not a JSON object")
    return bc.normalize(topic, raw, data)


def _view(projection: Projection, shop: str) -> dict | None:
    """The read API's order: `totalRefunded` is V2's `refunded_amount` (in `currency`), no refunds listed."""
    view = order_view(projection, shop)
    if view is None:
        return None
    try:
        refunded = Decimal(str(view.get("refunded_amount") or "0"))
    except InvalidOperation:
        refunded = Decimal(0)
    return {**view, "refunds": [], "totalRefunded": format(refunded, ".2f") if refunded.as_tuple().exponent > -2
            else format(refunded, "f"), "refundedByCurrency": {}}


def _event_details(topic: str, raw: bytes) -> dict[str, Any]:
    try:
        env = bc.parse_envelope(raw)
    except bc.EnvelopeError:
        return {}
    if topic != bc.STATUS_UPDATED:
        return {}
    return {"previous_status_id": env.previous_status_id, "new_status_id": env.new_status_id}


PLATFORM = Platform(
    name=NAME,
    path="/webhooks/bigcommerce",
    configured=lambda settings: settings.bigcommerce_configured,
    accept=accept,
    normalize=_normalize,
    hydrate=hydrate,
    view=_view,
    order_state=lambda order: (bc.is_closed(order), bc.is_cancelled(order)),
    event_details=_event_details,
    retriage=triage,
)
