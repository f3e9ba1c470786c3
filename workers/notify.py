"""Notifications: one readable line per problem, grouped, posted to chat webhooks or any HTTP receiver.

Whoever sees a problem counts it with `storage.notices.occurred` into a group in Redis, one per
(type, shop). A worker's sender thread drains due groups (`drain`): one Lua script moves a group's
count and examples into the outbox, one entry per URL, so each occurrence is counted in exactly one
notification however many workers run. Outbox entries are claimed with a lease, posted with a 5 s
timeout and retried with backoff (5 s, doubling up to a minute) for 10 minutes, then dropped with a
log line; a retry repeats the body and `webhook-id`. Posting happens on its own thread: it never
delays processing.

`redis.unavailable` needs no Redis: a sender that cannot reach Redis for 30 s sends it from memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import redis as redislib
import structlog
from redis import Redis
from standardwebhooks import Webhook

from orderhooks.config import Settings
from storage import metrics
from storage.keys import Keys
from storage.notices import MAX_EXAMPLES

log = structlog.get_logger("orderhooks.notify")

TIMEOUT = 5.0
RETRY_FOR = 600.0
FIRST_RETRY = 5.0
MAX_RETRY = 60.0
LEASE = 30.0  # seconds a claimed outbox entry is left to its sender before another may take it
CLAIM_BATCH = 4  # entries claimed at once: posted within the lease even when each one times out
REDIS_DOWN_AFTER = 30.0
BATCH = 50

# Move one due group into the outbox: one entry per URL, all in one step, so its count goes out once.
# KEYS: due zset, group, examples, sent, outbox, outbox due. ARGV: member, now, interval, id, then URL hashes.
# Returns 1 when moved, 0 when the group was not due (or another sender took it).
DRAIN_ONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local g = redis.call('HGETALL', KEYS[2])
local examples = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[2], KEYS[3])
if #g == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[2], 'EX', math.ceil(tonumber(ARGV[3])) + 60)
local data = {id = ARGV[4], created = ARGV[2], attempts = 0, examples = examples}
for i = 1, #g, 2 do data[g[i]] = g[i + 1] end
for i = 5, #ARGV do
  local member = ARGV[4] .. '|' .. ARGV[i]
  data['url'] = ARGV[i]
  redis.call('HSET', KEYS[5], member, cjson.encode(data))
  redis.call('ZADD', KEYS[6], ARGV[2], member)
end
return 1
"""

# KEYS: outbox due. ARGV: now, lease end, most. Claims due entries: their score moves to the lease's end.
CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], m) end
return due
"""


def url_id(url: str) -> str:
    """A URL's name in Redis (an incoming webhook's URL is a secret: only its hash is stored)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# --- what a notification says --------------------------------------------------------------------------


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def link(type_: str, shop: str | None, public_url: str | None) -> str | None:
    if not public_url:
        return None
    base = public_url.rstrip("/")
    params: dict[str, str] = {}
    if type_ == "event.failed":
        path, params = "/ui/events", {"status": "failed"}
    elif type_ == "events.quarantined":
        path, params = "/ui/events", {"status": "quarantined"}
    elif type_ == "deliveries.rejected":
        path = "/ui/rejected"
    elif type_ in ("reconcile.healed", "reconcile.failed"):
        path = "/ui/shops"
    else:
        path = "/ui"
    if shop and path == "/ui/events":
        params["shop"] = shop
    return base + path + (f"?{urlencode(params)}" if params else "")


def _phrase(type_: str, shop: str | None, n: int, examples: list[dict]) -> str:
    where = f" in {shop}" if shop else ""
    reason = examples[0].get("reason") if examples else None
    if type_ == "event.failed":
        text = f"{_plural(n, 'event', 'events')} failed{where}"
    elif type_ == "events.quarantined":
        text = f"{_plural(n, 'event', 'events')} quarantined{where}"
    elif type_ == "deliveries.rejected":
        text = f"{_plural(n, 'delivery', 'deliveries')} refused with 401"
    elif type_ == "reconcile.healed":
        text = f"reconciliation healed or updated {_plural(n, 'order', 'orders')}{where} (webhooks are being missed)"
    elif type_ == "reconcile.failed":
        text = f"{_plural(n, 'reconcile run', 'reconcile runs')} failed{where}"
    elif type_ == "redis.unavailable":
        text = "Redis unavailable for 30 s or more"
    else:
        text = "test notification: notifications reach this URL"
    if reason:
        text += f" ({reason[:200]})"
    return text


