"""Running a coroutine from a test."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run(coro):
    """asyncio.run in a thread of its own: the browser tests' session keeps a loop running in the test's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=10)
