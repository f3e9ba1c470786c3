"""Every Redis key orderhooks writes, in one place.

All keys live under one prefix (`ORDERHOOKS_PREFIX`, default `orderhooks:`);
RQ keeps its own keys under `rq:`. The README's keyspace table mirrors this
module.

Shop domains, order ids and event ids come from outside, so every such
component is escaped before it goes into a key (`part`): `%`, `:`, `#`, `{`,
`}`, `*`, `?`, `[`, `]`, `\\`, white space, control characters and lone
surrogates are percent-encoded (their UTF-8 bytes), so no two different
`(platform, shop, id)` share a key and no id reaches into another key's
namespace; `acme.genmystore.com` and `1001` stay as they are. A component
whose escaped form is longer than `MAX_PART` is replaced by `#` and the
SHA-256 of the value: `#` is always escaped in a literal, so a hashed
component never equals one.

An event is identified by its platform, shop and id together (an event id is
unique only within its platform and shop): its *ref*, `platform:shop:id` with
both outside components escaped, names its hash (`event:{ref}`) and is what
every index and queue job holds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from storage.status import STATUSES, Status

GENSTORE = "genstore"
MAX_PART = 200

_UNSAFE = re.compile(r"[%:#{}*?\[\]\\\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _percent(match: re.Match) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def part(value: str) -> str:
    """One outside component as it appears in a key: readable when ordinary, escaped otherwise."""
    escaped = _UNSAFE.sub(_percent, value)
    if len(escaped) > MAX_PART:
        return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return escaped


def event_ref(platform: str, shop: str, event_id: str) -> str:
    """The one name of an event inside Redis: its hash's key suffix, its member in every index."""
    return f"{platform}:{part(shop)}:{part(event_id)}"


def shop_member(platform: str, shop: str) -> str:
    """A member of the shops set: `platform:shop`, the shop as it came (platforms have no colon)."""
    return f"{platform}:{shop}"


def split_shop_member(member: str) -> tuple[str, str]:
    platform, _, shop = member.partition(":")
    return platform, shop


