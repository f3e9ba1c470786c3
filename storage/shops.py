"""The shop registry: which shops' Orders APIs orderhooks may call, with their tokens encrypted at rest.

One hash per shop (`Keys.shop`) and a set of the registered domains (`Keys.shops_registered`). A token is
stored only as a Fernet token made with `ORDERHOOKS_SECRET_KEY` (the first key encrypts, any one decrypts,
so keys can be rotated) beside a masked hint for listings (`shpat_…abcd`, `****abcd`); the token itself is
never logged, shown or returned except by `token()`, which the API client calls.

The hash also keeps the result of the shop's last reconcile run, written by `record_run` and read back with
`Shop.last_run`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from redis import Redis

from orderhooks.config import ConfigError, Settings
from storage.keys import Keys

__all__ = [
    "PLATFORMS",
    "RunRecord",
    "Shop",
    "ShopError",
    "TokenUnreadable",
    "add_shop",
    "cipher",
    "default_api_url",
    "get_shop",
    "list_shops",
    "mask_token",
    "normalize_shop",
    "record_run",
    "remove_shop",
    "token",
]

GENSTORE = "genstore"
BIGCOMMERCE = "bigcommerce"
PLATFORMS = (GENSTORE, BIGCOMMERCE)
SECRET_KEY = "ORDERHOOKS_SECRET_KEY"

_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$")
_BIGCOMMERCE_SHOP = re.compile(r"^store-([a-z0-9]+)\.mybigcommerce\.com$")
_TOKEN_PREFIX = re.compile(r"^([A-Za-z]{2,10}_)")


def iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, UTC).isoformat() if moment is not None else None


class ShopError(ValueError):
    """A shop, token or URL that cannot be registered; the message says which and why."""


class TokenUnreadable(Exception):
    """The stored token cannot be decrypted with the configured key (the key changed)."""

    def __init__(self, shop: str) -> None:
        super().__init__(
            f"shop {shop}: its API token cannot be decrypted with {SECRET_KEY} (was the key changed?); "
            f"register it again with `orderhooks shops add {shop} --token ...`"
        )
        self.shop = shop


@dataclass(frozen=True)
class RunRecord:
    """What the last reconcile run of a shop did."""

    at: float  # when it ended (Unix time)
    started_at: float
    ok: bool
    healed: int
    updated: int
    errors: int
    error: str | None
    last_success_started_at: float | None  # the start of the last run that finished

    def to_json(self) -> dict:
        return {"at": iso(self.at), "startedAt": iso(self.started_at), "ok": self.ok, "healed": self.healed,
                "updated": self.updated, "errors": self.errors, "error": self.error,
                "lastSuccessStartedAt": iso(self.last_success_started_at)}


@dataclass(frozen=True)
class Shop:
    shop: str
    platform: str
    api_url: str
    token_hint: str
    added_at: float
    last_run: RunRecord | None
    last_success_started_at: float | None

    @property
    def reconciled(self) -> bool:
        """Whether reconciliation covers this shop (BigCommerce stores are not reconciled yet)."""
        return self.platform == GENSTORE

    def to_json(self) -> dict:
        """The shop as listings show it (times in ISO 8601, UTC); the token only as its masked hint."""
        return {"shop": self.shop, "platform": self.platform, "apiUrl": self.api_url, "token": self.token_hint,
                "addedAt": iso(self.added_at), "reconciled": self.reconciled,
                "lastRun": self.last_run.to_json() if self.last_run else None,
                "lastSuccessStartedAt": iso(self.last_success_started_at)}


def cipher(settings: Settings) -> MultiFernet:
    """The token cipher from `ORDERHOOKS_SECRET_KEY`; ConfigError when it is not set."""
    if not settings.secret_key:
        raise ConfigError(
            f"{SECRET_KEY}: not set; it encrypts the shops' API tokens. Make one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(k) for k in settings.secret_key])
    except ValueError:  # Settings checks the form already; this is the library's own word
        raise ConfigError(f"{SECRET_KEY}: not a Fernet key (32 bytes in URL-safe base64)") from None


def normalize_shop(shop: str) -> str:
    """A shop domain trimmed and lower-cased, as deliveries' shop headers are; ShopError if it is not one."""
    value = shop.strip().lower()
    if not _HOST.match(value):
        raise ShopError(f"SHOP: expected a shop domain such as acme.genmystore.com, got {shop!r}")
    return value


def default_api_url(shop: str, platform: str = GENSTORE) -> str:
    if platform == BIGCOMMERCE:
        match = _BIGCOMMERCE_SHOP.match(shop)
        if not match:
            raise ShopError(f"--api-url: needed for a BigCommerce shop not named store-HASH.mybigcommerce.com "
                            f"({shop})")
        return f"https://api.bigcommerce.com/stores/{match.group(1)}/v2"
    return f"https://{shop}/api/202412"


def mask_token(token: str) -> str:
    """`shpat_…abcd` or `****abcd`: enough to tell tokens apart, never enough to use one.
    A token shorter than 12 characters shows nothing of itself."""
    if len(token) < 12:
        return "****"
    prefix = _TOKEN_PREFIX.match(token)
    return (prefix.group(1) + "…" if prefix else "****") + token[-4:]


def _check_token(value: str) -> str:
    if not value or value != value.strip() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ShopError("--token: expected the API access token, without spaces or line breaks")
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        raise ShopError("--token: expected the API access token (ASCII characters)") from None
    return value


