"""Browser tests: headless Chromium (Debian's package, driven by Playwright) against real
`orderhooks web` and `orderhooks worker` processes on the session's real Redis (a database of their own).

They skip, saying why, where no browser is available: no `playwright` package, or no Chromium
binary (`/usr/bin/chromium` from Debian's `chromium` package; `make browser` installs it; or
set ORDERHOOKS_CHROMIUM). Under CI (`CI=true`) a missing or broken browser fails them instead:
CI must not go green without having run them. Set ORDERHOOKS_UI_SCREENSHOTS=<dir> to keep
screenshots of the pages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.stack import DB, running_stack

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str | None:
    named = os.environ.get("ORDERHOOKS_CHROMIUM")
    if named:  # a browser named on purpose is the one to use, or an error: never another one
        return named
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def no_browser(reason: str):
    """Skip, saying why; under CI fail instead."""
    if in_ci():
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the playwright package is not installed (make install)")
    exe = find_chromium()
    if exe is None:
        no_browser("no Chromium found; install Debian's chromium package (make browser) "
                   "or set ORDERHOOKS_CHROMIUM to a Chromium binary")
    with sync_playwright() as p:
        try:
            # Playwright gives every launch a fresh temporary profile (user-data-dir), removed on close.
            b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS, timeout=60_000)
        except Exception as exc:  # a broken or incompatible browser install is an environment problem
            no_browser(f"Chromium at {exe} did not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="session")
def ui_stack(redis_url):
    with running_stack(redis_url, DB["ui"], ORDERHOOKS_HANDLERS="tests.ui.handlers_ui",
                       ORDERHOOKS_RETRY_DELAYS="1") as stack:
        yield stack


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
