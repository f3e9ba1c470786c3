import importlib

import pytest
from workers.handlers import registry

from orderhooks_shipping import handlers as handlers_module
from orderhooks_shipping import outbox as outbox_module


@pytest.fixture(autouse=True)
def handlers():
    """Exactly this package's handlers in the registry, registered afresh for each test."""
    registry.clear()
    importlib.reload(handlers_module)
    yield registry
    registry.clear()


@pytest.fixture(autouse=True)
def outbox():
    box = outbox_module.MemoryOutbox()
    outbox_module.use(box)
    yield box
    outbox_module.use(None)
