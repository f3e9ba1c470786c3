"""The webhook routes: `POST /webhooks/genstore` and each platform's (size → signature → duplicate → store).

A 2xx is sent only once the delivery is durably in Redis. The body is stored as it came: the receiver
does not parse or normalize it (the worker does, and quarantines a body that does not normalize).

These routes are plain ASGI endpoints, the hot path of the receiver: no Request or Response objects. The
headers are read in one pass over `scope["headers"]`, the body from `receive` (never past the size limit),
and each answer is one `http.response.start` with pre-encoded headers and one `http.response.body`. An
exception nobody expected still answers a JSON 503 with `Retry-After` (the sender retries), never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from json.encoder import encode_basestring  # JSON string literal, non-ASCII kept as json.dumps(ensure_ascii=False)
from typing import Any

import redis
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from receiver import metrics
from receiver.verify import VerificationError, verify
from storage import notices
from storage.intake import Delivery, make_delivery
from storage.keys import GENSTORE
from storage.status import Status

log = structlog.get_logger("orderhooks.intake")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

RETRY_AFTER = "5"
# Every delivery is answered within 5 s of its body: what is not stored by then gets a 503 (a sender's
# timeout would make it retry anyway, without knowing).
ANSWER_WITHIN = 4.5
RECORDED_HEADERS = (
    "x-genstore-topic", "x-genstore-shop-domain", "x-genstore-event-id", "x-genstore-webhook-id",
    "x-genstore-triggered-at", "x-genstore-api-version", "webhook-id", "webhook-timestamp",
    "content-type", "user-agent",
)
MASKED_HEADERS = ("x-genstore-hmac-sha256", "webhook-signature")
SINGLE_HEADERS = (
    "x-genstore-topic", "x-genstore-shop-domain", "x-genstore-event-id", "x-genstore-webhook-id",
    "x-genstore-hmac-sha256", "webhook-id", "webhook-timestamp", "webhook-signature",
)
_SINGLE_RANK = {name: i for i, name in enumerate(SINGLE_HEADERS)}

MAX_HEADER_BYTES = 32 * 1024


# -- reading a request ---------------------------------------------------------------------------------------

class Headers:
    """What the webhook routes need of a request's headers, from one pass over `scope["headers"]`.

    `first` maps each (lower-case) name to its first value decoded as Latin-1, as Starlette's `Headers`
    would give it (`verify` and the platforms read that mapping); `text` reads a value as UTF-8."""

    __slots__ = ("first", "raw", "size", "twice")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        first: dict[str, str] = {}
        size = 0
        twice = None
        for key, value in raw:
            size += len(key) + len(value)
            name = key.decode("latin-1")
            if name in first:
                rank = _SINGLE_RANK.get(name)
                if rank is not None and (twice is None or rank < _SINGLE_RANK[twice]):
                    twice = name
            else:
                first[name] = value.decode("latin-1")
        self.raw = raw
        self.first = first
        self.size = size
        self.twice = twice  # the first of SINGLE_HEADERS sent more than once (which copy counts would be a guess)

    def text(self, name: str, strict: bool = False) -> str | None:
        """A header's first value decoded as UTF-8, trimmed; None when absent (or, if `strict`, not UTF-8).

        Starlette decodes headers as Latin-1, which turns a UTF-8 shop domain into mojibake. Bytes that
        are not UTF-8 are read as Latin-1 unless `strict`, so that an id still reads back byte for byte.
        """
        value = self.first.get(name)
        if value is None or value.isascii():
            return value if value is None else value.strip()
        try:
            return value.encode("latin-1").decode("utf-8").strip()
        except UnicodeDecodeError:
            return None if strict else value.strip()

    def too_large(self) -> bool:
        """Genstore's headers are a few hundred bytes; refuse anything far beyond (the body has its own limit)."""
        return self.size > MAX_HEADER_BYTES

    def declared_size(self) -> int | None:
        declared = self.first.get("content-length", "")
        return int(declared) if declared.isdigit() else None

    def recorded(self) -> dict[str, str]:
        """The headers kept with a stored event: the first value of each, signatures masked."""
        first = self.first
        kept = {k: first[k] for k in RECORDED_HEADERS if k in first}
        for k in MASKED_HEADERS:
            if k in first:
                kept[k] = "****"
        return kept


