"""The event inspector at `/ui`: server-rendered pages over the event log and the projection.

Sign-in takes the read-API token (`ORDERHOOKS_API_TOKEN`) in a form and
answers with a signed session cookie (HttpOnly, SameSite=Strict, scoped to
/ui, Secure over https); the token never appears in a URL. The cookie is an
expiry and a random session id, signed with HMAC-SHA256 under a key derived
from the token, so changing the token signs everyone out. A session is also
open in Redis (`receiver.signin`) until logout or expiry, so a cookie kept
after logout opens nothing, on any receiver. Wrong tokens are throttled per
client address and overall (`receiver.signin`). Every POST carries a CSRF
token derived from the session id.

Pages refresh themselves without reloading (`static/ui.js` fetches the same
URL and swaps the parts marked `data-live`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from receiver import (
    convertors,  # noqa: F401 (registers the `anything` path convertor)
    signin,
)
from schemas import TOPICS, Projection, merge, order_view
from storage import queries
from storage.events import EventRecord, find_events, load_events
from storage.keys import GENSTORE
from storage.projection import load_projection
from storage.replay import replay, replay_status
from storage.status import STATUSES, HandlerOutcome, Status

HERE = Path(__file__).parent
SESSION_COOKIE = "orderhooks_session"
SESSION_SECONDS = 12 * 3600
PAGE_SIZE = 50
MAX_PAGE = 100
MAX_FORM = 16 * 1024
REPLAYABLE = (Status.FAILED, Status.QUARANTINED)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# --- sessions and CSRF -----------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), b"orderhooks inspector session v1", hashlib.sha256).digest()


def _sign(token: str, payload: str) -> str:
    return _b64(hmac.new(_key(token), payload.encode(), hashlib.sha256).digest())


def make_session(token: str, now: float | None = None, sid: str | None = None) -> str:
    """A new session cookie value: `<payload>.<signature>`."""
    now = time.time() if now is None else now
    sid = sid or secrets.token_urlsafe(16)
    payload = _b64(json.dumps({"exp": int(now + SESSION_SECONDS), "sid": sid}).encode())
    return f"{payload}.{_sign(token, payload)}"


def read_session(token: str | None, value: str | None, now: float | None = None) -> dict | None:
    """The session in a cookie value, or None when missing, forged, expired or signed by another token."""
    if not token or not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(_sign(token, payload), signature):
        return None
    try:
        data = json.loads(_unb64(payload))
    except ValueError:
        return None
    now = time.time() if now is None else now
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < now:
        return None
    if not isinstance(data.get("sid"), str):
        return None
    return data


def csrf_token(token: str, session: dict) -> str:
    return _sign(token, "csrf:" + str(session.get("sid")))


def _token(request: Request) -> str | None:
    return request.app.state.settings.api_token


async def _session(request: Request) -> dict | None:
    """The request's session when its cookie is good and it is still open in Redis (raises RedisError)."""
    session = read_session(_token(request), request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    ctx = request.app.state.store
    is_open = await run_in_threadpool(signin.session_is_open, ctx.redis, ctx.keys, session["sid"])
    return session if is_open else None


def _address(request: Request) -> str:
    """The client address as uvicorn gives it: behind a proxy, from X-Forwarded-For when the proxy's address
    is in FORWARDED_ALLOW_IPS (uvicorn's default trusts 127.0.0.1 and ::1 only)."""
    return request.client.host if request.client and request.client.host else "unknown"


def _same_origin(request: Request) -> bool:
    """A browser's Origin header, when sent, must name this host. The scheme is not compared: behind a
    proxy that ends TLS the receiver sees http while the browser says https."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower() != ""


def _https(request: Request) -> bool:
    """For the cookie's Secure flag (only ever adds a restriction, so a forwarded header may say so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


# --- rendering ---------------------------------------------------------------------------

def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(text: str | None) -> str:
    """An ISO 8601 time as the pages show times (UTC, to the second)."""
    if not text:
        return ""
    try:
        return _when(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return text


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def event_url(event_id: str, shop: str | None = None, platform: str = GENSTORE) -> str:
    """The event's page; with `shop`, the one event of that shop (ids are unique only per shop)."""
    url = "/ui/events/" + quote(event_id, safe="")
    if shop is None:
        return url
    params = {"shop": shop, **({"platform": platform} if platform != GENSTORE else {})}
    return url + "?" + urlencode(params)


def order_url(shop: str, order_id: str, platform: str = GENSTORE) -> str:
    if "/" in shop or platform != GENSTORE:  # a path segment cannot hold a slash, even escaped
        return "/ui/order?" + urlencode({"shop": shop, "id": order_id, "platform": platform})
    return f"/ui/orders/{quote(shop, safe='')}/{quote(order_id, safe='')}"


def _events_url(**params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return "/ui" + ("?" + urlencode(kept) if kept else "")


env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(when=_when, iso=_iso, ago=_ago, pretty=_pretty, compact=_compact)
env.globals.update(event_url=event_url, order_url=order_url, events_url=_events_url, topics=TOPICS,
                   statuses=STATUSES, replayable=REPLAYABLE)


def render(request: Request, name: str, context: dict, status: int = 200, session: dict | None = None) -> Response:
    token = _token(request)
    html = env.get_template(name).render(
        path=request.url.path,
        view_status=request.query_params.get("status", ""),
        signed_in=session is not None,
        csrf=csrf_token(token, session) if session and token else "",
        **context,
    )
    # Text that cannot be UTF-8 (a lone surrogate stored by an older version) shows as U+FFFD.
    body = html.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _error(request: Request, status: int, title: str, message: str, session: dict | None = None) -> Response:
    return render(request, "error.html", {"title": title, "message": message}, status, session)


def page(func):
    """A GET page: signed in, or sent to the sign-in form (which brings the user back here)."""

    async def endpoint(request: Request) -> Response:
        session = None
        try:
            session = await _session(request)
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/ui/login?" + urlencode({"next": target}), status_code=303,
                                        headers={"Cache-Control": "no-store"})
            return await run_in_threadpool(func, request, session)
        except redis.RedisError:
            return _error(request, 503, "Storage unavailable", "Redis did not answer; try again shortly.", session)

    endpoint.__name__ = func.__name__
    return endpoint


def action(func):
    """A POST: signed in, same origin, and carrying the session's CSRF token; else 403."""

    async def endpoint(request: Request) -> Response:
        session = None
        try:
            session = await _session(request)
            form = await _form(request)
            token = _token(request)
            given = form.get("csrf", "")
            if session is None or not token or not _same_origin(request) or not hmac.compare_digest(
                    csrf_token(token, session), given):
                return _error(request, 403, "Refused", "This form has expired or did not come from this page. "
                              "Go back, reload, and try again.", session)
            return await run_in_threadpool(func, request, session, form)
        except redis.RedisError:
            return _error(request, 503, "Storage unavailable", "Redis did not answer; try again shortly.", session)

    endpoint.__name__ = func.__name__
    return endpoint


# --- sign-in --------------------------------------------------------------------------------

async def login_form(request: Request) -> Response:
    try:
        if await _session(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    except redis.RedisError:
        pass  # the form needs no Redis; signing in will say if it is away
    return render(request, "login.html", {"next": _safe_next(request.query_params.get("next")), "error": None,
                                          "enabled": bool(_token(request))})


async def login(request: Request) -> Response:
    form = await _form(request)
    expected = _token(request)
    next_url = _safe_next(form.get("next"))
    if not expected:
        return render(request, "login.html", {"next": next_url, "error": None, "enabled": False}, 503)
    ctx = request.app.state.store
    try:
        # Counted before the token is compared: a refused attempt learns nothing about the token.
        attempt = await run_in_threadpool(signin.begin, ctx.redis, ctx.keys, _address(request))
        if attempt.refused:
            whose = "right now" if attempt.overall else "from your address"
            response = render(request, "login.html", {
                "next": next_url, "enabled": True,
                "error": f"Too many sign-in attempts {whose}. Try again in {attempt.retry_after} s."}, 429)
            response.headers["Retry-After"] = str(attempt.retry_after)
            return response
        if not _same_origin(request) or not hmac.compare_digest(expected.encode(),
                                                                form.get("token", "").encode()):
            await asyncio.sleep(0.5)  # slows down guessing
            return render(request, "login.html", {"next": next_url, "error": "That token is not right.",
                                                  "enabled": True}, 401)
        sid = secrets.token_urlsafe(16)
        await run_in_threadpool(signin.succeeded, ctx.redis, ctx.keys, attempt)
        await run_in_threadpool(signin.open_session, ctx.redis, ctx.keys, sid, SESSION_SECONDS)
    except redis.RedisError:
        return render(request, "login.html", {"next": next_url, "enabled": True,
                                              "error": "Storage unavailable: Redis did not answer; try again "
                                                       "shortly."}, 503)
    response = RedirectResponse(next_url, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, make_session(expected, sid=sid), max_age=SESSION_SECONDS, path="/ui",
                        httponly=True, samesite="strict", secure=_https(request))
    return response


def _signed_out(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict", secure=_https(request))
    return response


@action
def _logout(request: Request, session: dict, form: dict) -> Response:
    ctx = request.app.state.store
    signin.close_session(ctx.redis, ctx.keys, session["sid"])
    return _signed_out(request)


async def logout(request: Request) -> Response:
    """Signing out of a session that has already ended needs no CSRF token: there is nothing to protect."""
    try:
        if await _session(request) is None:
            return _signed_out(request)
    except redis.RedisError:
        return _error(request, 503, "Storage unavailable", "Redis did not answer; try again shortly.")
    return await _logout(request)


# --- the event list ---------------------------------------------------------------------

def _status_counts(ctx) -> dict[str, int]:
    pipe = ctx.redis.pipeline(transaction=False)
    for s in STATUSES:
        pipe.zcard(ctx.keys.events_by_status(s))
    return dict(zip(STATUSES, pipe.execute(), strict=True))


@page
def events(request: Request, session: dict) -> Response:
    ctx = request.app.state.store
    params = request.query_params
    filters = {
        "topic": (params.get("topic") or "").strip(),
        "status": (params.get("status") or "").strip(),
        "shop": (params.get("shop") or "").strip().lower(),
        "order": (params.get("order") or "").strip(),
    }
    problems = []
    if filters["status"] and filters["status"] not in STATUSES:
        problems.append(f"unknown status {filters['status']!r}")
        filters["status"] = ""
    raw_page = params.get("page") or "1"
    page_no = int(raw_page) if raw_page.isdigit() and 1 <= int(raw_page) <= MAX_PAGE else 1
    offset = (page_no - 1) * PAGE_SIZE
    found = queries.list_events(
        ctx.redis, ctx.keys, topic=filters["topic"] or None, status=filters["status"] or None,
        order_id=filters["order"] or None, shop=filters["shop"] or None, limit=offset + PAGE_SIZE + 1,
    )
    rows = found[offset : offset + PAGE_SIZE]
    return render(request, "events.html", {
        "rows": rows,
        "filters": filters,
        "filtered": any(filters.values()),
        "page": page_no,
        "older": _events_url(**filters, page=page_no + 1) if len(found) > offset + PAGE_SIZE else None,
        "newer": _events_url(**filters, page=page_no - 1) if page_no > 1 else None,
        "counts": _status_counts(ctx),
        "shops": sorted({shop for _, shop in queries.shops(ctx.redis, ctx.keys)}),
        "problems": problems,
        "live": page_no == 1,
    }, session=session)


# --- one event ----------------------------------------------------------------------------

@dataclass
class Around:
    """The order's projection just before and just after one event, re-derived from the stored events."""

    before: dict | None
    after: dict | None
    current: dict | None
    changes: list[tuple[str, Any, Any]]
    applied: bool
    position: int  # 1-based position of the event among the order's applied events
    total: int
    note: str = ""


_MISSING = object()


ITEM_KEYS = ("id", "fulfillId", "refundId", "lineItemId")  # what names an element of a list of objects


def _item_key(item: Any) -> str | None:
    if isinstance(item, dict):
        for k in ITEM_KEYS:
            if item.get(k) not in (None, ""):
                return f"{k}={item[k]}"
    return None


def _changes(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf that differs, by path: `lineItems[id=669751112].quantity`, `fulfillments[fulfillId=1].status`.
    Lists of objects are matched by their id, other lists by position; a whole value is shown where one side
    has nothing to compare with."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for name in dict.fromkeys([*before, *after]):
            a, b = before.get(name, _MISSING), after.get(name, _MISSING)
            if a != b:
                where = f"{path}.{name}" if path else str(name)
                if a is _MISSING or b is _MISSING:
                    out.append((where, None if a is _MISSING else a, None if b is _MISSING else b))
                else:
                    out += _changes(a, b, where)
        return out
    if isinstance(before, list) and isinstance(after, list):
        keys_a, keys_b = [_item_key(x) for x in before], [_item_key(x) for x in after]
        if all(keys_a) and all(keys_b) and len(set(keys_a)) == len(keys_a) and len(set(keys_b)) == len(keys_b):
            by_a, by_b = dict(zip(keys_a, before, strict=True)), dict(zip(keys_b, after, strict=True))
            out = []
            for k in dict.fromkeys([*keys_a, *keys_b]):
                a, b = by_a.get(k, _MISSING), by_b.get(k, _MISSING)
                if a is _MISSING or b is _MISSING:
                    out.append((f"{path}[{k}]", None if a is _MISSING else a, None if b is _MISSING else b))
                else:
                    out += _changes(a, b, f"{path}[{k}]")
            return out
        if len(before) == len(after):
            pairs = enumerate(zip(before, after, strict=True))
            return [c for i, (a, b) in pairs for c in _changes(a, b, f"{path}[{i}]")]
    return [(path, before, after)]


def projection_around(ctx, record: EventRecord) -> Around | None:
    """Fold the order's applied events in the order the workers applied them (processed time, then
    received time and id: how `apply_events` groups a batch); `merge` is pure, so this reproduces
    the projection before and after `record`."""
    if not record.order_id or not record.shop:
        return None
    current = queries.get_order(ctx.redis, ctx.keys, record.platform, record.shop, record.order_id)
    history = ctx.keys.order_events(record.platform, record.shop, record.order_id)
    loaded = load_events(ctx.redis, ctx.keys, [i.decode() for i in ctx.redis.zrange(history, 0, -1)])
    applied = sorted(
        (r for r in loaded
         if r is not None and r.state in (Status.PROCESSED, Status.STALE) and r.processed_at and r.event),
        key=lambda r: (r.processed_at, r.received_at, r.id),
    )
    position = next((i for i, r in enumerate(applied) if r.ref == record.ref), None)
    if position is None:
        return Around(current, None, current, [], False, 0, len(applied),
                      "This event has not been applied to the projection: before is the order as it is now.")
    projection: Projection | None = None
    before = None
    try:
        for i, r in enumerate(applied[: position + 1]):
            if i == position:
                before = projection
            projection = merge(projection, r.topic, r.id, r.event).projection
    except (ValueError, TypeError) as exc:
        return Around(None, None, current, [], True, position + 1, len(applied),
                      f"Could not re-derive the projection: {exc}")
    before_view = order_view(before, record.shop)
    after_view = order_view(projection, record.shop)
    note = ""
    if any(r is None for r in loaded):
        note = "Some of this order's older events have expired, so before/after may be incomplete."
    return Around(before_view, after_view, current, _changes(before_view or {}, after_view or {}), True, position + 1,
                  len(applied), note)


def _timeline(record: EventRecord) -> list[dict]:
    """What is known of the event's history, oldest first."""
    first = (record.status if record.status in (Status.IGNORED, Status.QUARANTINED) and not record.processed_at
             else Status.QUEUED)
    items = [{"at": _when(record.received_at), "sort": record.received_at, "status": first,
              "text": "received, verified and stored"}]
    if record.processed_at:
        items.append({"at": _when(record.processed_at), "sort": record.processed_at,
                      "status": record.state or Status.PROCESSED,
                      "text": f"applied to the projection ({record.outcome or record.state})"})
    for name, o in record.handlers.items():
        at = o.get("at")
        try:
            moment = datetime.fromisoformat(at).timestamp() if at else None
        except ValueError:
            moment = None
        text = f"{name}: {o.get('status')}, attempt {o.get('attempts', 0)}"
        if o.get("error"):
            text += f" — {o['error']}"
        if o.get("nextAttemptAt"):
            text += f" (next attempt {_iso(o['nextAttemptAt'])})"
        if moment is None and record.processed_at:  # pending: marked when the event was applied
            moment = record.processed_at
            text += " (marked when the event was applied)"
        items.append({"at": _when(moment) if moment else "", "sort": moment or float("inf"),
                      "status": {HandlerOutcome.OK: Status.PROCESSED,
                                 HandlerOutcome.FAILED: Status.FAILED}.get(o.get("status"), Status.QUEUED),
                      "text": text})
    return sorted(items, key=lambda i: i["sort"])


def _body_view(raw: bytes) -> tuple[str, bool]:
    """The body, pretty-printed when it is JSON; as it came when it is not, or nests too deep to re-indent."""
    text = raw.decode("utf-8", "replace")
    try:
        return _pretty(json.loads(text)), True
    except (ValueError, RecursionError):
        return text, False


def _in_flight(record: EventRecord) -> bool:
    return record.status == Status.QUEUED or any(
        o.get("status") in (HandlerOutcome.PENDING, HandlerOutcome.RETRYING) for o in record.handlers.values())


NOTICES = {
    "handlers": "Replay requested: the failed handlers run again.",
    "pipeline": "Replay requested: the event goes through the whole pipeline again.",
    "none": "Nothing to replay.",
}


def _find(ctx, event_id: str, params) -> list[EventRecord]:
    return find_events(ctx.redis, ctx.keys, event_id, shop=params.get("shop"),
                       platform=params.get("platform") or None)


@page
def event(request: Request, session: dict) -> Response:
    ctx = request.app.state.store
    event_id = request.path_params["event_id"]
    found = _find(ctx, event_id, request.query_params)
    if not found:
        return _error(request, 404, "Event not found",
                      f"No event {event_id!r} is stored (it may have expired).", session)
    if len(found) > 1:
        return render(request, "choose.html", {"event_id": event_id, "found": found}, 409, session)
    record = found[0]
    body, is_json = _body_view(record.raw)
    others = []
    if record.order_id and record.shop:
        others = queries.list_events(ctx.redis, ctx.keys, order_id=record.order_id, shop=record.shop, limit=100)
    replayed = request.query_params.get("replayed", "")
    notice = NOTICES.get(replayed)
    if replayed == "none" and record.status in (Status.QUARANTINED, Status.IGNORED) and record.error:
        notice = f"Still {record.status}: {record.error}"
    handlers = sorted(record.handlers.items())
    in_flight = sorted((name, o) for name, o in record.handlers.items()
                       if o.get("status") in (HandlerOutcome.PENDING, HandlerOutcome.RETRYING))
    stages = [("apply", record.attempts if record.state else 0)] + [
        (name, int(o.get("attempts", 0))) for name, o in sorted(record.handlers.items())]
    return render(request, "event.html", {
        "e": record,
        "in_flight": in_flight,
        "stages": stages,
        "body": body,
        "body_is_json": is_json,
        "normalized": _pretty(record.event.to_json()) if record.event is not None else None,
        "handlers": handlers,
        "timeline": _timeline(record),
        "around": projection_around(ctx, record),
        "others": others,
        "can_replay": record.status in REPLAYABLE,
        "poll": _in_flight(record),
        "notice_text": notice,
    }, session=session)


# --- one order ----------------------------------------------------------------------------

@page
def order(request: Request, session: dict) -> Response:
    """`/ui/orders/{shop}/{id}`, or `/ui/order?shop=&id=&platform=` for a shop a path cannot hold."""
    ctx = request.app.state.store
    if "order_id" in request.path_params:
        shop, order_id = request.path_params["shop"].lower(), request.path_params["order_id"]
    else:
        shop, order_id = (request.query_params.get("shop") or "").lower(), request.query_params.get("id") or ""
    platform = request.query_params.get("platform") or queries.platform_of(ctx.redis, ctx.keys, shop)
    view = queries.get_order(ctx.redis, ctx.keys, platform, shop, order_id)
    projection = load_projection(ctx.redis, ctx.keys, platform, shop, order_id) if view is None else None
    history = queries.list_events(ctx.redis, ctx.keys, order_id=order_id, shop=shop, limit=500)
    if view is None and projection is None and not history:
        return _error(request, 404, "Order not found", f"No order {order_id!r} is known for {shop}.", session)
    refunds_only = sorted((projection.refunds.values() if projection else []), key=lambda r: str(r.get("createdAt")))
    return render(request, "order.html", {
        "shop": shop,
        "order_id": order_id,
        "o": view,
        "refunds_only": refunds_only,
        "history": history,
        "poll": any(r.status == Status.QUEUED for r in history),
    }, session=session)


# --- shops --------------------------------------------------------------------------------

@page
def shops_page(request: Request, session: dict) -> Response:
    from storage.shops import list_shops

    ctx = request.app.state.store
    return render(request, "shops.html", {"shops": list_shops(ctx.redis, ctx.keys)}, session=session)


@page
def rejected_page(request: Request, session: dict) -> Response:
    from receiver.rejected import read

    ctx = request.app.state.store
    return render(request, "rejected.html", read(ctx.redis, ctx.keys, None, 200), session=session)


# --- replay -------------------------------------------------------------------------------

@action
def replay_one(request: Request, session: dict, form: dict) -> Response:
    ctx = request.app.state.store
    event_id = form.get("id", "")
    found = _find(ctx, event_id, form)
    if len(found) != 1:
        return _error(request, 404, "Event not found", f"No event {event_id!r} is stored.", session)
    try:
        result = replay(ctx, found[0].ref)
    except KeyError:
        return _error(request, 404, "Event not found", f"No event {event_id!r} is stored.", session)
    url = event_url(result.id, result.shop, result.platform)
    return RedirectResponse(f"{url}&replayed={result.action}", status_code=303)


@page
def confirm_replay_failed(request: Request, session: dict) -> Response:
    ctx = request.app.state.store
    failed = queries.list_events(ctx.redis, ctx.keys, status=Status.FAILED, limit=20)
    count = ctx.redis.zcard(ctx.keys.events_by_status(Status.FAILED))
    return render(request, "confirm_replay.html", {"failed": failed, "count": count}, session=session)


@action
def replay_failed(request: Request, session: dict, form: dict) -> Response:
    if form.get("confirm") != "yes":
        return RedirectResponse("/ui/replay-failed", status_code=303)
    results = replay_status(request.app.state.store, Status.FAILED)
    return render(request, "replayed.html", {"results": results}, session=session)


routes = [
    Route("/ui", events),
    Route("/ui/", events),
    Route("/ui/login", login_form, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/events/{event_id:anything}", event),
    Route("/ui/orders/{shop}/{order_id:anything}", order),
    Route("/ui/order", order),
    Route("/ui/shops", shops_page),
    Route("/ui/rejected", rejected_page),
    Route("/ui/replay", replay_one, methods=["POST"]),
    Route("/ui/replay-failed", confirm_replay_failed, methods=["GET"]),
    Route("/ui/replay-failed", replay_failed, methods=["POST"]),
    Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
]
