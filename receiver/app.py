"""The Starlette application."""

from __future__ import annotations

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
from receiver.intake import webhook_routes
from workers.context import Context, connect, connect_async
from workers.intake import Delivery, store_deliveries_async

API = "/api/202412"
GC_THRESHOLDS = (20_000, 20, 20)  # CPython's defaults are (700, 10, 10)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    settings.require_verification()
    if not settings.redis_url:
        raise SystemExit("REDIS_URL: not set (orderhooks dev starts an embedded Redis and sets it)")
    logs.configure(settings.log_format, settings.log_level)
    redis = connect(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    ctx = Context.create(settings, redis=redis, load=False)

    aredis = connect_async(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)

    async def store(deliveries: Sequence[Delivery]) -> list[bool]:
        return await store_deliveries_async(aredis, ctx.redis, ctx.keys, ctx.queue, deliveries, settings.event_ttl)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.writer = GroupWriter(store, settings.intake_batch)
        # Each delivery allocates a few thousand short-lived objects (its parsed body, the models);
        # the cyclic collector need not rescan the modules and app built at start-up each time.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await app.state.writer.close()
            await aredis.aclose()
            redis.close()

    app = Starlette(
        routes=[
            *webhook_routes(settings),
            Route(f"{API}/orders", api.list_orders),
            Route(f"{API}/orders/count", api.count_orders),
            Route(f"{API}/orders/{{order_id:anything}}", api.get_order),
            Route("/api/openapi.json", openapi.openapi_json),
            Route("/api/events", api.list_events),
            Route("/api/events/{event_id:anything}", api.get_event),
            Route("/healthz", api.healthz),
            Route("/readyz", api.readyz),
            Route("/metrics", metrics.endpoint),
            *ui.routes,
        ],
        exception_handlers={HTTPException: api.http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ctx = ctx
    return app
