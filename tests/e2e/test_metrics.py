"""/metrics of the real receiver, counting what the real worker did; several web processes add up."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.metrics import delta, scrape, value
from tests.support.stack import DB, base_env, running_stack, start_web, stop, wait_for

pytestmark = pytest.mark.e2e

FLAKY = "tests.e2e.handlers_app.flaky_once"


@pytest.fixture(scope="module")
def own_stack(redis_url):
    """A stack of its own: no other test's retries or deliveries can move these counters."""
    with running_stack(redis_url, DB["metrics"]) as s:
        yield s


def test_metrics_follow_deliveries_processing_and_handlers(own_stack):
    stack = own_stack
    before = scrape(stack.url)
    shop = f"m{uuid.uuid4().hex[:8]}.genmystore.com"
    assert stack.post("orders/paid", shop=shop, secret="wrong").status_code == 401
    event_id = stack.post("orders/paid", shop=shop).json()["id"]
    wait_for(lambda: stack.event(event_id)["handlers"].get(FLAKY, {}).get("status") == "ok", timeout=30,
             what="flaky handler to succeed on retry")

    def counted():
        now = scrape(stack.url)
        done = (value(now, "orderhooks_handler_calls_total", handler=FLAKY, outcome="ok") or 0) > (
            value(before, "orderhooks_handler_calls_total", handler=FLAKY, outcome="ok") or 0)
        return now if done else None

    after = wait_for(counted, what="the retried handler call to be counted")
    # Nothing else uses this stack: every delta is exact.
    assert delta(after, before, "orderhooks_deliveries_total", topic="orders/paid", outcome="accepted") == 1
    assert delta(after, before, "orderhooks_deliveries_total", topic="orders/paid", outcome="unauthorized") == 1
    assert delta(after, before, "orderhooks_events_processed_total", topic="orders/paid", status="processed") == 1
    assert delta(after, before, "orderhooks_handler_calls_total", handler=FLAKY, outcome="retrying") == 1
    assert delta(after, before, "orderhooks_handler_calls_total", handler=FLAKY, outcome="ok") == 1
    assert delta(after, before, "orderhooks_delivery_to_processed_seconds_count") == 1
    assert delta(after, before, "orderhooks_ack_seconds_count") == 1, "the 401 is not an acknowledgement"
    assert value(after, "orderhooks_redis_up") == 1
    assert value(after, "orderhooks_queue_depth") == 0, "the worker has drained the queue"
    assert value(after, "orderhooks_oldest_queued_age_seconds") == 0, "nothing is left queued"
    assert value(after, "orderhooks_handler_retries_scheduled") == 0, "the one retry has run"


def test_metrics_add_up_across_web_processes(redis_url, tmp_path):
    """WEB_CONCURRENCY=2 with PROMETHEUS_MULTIPROC_DIR: every scrape shows every process's deliveries."""
    env = base_env(redis_url, DB["metrics"]) | {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    proc, url = start_web(env)
    try:
        for _ in range(20):
            r = httpx.post(url + "/webhooks/genstore", content=b"{}", timeout=10,
                           headers={"X-Genstore-Topic": "orders/update", "X-Genstore-Hmac-Sha256": "AAAA",
                                    "Connection": "close"})
            assert r.status_code == 401
        assert len(list(tmp_path.glob("*.db"))) >= 2, "both web processes wrote their metrics"
        for _ in range(6):
            s = scrape(url)
            assert value(s, "orderhooks_deliveries_total", topic="orders/update", outcome="unauthorized") == 20
    finally:
        stop(proc)
