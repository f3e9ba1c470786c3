"""What a worker process needs, built once from the settings."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import redis as redislib
import structlog
from redis import Redis
from rq import Queue

from orderhooks.config import Settings
from storage.connection import connect, connect_async, make_queue, redis_client, rq_pipeline  # noqa: F401
from workers.handlers import Registry, load_handlers, registry
from workers.keys import Keys

# Error codes by which Redis refuses a command for reasons of its own, not of the command's: a full Redis
# (`maxmemory` with `noeviction`), a replica, a Redis loading its data, ... Inside a Lua script the
# code comes after "Error running script ...: -", so it is looked for there too.
_REFUSALS = {
    "OOM": "out of memory (maxmemory reached)",
    "READONLY": "read-only replica",
    "LOADING": "loading its data",
    "MISCONF": "refusing writes (MISCONF: it cannot persist)",
    "NOREPLICAS": "not enough replicas",
    "MASTERDOWN": "its master is down",
    "EXECABORT": "refusing writes",
    "BUSY": "busy running a script",
    "UNBLOCKED": "no longer a master",  # a blocking command cut short: the server became a replica
}
_REFUSAL = re.compile(r"(?:^|-)(" + "|".join(_REFUSALS) + r")\b")


def unavailable_reason(exc: BaseException) -> str | None:
    """Why Redis as a whole cannot serve us now, when `exc` says so; None for an error of the command itself
    (a WRONGTYPE, a script's own error), which is the event's problem, not Redis's."""
    if isinstance(exc, redislib.BusyLoadingError):
        return "loading its data"
    if isinstance(exc, redislib.TimeoutError):
        return "timeout"
    if isinstance(exc, redislib.ConnectionError):
        return "unreachable"
    if isinstance(exc, redislib.RedisError):
        code = getattr(exc, "status_code", None)  # redis-py takes the code off the message it maps to a class
        if code in _REFUSALS:
            return _REFUSALS[code]
        found = _REFUSAL.search(str(exc))
        if found:
            return _REFUSALS[found.group(1)]
    return None


def redis_problem(redis: Redis, probe_key: str) -> str | None:
    """None when Redis takes a write; else why not ("unreachable", "out of memory (maxmemory reached)", ...).

    One small write (a key that expires by itself) tells what a `PING` cannot: a full Redis under
    `noeviction`, a replica or a Redis that cannot persist still answers `PING`, but refuses writes.
    """
    try:
        redis.set(probe_key, b"1", px=10_000)
    except redislib.RedisError as exc:
        return unavailable_reason(exc) or f"{type(exc).__name__}: {exc}"
    return None


class RedisState:
    """Logs Redis going away and coming back once each, however often it is tried meanwhile."""

    def __init__(self, log=None) -> None:
        self.log = log or structlog.get_logger("orderhooks.redis")
        self.problem: str | None = None
        self._lock = threading.Lock()

    def failed(self, reason: str, **context) -> None:
        with self._lock:
            if reason == self.problem:
                return
            self.problem = reason
        self.log.warning("redis_unavailable", reason=reason, **context)

    def ok(self, **context) -> None:
        with self._lock:
            if self.problem is None:
                return
            self.problem = None
        self.log.info("redis_available", **context)


log = structlog.get_logger("orderhooks.worker")


@dataclass
class Context:
    settings: Settings
    redis: Redis
    keys: Keys
    queue: Queue
    registry: Registry
    clients: dict = field(default_factory=dict, repr=False)  # shop -> its Orders API client, or None

    def api_for(self, shop: str, platform: str = "genstore"):
        """The Orders API client bound to `shop` (`event.api`), made once per shop; None when the shop has no
        token registered, no `ORDERHOOKS_SECRET_KEY` is set, or the token cannot be read."""
        if platform != "genstore" or not shop:
            return None
        if shop not in self.clients:
            from orderhooks.config import ConfigError
            from workers.genstore import client_for
            from workers.shops import TokenUnreadable

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