class BodyTooLarge(Exception):
    pass


class ClientDisconnect(Exception):
    pass


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """Read at most `limit` bytes; stop reading (and raise) as soon as the body is larger."""
    declared = headers.declared_size()
    if declared is not None and declared > limit:
        raise BodyTooLarge
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect
    body = message.get("body", b"")
    if len(body) > limit:
        raise BodyTooLarge
    if not message.get("more_body", False):
        return body  # the whole body in one message: the usual case
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def event_id_for(headers: Headers, topic: str, shop: str, body: bytes, standard: bool) -> str:
    """The de-duplication key, kept exactly as sent (keys escape or hash it, never the id itself)."""
    names = ("webhook-id",) if standard else ("x-genstore-event-id", "x-genstore-webhook-id")
    for name in names:
        value = headers.text(name)
        if value:
            return value
    return "sha256:" + hashlib.sha256(f"{topic}\n{shop}\n".encode() + body).hexdigest()


# -- answering -----------------------------------------------------------------------------------------------

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")
_RETRY = (b"retry-after", RETRY_AFTER.encode())


def _json(status: int, body: bytes, *extra: tuple[bytes, bytes]) -> Answer:
    """An answer as Starlette's JSONResponse would send it (compact JSON, UTF-8)."""
    return status, [(b"content-length", str(len(body)).encode()), _JSON, *extra], body


def _status_body(event_id: str, status: str) -> bytes:
    """`{"id": ..., "status": ...}`; the id JSON-escaped (it is whatever the sender sent)."""
    return ('{"id":' + encode_basestring(event_id) + ',"status":"' + status + '"}').encode()


def _quarantined_body(event_id: str, error: str | None) -> bytes:
    escaped = "null" if error is None else encode_basestring(error)
    return ('{"id":' + encode_basestring(event_id) + ',"status":"quarantined","error":' + escaped + "}").encode()


def _error_body(reason: str) -> bytes:
    return ('{"error":' + encode_basestring(reason) + "}").encode()


UNAVAILABLE = _json(503, b'{"error":"storage unavailable, retry later"}', _RETRY)
UNEXPECTED = _json(503, b'{"error":"the delivery could not be taken, retry later"}', _RETRY)

_counters: dict[tuple[str, str], Any] = {}


def count(topic: str, outcome: str) -> None:
    """`orderhooks_deliveries_total{topic, outcome}` + 1, its label child looked up once per process."""
    key = (metrics.topic_label(topic), outcome)
    child = _counters.get(key)
    if child is None:
        child = _counters[key] = metrics.DELIVERIES.labels(topic=key[0], outcome=outcome)
    child.inc()


_refused_counters: dict[int, Any] = {}


def _count_refused(status: int) -> None:
    child = _refused_counters.get(status)
    if child is None:
        child = _refused_counters[status] = metrics.DELIVERIES_REFUSED.labels(status=str(status))
    child.inc()


def _refuse(scope: Scope, headers: Headers, outcome: str, status: int, reason: str, topic: str, shop: str, *,
            body: bytes | None = None, platform: str = GENSTORE, close: bool = False) -> Answer:
    """A refusal before storing: counted by status and kept (`receiver.rejected`) for debugging the sender."""
    _count_refused(status)
    rejected = getattr(scope["app"].state, "rejected", None)
    if rejected is not None:
        rejected.record(status, reason, client=scope.get("client"), headers=headers.raw, platform=platform,
                        body=body, size=headers.declared_size(), topic=topic or None, shop=shop or None,
                        event_id=headers.text("x-genstore-event-id") or headers.text("webhook-id"))
    count(topic, outcome)
    return _json(status, _error_body(reason), _CLOSE) if close else _json(status, _error_body(reason))


async def _submit(state: Any, delivery: Delivery, received: float) -> bool:
    """Store the delivery with its group; TimeoutError past ANSWER_WITHIN of its body's arrival."""
    return await state.writer.submit(delivery, ANSWER_WITHIN - (time.perf_counter() - received))


