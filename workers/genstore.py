"""A typed client for Genstore's Orders API (seed 000): create, update, cancel, get, list (paged) and count.

    with client_for(redis, keys, settings, "acme.genmystore.com") as api:   # None when no token is registered
        api.update_order("1001", tags=["vip", "gift"])
        for listed in api.iter_orders(updated_at_min=since):
            listed.order or listed.error                                   # per order, never per page

Every response is read through `schemas` normalization, exactly as a webhook body is, so the list
response's JSON-text arrays and stray quotes become the same typed `schemas.Order`. A list page that holds an
order which does not normalize still succeeds: that order comes back with its reason and its raw text.

Requests send `X-Genstore-Access-Token` and time out (`CONNECT_TIMEOUT`, `READ_TIMEOUT`). 429 (honouring
`Retry-After`, seconds or an HTTP date), 5xx and network errors are retried with exponential backoff and full
jitter, within `Retry.attempts` tries and `Retry.budget` seconds of waiting; creating and cancelling are
retried only when the request cannot have been acted on (429, or no connection made). 401/403 fail at once
(`GenstoreAuthError`, naming the shop); other 4xx fail at once with the status and the API's message.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from redis import Redis

from orderhooks.config import Settings
from schemas import NormalizationError, Order, normalize
from schemas.topics import ORDERS_UPDATE
from storage.keys import Keys

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_LIMIT",
    "READ_TIMEOUT",
    "GenstoreAuthError",
    "GenstoreClient",
    "GenstoreError",
    "GenstoreHTTPError",
    "GenstoreNotFound",
    "GenstorePagingError",
    "GenstoreResponseError",
    "GenstoreUnavailable",
    "ListedOrder",
    "OrderPage",
    "Retry",
    "client_for",
    "list_query",
]

log = structlog.get_logger("orderhooks.genstore")

# Timeouts, in seconds: one place.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)

TOKEN_HEADER = "X-Genstore-Access-Token"
USER_AGENT = "orderhooks"


# -- paging: every choice about how the list endpoint is asked and walked lives in this block ------------------
# Seed 000 documents only `limit` (at most 250, as our read API also caps it). Paging by `sinceId` (orders with
# a greater `orderId`, ordered by `orderId`) and filtering by `updatedAtMin` are the parameters our own read API
# mirrors; if Genstore turns out to page otherwise, this block is what changes.

MAX_LIMIT = 250


def list_query(limit: int, since_id: str | None = None, updated_at_min: datetime | str | None = None) -> dict:
    """The query string of one list (or, without `limit`, count) request."""
    query: dict[str, str] = {}
    if limit:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}, got {limit}")
        query["limit"] = str(limit)
    if since_id is not None:
        query["sinceId"] = since_id
    if updated_at_min is not None:
        if isinstance(updated_at_min, datetime):
            if updated_at_min.tzinfo is None:
                raise ValueError("updated_at_min: needs a timezone")
            updated_at_min = updated_at_min.isoformat()
        query["updatedAtMin"] = updated_at_min
    return query


def id_key(order_id: str) -> tuple[int, int, str]:
    """How order ids are ordered: numeric ids as numbers, before any other id (compared as text)."""
    return (0, int(order_id), "") if order_id.isdigit() else (1, 0, order_id)


def next_cursor(page: OrderPage, limit: int) -> str | None:
    """The `sinceId` of the page after `page`, or None when `page` was the last (a short page).
    A full page with no `orderId` above the cursor it was asked with means the API ignored `sinceId`:
    following it would loop, so that raises."""
    if len(page.orders) < limit:
        return None
    if page.last_id is None or (page.since_id is not None and id_key(page.last_id) <= id_key(page.since_id)):
        raise GenstorePagingError(
            page.shop, f"the API ignored sinceId: a full page of {limit} after {page.since_id or 'the start'} "
                       f"holds no orderId above it")
    return page.last_id


# -- errors --------------------------------------------------------------------------------------------------

class GenstoreError(Exception):
    """Any failure of a call to a shop's Orders API; the message names the shop."""

    def __init__(self, shop: str, message: str) -> None:
        super().__init__(f"{shop}: {message}")
        self.shop = shop


