"""Real receiver and worker processes against the session's real Redis (a database of their own)."""

from __future__ import annotations

import pytest

from tests.support.stack import DB, running_stack


@pytest.fixture(scope="session")
def stack(redis_url):
    """One receiver and one worker for the end-to-end tests, whatever order they run in."""
    with running_stack(redis_url, DB["e2e"]) as s:
        yield s


def pytest_collection_modifyitems(items):
    """Everything under tests/e2e starts real processes: mark it, so `-m "not e2e"` is the fast loop."""
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
