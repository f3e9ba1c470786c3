"""The alert rules in a real Prometheus (Debian's binary, on a loopback port with a temporary data dir),
scraping a real receiver: a handler failure raises OrderhooksHandlerFailing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid

import httpx
import pytest
import redis as redislib

from orderhooks.embedded import free_port
from tests.e2e.test_operations import _post
from tests.support.stack import DB, ROOT, base_env, db_url, start_web, stop, wait_for

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (make promtool)")


def test_a_handler_failure_fires_its_alert_in_prometheus(redis_url, tmp_path):
    env = base_env(redis_url) | {"REDIS_URL": db_url(redis_url, DB["prometheus"]),
                                 "ORDERHOOKS_HANDLERS": "tests.e2e.handlers_ops", "ORDERHOOKS_RETRY_DELAYS": "0"}
    client = redislib.Redis.from_url(env["REDIS_URL"])
    client.flushdb()
    web, url = start_web(env)
    worker = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "worker"], env=env, cwd=ROOT)
    rules = (ROOT / "docs/prometheus/alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(re.sub(r"for: \d+m", "for: 0s", rules))  # `for:` shortened
    target = url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        f"scrape_configs:\n  - job_name: orderhooks\n    static_configs: [{{targets: ['{target}']}}]\n")
    port = free_port()
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        def scraped():
            try:
                r = httpx.get(api + "/query", params={"query": 'orderhooks_events_failed_total{job="orderhooks"}'},
                              timeout=2).json()
            except httpx.HTTPError:
                return None
            return r["data"]["result"] if r.get("status") == "success" else None

        [series] = wait_for(scraped, 60, interval=0.5, what="Prometheus to scrape the receiver")
        assert float(series["value"][1]) == 0  # the series exists at 0 from the first scrape
        def two_samples():  # increase() needs a sample before the failure
            r = httpx.get(api + "/query", params={"query": "count_over_time(orderhooks_events_failed_total[1m])"},
                          timeout=2).json()["data"]["result"]
            return r and float(r[0]["value"][1]) >= 2

        wait_for(two_samples, 30, interval=0.5, what="two scrapes before the failure")

        def alerts():
            return {a["labels"]["alertname"]: a for a in httpx.get(api + "/alerts", timeout=2).json()["data"]["alerts"]}

        assert "OrderhooksHandlerFailing" not in alerts()
        assert _post(url, "orders/paid", "prom.genmystore.com", event_id=str(uuid.uuid4())).status_code == 202

        def firing():
            a = alerts().get("OrderhooksHandlerFailing")
            return a if a and a["state"] == "firing" else None

        alert = wait_for(firing, 60, interval=0.5, what="OrderhooksHandlerFailing to fire")
        assert alert["labels"]["severity"] == "warning"
        assert "events ended failed" in alert["annotations"]["description"]
        assert "OrderhooksDown" not in alerts() and "OrderhooksRedisDown" not in alerts()
    finally:
        prom.terminate()
        prom.wait(10)
        stop(web, worker)
        client.flushdb()
        client.close()
