"""Browser tests: headless Chromium (Debian's package, driven by Playwright) against real
`orderhooks web` and `orderhooks worker` processes on the session's real Redis (database 2).

They skip, saying why, where no browser is available: no `playwright` package, or no Chromium
binary (`/usr/bin/chromium` from Debian's `chromium` package; `make browser` installs it; or
set ORDERHOOKS_CHROMIUM). Set ORDERHOOKS_UI_SCREENSHOTS=<dir> to keep screenshots of the pages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redislib

from orderhooks.config import secret_bytes
from receiver.verify import genstore_signature
from tests.conftest import SECRET, TOKEN
from tests.e2e.conftest import ROOT, _db, base_env, start_web, stop

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("ORDERHOOKS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests skipped: the playwright package is not installed (make install)")
    exe = find_chromium()
    if exe is None:
        pytest.skip("browser tests skipped: no Chromium found; install Debian's chromium package "
                    "(make browser) or set ORDERHOOKS_CHROMIUM to a Chromium binary")
    with sync_playwright() as p:
        try:
            # Playwright gives every launch a fresh temporary profile (user-data-dir), removed on close.
            b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS, timeout=60_000)
        except Exception as exc:  # a broken or incompatible browser install is an environment problem
            pytest.skip(f"browser tests skipped: Chromium at {exe} did not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@dataclass
class UiStack:
    url: str
    redis: redislib.Redis
    env: dict

    def post(self, topic: str, body: bytes, *, shop: str = "acme.genmystore.com") -> dict:
        event_id = str(uuid.uuid4())
        r = httpx.post(self.url + "/webhooks/genstore", content=body, timeout=10, headers={
            "X-Genstore-Topic": topic, "X-Genstore-Shop-Domain": shop, "X-Genstore-Event-Id": event_id,
            "X-Genstore-Hmac-Sha256": genstore_signature(secret_bytes(SECRET), body),
            "Content-Type": "application/json"})
        assert r.status_code in (200, 202), r.text
        return r.json()

    def event(self, event_id: str) -> dict:
        return httpx.get(f"{self.url}/api/events/{event_id}", headers={"X-Genstore-Access-Token": TOKEN},
                         timeout=10).json()["event"]


@pytest.fixture(scope="package")
def ui_stack(redis_url):
    env = base_env(redis_url) | {
        "REDIS_URL": _db(redis_url, 2),
        "ORDERHOOKS_HANDLERS": "tests.ui.handlers_ui",
        "ORDERHOOKS_RETRY_DELAYS": "1",
    }
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)
    yield UiStack(url, client, env)
    stop(web, worker)
    client.close()


@pytest.fixture
def page(browser, ui_stack):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=ui_stack.url)
    context.set_default_timeout(15_000)
    p = context.new_page()
    requested: list[str] = []
    p.on("request", lambda r: requested.append(r.url))
    p.requested = requested
    yield p
    context.close()


@pytest.fixture
def shot(page):
    """shot(name): a full-page screenshot into $ORDERHOOKS_UI_SCREENSHOTS, when set."""
    folder = os.environ.get("ORDERHOOKS_UI_SCREENSHOTS")

    def take(name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take
