"""A fake BigCommerce V2 Orders API for tests: a Starlette app served by uvicorn in a background thread.

    with FakeBigCommerce() as api:                 # api.url is the V2 base URL, api.token the accepted token
        api.add_order(250, status_id=11)           # the sample order with this id, plus fields
        api.modify(250, status_id=2)               # a later state: date_modified moves on a second
        api.archive(250)                           # GET answers 404 from now on
        api.fail(503, times=2)                     # scripted faults, consumed in order by matching requests
        api.quota(limit=5, window_ms=500)          # X-Rate-Limit-* headers; 429 once spent (counted as a breach)
        api.latency = 0.05                         # every answer after this many seconds
        api.requests                               # every request received, in order

Orders are built from the package's sample V2 order (`schemas/samples/bigcommerce_order.json`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.served import ServedApp

STORE_HASH = "abc123"
SHOP = f"store-{STORE_HASH}.mybigcommerce.com"
DEFAULT_TOKEN = "bc-fake-token-0000000000"
BASE = f"/stores/{STORE_HASH}/v2"


def sample() -> dict[str, Any]:
    return json.loads(files("schemas.samples").joinpath("bigcommerce_order.json").read_text())


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class Fault:
    status: int = 503
    times: int = 1
    path: str | None = None  # a suffix after the V2 base, e.g. "/orders/250"; None matches any
    hang: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeBigCommerce(ServedApp):
    name = "fake BigCommerce API"

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__()
        self.token = token
        self.orders: dict[str, dict[str, Any]] = {}  # id -> {"order", "products", "shipping_addresses"}
        self.archived: set[str] = set()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.breaches = 0  # requests that arrived while the quota was spent
        self._limit: int | None = None
        self._window_ms = 0
        self._window_start = 0.0
        self._used = 0
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route(BASE + "/orders/{order_id}", self._order),
            Route(BASE + "/orders/{order_id}/products", self._products),
            Route(BASE + "/orders/{order_id}/shipping_addresses", self._addresses),
        ])

    # -- the test's side ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE}"

    def add_order(self, order_id: int | str, modified: datetime | None = None, **fields: Any) -> dict[str, Any]:
        data = sample()
        oid = int(order_id) if str(order_id).isdigit() else order_id
        modified = modified or datetime(2019, 6, 25, 16, 17, 20, tzinfo=UTC)
        data["order"].update({"id": oid, "date_modified": rfc2822(modified)}, **fields)
        for item in data["products"] + data["shipping_addresses"]:
            item["order_id"] = oid
        with self._lock:
            self.orders[str(order_id)] = data
            self.archived.discard(str(order_id))
        return data

    def modify(self, order_id: int | str, **fields: Any) -> dict[str, Any]:
        """A later state of the order: `date_modified` moves on by a second, plus `fields`."""
        with self._lock:
            data = copy.deepcopy(self.orders[str(order_id)])
        previous = datetime.strptime(data["order"]["date_modified"], "%a, %d %b %Y %H:%M:%S %z")
        return self.add_order(order_id, previous + timedelta(seconds=1),
                              **{k: v for k, v in data["order"].items() if k not in ("id", "date_modified")} | fields)

    def archive(self, order_id: int | str) -> None:
        with self._lock:
            self.archived.add(str(order_id))

    def fail(self, status: int = 503, times: int = 1, *, path: str | None = None, hang: float = 0.0,
             headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.faults.append(Fault(status, times, path, hang, headers or {}))

    def quota(self, limit: int, window_ms: int) -> None:
        """Allow `limit` requests per window of `window_ms`; each answer says how many are left."""
        with self._lock:
            self._limit, self._window_ms, self._used, self._window_start = limit, window_ms, 0, time.monotonic()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # -- the API's side ----------------------------------------------------------------------------------------

    async def _serve(self, request: Request, what: str) -> Response:
        order_id = request.path_params["order_id"]
        suffix = request.url.path[len(BASE):]
        with self._lock:
            self.requests.append(Recorded(request.method, request.url.path, dict(request.query_params),
                                          dict(request.headers), time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = next((f for f in self.faults if f.times > 0 and f.path in (None, suffix)), None)
            if fault:
                fault.times -= 1
            rate = self._rate()
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if request.headers.get("x-auth-token") != self.token:
                return JSONResponse([{"status": 401, "message": "You are not authorized."}], status_code=401)
            if rate is not None and rate[0] < 0:
                return JSONResponse([{"status": 429, "message": "Too many requests"}], status_code=429,
                                    headers={"X-Rate-Limit-Time-Reset-Ms": str(rate[1]),
                                             "X-Rate-Limit-Requests-Left": "0"})
            headers = ({"X-Rate-Limit-Requests-Left": str(rate[0]), "X-Rate-Limit-Time-Reset-Ms": str(rate[1]),
                        "X-Rate-Limit-Requests-Quota": str(self._limit)} if rate is not None else {})
            if fault is not None:
                if fault.hang:
                    deadline = time.monotonic() + fault.hang
                    while time.monotonic() < deadline and not self._stopping.is_set():
                        await asyncio.sleep(0.02)
                return JSONResponse([{"status": fault.status, "message": "scripted fault"}],
                                    status_code=fault.status, headers={**headers, **fault.headers})
            with self._lock:
                data = None if order_id in self.archived else copy.deepcopy(self.orders.get(order_id))
            if data is None:
                return JSONResponse([{"status": 404, "message": "The requested resource was not found."}],
                                    status_code=404, headers=headers)
            if what == "order":
                return JSONResponse(data["order"], headers=headers)
            items = data[what]
            page, limit = int(request.query_params.get("page", 1)), int(request.query_params.get("limit", 50))
            chunk = items[(page - 1) * limit: page * limit]
            if not chunk:
                return Response(status_code=204, headers=headers)
            return JSONResponse(chunk, headers=headers)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _rate(self) -> tuple[int, int] | None:
        """(requests left, ms to reset) after this request; left < 0 when it came while the quota was spent."""
        if self._limit is None:
            return None
        now = time.monotonic()
        elapsed = (now - self._window_start) * 1000
        if elapsed >= self._window_ms:
            self._window_start, self._used, elapsed = now, 0, 0
        self._used += 1
        left = self._limit - self._used
        if left < 0:
            self.breaches += 1
        return left, max(1, int(self._window_ms - elapsed))

    async def _order(self, request: Request) -> Response:
        return await self._serve(request, "order")

    async def _products(self, request: Request) -> Response:
        return await self._serve(request, "products")

    async def _addresses(self, request: Request) -> Response:
        return await self._serve(request, "shipping_addresses")

