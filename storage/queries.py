"""Reading the projection and the event log (read API and CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from redis import Redis

from schemas import Projection, order_view
from storage.events import EventRecord, load_events
from storage.keys import GENSTORE, Keys, split_shop_member
from storage.projection import read_projection

ORDER_STATUSES = ("open", "closed", "cancelled", "any")


def order_sort_key(order_id: str) -> tuple:
    """Numeric ids compare as numbers, and come before any other ids.

    Only ASCII digits make a number (str.isdigit() also says yes to "²", which int()
    refuses), compared without int(), which refuses more than 4300 digits."""
    if order_id.isascii() and order_id.isdigit():
        digits = order_id.lstrip("0") or "0"
        return (0, len(digits), digits, order_id)
    return (1, 0, order_id, "")


def shops(redis: Redis, keys: Keys) -> list[tuple[str, str]]:
    """Every known shop as (platform, shop), sorted."""
    return sorted(split_shop_member(s.decode("utf-8", "replace")) for s in redis.smembers(keys.shops))


def platform_of(redis: Redis, keys: Keys, shop: str) -> str:
    """The platform a shop is known on (Genstore's when it is not known yet, or known on several)."""
    found = [p for p, s in shops(redis, keys) if s == shop]
    return found[0] if len(found) == 1 else GENSTORE


def _view(platform: str, projection: Projection, shop: str) -> dict | None:
    """The read API's order, as the order's platform shows it (`platforms.Platform.view`)."""
    if platform != GENSTORE:
        from platforms import get

        view = get(platform).view
        if view is not None:
            return view(projection, shop)
    return order_view(projection, shop)


def _state(platform: str, order: dict) -> tuple[bool, bool]:
    """(closed, cancelled) as the order's platform tells them."""
    if platform == GENSTORE:
        return bool(order.get("closedAt")), bool(order.get("cancelledAt"))
    from platforms import get

    return get(platform).order_state(order)


def get_order(redis: Redis, keys: Keys, platform: str, shop: str, order_id: str) -> dict | None:
    projection = read_projection(redis.get(keys.order(platform, shop, order_id)))
    return _view(platform, projection, shop) if projection else None


def find_orders(redis: Redis, keys: Keys, order_id: str, shop: str | None = None) -> list[tuple[str, str, str]]:
    """(platform, shop, orderId) of the orders with this id, or else whose id starts with it (an exact id beats
    prefixes), among the known shops or `shop`."""
    known = shops(redis, keys)
    candidates = [(p, s) for p, s in known if shop is None or s == shop] or ([(GENSTORE, shop)] if shop else [])
    pipe = redis.pipeline(transaction=False)
    for p, s in candidates:
        pipe.sismember(keys.orders(p, s), order_id)
    exact = [(p, s, order_id) for (p, s), hit in zip(candidates, pipe.execute(), strict=True) if hit]
    if exact:
        return exact
    found = []
    for p, s in candidates:
        found += [(p, s, i) for i in sorted(m.decode("utf-8", "replace") for m in redis.smembers(keys.orders(p, s)))
                  if i.startswith(order_id)]
    return found


@dataclass
class OrderFilter:
    since_id: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    status: str = "any"
    updated_at_min: datetime | None = None
    updated_at_max: datetime | None = None

    def accepts(self, order: dict, platform: str = GENSTORE) -> bool:
        if self.financial_status and order.get("financialStatus") != self.financial_status:
            return False
        if self.fulfillment_status and order.get("fulfillmentStatus") != self.fulfillment_status:
            return False
        if self.status != "any":
            closed, cancelled = _state(platform, order)
            if self.status == "open" and (closed or cancelled):
                return False
            if self.status == "closed" and not closed:
                return False
            if self.status == "cancelled" and not cancelled:
                return False
        if self.updated_at_min or self.updated_at_max:
            updated = datetime.fromisoformat(order["updatedAt"]) if order.get("updatedAt") else None
            if updated is None:
                return False
            if self.updated_at_min and updated < self.updated_at_min:
                return False
            if self.updated_at_max and updated > self.updated_at_max:
                return False
        return True


def iter_orders(redis: Redis, keys: Keys, platform: str, shop: str, flt: OrderFilter,
                chunk: int = 500) -> Iterator[dict]:
    """Orders of a shop in order-id order, filtered; read in chunks of `chunk`."""
    ids = sorted((i.decode("utf-8", "replace") for i in redis.smembers(keys.orders(platform, shop))),
                 key=order_sort_key)
    if flt.since_id is not None:
        after = order_sort_key(flt.since_id)
        ids = [i for i in ids if order_sort_key(i) > after]
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        for raw in redis.mget([keys.order(platform, shop, i) for i in part]):
            if not raw:
                continue
            view = _view(platform, read_projection(raw), shop)
            if view is not None and flt.accepts(view, platform):
                yield view


def list_orders(redis: Redis, keys: Keys, platform: str, shop: str, flt: OrderFilter, limit: int) -> list[dict]:
    out = []
    for order in iter_orders(redis, keys, platform, shop, flt):
        out.append(order)
        if len(out) >= limit:
            break
    return out


def count_orders(redis: Redis, keys: Keys, platform: str, shop: str, flt: OrderFilter) -> int:
    return sum(1 for _ in iter_orders(redis, keys, platform, shop, flt))


def list_events(
    redis: Redis, keys: Keys, *, topic: str | None = None, status: str | None = None,
    order_id: str | None = None, shop: str | None = None, limit: int = 50, chunk: int = 200,
) -> list[EventRecord]:
    """Newest first. The narrowest index is scanned; other filters are applied while reading."""
    if order_id and shop:
        index = keys.order_events(platform_of(redis, keys, shop), shop, order_id)
    elif order_id:
        index = None
        ids: list[str] = []
        for p, s in shops(redis, keys):
            ids += [i.decode() for i in redis.zrange(keys.order_events(p, s, order_id), 0, -1)]
    elif status:
        index = keys.events_by_status(status)
    elif topic:
        index = keys.events_by_topic(topic)
    else:
        index = keys.events
    out: list[EventRecord] = []
    start = 0
    while len(out) < limit:
        if index is None:
            if start:
                break
            page = ids
        else:
            page = [i.decode() for i in redis.zrevrange(index, start, start + chunk - 1)]
        if not page:
            break
        start += chunk
        for rec in load_events(redis, keys, page):
            if rec is None:
                continue
            if (topic and rec.topic != topic) or (status and rec.status != status):
                continue
            if (shop and rec.shop != shop) or (order_id and rec.order_id != order_id):
                continue
            out.append(rec)
    out.sort(key=lambda r: (r.received_at, r.id), reverse=True)
    return out[:limit]
