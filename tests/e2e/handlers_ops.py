"""Handlers for the operations tests: one that always fails (its retries are spent, the event is failed)."""

from workers.handlers import on


@on("orders/paid")
def always_fails(event):
    raise RuntimeError("the downstream service is down")
