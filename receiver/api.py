"""The read API, shaped like Genstore's Orders API; token in `X-Genstore-Access-Token`."""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from storage import queries
from storage.connection import RedisState, redis_problem, replicas_problem
from storage.events import find_events
from storage.status import STATUSES

TOKEN_HEADER = "x-genstore-access-token"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250


class JSON(JSONResponse):
    """A JSON response that always renders: text that cannot be UTF-8 (a lone surrogate stored by an
    older version, say) goes out as a JSON escape instead of failing the request."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


class BadParameter(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSON({"error": message}, status_code=status, **extra)


def authorized(request: Request) -> bool:
    expected = request.app.state.settings.api_token
    given = request.headers.get(TOKEN_HEADER, "")
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _limit(params, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    try:  # ASCII digits only: str.isdigit() also says yes to "²", which int() refuses
        value = int(raw) if raw.isascii() and raw.isdigit() else 0
    except ValueError:  # more digits than int() reads
        value = 0
    if not 1 <= value <= maximum:
        raise BadParameter("limit", f"a whole number from 1 to {maximum}")
    return value


def _time(params, name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise BadParameter(name, "an ISO 8601 time with offset, e.g. 2024-01-01T00:00:00-05:00") from None
    if value.tzinfo is None:
        raise BadParameter(name, "the time needs an offset, e.g. 2024-01-01T00:00:00Z")
    return value


def _only(params, *known: str) -> None:
    """Refuse unknown parameters, and known ones given twice (which value would count?)."""
    for name in params.keys():
        if name not in known:
            raise BadParameter(name, "unknown parameter")
        if len(params.getlist(name)) > 1:
            raise BadParameter(name, "given more than once")


def _order_filter(params) -> queries.OrderFilter:
    status = params.get("status") or "any"
    if status not in queries.ORDER_STATUSES:
        raise BadParameter("status", "one of " + ", ".join(queries.ORDER_STATUSES))
    _only(params, "limit", "sinceId", "financialStatus", "fulfillmentStatus", "status", "updatedAtMin",
          "updatedAtMax", "shop")
    return queries.OrderFilter(
        since_id=params.get("sinceId") or None,
        financial_status=params.get("financialStatus") or None,
        fulfillment_status=params.get("fulfillmentStatus") or None,
        status=status,
        updated_at_min=_time(params, "updatedAtMin"),
        updated_at_max=_time(params, "updatedAtMax"),
    )


def _shop(request: Request, ctx) -> tuple[str, str] | None:
    """(platform, shop) the request is about: `shop=`, or the only shop known."""
    shop = (request.query_params.get("shop") or "").strip().lower()
    if shop:
        return queries.platform_of(ctx.redis, ctx.keys, shop), shop
    known = queries.shops(ctx.redis, ctx.keys)
    if len(known) > 1:
        raise BadParameter("shop", "required when several shops are known: " + ", ".join(s for _, s in known))
    return known[0] if known else None


def protected(endpoint):
    async def wrapper(request: Request) -> Response:
        if not request.app.state.settings.api_token:
            return _error(401, "this server has no API token configured (ORDERHOOKS_API_TOKEN): the read API is off")
        if not authorized(request):
            return _error(401, "missing or wrong X-Genstore-Access-Token")
        ctx = request.app.state.store
        try:
            return await run_in_threadpool(endpoint, request, ctx)
        except BadParameter as exc:
            return _error(400, str(exc), headers={})
        except redis.RedisError:
            return _error(503, "storage unavailable, retry later", headers={"Retry-After": "5"})

    wrapper.__name__ = endpoint.__name__
    return wrapper


@protected
def list_orders(request: Request, ctx) -> Response:
    params = request.query_params
    flt = _order_filter(params)
    limit = _limit(params)
    shop = _shop(request, ctx)
    orders = queries.list_orders(ctx.redis, ctx.keys, *shop, flt, limit) if shop else []
    return JSON({"orders": orders})


@protected
def count_orders(request: Request, ctx) -> Response:
    params = request.query_params
    flt = _order_filter(params)
    _limit(params)
    shop = _shop(request, ctx)
    return JSON({"count": queries.count_orders(ctx.redis, ctx.keys, *shop, flt) if shop else 0})


@protected
def get_order(request: Request, ctx) -> Response:
    _only(request.query_params, "shop")
    shop = _shop(request, ctx)
    order_id = request.path_params["order_id"]
    order = queries.get_order(ctx.redis, ctx.keys, *shop, order_id) if shop else None
    if order is None:
        return _error(404, f"order {order_id} not found")
    return JSON({"order": order})


@protected
def list_events(request: Request, ctx) -> Response:
    params = request.query_params
    _only(params, "topic", "status", "orderId", "shop", "limit")
    status = params.get("status") or None
    if status and status not in STATUSES:
        raise BadParameter("status", "one of " + ", ".join(STATUSES))
    records = queries.list_events(
        ctx.redis, ctx.keys, topic=params.get("topic") or None, status=status,
        order_id=params.get("orderId") or None, shop=(params.get("shop") or "").lower() or None,
        limit=_limit(params),
    )
    return JSON({"events": [r.summary() for r in records]})


@protected
def get_event(request: Request, ctx) -> Response:
    """One event by id; `shop=` and `platform=` choose among events of several shops sharing the id."""
    params = request.query_params
    _only(params, "shop", "platform")
    event_id = request.path_params["event_id"]
    found = find_events(ctx.redis, ctx.keys, event_id, shop=params.get("shop"),
                        platform=params.get("platform") or None)
    if not found:
        return _error(404, f"event {event_id} not found")
    if len(found) > 1:
        return JSON({"error": f"event {event_id} exists in several shops: choose one with ?shop= (and ?platform=)",
                     "shops": [{"platform": r.platform, "shop": r.shop} for r in found]}, status_code=409)
    return JSON({"event": found[0].detail()})


@protected
def list_rejected(request: Request, ctx) -> Response:
    """The newest refused deliveries (`receiver.rejected`), of one platform or all; `dropped` those not recorded."""
    from receiver.rejected import PLATFORMS, read

    params = request.query_params
    _only(params, "platform", "limit")
    platform = params.get("platform") or None
    if platform is not None and platform not in PLATFORMS:
        raise BadParameter("platform", "one of " + ", ".join(PLATFORMS))
    return JSON(read(ctx.redis, ctx.keys, platform, _limit(params, 100, 1000)))


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (no such route, wrong method) as JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 404:
        path = request.url.path
        hint = ("; webhooks go to POST /webhooks/genstore" if path.startswith("/webhook") else
                "; the read API is under /api/202412/orders and /api/events, the inspector at /ui")
        return _error(404, f"no route {path}{hint}")
    if exc.status_code == 405:
        return _error(405, f"{request.method} is not allowed on {request.url.path}", headers=exc.headers)
    return _error(exc.status_code, exc.detail, headers=exc.headers)


async def root(request: Request) -> Response:
    """`GET /`: where things are."""
    return JSONResponse({"service": "orderhooks", "inspector": "/ui", "webhooks": {"genstore": "/webhooks/genstore"},
                         "api": "/api/202412/orders", "openapi": "/api/openapi.json"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when Redis takes writes; 503 `{"status": "unavailable", "redis": reason}` when it is unreachable,
    refuses writes (full under `noeviction`, a read-only replica, loading, ...) or has fewer replicas connected
    than ORDERHOOKS_MIN_REPLICAS, logged once per change."""
    ctx = request.app.state.store
    problem = await run_in_threadpool(redis_problem, ctx.redis, ctx.keys.probe)
    if not problem and ctx.settings.min_replicas:
        problem = await run_in_threadpool(replicas_problem, ctx.redis, ctx.settings.min_replicas)
    if problem:
        _redis_state.failed(problem)
        return JSONResponse({"status": "unavailable", "redis": problem}, status_code=503,
                            headers={"Retry-After": "5"})
    _redis_state.ok()
    return JSONResponse({"status": "ok", "redis": "ok"})


_redis_state = RedisState()
