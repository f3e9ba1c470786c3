"""/metrics of the real receiver, counting what the real worker did; several web processes add up."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import base_env, start_web, stop, wait_for


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_deliveries_processing_and_handlers(stack):
    before = scrape(stack.url)
    shop = f"m{uuid.uuid4().hex[:8]}.genmystore.com"
    assert stack.post("orders/paid", shop=shop, secret="wrong").status_code == 401
    event_id = stack.post("orders/paid", shop=shop).json()["id"]
    wait_for(lambda: stack.event(event_id)["handlers"].get("tests.e2e.handlers_app.flaky_once", {})
             .get("status") == "ok", timeout=30, what="flaky handler to succeed on retry")

    def counted():
        now = scrape(stack.url)
        done = value(now, "orderhooks_handler_calls_total", handler="tests.e2e.handlers_app.flaky_once",
                     outcome="ok") > value(before, "orderhooks_handler_calls_total",
                                           handler="tests.e2e.handlers_app.flaky_once", outcome="ok")
        return now if done else None

    after = wait_for(counted, what="the retried handler call to be counted")

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("orderhooks_deliveries_total", topic="orders/paid", outcome="accepted") == 1
    assert delta("orderhooks_deliveries_total", topic="orders/paid", outcome="unauthorized") == 1
    assert delta("orderhooks_events_processed_total", topic="orders/paid", status="processed") >= 1
    assert delta("orderhooks_handler_calls_total", handler="tests.e2e.handlers_app.flaky_once",
                 outcome="retrying") >= 1
    assert delta("orderhooks_delivery_to_processed_seconds_count") >= 1
    assert delta("orderhooks_ack_seconds_count") >= 1
    assert value(after, "orderhooks_redis_up") == 1
    assert value(after, "orderhooks_queue_depth") >= 0
    assert ("orderhooks_oldest_queued_age_seconds", ()) in after


def test_metrics_add_up_across_web_processes(redis_url, tmp_path):
    """WEB_CONCURRENCY=2 with PROMETHEUS_MULTIPROC_DIR: every scrape shows every process's deliveries."""
    env = base_env(redis_url) | {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
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
