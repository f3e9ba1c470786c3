"""The `orderhooks` command line."""

from __future__ import annotations

import base64
import faulthandler
import json
import os
import secrets as pysecrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from orderhooks.config import ConfigError, Settings
from orderhooks.procs import terminate_all
from storage.status import HandlerOutcome, Status

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


def _redis_url(settings: Settings) -> str | None:
    """REDIS_URL, or the embedded Redis of an `orderhooks dev` running here; None with Sentinel."""
    if settings.redis_url or settings.redis_sentinels:
        return settings.redis_url
    url_file = settings.data_dir / "redis.url"
    if url_file.exists():
        return url_file.read_text().strip()
    _fail(f"configuration error: REDIS_URL: not set, and no `orderhooks dev` is running with its data in "
          f"{settings.data_dir} (start it here, or set REDIS_URL or REDIS_SENTINELS)", 2)


def _redis_client(settings: Settings, **options):
    """Redis for a one-shot command (REDIS_URL, the sentinels, or a running `orderhooks dev`'s): the settings
    with the URL found, and the client; `redis: unreachable at <address>: <reason>` and exit 1 when Redis does
    not answer."""
    from dataclasses import replace

    import redis as redislib

    from storage.connection import redis_client

    settings = replace(settings, redis_url=_redis_url(settings))
    client = redis_client(settings, **({"socket_connect_timeout": 5, "socket_timeout": 30} | options))
    try:
        client.ping()
    except redislib.RedisError as exc:
        _fail(f"redis: unreachable at {settings.redis_address}: {exc}", 1)
    return settings, client


def _store():
    from storage.store import Store

    settings, client = _redis_client(_settings())
    return Store.create(settings, redis=client)


def _dev_value(data_dir: Path, name: str, make) -> str:
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def _dev_secret(data_dir: Path) -> str:
    return _dev_value(data_dir, "dev-secret", lambda: "whsec_" + base64.b64encode(os.urandom(24)).decode())


def _dev_bigcommerce_secret(data_dir: Path) -> str:
    return _dev_value(data_dir, "dev-bigcommerce-secret", lambda: pysecrets.token_urlsafe(32))


def _dev_token(data_dir: Path) -> str:
    return _dev_value(data_dir, "dev-token", lambda: pysecrets.token_urlsafe(24))


