"""Group commit: deliveries that arrive together are written in one Redis round trip.

Request handlers `await writer.submit(delivery)`; one writer thread takes
everything waiting (up to `max_batch`), stores it with one pipeline and
answers each request only after its group is stored. At low load a group is
a single delivery, so nothing waits for company.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

_STOP = object()


def _resolve(fut: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if fut.done():  # the client went away
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class GroupWriter:
    def __init__(self, store: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 256) -> None:
        self._store = store
        self._max = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((item, fut, loop))
        return await fut

    def close(self, timeout: float = 30.0) -> None:
        """Write what is waiting, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results = self._store([item for item, _, _ in batch])
            except Exception as exc:  # every request of the group gets the error
                for _, fut, loop in batch:
                    loop.call_soon_threadsafe(_resolve, fut, None, exc)
            else:
                for (_, fut, loop), result in zip(batch, results, strict=True):
                    loop.call_soon_threadsafe(_resolve, fut, result)
            if stop:
                return