@dataclass(frozen=True)
class Keys:
    prefix: str = "orderhooks:"

    def event(self, ref: str) -> str:
        """HASH: one stored delivery's fields (status, times, order id, `encoding`, handler outcomes); `ref`
        from `event_ref`. Its headers and body are in `body(ref)`, so that this hash stays small enough for
        Redis's compact encoding (listpack: no value over `hash-max-listpack-value`, 64 bytes by default)."""
        return f"{self.prefix}event:{ref}"

    def body(self, ref: str) -> str:
        """STRING, written once, with the event's TTL: the delivery's headers (one line of JSON), a newline
        and its body as received, the whole compressed as the event's `encoding` says
        (`storage.events.pack_body`)."""
        return f"{self.prefix}body:{ref}"

    @property
    def events(self) -> str:
        """ZSET: every event ref, scored by received time (newest first when read in reverse)."""
        return f"{self.prefix}events"

    def events_by_status(self, status: Status) -> str:
        """ZSET: event refs with this status, scored by received time."""
        return f"{self.prefix}events:status:{status}"

    def events_by_topic(self, topic: str) -> str:
        """ZSET: event refs of this topic, scored by received time."""
        return f"{self.prefix}events:topic:{part(topic)}"

    @property
    def topics_pattern(self) -> str:
        """A SCAN pattern matching every topic index."""
        return f"{self.prefix}events:topic:*"

    @property
    def dispatching(self) -> str:
        """ZSET: event refs whose projection is applied but whose handlers are not all recorded yet."""
        return f"{self.prefix}dispatching"

    @property
    def sweeper_lock(self) -> str:
        """STRING: held by the one worker that sweeps for stuck events at a time."""
        return f"{self.prefix}sweeper:lock"

    @property
    def metrics(self) -> str:
        """HASH: the workers' counters and latency buckets, read by /metrics at scrape time."""
        return f"{self.prefix}metrics"

    def worker_alive(self, name: str) -> str:
        """STRING with a short TTL: refreshed while the worker process `name` is alive."""
        return f"{self.prefix}worker:{part(name)}:alive"

    def order(self, platform: str, shop: str, order_id: str) -> str:
        """STRING (JSON): the projection of one order: winning snapshot, its version, refunds."""
        return f"{self.prefix}order:{platform}:{part(shop)}:{part(order_id)}"

    def order_events(self, platform: str, shop: str, order_id: str) -> str:
        """ZSET: the refs of every event about this order, scored by received time."""
        return f"{self.prefix}order:{platform}:{part(shop)}:{part(order_id)}:events"

    def orders(self, platform: str, shop: str) -> str:
        """SET: the order ids known for a shop (as they came)."""
        return f"{self.prefix}orders:{platform}:{part(shop)}"

    @property
    def shops(self) -> str:
        """SET: every shop seen, as `platform:shop` (`shop_member`)."""
        return f"{self.prefix}shops"

    def status_keys(self) -> list[str]:
        """The index of every status, in `STATUSES` order."""
        return [self.events_by_status(s) for s in STATUSES]

    def ui_session(self, sid_hash: str) -> str:
        """STRING with a TTL of the session's life: an inspector session that is signed in (SHA-256 of its id)."""
        return f"{self.prefix}ui:session:{sid_hash}"

    def signin_failures(self, address: str) -> str:
        """ZSET with a TTL of the window: wrong inspector sign-ins from one client address, scored by time (ms)."""
        return f"{self.prefix}ui:signin:failures:{part(address)}"

    @property
    def signin_failures_all(self) -> str:
        """ZSET with a TTL of the window: wrong inspector sign-ins from every address, scored by time (ms)."""
        return f"{self.prefix}ui:signin:failures"

    def signin_known(self, address: str) -> str:
        """STRING with a TTL: a client address that signed in to the inspector recently (not held to the
        overall cap on wrong sign-ins)."""
        return f"{self.prefix}ui:signin:known:{part(address)}"

    @property
    def probe(self) -> str:
        """STRING, expiring within seconds: written to tell whether Redis takes writes (`/readyz`, the worker)."""
        return f"{self.prefix}probe"

    def shop(self, shop: str) -> str:
        """HASH: a registered shop: `platform`, `api_url`, `token` (Fernet-encrypted), `token_hint` (masked),
        `added_at`, and the last reconcile run (`last_run_*`, `last_success_started_at`)."""
        return f"{self.prefix}shop:{part(shop)}"

    @property
    def shops_registered(self) -> str:
        """SET: the domains of every registered shop (each has its `shop` hash)."""
        return f"{self.prefix}shops:registered"

    def reconcile_lock(self, shop: str) -> str:
        """STRING with a TTL, refreshed per page: held by the one reconcile run of this shop in progress."""
        return f"{self.prefix}reconcile:lock:{part(shop)}"

    def reconcile_due(self, shop: str) -> str:
        """STRING with a TTL of the reconcile interval: set by the worker that schedules this shop's run."""
        return f"{self.prefix}reconcile:scheduled:{part(shop)}"

    # --- operations: notifications and refused deliveries ---

    def notify_group(self, member: str) -> str:
        """HASH: occurrences of one notification group not sent yet (`count`, `first_at`, `last_at`, `type`,
        `shop`); `member` from `storage.notices.group_member`."""
        return f"{self.prefix}notify:group:{member}"

    def notify_examples(self, member: str) -> str:
        """LIST: up to 5 examples (JSON) of the group's occurrences."""
        return f"{self.prefix}notify:examples:{member}"

    def notify_sent(self, member: str) -> str:
        """STRING with a TTL past the interval: when the group's last notification was made (Unix time)."""
        return f"{self.prefix}notify:sent:{member}"

    @property
    def notify_due(self) -> str:
        """ZSET: groups with occurrences to send, scored by the time they are due."""
        return f"{self.prefix}notify:due"

    @property
    def notify_outbox(self) -> str:
        """HASH: notifications being sent, one per (notification, URL): `<id>|<url hash>` -> JSON."""
        return f"{self.prefix}notify:outbox"

    @property
    def notify_outbox_due(self) -> str:
        """ZSET: the outbox's members, scored by their next attempt (or the end of a sender's lease)."""
        return f"{self.prefix}notify:outbox:due"

    def rejected(self, platform: str) -> str:
        """LIST: the newest refused deliveries of a platform (JSON), newest first, trimmed to the keep."""
        return f"{self.prefix}rejected:{part(platform)}"

    @property
    def rejected_dropped(self) -> str:
        """STRING: refused deliveries counted but not recorded (past the recording rate), by every receiver."""
        return f"{self.prefix}rejected:dropped"

    def bigcommerce_quota(self, shop: str) -> str:
        """HASH with a TTL past its window: a BigCommerce store's V2 API quota as its last answer gave it
        (`left` requests, `reset_at` in Unix ms), shared by every worker."""
        return f"{self.prefix}bigcommerce:quota:{part(shop)}"