class GenstoreAuthError(GenstoreError):
    """The API refused the shop's token (401 or 403): not retried."""

    def __init__(self, shop: str, status: int, message: str) -> None:
        super().__init__(shop, f"the Orders API refused the access token ({status}: {message})")
        self.status = status


class GenstoreHTTPError(GenstoreError):
    """The API answered with an error status (a 4xx, or a 5xx that is not retried)."""

    def __init__(self, shop: str, status: int, message: str) -> None:
        super().__init__(shop, f"{status} from the Orders API: {message}")
        self.status = status
        self.message = message


class GenstoreNotFound(GenstoreHTTPError):
    """404: no such order."""


class GenstoreUnavailable(GenstoreError):
    """Retries spent on 429s, 5xx or network errors (or a wait asked for beyond the retry budget)."""


class GenstoreResponseError(GenstoreError):
    """A 2xx whose body is not what the endpoint returns (not JSON, no `order`, an order that does not
    normalize)."""


class GenstorePagingError(GenstoreError):
    """Paging cannot go on safely (the API ignored `sinceId`)."""


# -- results -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListedOrder:
    """One order of a list page: `raw` is its JSON text exactly as the page sent it; `order` the normalized
    order, or None and `error` the reason it does not normalize. `order_id` is the page's `orderId` when it
    has a usable one."""

    raw: str
    order: Order | None
    error: str | None
    order_id: str | None

    @property
    def ok(self) -> bool:
        return self.order is not None

    @property
    def body(self) -> str:
        """The order as a delivery body, `{"order": ...}`, holding `raw` unchanged."""
        return '{"order": ' + self.raw + "}"


@dataclass(frozen=True)
class OrderPage:
    shop: str
    orders: list[ListedOrder]
    since_id: str | None  # the cursor the page was asked with
    last_id: str | None  # the greatest usable orderId on the page


