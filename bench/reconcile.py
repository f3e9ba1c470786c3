"""Reconciling N orders from a fake Genstore Orders API: wall time, orders/s, and where the time goes.

    python -m bench.reconcile [--orders 10000]

The fake API (the tests' real HTTP server, seed-shaped orders) runs in this process's background thread; the
run itself is `workers.reconcile.reconcile_shop` against an embedded Redis, every order missing locally (the
worst case: each one is stored as an event and applied). The time spent waiting on the API is measured around
the client's HTTP calls; the rest (normalization, the merge, storing and applying) is orderhooks' own, and is
compared per order with a webhook's cost per event (receiver + worker CPU, from `make bench`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from cryptography.fernet import Fernet

from orderhooks.config import Settings
from orderhooks.embedded import EmbeddedRedis
from storage.shops import add_shop
from storage.store import Store
from tests.fake_genstore import FakeGenstore
from workers.genstore import GenstoreClient, Retry
from workers.reconcile import reconcile_shop

SHOP = "bench.genmystore.com"


class TimedClient(GenstoreClient):
    """Adds up the wall time spent in HTTP calls (sending, the API's answer, reading it)."""

    waited = 0.0

    def _call(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super()._call(*args, **kwargs)
        finally:
            TimedClient.waited += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile")
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeGenstore(shop=SHOP) as api:
        server = EmbeddedRedis(Path(tmp), fsync="everysec").start()
        try:
            for n in range(args.orders):
                api.add_order(str(100000 + n), updated_at="2024-05-01T10:00:00+00:00")
            settings = replace(Settings.from_env({"REDIS_URL": server.url}),
                               secret_key=(Fernet.generate_key().decode(),))
            ctx = Store.create(settings)
            add_shop(ctx.redis, ctx.keys, settings, SHOP, api.token, api_url=api.url)
            client = TimedClient(SHOP, api.url, api.token, retry=Retry())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            summary = reconcile_shop(ctx, SHOP, client=client)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            redis_cpu = sum(server_cpu(server))
        finally:
            server.stop()
    own = wall - TimedClient.waited
    print(f"orders reconciled        {summary.healed} healed of {summary.seen} seen in {summary.pages} pages")
    print(f"wall time                {wall:.2f} s ({summary.seen / wall:.0f} orders/s)")
    print(f"waiting on the API       {TimedClient.waited:.2f} s ({100 * TimedClient.waited / wall:.0f} %; the fake "
          "API shares this process)")
    print(f"orderhooks' own          {own:.2f} s ({1e6 * own / max(1, summary.seen):.0f} µs per order)")
    print(f"CPU of this process      {1e6 * cpu / max(1, summary.seen):.0f} µs per order (fake API included)")
    print(f"Redis CPU                {1e6 * redis_cpu / max(1, summary.seen):.0f} µs per order")


def server_cpu(server: EmbeddedRedis) -> tuple[float, float]:
    import redis

    info = redis.Redis.from_url(server.url).info("cpu")
    return info["used_cpu_user"], info["used_cpu_sys"]


if __name__ == "__main__":
    main()
