"""Reading Prometheus text: {(name, sorted labels): value}."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple], float]


def parse(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(url: str) -> Samples:
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels) -> float | None:
    """The sample's value, or None when the scrape did not have it (a missing series is not a zero)."""
    return samples.get((name, tuple(sorted(labels.items()))))


def delta(after: Samples, before: Samples, name: str, **labels) -> float:
    """How much a counter grew between two scrapes (a series absent before counts from 0)."""
    now = value(after, name, **labels)
    assert now is not None, f"{name}{labels} is missing from the scrape"
    return now - (value(before, name, **labels) or 0.0)