class StoredLog:
    """The `delivery_stored` log line of queued deliveries, one per group rather than one per delivery: the
    ids answered in one turn of the event loop (a group commit's) go in one line, `count` and `event_ids`.
    A structlog line costs about as much as everything else the receiver does for a delivery."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def add(self, event_id: str) -> None:
        if not self.ids:
            asyncio.get_running_loop().call_soon(self.flush)
        self.ids.append(event_id)

    def flush(self) -> None:
        ids, self.ids = self.ids, []
        if ids:
            log.info("delivery_stored", status=Status.QUEUED, count=len(ids), event_ids=ids)


_stored_log = StoredLog()


class ThrottledLog:
    """Log lines of refusals, at most `per_second` a second: a flood of wrongly signed deliveries must not
    cost the receiver a log line each (every refusal is counted, and recorded in `receiver.rejected`). The
    next line logged says how many were not (`not_logged`)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.second = 0
        self.in_second = 0
        self.not_logged = 0

    def info(self, event: str, **fields: Any) -> None:
        second = int(time.monotonic())
        if second != self.second:
            self.second, self.in_second = second, 0
        self.in_second += 1
        if self.in_second > self.per_second:
            self.not_logged += 1
            return
        if self.not_logged:
            fields["not_logged"], self.not_logged = self.not_logged, 0
        log.info(event, **fields)


REFUSALS_LOGGED = 20  # a second, per receiver process
refusals = ThrottledLog(REFUSALS_LOGGED)


async def _stored(state: Any, delivery: Delivery, context: dict) -> Answer:
    """The answer to a delivery just stored; one quarantined here (no shop) is counted and notified, as the
    worker does for a body that does not normalize."""
    status = delivery.status
    if status == Status.QUEUED:
        _stored_log.add(delivery.id)
        count(delivery.topic, "accepted")
        return _json(202, _status_body(delivery.id, status))
    log.info("delivery_stored", **context, status=status, reason=delivery.error)
    if status == Status.IGNORED:
        count(delivery.topic, "ignored")
        return _json(200, _status_body(delivery.id, status))
    if status == Status.QUARANTINED:
        store = state.store
        await run_in_threadpool(notices.occurred, store.redis, store.keys, state.settings,
                                "events.quarantined", delivery.shop or None, 1,
                                [{"id": delivery.id, "topic": delivery.topic, "order_id": delivery.order_id,
                                  "reason": (delivery.error or "")[:300]}], total=Status.QUARANTINED)
        count(delivery.topic, "quarantined")
        return _json(202, _quarantined_body(delivery.id, delivery.error))
    count(delivery.topic, "accepted")
    return _json(202, _status_body(delivery.id, status))


async def _store(state: Any, delivery: Delivery, context: dict, started: float, received: float) -> Answer:
    try:
        stored = await _submit(state, delivery, received)
    except (redis.RedisError, TimeoutError) as exc:
        log.warning("delivery_unavailable", **context, error=type(exc).__name__, detail=str(exc)[:200])
        count(delivery.topic, "unavailable")
        return UNAVAILABLE
    metrics.ACK_SECONDS.observe(time.perf_counter() - started)
    if not stored:
        log.info("delivery_duplicate", **context)
        count(delivery.topic, "duplicate")
        return _json(200, _status_body(delivery.id, "duplicate"))
    return await _stored(state, delivery, context)


class Refused(Exception):
    """A request refused before its delivery could be verified; `answer` is what the sender is told."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer


class WebhookEndpoint:
    """The ASGI endpoint of one platform's webhook route; `accept` reads a request into its answer."""

    platform = GENSTORE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, headers, body = await self.accept(scope, receive)
        except Refused as refused:
            status, headers, body = refused.answer
        except Exception:  # a bug, not the sender's fault: it retries, and the delivery is not lost
            log.exception("delivery_failed", platform=self.platform)
            count("", "unavailable")
            status, headers, body = UNEXPECTED
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def accept(self, scope: Scope, receive: Receive) -> Answer:
        raise NotImplementedError

    async def read(self, scope: Scope, receive: Receive, headers: Headers, limit: int, topic: str = "",
                   shop: str = "") -> bytes:
        """The body of a request whose headers are within bounds, read to its end; `Refused` for headers too
        large (431), a body over `limit` (413, and the connection closed), a client gone before the end (400)
        or a header that must come once sent twice (400). `topic` and `shop`, when known, go with the refusal."""
        platform = self.platform
        if headers.too_large():
            raise Refused(_refuse(scope, headers, "too_large", 431,
                                  f"request headers larger than {MAX_HEADER_BYTES} bytes", "", "", platform=platform))
        try:
            body = await read_body(receive, headers, limit)
        except BodyTooLarge:
            raise Refused(_refuse(scope, headers, "too_large", 413, f"body larger than {limit} bytes", topic, shop,
                                  platform=platform, close=True)) from None
        except ClientDisconnect:
            raise Refused(_refuse(scope, headers, "disconnected", 400, "client disconnected", topic, shop,
                                  platform=platform)) from None
        if headers.twice:
            raise Refused(_refuse(scope, headers, "bad_request", 400, f"header {headers.twice} sent more than once",
                                  topic, shop, body=body, platform=platform))
        return body


