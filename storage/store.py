"""`Store`: what every process needs to reach orderhooks' storage, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from rq import Queue

from orderhooks.config import Settings
from storage.connection import make_queue, redis_client
from storage.keys import Keys


@dataclass
class Store:
    """The settings, the Redis client, the key names and the queue processing jobs go to.

    The receiver, the command line and the read side use it as it is; a worker's context
    (`workers.context.Context`) adds the handler registry.
    """

    settings: Settings
    redis: Redis
    keys: Keys
    queue: Queue

    @classmethod
    def create(cls, settings: Settings, redis: Redis | None = None) -> Store:
        if redis is None:
            redis = redis_client(settings)
        return cls(settings, redis, Keys(settings.prefix), make_queue(redis, settings))
