"""RQ jobs of the baselines."""


def noop(*args) -> None:
    """Does nothing: what is left is RQ's own cost per job."""


def record_called(event_id: str, *args) -> None:
    """The latency baseline's handler: when the job ran, per event id (as bench.handlers_latency)."""
    import os
    import time

    import redis

    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    _redis.hset("bench:called", event_id, repr(time.time()))


_redis = None
