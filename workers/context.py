"""What a worker process needs, built once from the settings: the storage, plus the handler registry."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from redis import Redis

from orderhooks.config import Settings
from storage.connection import make_queue, redis_client
from storage.keys import Keys
from storage.store import Store
from workers.handlers import Registry, load_handlers, registry

log = structlog.get_logger("orderhooks.worker")


@dataclass
class Context(Store):
    registry: Registry = field(default_factory=lambda: registry)
    clients: dict = field(default_factory=dict, repr=False)  # shop -> its Orders API client, or None

    def api_for(self, shop: str, platform: str = "genstore"):
        """The Orders API client bound to `shop` (`event.api`), made once per shop; None when the shop has no
        token registered, no `ORDERHOOKS_SECRET_KEY` is set, or the token cannot be read."""
        if platform != "genstore" or not shop:
            return None
        if shop not in self.clients:
            from orderhooks.config import ConfigError
            from storage.shops import TokenUnreadable
            from workers.genstore import client_for

            try:
                self.clients[shop] = client_for(self.redis, self.keys, self.settings, shop)
            except (ConfigError, TokenUnreadable) as exc:
                log.warning("event_api_unavailable", shop=shop, reason=str(exc))
                self.clients[shop] = None
        return self.clients[shop]

    @classmethod
    def create(cls, settings: Settings, redis: Redis | None = None, load: bool = True) -> Context:
        if redis is None:
            redis = redis_client(settings)
        if load:
            load_handlers(settings.handler_modules)
        return cls(settings, redis, Keys(settings.prefix), make_queue(redis, settings), registry)


_current: Context | None = None


def get_context() -> Context:
    """The process's context; RQ jobs call this (built from the environment on first use)."""
    global _current
    if _current is None:
        _current = Context.create(Settings.from_env())
    return _current


def set_context(ctx: Context | None) -> None:
    global _current
    _current = ctx
