"""A fake Genstore Orders API (seed 000) for tests: a Starlette app served by uvicorn in a background thread.

    with FakeGenstore() as api:                 # api.url is the base URL, api.token the accepted token
        api.add_order("1001", updated_at="2024-05-01T10:00:00+00:00")
        api.add_raw_order("1002", '{"orderId": "1002", "updatedAt": "...", "totalPrice": "abc"}')
        api.fail(429, times=2, retry_after="1")  # scripted faults, consumed in order by matching requests
        ...
        api.requests                             # every request received, in order

Orders are kept as JSON text in the shape of seed 000's list response (JSON-text arrays, a fulfillment time
with a stray quote), built from that response's example order, and are served exactly as kept. The list
endpoint pages by `limit`, `sinceId` and `updatedAtMin`, ordered by numeric `orderId`; `count` answers
`{"count": "N"}` as the seed does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.served import ServedApp

SEED_LIST = Path(__file__).with_name("genstore_orders_list_000.json")
VERSION_PATH = "/api/202412"
DEFAULT_TOKEN = "shpat_fake0000000000token"


def seed_list_text() -> str:
    """Seed 000's `GET /orders` response, verbatim."""
    return SEED_LIST.read_text()


def seed_order() -> dict[str, Any]:
    """The example order of seed 000's list response, as a dict (JSON-text arrays stay strings)."""
    return json.loads(seed_list_text())["orders"][0]


