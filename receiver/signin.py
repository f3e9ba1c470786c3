"""The inspector's sign-in state in Redis, shared by every receiver process: open sessions and wrong tokens.

Sessions: a signed cookie alone cannot be taken back, so each signed-in session also has a key (the SHA-256
of its id) that lives as long as the session; logout deletes it, and a cookie whose key is gone is signed out.

Wrong tokens are counted in sliding windows, atomically (one Lua script), before the token is compared, so
parallel guesses cannot overtake the count: a sign-in first reserves a place in the windows and gives it back
when its token was right. Two limits:

- per client address: 5 wrong tokens within 60 s, then that address is refused (429) until the oldest of
  them is 60 s old;
- overall: 30 wrong tokens within 10 s from all addresses together, then sign-ins are refused for at most
  10 s, except from addresses that signed in successfully within the last 30 days. Many addresses guessing
  together are slowed to 3 guesses a second, and the real user, from an address used before, is not locked
  out by them; from a new address they wait seconds, not minutes.

A refused sign-in never reaches the token comparison, so its answer says nothing about the token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis

from storage.keys import Keys

ADDRESS_LIMIT = 5
ADDRESS_WINDOW = 60.0
OVERALL_LIMIT = 30
OVERALL_WINDOW = 10.0
KNOWN_SECONDS = 30 * 24 * 3600

# KEYS: address failures, all failures, known address. ARGV: now (ms), member, address limit, address window
# (ms), overall limit, overall window (ms). Returns {0, 0} (place reserved), or {1 | 2, ms to wait} when the
# address (1) or the overall cap (2) refuses. `now` is the caller's clock, read before the script runs: a sign-in
# evaluated after a later one may find entries newer than its `now`, so the wait is at most the window.
_RESERVE = """
local now = tonumber(ARGV[1])
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local all_limit, all_window = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, math.min(window, tonumber(oldest[2]) + window - now)}
end
local known = redis.call('EXISTS', KEYS[3]) == 1
if not known then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - all_window)
  if redis.call('ZCARD', KEYS[2]) >= all_limit then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {2, math.min(all_window, tonumber(oldest[2]) + all_window - now)}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], all_window)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], window)
return {0, 0}
"""


@dataclass(frozen=True)
class Attempt:
    """A sign-in's place in the windows; `retry_after` (whole seconds) is set when it was refused instead."""

    address: str
    member: str
    retry_after: int = 0
    overall: bool = False  # refused by the overall cap rather than the address's own limit

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


def begin(client: redis.Redis, keys: Keys, address: str, now: float | None = None) -> Attempt:
    """Reserve a place for one sign-in (counted as wrong until `succeeded`), or say how long to wait."""
    now_ms = int((time.time() if now is None else now) * 1000)
    member = f"{now_ms}:{secrets.token_hex(6)}"
    refused, wait_ms = client.eval(
        _RESERVE, 3, keys.signin_failures(address), keys.signin_failures_all, keys.signin_known(address),
        now_ms, member, ADDRESS_LIMIT, int(ADDRESS_WINDOW * 1000), OVERALL_LIMIT, int(OVERALL_WINDOW * 1000))
    if refused:
        return Attempt(address, member, retry_after=max(1, -(-int(wait_ms) // 1000)), overall=refused == 2)
    return Attempt(address, member)


def succeeded(client: redis.Redis, keys: Keys, attempt: Attempt) -> None:
    """The token was right: give the place back, and remember the address."""
    pipe = client.pipeline(transaction=True)
    pipe.zrem(keys.signin_failures(attempt.address), attempt.member)
    pipe.zrem(keys.signin_failures_all, attempt.member)
    pipe.set(keys.signin_known(attempt.address), 1, ex=KNOWN_SECONDS)
    pipe.execute()


def _session_key(keys: Keys, sid: str) -> str:
    return keys.ui_session(hashlib.sha256(sid.encode()).hexdigest())


def open_session(client: redis.Redis, keys: Keys, sid: str, seconds: int) -> None:
    client.set(_session_key(keys, sid), 1, ex=seconds)


def session_is_open(client: redis.Redis, keys: Keys, sid: str) -> bool:
    return bool(client.exists(_session_key(keys, sid)))


def close_session(client: redis.Redis, keys: Keys, sid: str) -> None:
    client.delete(_session_key(keys, sid))
