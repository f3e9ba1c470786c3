"""The Starlette application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from orderhooks import logs
from orderhooks.config import Settings
from receiver import api, convertors, metrics, openapi, ui  # noqa: F401 (convertors registers `anything`)
from receiver.groupcommit import GroupWriter
from receiver.intake import webhook_endpoints, webhook_routes
from receiver.rejected import RejectedLog
from storage.connection import connected_replicas, redis_client, redis_client_async
from storage.intake import Delivery, store_deliveries_async
from storage.store import Store

API = "/api/202412"
GC_THRESHOLDS = (20_000, 20, 20)  # CPython's defaults are (700, 10, 10)


class Receiver(Starlette):
    """The Starlette app, with the webhook routes taken before it: a `POST` to one of them goes straight to its
    ASGI endpoint, without the middleware stack and the router (the endpoint answers every error itself).
    Every other request, and any other method on those paths (405), goes through Starlette as usual."""

    def __init__(self, *args, webhooks: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.webhooks = webhooks

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.webhooks.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class ReplicaWatch:
    """How many replicas the primary has, looked up once a second: each group's WAIT asks for all of them."""

    def __init__(self, aredis, required: int) -> None:
        self.aredis = aredis
        self.connected = required

    async def run(self) -> None:
        while True:
            try:
                self.connected = connected_replicas(await self.aredis.info("replication"))
            except Exception:  # Redis away: the stores say so; keep the last count
                pass
            await asyncio.sleep(1.0)


def create_app(settings: Settings | None = None) -> Receiver:
    settings = settings or Settings.from_env()
    settings.require_verification()
    if not settings.redis_configured:
        raise SystemExit("REDIS_URL: not set (orderhooks dev starts an embedded Redis and sets it)")
    logs.configure(settings.log_format, settings.log_level)
    redis = redis_client(settings, socket_connect_timeout=2, socket_timeout=5)
    store = Store.create(settings, redis=redis)

    aredis = redis_client_async(settings, socket_connect_timeout=2, socket_timeout=5)

    replicas = ReplicaWatch(aredis, settings.min_replicas)

    async def write(deliveries: Sequence[Delivery]) -> list[bool]:
        return await store_deliveries_async(aredis, store.redis, store.keys, store.queue, deliveries,
                                            settings.event_ttl, settings.min_replicas, settings.replica_timeout_ms,
                                            replicas.connected)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.writer = GroupWriter(write, settings.intake_batch)
        watching = asyncio.create_task(replicas.run()) if settings.min_replicas else None
        recorder = asyncio.create_task(app.state.rejected.run())
        # Each delivery allocates a few thousand short-lived objects (its parsed body, the models);
        # the cyclic collector need not rescan the modules and app built at start-up each time.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            if watching:
                watching.cancel()
            recorder.cancel()
            await app.state.rejected.close()
            await app.state.writer.close()
            await aredis.aclose()
            redis.close()

    webhooks = webhook_endpoints(settings)
    app = Receiver(
        webhooks=webhooks,
        routes=[
            *webhook_routes(webhooks),
            Route(f"{API}/orders", api.list_orders),
            Route(f"{API}/orders/count", api.count_orders),
            Route(f"{API}/orders/{{order_id:anything}}", api.get_order),
            Route("/api/openapi.json", openapi.openapi_json),
            Route("/api/events", api.list_events),
            Route("/api/events/{event_id:anything}", api.get_event),
            Route("/", api.root),
            Route("/api/rejected", api.list_rejected),
            Route("/healthz", api.healthz),
            Route("/readyz", api.readyz),
            Route("/metrics", metrics.endpoint),
            *ui.routes,
        ],
        exception_handlers={HTTPException: api.http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.rejected = RejectedLog(redis, store.keys, settings)
    return app
