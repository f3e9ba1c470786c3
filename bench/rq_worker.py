"""`python -m bench.rq_worker QUEUE`: the baseline worker, one RQ SimpleWorker run as orderhooks runs its own."""

from __future__ import annotations

import os
import sys

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer


def main() -> None:
    redis = Redis.from_url(os.environ["REDIS_URL"])
    queue = Queue(sys.argv[1], connection=redis, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=redis, serializer=JSONSerializer)
    worker.work(with_scheduler=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