@click.group()
@click.version_option(package_name="orderhooks")
def main() -> None:
    """orderhooks: verified, durable, de-duplicated Genstore order webhooks."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
def dev(host: str) -> None:
    """Run everything locally: embedded Redis (unless REDIS_URL or REDIS_SENTINELS), the receiver and a worker."""
    from orderhooks.embedded import EmbeddedRedis

    settings = _settings()
    _port_free(host, settings.port)
    env = dict(os.environ)
    embedded = None
    url_file = settings.data_dir / "redis.url"
    if not settings.redis_configured:
        embedded = EmbeddedRedis(settings.data_dir).start()
        env["REDIS_URL"] = embedded.url
    elif settings.redis_url:  # the read commands in another shell here find it, as they find an embedded one
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url_file.write_text(settings.redis_url)
    if not settings.secrets and not settings.insecure_no_verify:
        env["ORDERHOOKS_SECRETS"] = _dev_secret(settings.data_dir)
    if not settings.api_token:
        env["ORDERHOOKS_API_TOKEN"] = _dev_token(settings.data_dir)
    if not settings.bigcommerce_configured:
        env["ORDERHOOKS_BIGCOMMERCE_SECRETS"] = _dev_bigcommerce_secret(settings.data_dir)
    if not settings.secret_key:  # a Fernet key for the shops' API tokens
        env["ORDERHOOKS_SECRET_KEY"] = _dev_value(settings.data_dir, "dev-secret-key",
                                                  lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    sandbox_url = _start_bigcommerce_sandbox(host, env)
    env.setdefault("ORDERHOOKS_LOG_FORMAT", "console")
    cmd = [sys.executable, "-m", "orderhooks.cli"]
    # Own sessions: only this process signals them, once, so each shuts down warm.
    children = [
        subprocess.Popen([*cmd, "web", "--host", host], env=env, start_new_session=True),
        subprocess.Popen([*cmd, "worker"], env=env, start_new_session=True),
    ]
    url = f"http://{host}:{settings.port}"
    secret_note = (
        "(from ORDERHOOKS_SECRETS)" if settings.secrets else env.get("ORDERHOOKS_SECRETS", "(verification off)")
    )
    if not _wait_until_up(children[0], url):
        terminate_all(children)
        if embedded:
            embedded.stop()
        _fail(f"the receiver did not start on {url}; see the lines above", 1)
    token = env.get("ORDERHOOKS_API_TOKEN", "")
    cli = _cli_command()
    # Plain lines, never wrapped by us: a command copied from here must work as it is, at any width.
    click.echo("\n".join([
        "orderhooks dev is running",
        f"  Redis          {env.get('REDIS_URL') or settings.redis_address}"
        + (f"  (embedded, AOF under {settings.data_dir})" if embedded else ""),
        f"  Register       {url}/webhooks/genstore",
        f"  Inspector      {url}/ui  (sign in with the API token)",
        f"  Secret         {secret_note}",
        f"  API token      {'(from ORDERHOOKS_API_TOKEN)' if settings.api_token else token}",
        f"  The CLI        {cli}" + ("" if cli == "orderhooks" else
                                     "  (or `source .venv/bin/activate`, then `orderhooks ...`)"),
        "  Try            " + f"{cli} send orders/create --url {url}/webhooks/genstore",
        "                 " + f"{cli} send --platform bigcommerce store/order/created --order-id 250 "
        f"--url {url}/webhooks/bigcommerce",
        f"                 (BigCommerce: hydrated from the sandbox V2 API at {sandbox_url})",
        "                 " + f"{cli} events",
        "                 " + f"curl -H 'X-Genstore-Access-Token: {token}' {url}/api/202412/orders",
        "Press Ctrl-C to stop.",
    ]))

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    redis_failed = False
    restarts: list[float] = []
    try:
        while all(c.poll() is None for c in children):
            if embedded and embedded.process and embedded.process.poll() is not None:
                if not _restart_embedded(embedded, restarts):
                    redis_failed = True
                    break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        terminate_all(children)
        if embedded:
            embedded.stop()
        elif url_file.exists():
            url_file.unlink()
    if redis_failed:
        sys.exit(1)
    sys.exit(max((c.returncode or 0) for c in children) if any(c.returncode for c in children) else 0)


def _wait_until_up(web: subprocess.Popen, url: str, timeout: float = 30.0) -> bool:
    """Until the receiver answers /healthz (True), or exits or takes too long (False)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _port_free(host: str, port: int) -> None:
    """Fail, before starting anything, when the receiver's port is taken (another `orderhooks dev`?)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"port {port} on {host} is taken ({exc.strerror}): is another orderhooks dev running? "
                  f"Stop it, or set PORT to a free port", 1)


def _cli_command() -> str:
    """How to run this CLI from the current directory: `orderhooks` when that is on PATH, else its path."""
    import shutil

    here = Path(sys.executable).with_name("orderhooks")
    found = shutil.which("orderhooks")
    if found and Path(found).resolve() == here.resolve():
        return "orderhooks"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def _start_bigcommerce_sandbox(host: str, env: dict) -> str:
    """Serve the sandbox V2 API in this process and register its store, so that BigCommerce deliveries to the
    dev receiver hydrate without a store; returns its URL."""
    import threading

    import uvicorn

    from orderhooks.embedded import free_port
    from platforms import bigcommerce_sandbox as sandbox
    from storage.connection import redis_client
    from storage.keys import Keys
    from storage.shops import add_shop

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(sandbox.app(), host=host, port=port, log_level="warning",
                                           lifespan="off", access_log=False))
    threading.Thread(target=server.run, name="bigcommerce-sandbox", daemon=True).start()
    url = f"http://{host}:{port}{sandbox.BASE}"
    dev_settings = Settings.from_env(env)
    redis = redis_client(dev_settings)
    try:
        add_shop(redis, Keys(dev_settings.prefix), dev_settings, sandbox.SHOP, "sandbox-token-0000000000",
                 api_url=url, platform="bigcommerce")
    finally:
        redis.close()
    return url


DEV_REDIS_RESTARTS = 3  # within a minute; more, and something is wrong that restarting will not fix


def _restart_embedded(embedded, restarts: list[float]) -> bool:
    """The embedded redis-server exited: start it again on its port from its files (the receiver and worker
    wait for it meanwhile) and say so in one line; False, after one line saying why, when it should not be."""
    code = embedded.process.returncode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    now = time.monotonic()
    restarts[:] = [t for t in restarts if now - t < 60] + [now]
    log = embedded.data_dir / "redis.log"
    if len(restarts) > DEV_REDIS_RESTARTS:
        click.echo(f"redis-server {how} again ({len(restarts)} times in a minute); stopping. See {log}", err=True)
        return False
    try:
        embedded.start()
    except RuntimeError as exc:
        click.echo(f"redis-server {how} and could not be restarted ({exc}); stopping. See {log}", err=True)
        return False
    click.echo(f"redis-server {how}; restarted it on port {embedded.port} from {embedded.data_dir} "
               "(its data is on disk)", err=True)
    return True


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="default: $PORT or 8000")
def web(host: str, port: int | None) -> None:
    """Run the receiver (WEB_CONCURRENCY processes)."""
    import functools

    import structlog
    import uvicorn

    from orderhooks import logs
    from orderhooks.config import MIN_SECRET_BYTES

    try:
        settings = Settings.from_env()
        settings.require_verification()
        if not settings.redis_configured:
            raise ConfigError("REDIS_URL: not set (or REDIS_SENTINELS with REDIS_SENTINEL_MASTER)")
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    logs.configure(settings.log_format, settings.log_level)
    for position in settings.weak_secrets():
        structlog.get_logger("orderhooks.web").warning(
            "weak_secret", variable="ORDERHOOKS_SECRETS", position=position,
            detail=f"secret {position} has a key shorter than {MIN_SECRET_BYTES} bytes; use 32 random bytes")
    from receiver.server import DeadlineHttpToolsProtocol

    _say_where(host, port or settings.port, settings)
    uvicorn.run(
        "receiver.app:create_app", factory=True, host=host, port=port or settings.port,
        workers=settings.web_concurrency, log_level="warning", access_log=False,
        timeout_graceful_shutdown=30, timeout_keep_alive=settings.keepalive_timeout,
        http=functools.partial(DeadlineHttpToolsProtocol, header_timeout=settings.header_timeout,
                               body_timeout=settings.body_timeout),
    )


def _say_where(host: str, port: int, settings: Settings) -> None:
    """One line at start: where the receiver listens, and whether Redis answered."""
    import redis as redislib

    from storage.connection import redis_client

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        redis_client(settings, socket_connect_timeout=2, socket_timeout=2).ping()
        state = "answered"
    except redislib.RedisError as exc:
        state = f"is unreachable ({exc}): deliveries get 503 until it answers"
    click.echo(f"orderhooks web: listening on http://{shown}:{port} (bound to {host}); "
               f"Redis at {settings.redis_address} {state}", err=True)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run side by side.")
def worker(burst: bool, processes: int) -> None:
    """Run an RQ worker that applies events and runs handlers."""
    from orderhooks import logs
    from workers.context import Context
    from workers.runner import run_worker

    settings = _settings()
    if not settings.redis_configured:
        err.print("configuration error: REDIS_URL: not set (or REDIS_SENTINELS with REDIS_SENTINEL_MASTER)")
        sys.exit(2)
    if processes > 1:
        args = [sys.executable, "-m", "orderhooks.cli", "worker"] + (["--burst"] if burst else [])
        # Own sessions, and signals forwarded from here: each worker gets a stop signal once (a terminal's
        # Ctrl-C or a group-wide SIGTERM would reach it twice, and RQ takes a second one as "stop now").
        children = [subprocess.Popen(args, start_new_session=True) for _ in range(processes)]

        def forward(signum, _frame) -> None:
            for c in children:
                if c.poll() is None:
                    c.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        codes = [c.wait() for c in children]
        sys.exit(max(codes))
    logs.configure(settings.log_format, settings.log_level)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where each thread is, on stderr
    try:
        ctx = Context.create(settings)
    except ImportError as exc:
        err.print(f"configuration error: ORDERHOOKS_HANDLERS: cannot import {exc.name}")
        sys.exit(2)
    run_worker(ctx, burst=burst)


def _signed_headers(topic: str, shop: str, body: bytes, key: bytes, event_id: str, scheme: str) -> dict[str, str]:
    from receiver.verify import genstore_signature, standard_signature

    headers = {"Content-Type": "application/json", "X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": shop,
               "X-Genstore-Api-Version": "202412"}
    if scheme == "genstore":
        return headers | {"X-Genstore-Event-Id": event_id, "X-Genstore-Hmac-Sha256": genstore_signature(key, body)}
    stamp = int(time.time())
    return headers | {"webhook-id": event_id, "webhook-timestamp": str(stamp),
                      "webhook-signature": standard_signature(key, event_id, stamp, body)}


@main.command()
@click.argument("topic", required=False)
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False), help="Payload to send, byte for byte.")
@click.option("--scenario", type=click.Choice(["lifecycle"]),
              help="Send a whole sequence instead of one topic: lifecycle = create, paid, partiallyFulfilled, "
                   "fulfilled, refund, and one out-of-order pair of updates.")
@click.option("--order-id", default=None, help="the order the example payload is about (default: a new one)")
@click.option("--url", default=None, help="default: http://127.0.0.1:$PORT/webhooks/PLATFORM")
@click.option("--secret", default=None, help="default: first of ORDERHOOKS_SECRETS (ORDERHOOKS_BIGCOMMERCE_SECRETS), "
                                             "else the dev secret")
@click.option("--shop", default=None, help="default: acme.genmystore.com, or store-sandbox.mybigcommerce.com")
@click.option("--event-id", default=None, help="default: a new one")
@click.option("--scheme", type=click.Choice(["genstore", "standard"]), default="genstore", show_default=True)
@click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=10.0, show_default=True,
              help="seconds to wait for the event's outcome")
@click.option("--no-wait", is_flag=True, help="print the answer and stop: do not wait for the outcome")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per delivery (also when not on a terminal)")
@click.option("--platform", type=click.Choice(["genstore", "bigcommerce"]), default="genstore", show_default=True)
def send(topic, file_, scenario, order_id, url, secret, shop, event_id, scheme, wait_seconds, no_wait,
         as_json, platform) -> None:
    """Sign and send a delivery as Genstore would, then wait for its outcome and print it.

    Without --file, TOPIC's example payload about a new order (or --order-id) with current times. The outcome
    is read from the read API at the --url origin (ORDERHOOKS_API_TOKEN, or the dev token). Exit 0 for
    processed, stale, ignored and duplicate; 1 otherwise. With --platform bigcommerce, a thin envelope of a
    store/order/* scope, signed as BigCommerce signs it.
    """
    if platform == "bigcommerce":
        _send_bigcommerce(topic, file_, order_id, url, secret, shop, event_id, 0 if no_wait else wait_seconds,
                          as_json)
        return
    shop = shop or "acme.genmystore.com"
    import httpx

    from orderhooks.config import secret_bytes
    from orderhooks.scenarios import SCENARIOS, fresh_example
    from schemas import TOPICS

    if bool(topic) == bool(scenario):
        _fail("give a TOPIC or --scenario, not both" if topic else
              "give a TOPIC (" + ", ".join(TOPICS) + ") or --scenario lifecycle", 2)
    if scenario and (file_ or event_id):
        _fail("--file and --event-id go with a TOPIC, not with --scenario", 2)
    settings = _settings()
    if scenario:
        steps = [(s.topic, s.body, s.expect, s.what) for s in SCENARIOS[scenario](order_id)]
    elif file_:
        steps = [(topic, Path(file_).read_bytes(), None, "")]
    elif topic not in TOPICS:
        _fail(f"no example payload for {topic!r}: the topics are {', '.join(TOPICS)} (or send your own with --file)",
              2)
    else:
        steps = [(topic, fresh_example(topic, order_id), None, "")]
    secret = secret or (settings.secrets[0] if settings.secrets else _dev_secret(settings.data_dir))
    key = secret_bytes(secret)
    url = url or f"http://127.0.0.1:{settings.port}/webhooks/genstore"
    token = settings.api_token or _dev_file(settings.data_dir, "dev-token")
    as_json = as_json or not sys.stdout.isatty()
    ok = True
    with httpx.Client(timeout=30) as client:
        for step_topic, body, expect, what in steps:
            step_id = event_id or str(uuid.uuid4())
            headers = _signed_headers(step_topic, shop, body, key, step_id, scheme)
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                _fail(f"could not reach {url}: {exc}", 1)
            outcome = _outcome(client, url, token, shop, step_id, response, 0 if no_wait else wait_seconds)
            ok = ok and outcome["status"] in (Status.PROCESSED, Status.STALE, Status.IGNORED, "duplicate", *(
                [Status.QUEUED] if no_wait else []))
            if as_json:
                click.echo(json.dumps(outcome | ({"topic": step_topic, "expect": expect} if scenario else {})))
            elif scenario:
                click.echo(f"{step_topic:<26} {_outcome_line(outcome)}  {what} (expect {expect})")
            else:
                click.echo(f"{_outcome_line(outcome)}  id {outcome['id']}")
    sys.exit(0 if ok else 1)


def _dev_file(data_dir: Path, name: str) -> str | None:
    path = data_dir / name
    return path.read_text().strip() if path.exists() else None


FINAL = tuple(s for s in Status if s != Status.QUEUED)  # what a worker leaves an event in


def _outcome(client, url: str, token: str | None, shop: str, event_id: str, response, wait: float) -> dict:
    """`{"id", "httpStatus", "status", "error"}`: the delivery's answer, then (for a 202 and `wait` > 0) the
    event's outcome, polled from the read API until it is final, a handler waits for its retry, or time is up."""
    from urllib.parse import quote, urlsplit

    try:
        answer = response.json()
    except ValueError:
        answer = {}
    out = {"id": answer.get("id", event_id), "httpStatus": response.status_code,
           "status": answer.get("status"), "error": answer.get("error")}
    if not response.is_success:
        out["status"], out["error"] = "refused", f"{response.status_code}: {answer.get('error') or response.text}"
        return out
    if response.status_code != 202 or wait <= 0:
        return out
    if not token:
        out["error"] = "not waiting for the outcome: no ORDERHOOKS_API_TOKEN to read it with"
        return out
    origin = urlsplit(url)
    event_url = f"{origin.scheme}://{origin.netloc}/api/events/{quote(out['id'], safe='')}"
    deadline = time.monotonic() + wait
    status = out["status"]
    while True:
        try:
            r = client.get(event_url, params={"shop": shop}, headers={"X-Genstore-Access-Token": token})
        except Exception as exc:  # the receiver went away while we waited
            out["error"] = f"could not read the outcome: {exc}"
            return out
        if r.status_code == 200:
            event = r.json()["event"]
            status = event["status"]
            retrying = [(name, o) for name, o in sorted(event.get("handlers", {}).items())
                        if o.get("status") == HandlerOutcome.RETRYING]
            pending = any(o.get("status") == HandlerOutcome.PENDING for o in event.get("handlers", {}).values())
            if status in FINAL and not retrying and not pending:
                out["status"], out["error"] = status, event.get("error")
                return out
            if retrying:
                name, o = retrying[0]
                out["status"], out["error"] = HandlerOutcome.RETRYING, f"{name}: {o.get('error')}"
                return out
        elif r.status_code != 404:
            out["error"] = f"{r.status_code}: {r.text[:200]}"
            return out
        if time.monotonic() >= deadline:
            out["status"], out["error"] = "timeout", f"still {status} after {wait:g} s"
            return out
        time.sleep(0.1)


def _outcome_line(outcome: dict) -> str:
    status, error = outcome["status"], outcome.get("error")
    if status in ("refused", "timeout"):
        return f"{status}: {error}" if status == "timeout" else str(error)
    if error and status not in (Status.PROCESSED, Status.STALE, "duplicate"):
        return f"{status}: {error}"
    return str(status)


ID_COLUMNS = ("id", "orderId", "order", "shop")  # what users copy: never cut, never wrapped
MIN_OTHER = 8  # the narrowest a column other than an id may get before the table turns into a list


def _send_bigcommerce(scope, file_, order_id, url, secret, shop, event_id, wait: float = 10.0,
                      as_json: bool = False) -> None:
    import httpx

    from receiver.verify import standard_signature
    from schemas import bigcommerce as bc

    settings = _settings()
    if not scope:
        err.print("give a scope, e.g. store/order/created")
        sys.exit(2)
    shop = (shop or "store-sandbox.mybigcommerce.com").lower()
    store_hash = bc.store_hash_of(shop)
    if store_hash is None:
        err.print(f"--shop: expected store-HASH.mybigcommerce.com, got {shop!r}")
        sys.exit(2)
    if file_:
        body = Path(file_).read_bytes()
    else:
        oid = order_id or "250"
        data: dict = {"type": "order", "id": int(oid) if oid.isdigit() else oid}
        if scope == "store/order/statusUpdated":
            data["status"] = {"previous_status_id": 0, "new_status_id": 11}
        body = json.dumps({"scope": scope, "store_id": "1", "data": data, "hash": uuid.uuid4().hex,
                           "created_at": int(time.time()), "producer": f"stores/{store_hash}"}).encode()
    key = (secret or (None if not settings.bigcommerce_secret_keys else settings.bigcommerce_secret_keys[0].decode())
           or _dev_bigcommerce_secret(settings.data_dir)).encode()
    msg_id = event_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time())
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": standard_signature(key, msg_id, stamp, body)}
    if settings.bigcommerce_header is not None:
        headers[settings.bigcommerce_header[0]] = settings.bigcommerce_header[1]
    url = url or f"http://127.0.0.1:{settings.port}/webhooks/bigcommerce"
    token = settings.api_token or _dev_file(settings.data_dir, "dev-token")
    with httpx.Client(timeout=30) as client:
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            _fail(f"could not reach {url}: {exc}", 1)
        outcome = _outcome(client, url, token, shop, msg_id, response, wait)
    if as_json or not sys.stdout.isatty():
        click.echo(json.dumps(outcome))
    else:
        click.echo(f"{_outcome_line(outcome)}  id {outcome['id']}")
    done = (Status.PROCESSED, Status.STALE, Status.IGNORED, "duplicate", *([Status.QUEUED] if wait <= 0 else []))
    sys.exit(0 if outcome["status"] in done else 1)


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    """Rows as a table that keeps ids whole. The id columns are as wide as their longest value and never wrap;
    the others give way. When even that does not fit the terminal, each row is printed as a short block
    instead (ids first, on lines of their own). Piped, the table is as wide as it needs to be."""
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    ids = [i for i, c in enumerate(columns) if c in ID_COLUMNS]
    needed = sum(widths[i] for i in ids) + MIN_OTHER * (len(columns) - len(ids)) + 3 * len(columns) + 1
    out = console if console.is_terminal else Console(width=100_000)
    if out.is_terminal and needed > out.width:
        out.print(f"[bold]{title}[/bold]")
        for r in cells:
            out.print()
            for i in ids:
                out.print(f"{columns[i]:<9} {r[i]}", markup=False, highlight=False, soft_wrap=True)
            rest = "  ".join(f"{columns[i]} {r[i]}" for i in range(len(columns)) if i not in ids and r[i])
            out.print(f"  {rest}", markup=False, highlight=False)
        return
    table = Table(title=title)
    for i, c in enumerate(columns):
        if i in ids:
            table.add_column(c, no_wrap=True, min_width=widths[i])
        else:
            table.add_column(c, overflow="fold")
    for r in cells:
        table.add_row(*r)
    out.print(table, crop=False)


@main.command()
@click.option("--topic")
@click.option("--status")
@click.option("--order", "order_id")
@click.option("--shop")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def events(topic, status, order_id, shop, limit, as_json) -> None:
    """List stored events, newest first."""
    from storage.queries import list_events

    ctx = _store()
    records = list_events(ctx.redis, ctx.keys, topic=topic, status=status, order_id=order_id, shop=shop,
                          limit=limit)
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
        return
    _table("events", ["received", "id", "topic", "shop", "order", "status", "attempts", "error"],
           [[r.received_iso[:19], r.id, r.topic, r.shop, r.order_id, r.status, r.attempts, r.error]
            for r in records])


def _one_event(ctx, event_id: str, shop: str | None, platform: str | None):
    """The one stored event with this id, or else whose id starts with it (in `shop`/`platform` when given).
    An exact id beats prefixes. Exit 1 when there is none, 2 listing the candidates (`platform shop id`) on
    stderr when there are several."""
    from storage.events import find_events, find_events_by_prefix

    shop = (shop or "").strip().lower() or None
    found = find_events(ctx.redis, ctx.keys, event_id, shop=shop, platform=platform)
    if not found:
        found = find_events_by_prefix(ctx.redis, ctx.keys, event_id, shop=shop, platform=platform)
    if not found:
        _fail(f"event {event_id} not found", 1)
    if len(found) > 1:
        err.print(f"{event_id} matches several events; give more of the id, or --shop (and --platform):",
                  markup=False, highlight=False)
        for r in found[:50]:
            err.print(f"  {r.platform} {r.shop or '(no shop)'} {r.id}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    return found[0]


@main.command()
@click.argument("event_id")
@click.option("--shop", help="the event's shop, when its id is used by several shops")
@click.option("--platform", help="the event's platform (genstore)")
@click.option("--raw", "raw", is_flag=True, help="print only the body, byte for byte as it was received")
def event(event_id, shop, platform, raw) -> None:
    """Show one event: raw body, normalized form, each handler's outcome (--raw: the body alone)."""
    ctx = _store()
    record = _one_event(ctx, event_id, shop, platform)
    if raw:  # stored compressed (`storage.codec`); written out as received, for diff, jq or a replay by hand
        sys.stdout.buffer.write(record.raw)
        sys.stdout.buffer.flush()
        return
    console.print_json(json.dumps(record.detail()))


@main.command()
@click.option("--shop")
@click.option("--status", type=click.Choice(["open", "closed", "cancelled", "any"]), default="any")
@click.option("--financial-status")
@click.option("--fulfillment-status")
@click.option("--since-id")
@click.option("--limit", type=click.IntRange(1, 250), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def orders(shop, status, financial_status, fulfillment_status, since_id, limit, as_json) -> None:
    """List orders of the projection."""
    from storage.queries import OrderFilter, list_orders, platform_of, shops

    ctx = _store()
    shop_list = [(platform_of(ctx.redis, ctx.keys, shop.lower()), shop.lower())] if shop else shops(
        ctx.redis, ctx.keys)
    flt = OrderFilter(since_id=since_id, financial_status=financial_status,
                      fulfillment_status=fulfillment_status, status=status)
    found = [o for p, s in shop_list for o in list_orders(ctx.redis, ctx.keys, p, s, flt, limit)][:limit]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _table("orders", ["shop", "orderId", "updatedAt", "financial", "fulfillment", "totalPrice", "refunded"],
           [[o["shop"], o["orderId"], o.get("updatedAt"), o.get("financialStatus"), o.get("fulfillmentStatus"),
             f"{o.get('totalPrice')} {o.get('currency') or ''}", o.get("totalRefunded")] for o in found])


@main.command()
@click.argument("order_id")
@click.option("--shop")
def order(order_id, shop) -> None:
    """Show one order of the projection (ORDER_ID, or the start of it when that is unique)."""
    from storage.queries import find_orders, get_order

    ctx = _store()
    found = find_orders(ctx.redis, ctx.keys, order_id, shop=shop.strip().lower() if shop else None)
    if not found:
        _fail(f"order {order_id} not found", 1)
    if len(found) > 1:
        err.print(f"{order_id} matches several orders; give more of the id, or --shop:", markup=False,
                  highlight=False)
        for p, s, oid in found[:50]:
            err.print(f"  {p} {s} {oid}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    p, s, oid = found[0]
    console.print_json(json.dumps(get_order(ctx.redis, ctx.keys, p, s, oid)))


@main.command()
@click.argument("event_id", required=False)
@click.option("--status", type=click.Choice([Status.FAILED.value, Status.QUARANTINED.value]))
@click.option("--shop", help="the event's shop, when its id is used by several shops")
@click.option("--platform", help="the event's platform (genstore)")
def replay(event_id, status, shop, platform) -> None:
    """Replay one event, or every failed or quarantined one."""
    from storage.replay import replay as replay_one
    from storage.replay import replay_status

    if not event_id and not status:
        _fail("replay needs an event id (orderhooks replay ID) or --status failed|quarantined", 2)
    if event_id and status:
        _fail("give an event id or --status, not both", 2)
    ctx = _store()
    try:
        if status:
            results = replay_status(ctx, status)
        else:
            results = [replay_one(ctx, _one_event(ctx, event_id, shop, platform).ref)]
    except KeyError:
        _fail(f"event {event_id} not found", 1)
    if not results:
        click.echo(f"nothing to replay: no event is {status}")
        return
    _table("replay", ["id", "status", "action", "detail"], [[r.id, r.status, r.action, r.detail] for r in results])


# -- shops -------------------------------------------------------------------------------------------------------

DEV_SECRET_KEY_FILE = "dev-secret-key"


def _fail(message: str, code: int):
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def _shops_settings() -> Settings:
    """Settings for the shops commands; next to a running `orderhooks dev` (no REDIS_URL) its token key too."""
    from dataclasses import replace

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", 2)
    key_file = settings.data_dir / DEV_SECRET_KEY_FILE
    if not settings.secret_key and not settings.redis_configured and key_file.exists():
        settings = replace(settings, secret_key=(key_file.read_text().strip(),))
    return settings


def _shops_redis(settings: Settings):
    """Redis for a one-shot command: `redis: unreachable at <address>: <reason>` and exit 1 when it is away."""
    return _redis_client(settings, socket_timeout=10)[1]


def _when(moment: float | None) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


@main.group(name="shops")
def shops_group() -> None:
    """Register shops whose Orders API orderhooks may call (tokens encrypted with ORDERHOOKS_SECRET_KEY)."""


@shops_group.command(name="add")
@click.argument("shop")
@click.option("--token", required=True, help="the shop's Orders API access token; - reads it from stdin")
@click.option("--api-url", default=None, help="default: https://SHOP/api/202412 "
                                               "(BigCommerce: https://api.bigcommerce.com/stores/HASH/v2)")
@click.option("--platform", type=click.Choice(["genstore", "bigcommerce"]), default="genstore", show_default=True)
def shops_add(shop: str, token: str, api_url: str | None, platform: str) -> None:
    """Register SHOP's API token (or replace it); the token is stored encrypted and never shown."""
    from storage.keys import Keys
    from storage.shops import ShopError, add_shop, cipher

    settings = _shops_settings()
    if token == "-":
        token = sys.stdin.readline().strip()
    try:
        cipher(settings)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", 2)
    redis = _shops_redis(settings)
    try:
        registered, new = add_shop(redis, Keys(settings.prefix), settings, shop, token, api_url=api_url,
                                   platform=platform)
    except ShopError as exc:
        _fail(str(exc), 2)
    click.echo(f"{'added' if new else 'updated'} {registered.shop} ({registered.platform}, {registered.api_url}, "
               f"token {registered.token_hint})")


@shops_group.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def shops_list(as_json: bool) -> None:
    """Registered shops: API URL, masked token, the last reconcile run and its result."""
    from storage.keys import Keys
    from storage.shops import TokenUnreadable, list_shops
    from storage.shops import token as read_token

    settings = _shops_settings()
    redis = _shops_redis(settings)
    keys = Keys(settings.prefix)
    found = list_shops(redis, keys)
    readable: dict[str, bool | None] = {}
    for s in found:
        readable[s.shop] = None
        if settings.secret_key:
            try:
                readable[s.shop] = read_token(redis, keys, settings, s.shop) is not None
            except TokenUnreadable:
                readable[s.shop] = False
    if as_json:
        click.echo(json.dumps([s.to_json() | {"tokenReadable": readable[s.shop]} for s in found], indent=2))
        return
    if not found:
        click.echo("no shops registered (orderhooks shops add SHOP --token TOKEN)")
        return
    rows = []
    for s in found:
        token_cell = s.token_hint + (" (unreadable with ORDERHOOKS_SECRET_KEY)" if readable[s.shop] is False else "")
        run = s.last_run
        if not s.reconciled:
            result = "not reconciled (BigCommerce)"
        elif run is None:
            result = "never reconciled"
        else:
            result = (f"{'ok' if run.ok else 'failed'}: healed {run.healed}, updated {run.updated}, "
                      f"errors {run.errors}" + (f"; {run.error}" if run.error else ""))
        rows.append([s.shop, s.platform, s.api_url, token_cell, _when(s.added_at),
                     _when(run.at) if run else "", result])
    _table("shops", ["shop", "platform", "api url", "token", "added", "last reconcile", "result"], rows)


@shops_group.command(name="remove")
@click.argument("shop")
def shops_remove(shop: str) -> None:
    """Forget SHOP and its token."""
    from storage.keys import Keys
    from storage.shops import remove_shop

    settings = _shops_settings()
    redis = _shops_redis(settings)
    if not remove_shop(redis, Keys(settings.prefix), shop):
        _fail(f"shop {shop.strip().lower()} is not registered", 1)
    click.echo(f"removed {shop.strip().lower()}")



# -- reconcile ---------------------------------------------------------------------------------------------------

def _iso_time(value: str | None):
    from datetime import datetime

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("an ISO 8601 time with offset, e.g. 2024-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise click.BadParameter("the time needs an offset, e.g. 2024-01-01T00:00:00Z")
    return moment


@main.command()
@click.option("--shop", required=True, help="a registered Genstore shop")
@click.option("--since", "since", default=None, help="read orders changed since this ISO 8601 time")
@click.option("--full", is_flag=True, help="read every order (a shop's first run does)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
def reconcile(shop: str, since: str | None, full: bool, as_json: bool) -> None:
    """Heal the local copy of SHOP's orders from its Orders API.

    Reads the orders changed since the last successful run (less ORDERHOOKS_RECONCILE_OVERLAP) and feeds each
    through the same normalization and merge as a webhook. Exit 0 finished, 1 could not finish, 2 usage or
    configuration, 3 the API refused the token.
    """
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from storage.store import Store
    from workers.reconcile import ReconcileRefused, reconcile_shop

    if since and full:
        _fail("give --since or --full, not both", 2)
    try:
        moment = _iso_time(since)
    except click.BadParameter as exc:
        _fail(f"--since: {exc.message}", 2)
    settings = _shops_settings()
    from orderhooks import logs

    logs.configure(settings.log_format, "warning")  # the summary is the output; log lines go to stderr
    redis = _shops_redis(settings)
    ctx = Store.create(replace(settings, redis_url=_redis_url(settings)), redis=redis)
    bar = None
    if not as_json and console.is_terminal:
        bar = Progress(TextColumn("reconciling {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("healed {task.fields[healed]} updated {task.fields[updated]}"),
                       console=err, transient=True)
    task = None

    def progress(summary, total) -> None:
        nonlocal task
        if bar is None:
            return
        if task is None:
            bar.start()
            task = bar.add_task(summary.shop, total=total, healed=0, updated=0)
        bar.update(task, completed=summary.seen, healed=summary.healed, updated=summary.updated)

    try:
        summary = reconcile_shop(ctx, shop, since=moment, full=full, progress=progress)
    except ReconcileRefused as exc:
        if as_json:
            click.echo(json.dumps({"shop": shop.strip().lower(), "pages": 0, "seen": 0, "healed": 0, "updated": 0,
                                   "unchanged": 0, "quarantined": 0, "errors": 0, "failed": str(exc)}))
        else:
            err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    else:
        click.echo(f"{summary.shop}: {summary.pages} pages, {summary.seen} orders seen: {summary.healed} healed "
                   f"(missing here), {summary.updated} updated (older here), {summary.unchanged} unchanged, "
                   f"{summary.quarantined} quarantined, {summary.errors} errors")
        if summary.failed:
            err.print(f"the run did not finish: {summary.failed}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(summary.exit_code)


@main.command()
@click.option("--platform", type=click.Choice(["genstore", "bigcommerce"]), default=None, help="default: all")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def rejected(platform: str | None, limit: int, as_json: bool) -> None:
    """The newest refused deliveries (401, 400, 413, 431) and why each was refused."""
    from receiver.rejected import read
    from storage.keys import Keys

    settings = _shops_settings()
    found = read(_shops_redis(settings), Keys(settings.prefix), platform, limit)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    if not found["rejected"]:
        click.echo("no refused deliveries recorded")
    for r in found["rejected"]:
        about = " ".join(f"{k}={r[k]}" for k in ("topic", "shop", "event_id") if r.get(k))
        click.echo(f"{r['at'][:19]} {r['platform']} {r['status']} from {r['client']}: {r['reason']}"
                   + (f" [{about}]" if about else "") + f" ({r['size']} bytes)")
    if found["dropped"]:
        click.echo(f"{found['dropped']} more refused but not recorded (too many at once)")


@main.group(name="notify")
def notify_group() -> None:
    """Notifications (ORDERHOOKS_NOTIFY_URLS)."""


@notify_group.command(name="test")
def notify_test() -> None:
    """Post a `test` notification to every URL and print each answer."""
    from workers.notify import send_test

    settings = _settings()
    if not settings.notify_urls:
        _fail("ORDERHOOKS_NOTIFY_URLS: not set: nothing to test", 2)
    failed = 0
    for position, (url, ok, answer) in enumerate(send_test(settings), 1):
        where = url.split("://", 1)[-1].split("/", 1)[0]  # the host only: the rest of a webhook URL is a secret
        click.echo(f"URL {position} ({where}): {'ok' if ok else 'failed'}: {answer}")
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
