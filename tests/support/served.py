"""A small ASGI app served by uvicorn in a background thread, on a free loopback port (the tests' fake APIs)."""

from __future__ import annotations

import threading
import time

import uvicorn

from orderhooks.embedded import free_port


class ServedApp:
    """Subclasses set `self.app`. Start with `start()` (or `with`); `port` is set once it listens; `_stopping`
    is set when it stops, so that a handler sleeping on purpose (a hang) can end early."""

    name = "fake API"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self):
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
