"""`ORDERHOOKS_REJECTED_RATE`: how many refusals a receiver process records each second; past it, only counted."""

from __future__ import annotations

from orderhooks.config import Settings
from receiver.rejected import RejectedLog
from storage.keys import Keys

CLIENT = ("203.0.113.7", 1)
HEADERS = [(b"x-genstore-topic", b"orders/paid")]


def _log(env: dict) -> RejectedLog:
    return RejectedLog(None, Keys(), Settings.from_env(env))  # record() buffers; nothing is written here


def test_the_default_records_a_few_hundred_a_second():
    log = _log({})
    for _ in range(10):
        log.record(401, "no configured secret matches", client=CLIENT, headers=HEADERS)
    assert log.rate == 300 and len(log.buffer) == 10 and log.dropped == 0


def test_zero_only_counts_every_refusal():
    log = _log({"ORDERHOOKS_REJECTED_RATE": "0"})
    for _ in range(10):
        log.record(401, "no configured secret matches", client=CLIENT, headers=HEADERS, body=b"{}")
    assert log.buffer == [] and log.dropped == 10 and log.unauthorized == 10