def _check_api_url(url: str) -> str:
    value = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
        raise ShopError(f"--api-url: expected an http(s) URL such as https://acme.genmystore.com/api/202412, "
                        f"got {url!r}")
    return value


def add_shop(redis: Redis, keys: Keys, settings: Settings, shop: str, token_value: str, *,
             api_url: str | None = None, platform: str = GENSTORE, now: float | None = None) -> tuple[Shop, bool]:
    """Register a shop (or replace its token and URL); returns the shop and whether it is new.
    The last reconcile result of a shop registered again is kept."""
    crypt = cipher(settings)  # first: without a key nothing is written
    domain = normalize_shop(shop)
    if platform not in PLATFORMS:
        raise ShopError(f"--platform: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    token_value = _check_token(token_value)
    url = _check_api_url(api_url) if api_url else default_api_url(domain, platform)
    key = keys.shop(domain)
    fields = {"shop": domain, "platform": platform, "api_url": url,
              "token": crypt.encrypt(token_value.encode()), "token_hint": mask_token(token_value)}
    pipe = redis.pipeline(transaction=True)
    pipe.hsetnx(key, "added_at", repr(time.time() if now is None else now))
    pipe.hset(key, mapping=fields)
    pipe.sadd(keys.shops_registered, domain)
    new = bool(pipe.execute()[0])
    found = get_shop(redis, keys, domain)
    assert found is not None
    return found, new


def remove_shop(redis: Redis, keys: Keys, shop: str) -> bool:
    """Forget a shop and its token; False when it was not registered."""
    domain = shop.strip().lower()
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.shop(domain))
    pipe.srem(keys.shops_registered, domain)
    deleted, removed = pipe.execute()
    return bool(deleted or removed)


def _text(raw: dict[bytes, bytes], name: str) -> str | None:
    value = raw.get(name.encode())
    return value.decode() if value is not None else None


def _number(raw: dict[bytes, bytes], name: str) -> float | None:
    value = _text(raw, name)
    return float(value) if value not in (None, "") else None


def _from_hash(domain: str, raw: dict[bytes, bytes]) -> Shop:
    success = _number(raw, "last_success_started_at")
    run = None
    if b"last_run_at" in raw:
        run = RunRecord(at=_number(raw, "last_run_at") or 0.0, started_at=_number(raw, "last_run_started_at") or 0.0,
                        ok=_text(raw, "last_run_ok") == "1", healed=int(_text(raw, "last_run_healed") or 0),
                        updated=int(_text(raw, "last_run_updated") or 0),
                        errors=int(_text(raw, "last_run_errors") or 0),
                        error=_text(raw, "last_run_error") or None, last_success_started_at=success)
    return Shop(shop=_text(raw, "shop") or domain, platform=_text(raw, "platform") or GENSTORE,
                api_url=_text(raw, "api_url") or default_api_url(domain), token_hint=_text(raw, "token_hint") or "****",
                added_at=_number(raw, "added_at") or 0.0, last_run=run, last_success_started_at=success)


def get_shop(redis: Redis, keys: Keys, shop: str) -> Shop | None:
    domain = shop.strip().lower()
    raw = redis.hgetall(keys.shop(domain))
    if not raw or b"token" not in raw:
        return None
    return _from_hash(domain, raw)


def list_shops(redis: Redis, keys: Keys) -> list[Shop]:
    """Every registered shop, by domain."""
    domains = sorted(d.decode() for d in redis.smembers(keys.shops_registered))
    pipe = redis.pipeline(transaction=False)
    for d in domains:
        pipe.hgetall(keys.shop(d))
    return [_from_hash(d, raw) for d, raw in zip(domains, pipe.execute(), strict=True) if raw and b"token" in raw]


def token(redis: Redis, keys: Keys, settings: Settings, shop: str) -> str | None:
    """The shop's API token in clear, or None when the shop has none registered.
    ConfigError without `ORDERHOOKS_SECRET_KEY`; TokenUnreadable when the key cannot decrypt it."""
    domain = shop.strip().lower()
    stored = redis.hget(keys.shop(domain), "token")
    if stored is None:
        return None
    crypt = cipher(settings)
    try:
        return crypt.decrypt(stored).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise TokenUnreadable(domain) from None


# Written only while the shop is registered: a run that ends after `shops remove` leaves nothing behind.
_RECORD_RUN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


def record_run(redis: Redis, keys: Keys, shop: str, *, started_at: float, ok: bool, healed: int = 0,
               updated: int = 0, errors: int = 0, error: str | None = None, at: float | None = None) -> bool:
    """Keep the result of a reconcile run on the shop; a run that finished (`ok`) also becomes the shop's
    last successful start, from which the next run reads. False when the shop is not registered."""
    fields = {"last_run_at": repr(time.time() if at is None else at), "last_run_started_at": repr(started_at),
              "last_run_ok": "1" if ok else "0", "last_run_healed": str(healed), "last_run_updated": str(updated),
              "last_run_errors": str(errors), "last_run_error": error or ""}
    if ok:
        fields["last_success_started_at"] = repr(started_at)
    args = [v for pair in fields.items() for v in pair]
    return bool(redis.eval(_RECORD_RUN, 1, keys.shop(shop.strip().lower()), *args))
