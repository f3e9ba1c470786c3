"""`POST /webhooks/genstore`: size → signature → duplicate → topic → shop → store.

A 2xx is sent only once the delivery is durably in Redis. The body is stored as it came: the receiver
does not parse or normalize it (the worker does, and quarantines a body that does not normalize).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import redis
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from receiver import metrics
from receiver.verify import VerificationError, verify
from storage import notices
from storage.intake import Delivery, make_delivery
from storage.keys import GENSTORE
from storage.status import Status

log = structlog.get_logger("orderhooks.intake")

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


MAX_HEADER_BYTES = 32 * 1024


def headers_too_large(request: Request) -> bool:
    """Genstore's headers are a few hundred bytes; refuse anything far beyond (the body has its own limit)."""
    return sum(len(k) + len(v) for k, v in request.scope["headers"]) > MAX_HEADER_BYTES


def duplicated_header(headers) -> str | None:
    """The first header that must appear once but came several times (which copy counts would be a guess)."""
    for name in SINGLE_HEADERS:
        if len(headers.getlist(name)) > 1:
            return name
    return None


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes; stop reading (and raise) as soon as the body is larger."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def header_text(request: Request, name: bytes, strict: bool = False) -> str | None:
    """A header's first value decoded as UTF-8, trimmed; None when absent (or, if `strict`, not UTF-8).

    Starlette decodes headers as Latin-1, which turns a UTF-8 shop domain into mojibake. Bytes that
    are not UTF-8 are read as Latin-1 unless `strict`, so that an id still reads back byte for byte.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            try:
                return value.decode("utf-8").strip()
            except UnicodeDecodeError:
                return None if strict else value.decode("latin-1").strip()
    return None


def event_id_for(request: Request, topic: str, shop: str, body: bytes, standard: bool) -> str:
    """The de-duplication key, kept exactly as sent (keys escape or hash it, never the id itself)."""
    names = (b"webhook-id",) if standard else (b"x-genstore-event-id", b"x-genstore-webhook-id")
    for name in names:
        value = header_text(request, name)
        if value:
            return value
    return "sha256:" + hashlib.sha256(f"{topic}\n{shop}\n".encode() + body).hexdigest()


def recorded_headers(headers) -> dict[str, str]:
    first: dict[str, str] = {}
    for k, v in headers.items():  # one pass; the first value of a repeated header, as headers[k] gives
        first.setdefault(k, v)
    kept = {k: first[k] for k in RECORDED_HEADERS if k in first}
    for k in MASKED_HEADERS:
        if k in first:
            kept[k] = "****"
    return kept


def _answer(outcome: str, status: int, body: dict, topic: str, **extra) -> JSONResponse:
    metrics.DELIVERIES.labels(topic=metrics.topic_label(topic), outcome=outcome).inc()
    return JSONResponse(body, status_code=status, **extra)


def _refuse(request: Request, outcome: str, status: int, reason: str, topic: str, shop: str, *,
            body: bytes | None = None, platform: str = GENSTORE, **extra) -> JSONResponse:
    """A refusal before storing: counted by status and kept (`receiver.rejected`) for debugging the sender."""
    metrics.DELIVERIES_REFUSED.labels(status=str(status)).inc()
    rejected = getattr(request.app.state, "rejected", None)
    if rejected is not None:
        declared = request.headers.get("content-length", "")
        rejected.record(request, status, reason, platform=platform, body=body,
                        size=int(declared) if declared.isdigit() else None, topic=topic or None, shop=shop or None,
                        event_id=header_text(request, b"x-genstore-event-id") or header_text(request, b"webhook-id"))
    return _answer(outcome, status, {"error": reason}, topic, **extra)


async def genstore_webhook(request: Request) -> JSONResponse:
    started = time.perf_counter()
    state = request.app.state
    settings = state.settings
    topic = header_text(request, b"x-genstore-topic") or ""
    shop = (header_text(request, b"x-genstore-shop-domain", strict=True) or "").lower()
    if headers_too_large(request):
        return _refuse(request, "too_large", 431, f"request headers larger than {MAX_HEADER_BYTES} bytes", "", "")
    try:
        body = await read_body(request, settings.max_body)
    except BodyTooLarge:
        return _refuse(request, "too_large", 413, f"body larger than {settings.max_body} bytes", topic, shop,
                       headers={"Connection": "close"})
    except ClientDisconnect:
        return _refuse(request, "disconnected", 400, "client disconnected", topic, shop)
    received = time.perf_counter()
    twice = duplicated_header(request.headers)
    if twice:
        return _refuse(request, "bad_request", 400, f"header {twice} sent more than once", topic, shop, body=body)
    standard_id = None
    if not settings.insecure_no_verify or settings.secret_keys:
        try:
            standard_id = verify(request.headers, body, settings.secret_keys, settings.tolerance)
        except VerificationError as exc:
            log.info("delivery_unauthorized", topic=topic, shop=shop, reason=str(exc))
            return _refuse(request, "unauthorized", 401, str(exc), topic, shop, body=body)
    event_id = event_id_for(request, topic, shop, body, standard_id is not None)
    delivery: Delivery = make_delivery(event_id, topic, shop, body, headers=recorded_headers(request.headers))
    context = {"event_id": event_id, "topic": topic, "shop": shop}
    try:
        stored = await asyncio.wait_for(state.writer.submit(delivery),
                                        ANSWER_WITHIN - (time.perf_counter() - received))
    except (redis.RedisError, TimeoutError) as exc:
        log.warning("delivery_unavailable", **context, error=type(exc).__name__, detail=str(exc)[:200])
        return _answer("unavailable", 503, {"error": "storage unavailable, retry later"}, topic,
                       headers={"Retry-After": RETRY_AFTER})
    metrics.ACK_SECONDS.observe(time.perf_counter() - started)
    if not stored:
        log.info("delivery_duplicate", **context)
        return _answer("duplicate", 200, {"id": event_id, "status": "duplicate"}, topic)
    return await _stored(request, delivery, context)


async def _stored(request: Request, delivery: Delivery, context: dict) -> JSONResponse:
    """The answer to a delivery just stored; one quarantined here (no shop) is counted and notified, as the
    worker does for a body that does not normalize."""
    log.info("delivery_stored", **context, status=delivery.status, reason=delivery.error)
    body = {"id": delivery.id, "status": delivery.status}
    if delivery.status == Status.IGNORED:
        return _answer("ignored", 200, body, delivery.topic)
    if delivery.status == Status.QUARANTINED:
        store = request.app.state.store
        await run_in_threadpool(notices.occurred, store.redis, store.keys, request.app.state.settings,
                                "events.quarantined", delivery.shop or None, 1,
                                [{"id": delivery.id, "topic": delivery.topic, "order_id": delivery.order_id,
                                  "reason": (delivery.error or "")[:300]}], total=Status.QUARANTINED)
        return _answer("quarantined", 202, body | {"error": delivery.error}, delivery.topic)
    return _answer("accepted", 202, body, delivery.topic)


async def platform_webhook(request: Request, platform) -> JSONResponse:
    """The webhook route of a platform that triages its own deliveries (`platforms.Platform.accept`):
    size → signature → (envelope) → duplicate → store, with the same answers as Genstore's route. A platform
    whose topic and shop are inside the body (BigCommerce's envelope) reads that much of it, no more: the
    order itself is hydrated and normalized by the worker."""
    started = time.perf_counter()
    state = request.app.state
    settings = state.settings
    if headers_too_large(request):
        return _refuse(request, "too_large", 431, f"request headers larger than {MAX_HEADER_BYTES} bytes", "", "",
                       platform=platform.name)
    try:
        body = await read_body(request, settings.max_body)
    except BodyTooLarge:
        return _refuse(request, "too_large", 413, f"body larger than {settings.max_body} bytes", "", "",
                       platform=platform.name, headers={"Connection": "close"})
    except ClientDisconnect:
        return _refuse(request, "disconnected", 400, "client disconnected", "", "", platform=platform.name)
    twice = duplicated_header(request.headers)
    if twice:
        return _refuse(request, "bad_request", 400, f"header {twice} sent more than once", "", "", body=body,
                       platform=platform.name)
    try:
        delivery: Delivery = platform.accept(request.headers, body, settings, recorded_headers(request.headers))
    except VerificationError as exc:
        log.info("delivery_unauthorized", platform=platform.name, reason=str(exc))
        return _refuse(request, "unauthorized", 401, str(exc), "", "", body=body, platform=platform.name)
    topic = delivery.topic
    context = {"platform": platform.name, "event_id": delivery.id, "topic": topic, "shop": delivery.shop,
               "order_id": delivery.order_id}
    try:
        stored = await state.writer.submit(delivery)
    except redis.RedisError as exc:
        log.warning("delivery_unavailable", **context, error=type(exc).__name__)
        return _answer("unavailable", 503, {"error": "storage unavailable, retry later"}, topic,
                       headers={"Retry-After": RETRY_AFTER})
    metrics.ACK_SECONDS.observe(time.perf_counter() - started)
    if not stored:
        log.info("delivery_duplicate", **context)
        return _answer("duplicate", 200, {"id": delivery.id, "status": "duplicate"}, topic)
    return await _stored(request, delivery, context)


def webhook_routes(settings) -> list:
    """One `POST` route per platform (`platforms.NAMES`); a platform that is not configured answers 404."""
    import importlib

    from starlette.routing import Route

    from platforms import all_platforms

    routes = []
    for platform in all_platforms():
        if not platform.configured(settings):
            endpoint = _not_configured(platform.name)
        elif platform.endpoint:
            module, _, name = platform.endpoint.partition(":")
            endpoint = getattr(importlib.import_module(module), name)
        else:
            endpoint = _endpoint(platform)
        routes.append(Route(platform.path, endpoint, methods=["POST"]))
    return routes


def _endpoint(platform):
    async def endpoint(request: Request) -> JSONResponse:
        return await platform_webhook(request, platform)
    return endpoint


def _not_configured(name: str):
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"error": f"{name} deliveries are not configured here"}, status_code=404)
    return endpoint
