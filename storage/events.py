"""Stored events: reading them back from Redis into plain records, setting their status, and recording
their handlers' outcomes."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from redis import Redis

from schemas import NormalizationError, NormalizedEvent, UnknownTopic, normalize
from storage import codec
from storage.keys import GENSTORE, Keys, event_ref, part, split_shop_member
from storage.status import STATUSES, Status

HANDLER_FIELD = "handler:"


def _s(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


def _body(stored: bytes, encoding: bytes | None) -> bytes:
    """Stored bytes as they were before `storage.codec` compressed them (as the event's `encoding` says). Bytes
    that do not decode (changed by hand in Redis) are shown as they are stored, and then do not normalize."""
    try:
        return codec.decode(stored, encoding)
    except ValueError:
        return stored


def pack_body(headers: dict[str, str], raw: bytes) -> tuple[bytes, str]:
    """What an event's body key holds (`Keys.body`), and its encoding (the event's `encoding` field): the
    headers as one line of JSON, a newline, then the body exactly as received; compressed together when that
    pays (`storage.codec.encode`).
    `redis-cli --raw GET <body key> | head -c -1 | zstd -dc -D orders-1.zdict | tail -n +2` gives the body back."""
    return codec.encode(json.dumps(headers, sort_keys=True).encode() + b"\n" + raw)


def unpack_body(stored: bytes, encoding: bytes | None) -> tuple[dict, bytes]:
    """`pack_body` undone: the headers and the body as received."""
    blob = _body(stored, encoding)
    line, newline, raw = blob.partition(b"\n")
    try:
        headers = json.loads(line) if newline else None
    except ValueError:
        headers = None
    if not isinstance(headers, dict):
        return {}, blob  # not written by `pack_body` (changed by hand): shown as it is
    return headers, raw


@dataclass
class EventRecord:
    id: str
    topic: str
    shop: str
    status: str
    received_at: float
    raw: bytes
    source: str = "webhook"
    order_id: str | None = None
    error: str | None = None
    attempts: int = 0
    state: str | None = None
    outcome: str | None = None
    processed_at: float | None = None
    headers: dict = field(default_factory=dict)
    handlers: dict[str, dict] = field(default_factory=dict)
    platform: str = GENSTORE
    hydrated: bytes | None = None  # the order as the platform's API answered it, for platforms that hydrate

    @property
    def ref(self) -> str:
        """The event's name inside Redis (its hash key's suffix, its member in every index)."""
        return event_ref(self.platform, self.shop, self.id)

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes], body: bytes | None = None) -> EventRecord | None:
        """The record of an event hash and its body key (`Keys.body`). An event stored before bodies had a key
        of their own has `raw` and `headers` fields instead, read the same."""
        if not h or b"id" not in h:
            return None
        text = {k.decode(): v for k, v in h.items()}
        if body is not None:
            headers, raw = unpack_body(body, text.get("encoding"))
        else:
            headers = json.loads(text["headers"]) if text.get("headers") else {}
            raw = _body(text.get("raw") or b"", text.get("encoding"))
        handlers = {
            k[len(HANDLER_FIELD):]: json.loads(v) for k, v in text.items() if k.startswith(HANDLER_FIELD)
        }
        processed = _s(text.get("processed_at"))
        return cls(
            id=_s(text["id"]) or "",
            topic=_s(text.get("topic")) or "",
            shop=_s(text.get("shop")) or "",
            status=_s(text.get("status")) or "",
            received_at=float(text.get("received_at") or 0),
            raw=raw,
            source=_s(text.get("source")) or "webhook",
            order_id=_s(text.get("order_id")),
            error=_s(text.get("error")) or None,
            attempts=int(text.get("attempts") or 0),
            state=_s(text.get("state")),
            outcome=_s(text.get("outcome")),
            processed_at=float(processed) if processed else None,
            headers=headers,
            handlers=handlers,
            platform=_s(text.get("platform")) or GENSTORE,
            hydrated=text.get("hydrated") or None,
        )

    @cached_property
    def _normalization(self) -> tuple[NormalizedEvent | None, str | None]:
        if self.status in (Status.QUARANTINED, Status.IGNORED):
            return None, None
        normalizer = None
        if self.platform != GENSTORE:
            from platforms import get

            try:
                normalizer = get(self.platform).normalize
            except KeyError:
                return None, f"unknown platform {self.platform!r}"
        try:
            if normalizer is None:
                return normalize(self.topic, self.raw), None
            return normalizer(self.topic, self.raw, self.hydrated), None
        except (NormalizationError, UnknownTopic) as exc:
            return None, getattr(exc, "reason", str(exc))

    def prime(self, event: NormalizedEvent) -> None:
        """Give the record the event its raw body normalizes to, when the caller has it already."""
        self.__dict__["_normalization"] = (event, None)

    @property
    def event(self) -> NormalizedEvent | None:
        """The canonical event, rebuilt from the raw body.

        Normalizing is pure, so this is the event the worker applied (or will apply). None for a
        quarantined or ignored event, or a body that does not normalize (`normalize_error` says why).
        """
        return self._normalization[0]

    @property
    def normalize_error(self) -> str | None:
        return self._normalization[1]

    @property
    def normalized(self) -> dict | None:
        """The canonical event's JSON form, or None."""
        event = self.event
        return event.to_json() if event is not None else None

    @property
    def received_iso(self) -> str:
        return datetime.fromtimestamp(self.received_at, UTC).isoformat()

    def summary(self) -> dict:
        """The event as listed by the read API."""
        return {
            "id": self.id,
            "platform": self.platform,
            "topic": self.topic,
            "shop": self.shop,
            "orderId": self.order_id,
            "status": self.status,
            "receivedAt": self.received_iso,
            "attempts": self.attempts,
            "error": self.error,
        }

    def detail(self) -> dict:
        """The event with its raw body, normalized form and handler outcomes."""
        return {
            **self.summary(),
            "source": self.source,
            "stale": self.state == Status.STALE,
            "outcome": self.outcome,
            "processedAt": (
                datetime.fromtimestamp(self.processed_at, UTC).isoformat() if self.processed_at else None
            ),
            "headers": self.headers,
            **_raw_fields(self.raw),
            "normalized": self.normalized,
            "handlers": self.handlers,
        }


