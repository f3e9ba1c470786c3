"""Reconciliation: heal the projection from a shop's Orders API.

Webhooks get lost (a sender gives up after its retries, an endpoint was down
for a day), so a run pages the shop's orders changed since its last
successful run (less `ORDERHOOKS_RECONCILE_OVERLAP`) and feeds every order
through the same normalization and merge as a webhook:

- an order that would change the projection (missing locally: *healed*; or
  newer than the local copy: *updated*) is stored as an event of topic
  `orders/reconcile`, source `reconcile`, id `reconcile:{orderId}:{updatedAt
  in UTC microseconds}`, raw body `{"order": ...}` exactly as the page sent
  it, and applied before the run goes on; its handlers run on the workers;
- one that changes nothing is counted *unchanged* and stores nothing;
- one that does not normalize is stored as a *quarantined* `orders/reconcile`
  event (kept, replayable) and the run goes on.

A snapshot from the API ranks below every webhook topic, so a webhook with
the same `updatedAt` wins, and a webhook that arrived after the page was read
is never overwritten by the older API snapshot (the merge decides, exactly
as for two webhooks). One run per shop at a time, across every process.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import structlog

from orderhooks.config import ConfigError
from schemas import ORDERS_RECONCILE, NormalizedEvent, Projection, merge
from storage import metrics, notices
from storage.intake import Delivery, store_deliveries
from storage.keys import GENSTORE
from storage.projection import apply_events, read_projection
from storage.shops import TokenUnreadable, get_shop, record_run
from storage.status import Status
from storage.store import Store
from workers.genstore import MAX_LIMIT, GenstoreAuthError, GenstoreError, ListedOrder, OrderPage, client_for

RESUME_JOB = "workers.jobs.resume_pending"  # takes one ref or a list of refs
RECONCILE_JOB = "workers.jobs.reconcile_shop"
SOURCE = "reconcile"
log = structlog.get_logger("orderhooks.reconcile")


class ReconcileRefused(Exception):
    """The run cannot start: `exit_code` 1 (a run in progress) or 2 (the shop cannot be reconciled)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Summary:
    """What a run did, as `orderhooks reconcile --json` prints it."""

    shop: str
    pages: int = 0
    seen: int = 0
    healed: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    errors: int = 0
    failed: str | None = None
    token_refused: bool = field(default=False, repr=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("token_refused")
        return data

    @property
    def exit_code(self) -> int:
        """0 finished (quarantined orders included), 3 the API refused the token, 1 could not finish."""
        if self.failed is None:
            return 0
        return 3 if self.token_refused else 1


def event_id(order_id: str, listed: ListedOrder) -> str:
    """`reconcile:{orderId}:{updatedAt in UTC microseconds}`: seeing the same snapshot again is a duplicate.
    An order that does not normalize is named by a hash of its text instead of a time."""
    order = listed.order
    if order is not None and order.updated_at is not None:
        moment = order.updated_at.astimezone(UTC)
        micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _MICRO
        return f"reconcile:{order_id}:{micros}"
    return f"reconcile:{order_id}:sha256:{hashlib.sha256(listed.raw.encode()).hexdigest()}"


_MICRO = datetime.resolution  # one microsecond


def _since(ctx: Store, shop: str, since: datetime | None, full: bool, last_success: float | None) -> datetime | None:
    """`updatedAtMin` for this run: `--since`; nothing for `--full` or a shop's first run; else the last
    successful run's start less the overlap."""
    if since is not None:
        return since
    if full or last_success is None:
        return None
    return datetime.fromtimestamp(last_success - ctx.settings.reconcile_overlap, UTC)


class _Lock:
    """The shop's run lock: SET NX with a short TTL, kept fresh by a heartbeat thread while the run lives and
    released only by its holder, so a run whose process died frees the shop within the TTL."""

    RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    REFRESH = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"

    def __init__(self, ctx: Store, shop: str) -> None:
        self.redis, self.key, self.value = ctx.redis, ctx.keys.reconcile_lock(shop), secrets.token_hex(8)
        self.ttl = int(min(30, max(3, ctx.settings.recover_after / 2)))
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.redis.set(self.key, self.value, nx=True, ex=self.ttl):
            return False
        self._beat = threading.Thread(target=self._refresh, daemon=True, name="reconcile-lock")
        self._beat.start()
        return True

    def _refresh(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.redis.eval(self.REFRESH, 1, self.key, self.value, self.ttl)
            except Exception as exc:  # Redis away for a moment: the next beat tries again
                log.warning("reconcile_lock_not_refreshed", error=type(exc).__name__)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self.redis.eval(self.RELEASE, 1, self.key, self.value)


def _local(ctx: Store, shop: str, order_ids: list[str]) -> dict[str, Projection | None]:
    """The stored projections of these orders, in one round trip."""
    raws = ctx.redis.mget([ctx.keys.order(GENSTORE, shop, oid) for oid in order_ids]) if order_ids else []
    return {oid: read_projection(raw) for oid, raw in zip(order_ids, raws, strict=True)}


def apply_page(ctx: Store, shop: str, page: OrderPage, summary: Summary, seen: set[str]) -> None:
    """Count, store and apply one page's orders (see the module's docstring)."""
    fresh = []
    for listed in page.orders:
        if listed.order_id is not None:
            if listed.order_id in seen:  # an id seen twice in a run counts once
                continue
            seen.add(listed.order_id)
        summary.seen += 1
        fresh.append(listed)
    local = _local(ctx, shop, [x.order_id for x in fresh if x.ok and x.order_id is not None])
    deliveries: list[Delivery] = []
    kinds: dict[str, str] = {}  # event ref -> healed | updated
    events: dict[str, NormalizedEvent] = {}  # event ref -> the event its body normalizes to
    now = time.time()
    for listed in fresh:
        order_id = listed.order_id or "?"
        eid = event_id(order_id, listed)
        if not listed.ok:
            deliveries.append(Delivery(id=eid, topic=ORDERS_RECONCILE, shop=shop, raw=listed.body.encode(),
                                       received_at=now, source=SOURCE, status=Status.QUARANTINED,
                                       order_id=listed.order_id, error=listed.error))
            summary.quarantined += 1
            continue
        current = local.get(order_id)
        event = NormalizedEvent(topic=ORDERS_RECONCILE, order_id=order_id, order=listed.order)
        if merge(current, ORDERS_RECONCILE, eid, event).outcome != "applied":
            summary.unchanged += 1
            continue
        d = Delivery(id=eid, topic=ORDERS_RECONCILE, shop=shop, raw=listed.body.encode(), received_at=now,
                     source=SOURCE, status=Status.QUEUED, order_id=order_id)
        deliveries.append(d)
        kinds[d.ref] = "healed" if current is None else "updated"
        events[d.ref] = event
    if not deliveries:
        return
    # Stored with their processing job, as a receiver stores a delivery: if this run dies now, a worker
    # applies them. Applied here too, so that when the run ends what it counted is in the projection.
    stored = store_deliveries(ctx.redis, ctx.keys, ctx.queue, deliveries, ctx.settings.event_ttl)
    refs = [d.ref for d, new in zip(deliveries, stored, strict=True) if new and d.status == Status.QUEUED]
    failed: dict[str, str] = {}
    applied = apply_events(ctx.redis, ctx.keys, refs, lambda topic: [], failed, events)
    pipe = ctx.redis.pipeline(transaction=False)
    for ref in kinds:
        pipe.hmget(ctx.keys.event(ref), "state", "outcome")
    for (ref, kind), (state, outcome) in zip(kinds.items(), pipe.execute(), strict=True):
        if state == Status.PROCESSED.encode() and outcome == b"applied":  # by this run, or by a worker that was quicker
            setattr(summary, kind, getattr(summary, kind) + 1)
        elif ref in failed:
            summary.errors += 1
        else:  # a webhook got there first, or this snapshot was seen before: nothing changed
            summary.unchanged += 1
    if failed:
        log.warning("reconcile_apply_failed", shop=shop, errors=failed)
    if applied:  # their handlers run on the workers (this process may have no handler registry): one job a page
        ctx.queue.enqueue_call(RESUME_JOB, args=([a.record.ref for a in applied],), result_ttl=300,
                               failure_ttl=7 * 24 * 3600, timeout=3600,
                               description=f"handlers for {len(applied)} reconciled orders of {shop}")
        metrics.record(ctx.redis, ctx.keys, events=[(a.record.topic, Status.STALE if a.stale else Status.PROCESSED)
                                                     for a in applied])


def reconcile_shop(ctx: Store, shop: str, *, since: datetime | None = None, full: bool = False,
                   progress: Callable[[Summary, int | None], None] | None = None, client=None) -> Summary:
    """One run for `shop`; ReconcileRefused when it cannot start. The summary says how it ended."""
    shop = shop.strip().lower()
    registered = get_shop(ctx.redis, ctx.keys, shop)
    if registered is None:
        raise ReconcileRefused(f"shop {shop} is not registered: `orderhooks shops add {shop} --token ...`", 2)
    if registered.platform != GENSTORE:
        raise ReconcileRefused(f"shop {shop} is a {registered.platform} store: only Genstore shops are "
                               "reconciled", 2)
    lock = _Lock(ctx, shop)
    if not lock.acquire():
        raise ReconcileRefused(f"a run for {shop} is in progress", 1)
    started = time.time()
    summary = Summary(shop)
    try:
        try:
            client = client or client_for(ctx.redis, ctx.keys, ctx.settings, shop)
        except (ConfigError, TokenUnreadable) as exc:
            raise ReconcileRefused(str(exc), 2) from None
        updated_at_min = _since(ctx, shop, since, full, registered.last_success_started_at)
        total = None
        if progress is not None:
            try:
                total = client.count_orders(updated_at_min)
            except GenstoreError:
                total = None
            progress(summary, total)
        seen: set[str] = set()
        try:
            for page in client.iter_pages(MAX_LIMIT, None, updated_at_min):
                summary.pages += 1
                apply_page(ctx, shop, page, summary, seen)
                if progress is not None:
                    progress(summary, total)
        except GenstoreAuthError as exc:
            summary.failed, summary.token_refused = str(exc), True
        except GenstoreError as exc:
            summary.failed = str(exc)
        record_run(ctx.redis, ctx.keys, shop, started_at=started, ok=summary.failed is None,
                   healed=summary.healed, updated=summary.updated, errors=summary.errors, error=summary.failed)
        metrics.record(ctx.redis, ctx.keys, reconcile=[(shop, summary)])
        _notify(ctx, shop, summary)
        log.info("reconcile_done", **summary.to_json())
        return summary
    finally:
        lock.release()


def _notify(ctx: Store, shop: str, summary: Summary) -> None:
    """What a run found that someone should hear about: orders healed or updated (webhooks are being
    missed), orders quarantined, the run failing."""
    if summary.healed + summary.updated:
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "reconcile.healed", shop,
                         summary.healed + summary.updated, [{"healed": summary.healed, "updated": summary.updated}])
    if summary.quarantined:
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "events.quarantined", shop, summary.quarantined,
                         [{"topic": ORDERS_RECONCILE, "reason": "reconciled orders that do not normalize"}],
                         total=Status.QUARANTINED)
    if summary.failed:
        notices.occurred(ctx.redis, ctx.keys, ctx.settings, "reconcile.failed", shop, 1,
                         [{"reason": summary.failed[:300]}])


def schedule_due(ctx: Store, now: float | None = None) -> list[str]:
    """Enqueue a run for every registered Genstore shop whose interval has passed; return those shops.

    Called by every worker's background loop: the `reconcile_due` key (SET NX, expiring after the
    interval) lets one worker enqueue each shop's run per interval, and the run's own lock makes sure
    only one runs at a time.
    """
    every = ctx.settings.reconcile_every
    if every <= 0:
        return []
    from storage.shops import list_shops

    now = time.time() if now is None else now
    due = []
    for shop in list_shops(ctx.redis, ctx.keys):
        if shop.platform != GENSTORE:
            continue
        last = shop.last_run.at if shop.last_run else None
        if last is not None and now - last < every:
            continue
        if ctx.redis.set(ctx.keys.reconcile_due(shop.shop), b"1", nx=True, ex=int(every)):
            ctx.queue.enqueue_call(RECONCILE_JOB, args=(shop.shop,), result_ttl=300,
                                   failure_ttl=7 * 24 * 3600, timeout=3600,
                                   description=f"reconcile {shop.shop}")
            due.append(shop.shop)
    return due
