"""What a handler author touches: the event's names, workers.testing, and where handler modules load from."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.support.stack import DB, db_url
from workers.handlers import registry
from workers.testing import make_event, run_handlers

ROOT = Path(__file__).resolve().parents[2]


def test_snake_case_everywhere_and_the_documents_camel_case_names_read_too():
    event = make_event("orders/paid")
    assert event.order_id == event.orderId == "1001"
    assert event.received_at == event.receivedAt
    order = event.order
    assert order.total_price == order.totalPrice and str(order.totalPrice) == "409.94"
    assert order.order_id == order.orderId == "1001"
    assert order.line_items[0].product_id == order.lineItems[0].productId
    with pytest.raises(AttributeError):
        order.noSuchField  # noqa: B018
    with pytest.raises(AttributeError):
        event.noSuchThing  # noqa: B018


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """A project folder holding myapp/handlers.py, as the README's example, and nothing installed."""
    package = tmp_path / "myapp_readme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(textwrap.dedent('''
        from workers.handlers import on

        @on("orders/paid")
        def notify(event):
            assert event.order.total_price
    '''))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    registry.clear()
    sys.modules.pop("myapp_readme.handlers", None)
    sys.modules.pop("myapp_readme", None)


def test_run_handlers_imports_the_module_it_is_given(app_dir):
    event = make_event("orders/paid")
    assert run_handlers(event, "myapp_readme.handlers")["myapp_readme.handlers.notify"] is None


def test_a_handler_that_did_not_run_says_why():
    with pytest.raises(KeyError) as info:
        run_handlers(make_event("orders/paid"))["nobody.handlers.notify"]  # noqa: B018
    assert "is its module imported" in str(info.value)


@pytest.mark.e2e
def test_the_worker_imports_handlers_from_the_current_directory_as_dev_does(app_dir, redis_url):
    env = dict(os.environ) | {"REDIS_URL": db_url(redis_url, DB["handler_api"]), "ORDERHOOKS_SECRETS": SECRET,
                              "ORDERHOOKS_HANDLERS": "myapp_readme.handlers", "PYTHONPATH": str(ROOT)}
    worker = Path(sys.executable).with_name("orderhooks")
    done = subprocess.run([str(worker), "worker", "--burst"], cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cannot import" not in done.stderr