class GenstoreWebhook(WebhookEndpoint):
    """`POST /webhooks/genstore`."""

    async def accept(self, scope: Scope, receive: Receive) -> Answer:
        started = time.perf_counter()
        state = scope["app"].state
        settings = state.settings
        headers = Headers(scope["headers"])
        topic = headers.text("x-genstore-topic") or ""
        shop = (headers.text("x-genstore-shop-domain", strict=True) or "").lower()
        body = await self.read(scope, receive, headers, settings.max_body, topic, shop)
        received = time.perf_counter()
        standard_id = None
        if not settings.insecure_no_verify or settings.secret_keys:
            try:
                standard_id = verify(headers.first, body, settings.secret_keys, settings.tolerance)
            except VerificationError as exc:
                refusals.info("delivery_unauthorized", topic=topic, shop=shop, reason=str(exc))
                return _refuse(scope, headers, "unauthorized", 401, str(exc), topic, shop, body=body)
        event_id = event_id_for(headers, topic, shop, body, standard_id is not None)
        delivery = make_delivery(event_id, topic, shop, body, headers=headers.recorded())
        context = {"event_id": event_id, "topic": topic, "shop": shop}
        return await _store(state, delivery, context, started, received)


class PlatformWebhook(WebhookEndpoint):
    """The webhook route of a platform that triages its own deliveries (`platforms.Platform.accept`):
    size → signature → (envelope) → duplicate → store, with the same answers as Genstore's route. A platform
    whose topic and shop are inside the body (BigCommerce's envelope) reads that much of it, no more: the
    order itself is hydrated and normalized by the worker."""

    def __init__(self, platform) -> None:
        self.of = platform
        self.platform = platform.name

    async def accept(self, scope: Scope, receive: Receive) -> Answer:
        started = time.perf_counter()
        state = scope["app"].state
        settings = state.settings
        name = self.platform
        headers = Headers(scope["headers"])
        body = await self.read(scope, receive, headers, settings.max_body)
        received = time.perf_counter()
        try:
            delivery: Delivery = self.of.accept(headers.first, body, settings, headers.recorded())
        except VerificationError as exc:
            refusals.info("delivery_unauthorized", platform=name, reason=str(exc))
            return _refuse(scope, headers, "unauthorized", 401, str(exc), "", "", body=body, platform=name)
        context = {"platform": name, "event_id": delivery.id, "topic": delivery.topic, "shop": delivery.shop,
                   "order_id": delivery.order_id}
        return await _store(state, delivery, context, started, received)


genstore_webhook = GenstoreWebhook()


def webhook_endpoints(settings) -> dict[str, Any]:
    """The endpoint of each platform's `POST` route (`platforms.NAMES`), by path; a platform that is not
    configured answers 404."""
    import importlib

    from platforms import all_platforms

    endpoints = {}
    for platform in all_platforms():
        if not platform.configured(settings):
            endpoint = _not_configured(platform.name)
        elif platform.endpoint:
            module, _, name = platform.endpoint.partition(":")
            endpoint = getattr(importlib.import_module(module), name)
        else:
            endpoint = PlatformWebhook(platform)
        endpoints[platform.path] = endpoint
    return endpoints


def webhook_routes(endpoints: dict[str, Any]) -> list:
    """One `POST` route per webhook endpoint (any other method answers 405)."""
    from starlette.routing import Route

    return [Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.items()]


def _not_configured(name: str):
    return _Asgi(JSONResponse({"error": f"{name} deliveries are not configured here"}, status_code=404))


class _Asgi:
    """A plain ASGI callable (Starlette's `Route` wraps bare functions as request handlers)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
