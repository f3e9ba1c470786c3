"""Connections to Redis: one Redis (`REDIS_URL`) or the primary that Redis Sentinel names
(`REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER`).

Every process connects through `redis_client` / `redis_client_async`. Through Sentinel, a connection
asks the sentinels for the primary's address each time it connects, so a failover is followed by
itself: connections to the old primary fail (and the request or job fails with them), new ones reach
the promoted replica.

It also tells an error of Redis as a whole (unreachable, full, a replica, loading) from an error of one
command (`unavailable_reason`), and whether Redis takes writes now (`redis_problem`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import redis as redislib
import structlog
from redis import Redis, RedisError, ResponseError
from redis.asyncio import Connection as AsyncConnection
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.connection import HiredisRespSerializer
from redis.sentinel import Sentinel
from rq import Queue
from rq.serializers import JSONSerializer

from orderhooks.config import ConfigError, Settings

CONNECT_TIMEOUT = 5  # a Redis host that stopped answering must not hang us
# Sentinels answer "where is the primary?" from memory: one that takes longer is skipped for the next.
SENTINEL_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}


def _options(kwargs: dict) -> dict:
    return {"socket_connect_timeout": CONNECT_TIMEOUT, "health_check_interval": 10, "socket_keepalive": True,
            **kwargs}


def connect(url: str, **kwargs) -> Redis:
    return Redis.from_url(url, **_options(kwargs))


class _HiredisPacker:
    """redis.asyncio packs commands in Python, about an argument at a time; the synchronous
    client's hiredis packer does it in C, which matters for the receiver's large group writes."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args):
        return self._packer.pack(*args)


class _HiredisPacking(_HiredisPacker, AsyncConnection):
    pass


class _HiredisSentinelPacking(_HiredisPacker, AsyncSentinelManagedConnection):
    pass


def connect_async(url: str, **kwargs) -> AsyncRedis:
    return AsyncRedis.from_url(url, connection_class=_HiredisPacking, **_options(kwargs))


def _require(settings: Settings) -> None:
    if not settings.redis_configured:
        raise ConfigError("REDIS_URL: not set (or REDIS_SENTINELS with REDIS_SENTINEL_MASTER)")


def redis_client(settings: Settings, **kwargs) -> Redis:
    """The synchronous client for the configured Redis (its primary, through Sentinel)."""
    _require(settings)
    if settings.redis_sentinels:
        sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=dict(SENTINEL_OPTIONS),
                            **_options(kwargs))
        return sentinel.master_for(settings.redis_sentinel_master)
    return connect(settings.redis_url, **kwargs)


def redis_client_async(settings: Settings, **kwargs) -> AsyncRedis:
    """The asyncio client for the configured Redis (its primary, through Sentinel)."""
    _require(settings)
    if settings.redis_sentinels:
        sentinel = AsyncSentinel(list(settings.redis_sentinels), sentinel_kwargs=dict(SENTINEL_OPTIONS),
                                 **_options(kwargs))
        return sentinel.master_for(settings.redis_sentinel_master, connection_class=_HiredisSentinelPacking)
    return connect_async(settings.redis_url, **kwargs)


class NotEnoughReplicas(RedisError):
    """Fewer replicas than required acknowledged a write within the time allowed."""

    def __init__(self, acknowledged: int, required: int) -> None:
        super().__init__(f"{acknowledged} of {required} replica(s) acknowledged the write")
        self.acknowledged = acknowledged
        self.required = required


async def execute_replicated(aredis: AsyncRedis, commands: Sequence[tuple[tuple, dict]], replicas: int = 0,
                             timeout_ms: int = 1000, wait_for: int = 0) -> list:
    """Send `commands` ((args, options) pairs, as a pipeline stacks them) as one MULTI/EXEC and, with
    `replicas`, `WAIT` right behind it on the same connection, all in one round trip; return EXEC's
    replies, raw.

    The WAIT asks for `wait_for` replicas (at least `replicas`: pass every replica connected), like
    Kafka's acks=all: Sentinel promotes the replica it last saw furthest ahead, and its view can be a
    second old, so a write held by some replicas only could be lost with a promotion. Only after
    `timeout_ms` do `replicas` acknowledgements suffice (a replica that far behind is not waited for).
    Raises the first error of a command, or `NotEnoughReplicas`. WAIT counts the replicas that hold
    everything this connection wrote, so it is never sent again on another connection (after a failover it
    would answer at once): a connection lost or cut short meanwhile is dropped and its error raised.
    """
    pool = aredis.connection_pool
    conn = await pool.get_connection()
    try:
        packed = [("MULTI",), *(args for args, _ in commands), ("EXEC",)]
        if replicas:
            packed.append(("WAIT", max(replicas, wait_for), timeout_ms))
        await conn.send_packed_command(conn.pack_commands(packed))
        errors: list[Exception] = []
        replies = []
        for _ in packed:  # every reply is read, errors or not, so that the connection stays in step
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                errors.append(exc)
                replies.append(exc)
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    results = replies[len(commands) + 1]
    if errors or isinstance(results, Exception):
        raise errors[0]
    for item in results:
        if isinstance(item, Exception):
            raise item
    if replicas and replies[-1] < replicas:
        raise NotEnoughReplicas(replies[-1], replicas)
    return results


def connected_replicas(info: dict) -> int:
    """How many replicas `INFO replication` (parsed) says are connected."""
    return int(info.get("connected_slaves", 0))


def replicas_problem(redis: Redis, required: int) -> str | None:
    """None when at least `required` replicas are connected to the primary (`INFO replication`, cheap);
    else what is missing ("1 replica needed, 0 connected")."""
    try:
        connected = connected_replicas(redis.info("replication"))
    except RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    if connected >= required:
        return None
    return f"{required} replica{'s' if required > 1 else ''} needed, {connected} connected"


def rq_pipeline(redis: Redis):
    """A MULTI/EXEC pipeline already in multi mode, as RQ expects when handed a pipeline."""
    pipe = redis.pipeline(transaction=True)
    pipe.multi()
    return pipe


def make_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=redis, serializer=JSONSerializer)


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
