"""Settings read from the environment (and an optional `.env` file).

Every variable the contract names is parsed here, once; a bad value fails at
start with one line naming the variable (`ConfigError`).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values


class ConfigError(Exception):
    """A configuration variable has a value we cannot use."""


# A webhook key shorter than this is accepted with a warning at start (HMAC-SHA256 wants 32 random bytes).
MIN_SECRET_BYTES = 16


def secret_bytes(secret: str) -> bytes:
    """`whsec_<base64>` is used as its decoded bytes, anything else as UTF-8."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("ORDERHOOKS_SECRETS: a whsec_ secret is not valid base64") from exc
    return secret.encode()


def _secrets(env: Mapping[str, str], name: str) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """Comma-separated webhook secrets and their keys. An empty secret, or a `whsec_` one whose key decodes
    to nothing (or to zero bytes only, the same HMAC key), would let anyone sign: it stops the process. Errors say
    which secret by position, never its value."""
    raw = env.get(name, "")
    if not raw.strip():
        return (), ()
    parts = [part.strip() for part in raw.split(",")]
    keys = []
    for position, secret in enumerate(parts, 1):
        if not secret:
            raise ConfigError(f"{name}: secret {position} of {len(parts)} is empty (a stray comma?)")
        try:
            key = secret_bytes(secret)
        except ConfigError:
            raise ConfigError(f"{name}: secret {position} is a whsec_ key that is not valid base64") from None
        if not key:
            raise ConfigError(f"{name}: secret {position} is a whsec_ key that decodes to nothing")
        if not key.strip(b"\0"):  # HMAC pads a short key with zero bytes: this is the empty key
            raise ConfigError(f"{name}: secret {position} is a whsec_ key of zero bytes only, "
                              "which signs like an empty key")
        keys.append(key)
    return tuple(parts), tuple(keys)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}: expected 1 or 0, got {raw!r}")