def payload(data: dict, public_url: str | None) -> dict:
    """The JSON posted for one notification (the same for every attempt)."""
    type_ = data["type"]
    shop = data.get("shop") or None
    examples = data.get("examples") or []
    if isinstance(examples, dict):  # Lua's cjson writes an empty list as {}
        examples = []
    examples = [json.loads(e) if isinstance(e, str) else e for e in examples][:MAX_EXAMPLES]
    url = link(type_, shop, public_url)
    count = int(data.get("count", 1))
    text = f"orderhooks: {_phrase(type_, shop, count, examples)}" + (f" {url}" if url else "")
    return {"type": type_, "shop": shop, "count": count, "text": text,
            "first_at": _iso(float(data["first_at"])), "last_at": _iso(float(data["last_at"])),
            "examples": examples, "url": url}


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def post(client: httpx.Client, url: str, content: bytes, msg_id: str, secret: str | None) -> tuple[bool, str]:
    """One attempt; (ok, what the receiver answered)."""
    headers = {"content-type": "application/json", "user-agent": "orderhooks"}
    if secret:
        now = datetime.now(UTC)
        headers.update({"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                        "webhook-signature": Webhook(secret).sign(msg_id, now, content.decode())})
    try:
        r = client.post(url, content=content, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    answer = f"{r.status_code} {r.text[:200]}".strip()
    return 200 <= r.status_code < 300, answer


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: 5, 10, 20, 40, 60, 60, ..."""
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


def send_test(settings: Settings, client: httpx.Client | None = None) -> list[tuple[str, bool, str]]:
    """`orderhooks notify test`: one `test` notification to every URL, now; (url, ok, answer) each."""
    now = time.time()
    body = payload({"type": "test", "count": 1, "first_at": now, "last_at": now}, settings.public_url)
    content = encode(body)
    msg_id = "msg_" + uuid.uuid4().hex
    own = client is None
    client = client or httpx.Client()
    try:
        return [(url, *post(client, url, content, msg_id, settings.notify_secret)) for url in settings.notify_urls]
    finally:
        if own:
            client.close()


# --- the sender --------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A notification kept in memory (Redis is away): its body, id, URL and attempts."""

    content: bytes
    msg_id: str
    url: str
    type: str
    created: float
    attempts: int = 0
    next_at: float = 0.0


class Sender:
    """Drains due groups, posts the outbox, retries; `run` loops until stopped (a worker's thread)."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings, client: httpx.Client | None = None,
                 process: str = "worker") -> None:
        self.redis, self.keys, self.settings = redis, keys, settings
        self._client = client
        self.urls = {url_id(u): u for u in settings.notify_urls}
        self.process = process
        self.down_since: float | None = None
        self.down_sent = False
        self.memory: list[_Pending] = []

    @property
    def client(self) -> httpx.Client:
        """Made at the first post (its TLS set-up costs a worker's start-up otherwise)."""
        if self._client is None:
            self._client = httpx.Client()
        return self._client

    def run(self, stop: threading.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the thread must outlive anything
                log.warning("notify_error", error=f"{type(exc).__name__}: {exc}")
            stop.wait(every)
        if self._client is not None:
            self._client.close()

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._send_memory(now)
        try:
            self.drain(now)
            self.deliver(now)
        except redislib.RedisError as exc:
            self._redis_down(now, exc)
            return
        self.down_since, self.down_sent = None, False

    def drain(self, now: float) -> int:
        """Move every due group into the outbox; the number moved."""
        members = [m.decode() for m in self.redis.zrangebyscore(self.keys.notify_due, "-inf", now, 0, BATCH)]
        moved = 0
        for member in members:
            k = self.keys
            moved += self.redis.eval(DRAIN_ONE, 6, k.notify_due, k.notify_group(member), k.notify_examples(member),
                                     k.notify_sent(member), k.notify_outbox, k.notify_outbox_due, member,
                                     repr(now), self.settings.notify_interval, "msg_" + uuid.uuid4().hex,
                                     *self.urls)
        return moved

    def deliver(self, now: float) -> int:
        """Post the due outbox entries, a few claimed at a time; the number sent."""
        sent = 0
        for _ in range(BATCH // CLAIM_BATCH):
            now = time.time()
            claimed = [m.decode() for m in self.redis.eval(CLAIM, 1, self.keys.notify_outbox_due, repr(now),
                                                           repr(now + LEASE), CLAIM_BATCH)]
            if not claimed:
                break
            sent += self._post_claimed(claimed)
        return sent

    def _post_claimed(self, claimed: list[str]) -> int:
        k = self.keys
        sent = 0
        counts: dict[str, int] = {}
        for member, raw in zip(claimed, self.redis.hmget(k.notify_outbox, claimed), strict=True):
            data = json.loads(raw) if raw else None
            url = self.urls.get(data["url"]) if data else None
            if data is None or url is None:  # gone, or its URL is no longer configured
                self._forget(member)
                continue
            body = payload(data, self.settings.public_url)
            ok, answer = post(self.client, url, encode(body), data["id"], self.settings.notify_secret)
            if ok:
                self._forget(member)
                sent += 1
                field = metrics.notify_field(data["type"], "sent")
                counts[field] = counts.get(field, 0) + 1
                continue
            data["attempts"] = int(data.get("attempts", 0)) + 1
            if time.time() - float(data["created"]) + backoff(data["attempts"]) > RETRY_FOR:
                log.error("notification_dropped", type=data["type"], shop=data.get("shop"),
                          count=data.get("count"), attempts=data["attempts"], answer=answer)
                self._forget(member)
                result = "dropped"
            else:
                log.warning("notification_failed_will_retry", type=data["type"], attempts=data["attempts"],
                            answer=answer, retry_in=backoff(data["attempts"]))
                pipe = self.redis.pipeline(transaction=True)
                pipe.hset(k.notify_outbox, member, json.dumps(data))
                pipe.zadd(k.notify_outbox_due, {member: time.time() + backoff(data["attempts"])})
                pipe.execute()
                result = "retried"
            field = metrics.notify_field(data["type"], result)
            counts[field] = counts.get(field, 0) + 1
        if counts:
            metrics.count(self.redis, k, counts)
        return sent

    def _forget(self, member: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.notify_outbox_due, member)
        pipe.hdel(self.keys.notify_outbox, member)
        pipe.execute()

    # Redis away: `redis.unavailable`, kept and retried in memory.

    def _redis_down(self, now: float, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = now
        if self.down_sent or now - self.down_since < REDIS_DOWN_AFTER:
            return
        self.down_sent = True
        reason = f"{type(exc).__name__}: {exc}"
        body = payload({"type": "redis.unavailable", "count": 1, "first_at": self.down_since, "last_at": now,
                        "examples": [{"process": self.process, "reason": reason[:200]}]}, self.settings.public_url)
        content = encode(body)
        msg_id = "msg_" + uuid.uuid4().hex
        self.memory += [_Pending(content, msg_id, url, "redis.unavailable", now) for url in self.urls.values()]
        self._send_memory(now)

    def _send_memory(self, now: float) -> None:
        for item in list(self.memory):
            if item.next_at > now:
                continue
            ok, answer = post(self.client, item.url, item.content, item.msg_id, self.settings.notify_secret)
            if ok:
                self.memory.remove(item)
                log.info("notification_sent", type=item.type)
                continue
            item.attempts += 1
            item.next_at = now + backoff(item.attempts)
            if item.next_at - item.created > RETRY_FOR:
                self.memory.remove(item)
                log.error("notification_dropped", type=item.type, attempts=item.attempts, answer=answer)


def start_sender(redis: Redis, keys: Keys, settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """The worker's sender thread, when notification URLs are configured."""
    if not settings.notify_urls:
        return None
    sender = Sender(redis, keys, settings)
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True, name="notify")
    thread.start()
    return thread