def _id_key(order_id: str) -> tuple[int, int, str]:
    return (0, int(order_id), "") if order_id.isdigit() else (1, 0, order_id)


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().rstrip('"').replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next `times` requests that match `method` and `path`
    (a path suffix after `/api/202412`, e.g. `/orders`; None matches any)."""

    kind: str  # status | hang | ignore_since_id | repeat_ids
    times: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0
    repeat: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method in (None, method)) and (self.path in (None, path))


@dataclass
class _Stored:
    order_id: str
    updated_at: datetime
    text: str


class FakeGenstore(ServedApp):
    name = "fake Genstore API"

    def __init__(self, token: str = DEFAULT_TOKEN, shop: str = "acme.genmystore.com") -> None:
        super().__init__()
        self.token = token
        self.shop = shop
        self.orders: dict[str, _Stored] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route(VERSION_PATH + "/orders", self._orders, methods=["GET", "POST"]),
            Route(VERSION_PATH + "/orders/count", self._count, methods=["GET"]),
            Route(VERSION_PATH + "/orders/{order_id}", self._order, methods=["GET", "PUT"]),
            Route(VERSION_PATH + "/orders/{order_id}/cancel", self._cancel, methods=["POST"]),
        ])

    # -- the test's side -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL, as registered with `shops add --api-url`."""
        return f"http://127.0.0.1:{self.port}{VERSION_PATH}"

    def add_order(self, order_id: str, updated_at: str = "2024-05-01T10:00:00+00:00", **fields: Any) -> str:
        """Keep an order in seed 000's list shape (the example order with this id and time, plus `fields`);
        returns its JSON text, exactly as the API will serve it."""
        order = seed_order()
        order.update({"orderId": order_id, "updatedAt": updated_at}, **fields)
        return self.add_raw_order(order_id, json.dumps(order), updated_at)

    def add_raw_order(self, order_id: str, text: str, updated_at: str = "2024-05-01T10:00:00+00:00") -> str:
        """Keep an order's JSON text as is (it may not normalize); `order_id`/`updated_at` place it."""
        with self._lock:
            self.orders[order_id] = _Stored(order_id, _parse_time(updated_at), text)
        return text

    def order_text(self, order_id: str) -> str:
        return self.orders[order_id].text

    def fail(self, status: int, times: int = 1, *, retry_after: str | None = None, body: Any = None,
             method: str | None = None, path: str | None = None) -> None:
        """Answer the next `times` matching requests with `status` (and `Retry-After`, and a JSON body)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if body is None:
            body = {"errors": f"fake {status}"}
        self._add(Fault("status", times, method, path, status=status, headers=headers, body=body))

    def hang(self, seconds: float, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Wait `seconds` before answering the next `times` matching requests (a read timeout for the client)."""
        self._add(Fault("hang", times, method, path, seconds=seconds))

    def ignore_since_id(self, times: int = 1) -> None:
        """The next `times` list requests page as if no `sinceId` had been sent."""
        self._add(Fault("ignore_since_id", times, "GET", "/orders"))

    def repeat_ids(self, repeat: int = 1, times: int = 1) -> None:
        """The next `times` list pages after a `sinceId` start with the `repeat` orders at or before it."""
        self._add(Fault("repeat_ids", times, "GET", "/orders", repeat=repeat))

    def list_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path == "/orders"]

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)


    # -- the API's side --------------------------------------------------------------------------------------

    async def _intake(self, request: Request) -> tuple[Response | None, list[Fault]]:
        """Record the request, apply the first matching fault, check the token; a Response ends the request,
        a paging fault is handed to the list endpoint."""
        path = request.url.path.removeprefix(VERSION_PATH)
        body = await request.body()
        route_path = "/orders" if path in ("", "/orders") else path
        with self._lock:
            self.requests.append(Recorded(request.method, route_path, dict(request.query_params),
                                          dict(request.headers), body))
            # One fault per request: the first in script order that still matches.
            fault = next((f for f in self.faults if f.matches(request.method, route_path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.kind == "hang":
            await self._sleep(fault.seconds)
        elif fault is not None and fault.kind == "status":
            return JSONResponse(fault.body, fault.status, headers=fault.headers), []
        if request.headers.get("x-genstore-access-token") != self.token:
            return JSONResponse({"errors": "[API] Invalid API key or access token (unrecognized login or "
                                           "wrong password)"}, 401), []
        return None, [fault] if fault is not None and fault.kind in ("ignore_since_id", "repeat_ids") else []

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    def _sorted(self) -> list[_Stored]:
        with self._lock:
            return sorted(self.orders.values(), key=lambda s: _id_key(s.order_id))

    def _filtered(self, request: Request) -> list[_Stored] | Response:
        found = self._sorted()
        if since := request.query_params.get("updatedAtMin"):
            try:
                floor = _parse_time(since)
            except ValueError:
                return JSONResponse({"errors": f"updatedAtMin: not a time ({since!r})"}, 400)
            found = [s for s in found if s.updated_at >= floor]
        return found

    def _page(self, request: Request, tweaks: list[Fault]) -> Response:
        found = self._filtered(request)
        if isinstance(found, Response):
            return found
        raw_limit = request.query_params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 250:
            return JSONResponse({"errors": "limit: must be between 1 and 250"}, 400)
        limit = int(raw_limit)
        since = request.query_params.get("sinceId")
        ignore = any(t.kind == "ignore_since_id" for t in tweaks)
        repeat = max((t.repeat for t in tweaks if t.kind == "repeat_ids"), default=0)
        if since and not ignore:
            before = [s for s in found if _id_key(s.order_id) <= _id_key(since)]
            after = [s for s in found if _id_key(s.order_id) > _id_key(since)]
            found = (before[-repeat:] if repeat else []) + after
        page = found[:limit]
        text = '{\n"orders": [\n' + ",\n".join(s.text for s in page) + "\n]\n}\n"
        return Response(text, 200, media_type="application/json")

    def _one(self, order_id: str) -> Response:
        with self._lock:
            stored = self.orders.get(order_id)
        if stored is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return Response('{\n"order": ' + stored.text + "\n}\n", 200, media_type="application/json")

    def _json_body(self, raw: bytes) -> dict | Response:
        try:
            data = json.loads(raw)
        except ValueError:
            return JSONResponse({"errors": "body: not JSON"}, 400)
        if not isinstance(data, dict):
            return JSONResponse({"errors": "body: not a JSON object"}, 400)
        return data

    def _changed(self, order_id: str, change: Callable[[dict[str, Any]], None]) -> Response:
        with self._lock:
            stored = self.orders.get(order_id)
        if stored is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        order = json.loads(stored.text)
        change(order)
        order["updatedAt"] = _now()
        self.add_raw_order(order_id, json.dumps(order), order["updatedAt"])
        return self._one(order_id)

    async def _orders(self, request: Request) -> Response:
        done, tweaks = await self._intake(request)
        if done is not None:
            return done
        if request.method == "GET":
            return self._page(request, tweaks)
        data = self._json_body(await request.body())
        if isinstance(data, Response):
            return data
        order = data.get("order")
        if not isinstance(order, dict):
            return JSONResponse({"errors": "order: required"}, 422)
        with self._lock:
            numeric = [int(i) for i in self.orders if i.isdigit()]
        order_id = str(max(numeric, default=1000) + 1)
        now = _now()
        created = seed_order() | order | {"orderId": order_id, "createdAt": order.get("createdAt") or now,
                                          "updatedAt": now}
        self.add_raw_order(order_id, json.dumps(created), now)
        return self._one(order_id)

    async def _count(self, request: Request) -> Response:
        done, _ = await self._intake(request)
        if done is not None:
            return done
        found = self._filtered(request)
        if isinstance(found, Response):
            return found
        return JSONResponse({"count": str(len(found))})

    async def _order(self, request: Request) -> Response:
        done, _ = await self._intake(request)
        if done is not None:
            return done
        order_id = request.path_params["order_id"]
        if request.method == "GET":
            return self._one(order_id)
        data = self._json_body(await request.body())
        if isinstance(data, Response):
            return data
        fields = data.get("order")
        if not isinstance(fields, dict):
            return JSONResponse({"errors": "order: required"}, 422)
        allowed = {"note", "phone", "email", "tags", "shippingAddress", "orderId"}
        if unknown := sorted(set(fields) - allowed):
            return JSONResponse({"errors": f"order: cannot update {', '.join(unknown)}"}, 422)
        return self._changed(order_id, lambda o: o.update({k: v for k, v in fields.items() if k != "orderId"}))

    async def _cancel(self, request: Request) -> Response:
        done, _ = await self._intake(request)
        if done is not None:
            return done
        data = self._json_body(await request.body())
        if isinstance(data, Response):
            return data
        order_id = request.path_params["order_id"]
        with self._lock:
            stored = self.orders.get(order_id)
        if stored is not None and json.loads(stored.text).get("cancelledAt") not in (None, "", "null"):
            return JSONResponse({"errors": "order: already cancelled"}, 422)

        def cancel(order: dict[str, Any]) -> None:
            order.update({"cancelledAt": _now(), "cancelReason": data.get("reason") or "other"})

        return self._changed(order_id, cancel)
