"""Handlers from an installed package, found through the `orderhooks.handlers` entry-point group.

The package is a real distribution on sys.path (a module and its .dist-info with entry_points.txt),
read by importlib.metadata as pip would have installed it; the worker's own start-up loads it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from storage.events import load_event
from tests.support.payloads import order_body
from tests.support.stack import ROOT
from tests.support.store import ref, store
from workers.context import Context, set_context
from workers.handlers import registry

PLUGIN = "orderhooks_plugin_under_test"


def install(site, calls_file) -> None:
    """What `pip install` leaves in site-packages for a package registering its handlers."""
    (site / PLUGIN).mkdir()
    (site / PLUGIN / "__init__.py").write_text("")
    (site / PLUGIN / "handlers.py").write_text(textwrap.dedent(f"""
        from workers.handlers import on

        @on("orders/paid")
        def thank(event):
            with open({str(calls_file)!r}, "a") as f:
                f.write(event.id + "\\n")
    """))
    info = site / "orderhooks_plugin_under_test-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: orderhooks-plugin-under-test\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[orderhooks.handlers]\nthanks = {PLUGIN}.handlers\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    install(site, tmp_path / "calls")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    for name in [m for m in sys.modules if m.startswith(PLUGIN)]:
        del sys.modules[name]


def test_the_worker_loads_handlers_of_an_installed_package(ctx, site, tmp_path):
    registry.clear()
    worker = Context.create(replace(ctx.settings, handler_modules=()), redis=ctx.redis)  # as `orderhooks worker`
    set_context(worker)
    name = f"{PLUGIN}.handlers.thank"
    assert [h.name for h in worker.registry.matching("orders/paid")] == [name]
    assert worker.registry.matching("orders/create") == []
    store(ctx, "ep-1", "orders/paid", order_body("orders/paid", "1201"), process=True)
    assert (tmp_path / "calls").read_text() == "ep-1\n"
    assert load_event(ctx.redis, ctx.keys, ref("ep-1")).handlers[name]["status"] == "ok"


def test_without_the_package_no_handler_is_loaded(ctx):
    registry.clear()
    worker = Context.create(replace(ctx.settings, handler_modules=()), redis=ctx.redis)
    assert worker.registry.all() == []


@pytest.mark.e2e
def test_a_worker_process_runs_the_installed_package_handlers(site, tmp_path, redis_url):
    """The same through `orderhooks worker --burst`, the package found on the process's own path."""
    import os

    import redis as redislib

    from tests.support.stack import DB, base_env, db_url

    env = base_env(redis_url, DB["outcomes"]) | {"ORDERHOOKS_HANDLERS": "",
                                                 "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    client = redislib.Redis.from_url(db_url(redis_url, DB["outcomes"]))
    client.flushdb()
    from orderhooks.config import Settings

    ctx = Context.create(Settings.from_env(env), redis=client, load=False)
    store(ctx, "ep-2", "orders/paid", order_body("orders/paid", "1202"))
    done = subprocess.run([sys.executable, "-m", "orderhooks.cli", "worker", "--burst"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text() == "ep-2\n"
    assert load_event(client, ctx.keys, ref("ep-2")).status == "processed"
