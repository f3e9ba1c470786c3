"""uvicorn's HTTP protocol with read deadlines: a slow or idle client cannot hold a connection open.

uvicorn closes a keep-alive connection that stays idle after a response (`timeout_keep_alive`), but a new
connection that sends nothing, headers sent a byte at a time, or a body that never ends are waited for
forever. Here a request's headers must be complete within `header_timeout` (counted from the connection,
or from a later request's first byte), and its body within `body_timeout` of its headers; otherwise the
connection is closed (a request being handled sees a disconnect).

One timer per connection at most, a `loop.call_later` handle: armed when the connection opens, and after
a chunk of data only if a request is left half-read; cancelled once the request is complete. A request
that arrives in one read costs no timer at all beyond the first.

uvicorn writes a response's status line and headers, then its body, in two socket writes: two system calls
per response. The connection's writes made in one turn of the event loop are sent as one instead
(`_Coalescing`), in their order, before the loop waits again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEADERS, _BODY = 1, 2


class _Coalescing:
    """A transport whose writes made within one turn of the event loop leave as one `write` of the real
    transport, at the end of that turn (or at once when it is closed). Everything else is the transport's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float = 10.0, body_timeout: float = 30.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._reading = 0  # _HEADERS or _BODY while a request is half-read
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Coalescing(transport, self.loop))  # type: ignore[arg-type]
        self._reading = _HEADERS
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading and self._deadline is None and not self.transport.is_closing():
            self._arm(self.header_timeout if self._reading == _HEADERS else self.body_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = _HEADERS

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading = _BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading = 0
        super().on_message_complete()
