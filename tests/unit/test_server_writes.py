"""The receiver's connections send a response's head and body in one socket write (`receiver.server`)."""

from __future__ import annotations

import asyncio

from receiver.server import _Coalescing
from tests.support.aio import run


class RecordingTransport(asyncio.Transport):
    """asyncio's transport interface, recording each write that would be one system call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_loop_turn_leave_as_one_in_order():
    async def scenario():
        real = RecordingTransport()
        t = _Coalescing(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert real.writes == [], "nothing leaves before the turn ends"
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
        t.writelines([b"a", b"b"])  # the next response: a write of its own
        await asyncio.sleep(0)
        assert real.writes[1:] == [b"ab"]
        assert t.get_write_buffer_size() == 0  # anything else is the transport's
    run(scenario())


def test_closing_sends_what_is_pending_first_and_nothing_after():
    async def scenario():
        real = RecordingTransport()
        t = _Coalescing(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        t.close()
        assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and real.closed
        t.write(b"late")
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"], "a closed transport sends nothing more"
        assert t.is_closing()
    run(scenario())