def _raw_fields(raw: bytes) -> dict:
    """`raw` is the body's text; a body that is not UTF-8 has `raw` null and its bytes in `rawBase64`."""
    try:
        return {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw": None, "rawBase64": base64.b64encode(raw).decode()}


def load_events(redis: Redis, keys: Keys, refs: Sequence[str]) -> list[EventRecord | None]:
    """The events named `refs` (None for one not stored), each with its body, in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for ref in refs:
        pipe.hgetall(keys.event(ref))
        pipe.get(keys.body(ref))
    replies = pipe.execute()
    return [EventRecord.from_hash(h, body) for h, body in zip(replies[::2], replies[1::2], strict=True)]


def load_event(redis: Redis, keys: Keys, ref: str) -> EventRecord | None:
    return load_events(redis, keys, [ref])[0]


def find_events(redis: Redis, keys: Keys, event_id: str, shop: str | None = None,
                platform: str | None = None) -> list[EventRecord]:
    """Every stored event with this id, among the shops given or known (an id is unique only per shop).

    The shops looked in are `shop` (as a request gives it: trimmed and lower-cased here, empty meaning none; with
    `platform`, or on every platform a shop of that name is known on), else every known shop and the shopless
    events (no shop header) of each platform.
    """
    shop = (shop or "").strip().lower() or None
    known = [split_shop_member(m.decode("utf-8", "replace")) for m in redis.smembers(keys.shops)]
    platforms = sorted({p for p, _ in known} | {GENSTORE})
    if shop is not None:
        candidates = {(p, shop) for p in ([platform] if platform else platforms)}
    else:
        candidates = {(p, s) for p, s in known if not platform or p == platform}
        candidates |= {(p, "") for p in ([platform] if platform else platforms)}
    refs = [event_ref(p, s, event_id) for p, s in sorted(candidates)]
    return [r for r in load_events(redis, keys, refs) if r is not None and r.id == event_id]


def find_events_by_prefix(redis: Redis, keys: Keys, prefix: str, shop: str | None = None,
                          platform: str | None = None, most: int = 100) -> list[EventRecord]:
    """Stored events whose id starts with `prefix` (at most `most`), by scanning event keys: for the command
    line, not for a hot path."""
    if not prefix:
        return []
    pattern = keys.event(f"{platform or '*'}:{'*' if shop is None else part(shop)}:{part(prefix)}*")
    refs = []
    for key in redis.scan_iter(match=pattern, count=1000):
        refs.append(key.decode()[len(keys.event("")):])
        if len(refs) >= most * 4:
            break
    found = [r for r in load_events(redis, keys, refs) if r is not None and r.id.startswith(prefix)]
    return sorted(found, key=lambda r: (r.platform, r.shop, r.id))[:most]


# Move an event to a new status (a replay; an event with nothing to apply; a body that does not normalize),
# keeping its received-time score.
# KEYS: event, then the zset of every status in STATUSES order
# ARGV: new status, statuses (space separated), the event's ref, the status it must have now ('' for any),
#       then field/value pairs to set
# Returns 1 when moved, 0 when the event is gone or not in the status required.
SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'status') ~= ARGV[4] then return 0 end
local id = ARGV[3]
local names = {}
for s in string.gmatch(ARGV[2], '%S+') do names[#names + 1] = s end
local score = nil
for i, s in ipairs(names) do
  local z = redis.call('ZSCORE', KEYS[1 + i], id)
  if z then score = z; redis.call('ZREM', KEYS[1 + i], id) end
end
for i, s in ipairs(names) do
  if s == ARGV[1] then redis.call('ZADD', KEYS[1 + i], score or 0, id) end
end
local fields = {'status', ARGV[1]}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
"""


def set_status(redis: Redis, keys: Keys, ref: str, status: Status, *fields: str, client=None) -> None:
    """Move an event to `status` (and its status index), setting `fields` (name, value, ...) beside it."""
    redis.register_script(SET_STATUS)(
        keys=[keys.event(ref), *keys.status_keys()],
        args=[status, " ".join(STATUSES), ref, "", *fields],
        client=client or redis,
    )


def stage_status(pipe, keys: Keys, ref: str, status: Status, *fields: str, only_from: Status | None = None) -> None:
    """`set_status` queued on a pipeline, unsent; with `only_from`, only while the event has that status (its
    reply then says whether it moved: 1 or 0). EVAL, not a registered script: that would cost the pipeline a
    SCRIPT EXISTS round trip."""
    status_keys = keys.status_keys()
    pipe.eval(SET_STATUS, 1 + len(status_keys), keys.event(ref), *status_keys, status, " ".join(STATUSES), ref,
              only_from or "", *fields)


# Record one handler's outcome and recompute the event's status, attempts and error from all of them.
# KEYS: event, then the zset of every status in STATUSES order
# ARGV: handler field name, outcome json, statuses (space separated, same order as the zsets), the event's ref
# The status becomes 'failed' while any handler is failed, else the event's base state.
# Returns {new status, previous status, id, shop, topic, order id} (so the caller sees an event turn failed).
SET_HANDLER_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local failed = false
local state = nil
local current = nil
local attempts = 0
local most = 0
local failed_name, failed_error, retry_name, retry_error = nil, nil, nil, nil
local id = ARGV[4]
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 8) == 'handler:' then
    local ok, o = pcall(cjson.decode, all[i + 1])
    if ok and type(o) == 'table' then
      local name = string.sub(f, 9)
      local n = tonumber(o['attempts']) or 0
      if n > most then most = n end
      local err = o['error']
      if type(err) ~= 'string' then err = '' end
      if o['status'] == 'failed' then
        failed = true
        if failed_name == nil or name < failed_name then failed_name, failed_error = name, err end
      elseif o['status'] == 'retrying' then
        if retry_name == nil or name < retry_name then retry_name, retry_error = name, err end
      end
    end
  elseif f == 'state' then state = all[i + 1]
  elseif f == 'status' then current = all[i + 1]
  elseif f == 'attempts' then attempts = tonumber(all[i + 1]) or 0
  end