def _delays(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    parts = _list(env, name)
    if not parts:
        return default
    try:
        delays = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{name}: expected comma-separated whole seconds, got {env[name]!r}") from None
    if any(d < 0 for d in delays):
        raise ConfigError(f"{name}: delays cannot be negative")
    return delays


def _sentinels(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port`: the Redis Sentinels to ask for the primary."""
    out = []
    for part in _list(env, name):
        host, sep, port = part.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: expected host:port[,host:port...], got {part!r}")
        out.append((host, int(port)))
    return tuple(out)


def _fernet_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys: each 32 bytes in URL-safe base64, as `Fernet.generate_key()` makes them."""
    keys = _list(env, name)
    for key in keys:
        try:
            ok = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ConfigError(
                f"{name}: not a Fernet key (32 bytes in URL-safe base64); make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
    return keys


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(env: Mapping[str, str]) -> str | None:
    """`REDIS_URL`, checked enough that a typo is one clear line at start instead of a traceback later."""
    from urllib.parse import urlsplit

    raw = (env.get("REDIS_URL") or "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL: not a URL ({exc}), e.g. redis://localhost:6379/0") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"REDIS_URL: must start with redis://, rediss:// or unix://, got {raw!r} "
                          "(e.g. redis://localhost:6379/0)")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError("REDIS_URL: no host, e.g. redis://localhost:6379/0")
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ConfigError(f"REDIS_URL: the database must be a number, got {db!r}")
    del port
    return raw


def _redis_location(env: Mapping[str, str]) -> dict:
    """REDIS_URL, or REDIS_SENTINELS with REDIS_SENTINEL_MASTER; never both."""
    url = _redis_url(env)
    sentinels = _sentinels(env, "REDIS_SENTINELS")
    master = env.get("REDIS_SENTINEL_MASTER", "").strip() or None
    if url and sentinels:
        raise ConfigError("REDIS_URL, REDIS_SENTINELS: both are set; set REDIS_URL for one Redis, or "
                          "REDIS_SENTINELS with REDIS_SENTINEL_MASTER for Sentinel, not both")
    if sentinels and not master:
        raise ConfigError("REDIS_SENTINEL_MASTER: not set; REDIS_SENTINELS needs the name of the primary "
                          "the sentinels monitor")
    if master and not sentinels:
        raise ConfigError("REDIS_SENTINELS: not set; REDIS_SENTINEL_MASTER needs the sentinels' host:port list")
    return {"redis_url": url, "redis_sentinels": sentinels, "redis_sentinel_master": master}


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated http(s) URLs; a trailing slash of a bare origin is dropped. Errors name the position,
    never the URL (an incoming webhook's URL is a secret)."""
    urls = _list(env, name)
    for position, url in enumerate(urls, 1):
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ConfigError(f"{name}: URL {position} is not an http:// or https:// URL")
    return tuple(u.rstrip("/") if u.count("/") == 3 else u for u in urls)


def _notify_secret(env: Mapping[str, str], name: str) -> str | None:
    """A Standard Webhooks signing key: `whsec_<base64>` of at least one byte."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        ok = raw.startswith("whsec_") and len(base64.b64decode(raw[len("whsec_"):], validate=True)) > 0
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name}: expected a whsec_<base64> key")
    return raw
def _header(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """`Name: value`, a header a delivery must carry (compared in constant time); None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    header, sep, value = raw.partition(":")
    header, value = header.strip(), value.strip()
    if not sep or not header or not value or any(c.isspace() for c in header):
        raise ConfigError(f"{name}: expected a header as 'Name: value'")
    return header.lower(), value


def _utf8_secrets(env: Mapping[str, str], name: str) -> tuple[bytes, ...]:
    """Comma-separated secrets used as their UTF-8 bytes (an app's client secret); none may be empty."""
    raw = env.get(name, "")
    if not raw.strip():
        return ()
    parts = [part.strip() for part in raw.split(",")]
    for position, secret in enumerate(parts, 1):
        if not secret:
            raise ConfigError(f"{name}: secret {position} of {len(parts)} is empty (a stray comma?)")
    return tuple(p.encode() for p in parts)


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    data_dir: Path = Path(".orderhooks")
    secrets: tuple[str, ...] = ()
    insecure_no_verify: bool = False
    api_token: str | None = None
    handler_modules: tuple[str, ...] = ()
    max_body: int = 1_048_576
    tolerance: int = 300
    port: int = 8000
    prefix: str = "orderhooks:"
    queue: str = "orderhooks"
    # Handler retries: one delay (seconds) per retry, Stripe-like growing backoff.
    retry_delays: tuple[int, ...] = (10, 60, 300, 1800, 7200)
    # Seconds an event may stay `queued` before the worker's sweeper re-enqueues it.
    recover_after: float = 60.0
    # Retention of stored events and de-duplication keys (seconds).
    event_ttl: int = 30 * 24 * 3600
    # Intake group commit: the most deliveries written in one Redis round trip.
    intake_batch: int = 256
    web_concurrency: int = 1
    # Slow clients: seconds for a request's headers, for its body after them, and for an idle keep-alive.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    log_format: str = "auto"
    log_level: str = "info"
    secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    # Fernet keys for the shops' API tokens at rest: the first encrypts, any one decrypts (rotation).
    secret_key: tuple[str, ...] = field(default=(), repr=False)
    # Reconciliation: seconds between scheduled runs per shop (0: none), and how far each run reaches back
    # before the last successful run's start.
    reconcile_every: int = 3600
    reconcile_overlap: int = 300
    # Redis Sentinel, instead of REDIS_URL: the sentinels' addresses and the name of the primary they watch.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    # A 2xx only once this many replicas acknowledged the delivery's write (Redis WAIT), within the timeout.
    min_replicas: int = 0
    replica_timeout_ms: int = 1000
    # Operations: notification URLs, their grouping interval (seconds) and signing key, the inspector's public
    # origin for links, and how many refused deliveries are kept per platform and recorded per second.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    notify_interval: int = 300
    notify_secret: str | None = field(default=None, repr=False)
    public_url: str | None = None
    rejected_keep: int = 1000
    rejected_rate: int = 300  # refusals recorded per second and receiver process; 0: only counted
    # BigCommerce: the app's client secrets (Standard Webhooks keys, UTF-8 bytes; any one verifies), and/or a
    # custom header every delivery must carry, as (lower-case name, value).
    bigcommerce_secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    bigcommerce_header: tuple[str, str] | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never show secrets or tokens
        return f"Settings(redis_url={self.redis_url!r}, prefix={self.prefix!r}, secrets=<{len(self.secrets)}>)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> Settings:
        env: dict[str, str] = {}
        if environ is None:
            if Path(env_file).is_file():
                env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
            env.update(os.environ)
        else:
            env.update(environ)
        secrets, secret_keys = _secrets(env, "ORDERHOOKS_SECRETS")
        prefix = env.get("ORDERHOOKS_PREFIX", "orderhooks:") or "orderhooks:"
        log_format = env.get("ORDERHOOKS_LOG_FORMAT", "auto").strip().lower() or "auto"
        if log_format not in ("auto", "json", "console"):
            raise ConfigError(f"ORDERHOOKS_LOG_FORMAT: expected auto, json or console, got {log_format!r}")
        log_level = env.get("ORDERHOOKS_LOG_LEVEL", "info").strip().lower() or "info"
        if log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"ORDERHOOKS_LOG_LEVEL: expected debug, info, warning or error, got {log_level!r}")
        return cls(
            log_level=log_level,
            data_dir=Path(env.get("ORDERHOOKS_DATA_DIR") or ".orderhooks"),
            secrets=secrets,
            secret_keys=secret_keys,
            insecure_no_verify=_flag(env, "ORDERHOOKS_INSECURE_NO_VERIFY"),
            api_token=env.get("ORDERHOOKS_API_TOKEN") or None,
            handler_modules=_list(env, "ORDERHOOKS_HANDLERS"),
            max_body=_int(env, "ORDERHOOKS_MAX_BODY", 1_048_576, minimum=1),
            tolerance=_int(env, "ORDERHOOKS_TOLERANCE", 300, minimum=1),
            port=_int(env, "PORT", 8000, minimum=1),
            prefix=prefix,
            queue=env.get("ORDERHOOKS_QUEUE") or "orderhooks",
            retry_delays=_delays(env, "ORDERHOOKS_RETRY_DELAYS", (10, 60, 300, 1800, 7200)),
            recover_after=_float(env, "ORDERHOOKS_RECOVER_AFTER", 60.0, minimum=1.0),
            event_ttl=_int(env, "ORDERHOOKS_EVENT_TTL", 30 * 24 * 3600, minimum=60),
            intake_batch=_int(env, "ORDERHOOKS_INTAKE_BATCH", 256, minimum=1),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 1, minimum=1),
            header_timeout=_float(env, "ORDERHOOKS_HEADER_TIMEOUT", 10.0, minimum=0.1),
            body_timeout=_float(env, "ORDERHOOKS_BODY_TIMEOUT", 30.0, minimum=0.1),
            keepalive_timeout=_float(env, "ORDERHOOKS_KEEPALIVE_TIMEOUT", 5.0, minimum=0.1),
            log_format=log_format,
            secret_key=_fernet_keys(env, "ORDERHOOKS_SECRET_KEY"),
            reconcile_every=_int(env, "ORDERHOOKS_RECONCILE_EVERY", 3600, minimum=0),
            reconcile_overlap=_int(env, "ORDERHOOKS_RECONCILE_OVERLAP", 300, minimum=0),
            **_redis_location(env),
            min_replicas=_int(env, "ORDERHOOKS_MIN_REPLICAS", 0),
            replica_timeout_ms=_int(env, "ORDERHOOKS_REPLICA_TIMEOUT_MS", 1000, minimum=1),
            notify_urls=_urls(env, "ORDERHOOKS_NOTIFY_URLS"),
            notify_interval=_int(env, "ORDERHOOKS_NOTIFY_INTERVAL", 300, minimum=1),
            notify_secret=_notify_secret(env, "ORDERHOOKS_NOTIFY_SECRET"),
            public_url=(_urls(env, "ORDERHOOKS_PUBLIC_URL") or (None,))[0],
            rejected_keep=_int(env, "ORDERHOOKS_REJECTED_KEEP", 1000, minimum=1),
            rejected_rate=_int(env, "ORDERHOOKS_REJECTED_RATE", 300),
            bigcommerce_secret_keys=_utf8_secrets(env, "ORDERHOOKS_BIGCOMMERCE_SECRETS"),
            bigcommerce_header=_header(env, "ORDERHOOKS_BIGCOMMERCE_HEADER"),
        )

    @property
    def redis_configured(self) -> bool:
        """REDIS_URL or the sentinels are set (else `orderhooks dev` runs an embedded Redis)."""
        return bool(self.redis_url or self.redis_sentinels)

    @property
    def redis_address(self) -> str:
        """Where Redis is, for messages (no password)."""
        if self.redis_sentinels:
            return f"{self.redis_sentinel_master} via sentinels " + ",".join(f"{h}:{p}" for h, p in
                                                                            self.redis_sentinels)
        from urllib.parse import urlsplit

        url = self.redis_url or ""
        where = urlsplit(url)
        return f"{where.hostname}:{where.port or 6379}" if where.hostname else url.split("?")[0]

    def weak_secrets(self) -> list[int]:
        """1-based positions in ORDERHOOKS_SECRETS of keys shorter than MIN_SECRET_BYTES (warned about at start)."""
        return [i for i, key in enumerate(self.secret_keys, 1) if len(key) < MIN_SECRET_BYTES]

    @property
    def genstore_configured(self) -> bool:
        return bool(self.secrets) or self.insecure_no_verify

    @property
    def bigcommerce_configured(self) -> bool:
        return bool(self.bigcommerce_secret_keys) or self.bigcommerce_header is not None

    def require_verification(self) -> None:
        """The receiver starts when at least one platform can verify its deliveries (Genstore may be told
        explicitly not to); a platform that cannot answers 404 on its route."""
        if not self.genstore_configured and not self.bigcommerce_configured:
            raise ConfigError(
                "ORDERHOOKS_SECRETS: no webhook secret set; "
                "set it (or ORDERHOOKS_BIGCOMMERCE_SECRETS / ORDERHOOKS_BIGCOMMERCE_HEADER), "
                "or ORDERHOOKS_INSECURE_NO_VERIFY=1 for local testing"
            )
