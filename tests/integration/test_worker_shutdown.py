"""A worker's warm shutdown is prompt: RQ's pubsub thread (commands such as kill-horse arrive on it)
is stopped and joined on the way out, and must not sit out a long poll first."""

from __future__ import annotations

import time

from rq.serializers import JSONSerializer

from tests.support.stack import wait_for
from workers.runner import _Worker


def test_unsubscribing_takes_at_most_a_second_whatever_the_pubsub_thread_is_doing(ctx):
    worker = _Worker([ctx.queue], connection=ctx.redis, serializer=JSONSerializer)
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, 5, what="the subscription")
    worker.pubsub.unsubscribe()
    # the thread reads the confirmation, then polls an unsubscribed connection: the moment RQ stops it
    wait_for(lambda: not worker.pubsub.subscribed, 5, what="the unsubscription")
    time.sleep(0.2)
    started = time.monotonic()
    worker.unsubscribe()  # what RQ calls on its way out
    assert time.monotonic() - started < 2, "stopping waited out a long poll"
