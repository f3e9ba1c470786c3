"""What a worker process needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Connection as AsyncConnection
from redis.asyncio import Redis as AsyncRedis
from redis.connection import HiredisRespSerializer
from rq import Queue
from rq.serializers import JSONSerializer

from orderhooks.config import Settings
from workers.handlers import Registry, load_handlers, registry
from workers.keys import Keys


def connect(url: str, **kwargs) -> Redis:
    return Redis.from_url(url, health_check_interval=10, socket_keepalive=True, **kwargs)


class _HiredisPacking(AsyncConnection):
    """redis.asyncio packs commands in Python, about an argument at a time; the synchronous
    client's hiredis packer does it in C, which matters for the receiver's large group writes."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args):
        return self._packer.pack(*args)


def connect_async(url: str, **kwargs) -> AsyncRedis:
    return AsyncRedis.from_url(url, health_check_interval=10, socket_keepalive=True,
                               connection_class=_HiredisPacking, **kwargs)


def rq_pipeline(redis: Redis):
    """A MULTI/EXEC pipeline already in multi mode, as RQ expects when handed a pipeline."""
    pipe = redis.pipeline(transaction=True)
    pipe.multi()
    return pipe


def make_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=redis, serializer=JSONSerializer)


@dataclass
class Context:
    settings: Settings
    redis: Redis
    keys: Keys
    queue: Queue
    registry: Registry

    @classmethod
    def create(cls, settings: Settings, redis: Redis | None = None, load: bool = True) -> Context:
        if redis is None:
            if not settings.redis_url:
                raise RuntimeError("REDIS_URL is not set")
            redis = connect(settings.redis_url)
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
