"""Normalization speed: µs per `schemas.normalize(topic, body)` for each sample topic and for the drain
benchmark's orders/create body, and µs per `schemas.merge` of that event onto no projection (the worker
does both for every event).

    python -m bench.normalize_speed [--calls N] [--runs R] [--json]

Each figure is the best of R runs of N calls in a row (wall clock, one thread, the garbage collector on as
in the worker), the runs of all figures interleaved; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from bench.run import _order_body
from schemas import TOPICS, merge, normalize
from schemas.samples import example_for_topic

EVENT_ID = "bench-event"


def _run_ns(call: Callable[[], object], calls: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return time.perf_counter_ns() - start


def cases() -> list[tuple[str, str, bytes]]:
    """(label, topic, body): each topic's sample, then the drain benchmark's orders/create body."""
    out = [(topic, topic, example_for_topic(topic)) for topic in TOPICS]
    out.append(("orders/create (drain bench body)", "orders/create", _order_body(0)))
    return out


def measure(calls: int, runs: int) -> dict[str, dict[str, float]]:
    """µs per call, the best of `runs` runs of `calls` calls; the runs of every figure are interleaved, so
    that a busy spell of the machine spoils one run of each rather than every run of one."""
    timed: list[tuple[str, str, Callable[[], object]]] = []
    results: dict[str, dict[str, float]] = {}
    for label, topic, body in cases():
        event = normalize(topic, body)
        results[label] = {"bytes": len(body)}
        timed.append((label, "normalize_us", lambda t=topic, b=body: normalize(t, b)))
        timed.append((label, "merge_us", lambda t=topic, e=event: merge(None, t, EVENT_ID, e)))
    best = {(label, name): float("inf") for label, name, _ in timed}
    for _ in range(runs):
        for label, name, call in timed:
            best[label, name] = min(best[label, name], _run_ns(call, calls))
    for (label, name), ns in best.items():
        results[label][name] = ns / calls / 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per run (default 1000)")
    parser.add_argument("--runs", type=int, default=15, help="runs; the best is kept (default 15)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = measure(args.calls, args.runs)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"best of {args.runs} runs of {args.calls:,} calls, µs per call")
    print(f"{'body':<36} {'bytes':>6} {'normalize':>10} {'merge':>8} {'both':>8}")
    for label, row in results.items():
        both = row["normalize_us"] + row["merge_us"]
        print(f"{label:<36} {row['bytes']:>6} {row['normalize_us']:>10.1f} {row['merge_us']:>8.1f} {both:>8.1f}")


if __name__ == "__main__":
    main()