end
local new = state or current
if failed then new = 'failed' end
-- attempts: the highest among the stages and handlers; error: the failed handler's, or the one waiting for
-- its retry (said so), cleared once every handler ended well
local fields = {}
if most > attempts then fields[#fields + 1] = 'attempts'; fields[#fields + 1] = tostring(most) end
fields[#fields + 1] = 'error'
if failed_name then
  fields[#fields + 1] = failed_name .. ': ' .. failed_error
elseif retry_name then
  fields[#fields + 1] = retry_name .. ': ' .. retry_error .. ' (retrying)'
else
  fields[#fields + 1] = ''
end
redis.call('HSET', KEYS[1], unpack(fields))
if new ~= current then
  local names = {}
  for s in string.gmatch(ARGV[3], '%S+') do names[#names + 1] = s end
  local score = nil
  for i, s in ipairs(names) do
    if s == current then score = redis.call('ZSCORE', KEYS[1 + i], id); redis.call('ZREM', KEYS[1 + i], id) end
  end
  for i, s in ipairs(names) do
    if s == new then redis.call('ZADD', KEYS[1 + i], score or 0, id) end
  end
  redis.call('HSET', KEYS[1], 'status', new)
end
local about = redis.call('HMGET', KEYS[1], 'id', 'shop', 'topic', 'order_id')
return {new, current or '', about[1] or '', about[2] or '', about[3] or '', about[4] or ''}
"""


@dataclass(frozen=True)
class StatusChange:
    """An event's status before and after a handler's outcome was recorded, with what names the event."""

    status: str
    previous: str
    id: str
    shop: str
    topic: str
    order_id: str | None


def stage_handler_outcome(pipe, keys: Keys, ref: str, handler: str, outcome: dict) -> int:
    """Queue on `pipe` (unsent) the recording of one handler's `outcome` on the event named `ref`, which
    recomputes the event's status, attempts and error from all its handlers' outcomes. Returns the
    position of its reply among the pipeline's replies (for `status_change`)."""
    position = len(pipe.command_stack)
    status_keys = keys.status_keys()
    # EVAL: a registered script would cost the pipeline a SCRIPT EXISTS round trip
    pipe.eval(SET_HANDLER_OUTCOME, 1 + len(status_keys), keys.event(ref), *status_keys,
              HANDLER_FIELD + handler, dump_outcome(outcome), " ".join(STATUSES), ref)
    return position


def stage_first_success(pipe, keys: Keys, ref: str, handler: str, outcome: dict) -> None:
    """Queue on `pipe` the success of a handler's first call on an event applied just now: only its field is
    written. `stage_handler_outcome` would find nothing else to change: applying left the event `processed`
    or `stale` with no error and its attempts at least 1, and an outcome that fails or retries is recorded
    through that script, which reads every handler's field, whichever is written first."""
    pipe.hset(keys.event(ref), HANDLER_FIELD + handler, dump_outcome(outcome))


def dump_outcome(outcome: dict) -> str:
    """A handler outcome as its field holds it: compact JSON (a success, `{"status":"ok","attempts":1,"at":
    "2026-12-04T16:00:41.261Z"}`, stays within the 64 bytes that keep the event hash compact)."""
    return json.dumps(outcome, separators=(",", ":"))


def status_change(reply) -> StatusChange | None:
    """What the reply of a staged handler outcome says; None when the event is gone."""
    if not isinstance(reply, list) or len(reply) < 6:
        return None
    new, previous, event_id, shop, topic, order_id = (v.decode("utf-8", "replace") for v in reply[:6])
    return StatusChange(new, previous, event_id, shop, topic, order_id or None)