@dataclass(frozen=True)
class Retry:
    """Retry policy: up to `attempts` tries in all, waiting `random() * min(cap, base * 2**n)` seconds before
    try n+1 (full jitter) or what `Retry-After` asks, at most `budget` seconds of waiting in all.
    `sleep` and `random` are injectable so tests run without waiting."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    budget: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        return self.random() * min(self.cap, self.base * 2**attempt)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date); None when absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _message(response: httpx.Response) -> str:
    """The API's own words for an error: `errors`, `error` or `message` of a JSON body, else the text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for name in ("errors", "error", "message"):
            if data.get(name):
                value = data[name]
                return value if isinstance(value, str) else json.dumps(value)[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase or "no message"


_DECODER = json.JSONDecoder(parse_float=Decimal)
_WS = " \t\n\r"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def split_orders(text: str) -> list[tuple[str, Any]]:
    """The `orders` of a list response: each order's exact text and its parsed value, in page order.
    ValueError when the page is not `{"orders": [...]}` JSON."""
    pieces: list[tuple[str, Any]] = []
    found = False
    i = _skip_ws(text, 0)
    if not text.startswith("{", i):
        raise ValueError("not a JSON object")
    i = _skip_ws(text, i + 1)
    if text.startswith("}", i):
        raise ValueError("no orders")
    while True:
        name, i = _DECODER.raw_decode(text, i)
        if not isinstance(name, str):
            raise ValueError("not a JSON object")
        i = _skip_ws(text, i)
        if not text.startswith(":", i):
            raise ValueError("not a JSON object")
        i = _skip_ws(text, i + 1)
        if name == "orders" and text.startswith("[", i):
            found, pieces = True, []
            i = _skip_ws(text, i + 1)
            if text.startswith("]", i):
                i += 1
            else:
                while True:
                    value, end = _DECODER.raw_decode(text, i)
                    pieces.append((text[i:end], value))
                    i = _skip_ws(text, end)
                    if text.startswith(",", i):
                        i = _skip_ws(text, i + 1)
                    elif text.startswith("]", i):
                        i += 1
                        break
                    else:
                        raise ValueError("orders: not a JSON array")
        else:
            _, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text.startswith(",", i):
            i = _skip_ws(text, i + 1)
        elif text.startswith("}", i):
            break
        else:
            raise ValueError("not a JSON object")
    if _skip_ws(text, i + 1) != len(text):
        raise ValueError("extra data after the JSON object")
    if not found:
        raise ValueError("no orders array")
    return pieces


def _usable_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("orderId")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip() and value not in ("null",):
            return value
    return None


def _listed(raw: str, value: Any) -> ListedOrder:
    order_id = _usable_id(value)
    try:
        event = normalize(ORDERS_UPDATE, '{"order": ' + raw + "}")
    except NormalizationError as exc:
        return ListedOrder(raw, None, exc.reason, order_id)
    return ListedOrder(raw, event.order, None, event.order_id)


# -- the client ----------------------------------------------------------------------------------------------

class GenstoreClient:
    """One shop's Orders API. Reuses its connections; close it (or use it as a context manager)."""

    def __init__(self, shop: str, api_url: str, token: str, *, retry: Retry | None = None,
                 timeout: httpx.Timeout = TIMEOUT, transport: httpx.BaseTransport | None = None) -> None:
        self.shop = shop
        self.api_url = api_url.rstrip("/")
        self.retry = retry or Retry()
        self._http = httpx.Client(
            base_url=self.api_url, timeout=timeout, transport=transport,
            headers={TOKEN_HEADER: token, "Accept": "application/json", "User-Agent": USER_AGENT},
        )

    def __repr__(self) -> str:  # never the token
        return f"GenstoreClient(shop={self.shop!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GenstoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the six endpoints -----------------------------------------------------------------------------------

    def create_order(self, order: Mapping[str, Any]) -> Order:
        """`POST /orders` with `{"order": {...}}` (Genstore's camelCase fields); the created order."""
        return self._order(self._call("POST", "/orders", json={"order": dict(order)}, idempotent=False))

    def update_order(self, order_id: str, *, tags: Sequence[str] | str | None = None, note: str | None = None,
                     email: str | None = None, phone: str | None = None,
                     shipping_address: Mapping[str, Any] | None = None) -> Order:
        """`PUT /orders/{orderId}`: the fields Genstore lets an update change (email, phone, note, tags,
        shipping address); only those given are sent. Tags go as Genstore sends them: `"a, b"`."""
        fields: dict[str, Any] = {"orderId": order_id}
        if tags is not None:
            fields["tags"] = tags if isinstance(tags, str) else ", ".join(t.strip() for t in tags)
        for name, value in (("note", note), ("email", email), ("phone", phone),
                            ("shippingAddress", dict(shipping_address) if shipping_address is not None else None)):
            if value is not None:
                fields[name] = value
        return self._order(self._call("PUT", f"/orders/{quote(order_id, safe='')}", json={"order": fields}))

    def cancel_order(self, order_id: str, reason: str | None = None) -> Order:
        """`POST /orders/{orderId}/cancel` with `{"reason", "orderId"}`; the cancelled order."""
        body = {"reason": reason, "orderId": order_id} if reason else {"orderId": order_id}
        return self._order(self._call("POST", f"/orders/{quote(order_id, safe='')}/cancel", json=body,
                                      idempotent=False))

    def get_order(self, order_id: str) -> Order:
        """`GET /orders/{orderId}`; GenstoreNotFound when there is none."""
        return self._order(self._call("GET", f"/orders/{quote(order_id, safe='')}"))

    def count_orders(self, updated_at_min: datetime | str | None = None) -> int:
        """`GET /orders/count` (Genstore sends the count as a string)."""
        response = self._call("GET", "/orders/count", params=list_query(0, None, updated_at_min))
        data = self._json(response)
        count = data.get("count") if isinstance(data, dict) else None
        if isinstance(count, int) and not isinstance(count, bool):
            return count
        if isinstance(count, str) and count.strip().isdigit():
            return int(count)
        raise GenstoreResponseError(self.shop, f"count: not a count ({str(count)[:50]!r})")

    def list_orders(self, limit: int = MAX_LIMIT, since_id: str | None = None,
                    updated_at_min: datetime | str | None = None) -> OrderPage:
        """One page of `GET /orders`: each order normalized, or with the reason it does not normalize."""
        response = self._call("GET", "/orders", params=list_query(limit, since_id, updated_at_min))
        try:
            pieces = split_orders(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise GenstoreResponseError(self.shop, f"the order list is not {{\"orders\": [...]}} JSON: {exc}") \
                from None
        orders = [_listed(raw, value) for raw, value in pieces]
        ids = [o.order_id for o in orders if o.order_id is not None]
        return OrderPage(self.shop, orders, since_id, max(ids, key=id_key) if ids else None)

    def iter_pages(self, limit: int = MAX_LIMIT, since_id: str | None = None,
                   updated_at_min: datetime | str | None = None) -> Iterator[OrderPage]:
        """Every page from `since_id` on, until a short page; GenstorePagingError before a page that shows the
        API ignored `sinceId`."""
        cursor = since_id
        while True:
            page = self.list_orders(limit, cursor, updated_at_min)
            following = next_cursor(page, limit)
            yield page
            if following is None:
                return
            cursor = following

    def iter_orders(self, limit: int = MAX_LIMIT, since_id: str | None = None,
                    updated_at_min: datetime | str | None = None) -> Iterator[ListedOrder]:
        """Every order of every page, each `orderId` once (a page repeating ids yields them once)."""
        seen: set[str] = set()
        for page in self.iter_pages(limit, since_id, updated_at_min):
            for listed in page.orders:
                if listed.order_id is not None:
                    if listed.order_id in seen:
                        continue
                    seen.add(listed.order_id)
                yield listed

    # -- transport -------------------------------------------------------------------------------------------

    def _order(self, response: httpx.Response) -> Order:
        try:
            return normalize(ORDERS_UPDATE, response.content).order  # type: ignore[return-value]
        except NormalizationError as exc:
            raise GenstoreResponseError(self.shop, f"the API's order does not normalize: {exc.reason}") from None

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GenstoreResponseError(self.shop, f"{response.request.url.path}: the answer is not JSON") \
                from None

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              json: Any = None, idempotent: bool = True) -> httpx.Response:
        """One API call with the retry policy. `idempotent` False (create, cancel): retried only where the
        request cannot have been acted on."""
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                problem = f"{type(exc).__name__}: {exc or 'no detail'}"
                if not idempotent and not never_sent:
                    raise GenstoreUnavailable(self.shop, f"{method} {path}: {problem} (not retried: the API may "
                                                         f"have acted on it)") from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status in (401, 403):
                    raise GenstoreAuthError(self.shop, status, _message(response))
                if status == 429:
                    wait = retry_after(response.headers.get("Retry-After"))
                elif status < 500:
                    error = GenstoreNotFound if status == 404 else GenstoreHTTPError
                    raise error(self.shop, status, _message(response))
                elif not idempotent:
                    raise GenstoreHTTPError(self.shop, status, _message(response) + " (not retried: the API may "
                                                                                    "have acted on it)")
                problem = f"{status}: {_message(response)}"
            if wait is None:
                wait = self.retry.backoff(attempt - 1)
            if attempt >= self.retry.attempts:
                raise GenstoreUnavailable(self.shop, f"{method} {path}: {problem}; gave up after {attempt} tries")
            if waited + wait > self.retry.budget:
                raise GenstoreUnavailable(self.shop, f"{method} {path}: {problem}; waiting {wait:g} s more would "
                                                     f"pass the retry budget of {self.retry.budget:g} s")
            log.warning("genstore_retry", shop=self.shop, method=method, path=path, problem=problem,
                        attempt=attempt, wait=round(wait, 3))
            self.retry.sleep(wait)
            waited += wait


def client_for(redis: Redis, keys: Keys, settings: Settings, shop: str, **options: Any) -> GenstoreClient | None:
    """The Orders API client of a registered Genstore shop, or None when the shop has no token registered
    (or is not a Genstore shop). Raises ConfigError without `ORDERHOOKS_SECRET_KEY` and
    `shops.TokenUnreadable` when that key cannot decrypt the token."""
    from storage import shops

    registered = shops.get_shop(redis, keys, shop)
    if registered is None or registered.platform != shops.GENSTORE:
        return None
    token = shops.token(redis, keys, settings, registered.shop)
    if token is None:
        return None
    return GenstoreClient(registered.shop, registered.api_url, token, **options)
