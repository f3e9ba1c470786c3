"""Group commit: deliveries that arrive together are written in one Redis round trip.

Request handlers `await writer.submit(delivery)`. While one group is being
written, the deliveries that arrive meanwhile wait together and go as the
next group (up to `max_batch`), each request answered only after its group
is stored. At low load a group is a single delivery, so nothing waits for
company. Everything runs on the event loop: no thread, no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class GroupWriter:
    def __init__(self, store: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]], max_batch: int = 256) -> None:
        self._store = store
        self._max = max_batch
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def submit(self, item: Any, timeout: float | None = None) -> Any:
        """The store's answer for `item`, once its group is written; TimeoutError after `timeout` seconds (the
        item may still be written: its sender, told to retry, then finds it stored). A timer handle, not
        `asyncio.wait_for`, which would start a task per call."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiting.append((item, fut))
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        if timeout is None:
            return await fut
        timer = loop.call_later(max(0.0, timeout), _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Wait until everything submitted is written."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max]
                del self._waiting[: self._max]
                try:
                    results = await self._store([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"stored {len(batch)} deliveries, got {len(results)} answers")
                except Exception as exc:  # every request of the group gets the error
                    for _, fut in batch:
                        if not fut.done():  # the client may have gone away
                            fut.set_exception(exc)
                else:
                    for (_, fut), result in zip(batch, results, strict=True):  # lengths checked above
                        if not fut.done():
                            fut.set_result(result)
        finally:
            self._task = None
