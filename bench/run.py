"""The benchmark: ingest, drain, end-to-end latency and memory, each beside its baseline."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue, Worker
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from bench.load import steady, wrk
from bench.procs import PYTHON, ROOT, Proc, cpu_seconds, env_with, wait_http
from bench.report import Row, print_table
from orderhooks.config import Settings, secret_bytes
from orderhooks.embedded import EmbeddedRedis, free_port
from receiver.verify import genstore_signature
from schemas.samples import example_for_topic
from storage.intake import make_delivery, store_deliveries
from storage.keys import Keys
from storage.status import Status
from storage.store import Store

SECRET = "whsec_YmVuY2gtc2VjcmV0LWZvci1vcmRlcmhvb2tz"
SHOP = "bench.genmystore.com"
TOPIC = "orders/create"
KEYS = Keys()


@dataclass
class Run:
    workdir: Path
    seconds: float
    warmup: float
    connections: int
    events: int
    rate: float
    latency_seconds: float
    web_processes: int = 1
    worker_processes: int = 1
    results: dict = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    redises: list[EmbeddedRedis] = field(default_factory=list)

    def redis(self, name: str) -> tuple[EmbeddedRedis, Redis]:
        server = EmbeddedRedis(self.workdir / f"redis-{name}").start()
        self.redises.append(server)
        return server, Redis.from_url(server.url)

    def start(self, name: str, args: list[str], env: dict) -> Proc:
        proc = Proc(name, args, env, self.workdir)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for p in self.procs:
            p.stop()
        for r in self.redises:
            r.stop()


def _body_file(run: Run) -> tuple[Path, str]:
    body = example_for_topic(TOPIC)
    path = run.workdir / "orders_create.json"
    path.write_bytes(body)
    return path, genstore_signature(secret_bytes(SECRET), body)


def _used_memory(r: Redis) -> int:
    return int(r.info("memory")["used_memory"])


# -- 1. ingest -----------------------------------------------------------------------------------

def _ingest_one(run: Run, name: str, proc: Proc, url: str, r: Redis | None,
                count: Callable[[Redis], int] | None, server: EmbeddedRedis | None = None) -> dict:
    body_file, signature = _body_file(run)
    prefix = f"{name}-{uuid.uuid4().hex[:8]}"
    wait_http(proc, url)
    wrk(url + "/webhooks/genstore", body_file, signature, prefix + "-warm", run.warmup, run.connections)
    before = (_used_memory(r), count(r)) if r is not None and count else None
    cpu = proc.cpu_seconds()
    redis_cpu = cpu_seconds(server.process.pid) if server and server.process else 0.0
    result = wrk(url + "/webhooks/genstore", body_file, signature, prefix, run.seconds, run.connections)
    out = {"rate": result.rate, "requests": result.requests, "errors": result.errors,
           "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "rss_mib": proc.rss_mib(),
           "cpu_us": (proc.cpu_seconds() - cpu) / max(1, result.requests) * 1e6}
    if server and server.process:
        out["redis_cpu_us"] = (cpu_seconds(server.process.pid) - redis_cpu) / max(1, result.requests) * 1e6
    if before is not None:
        mem, n = _used_memory(r), count(r)
        out["stored"] = n - before[1]
        out["bytes_per_item"] = (mem - before[0]) / max(1, n - before[1])
    proc.stop()
    return out


def ingest(run: Run) -> None:
    port = free_port()
    proc = run.start("bare", [PYTHON, "-m", "bench.serve", "bare", "--port", str(port)], env_with())
    run.results["ingest_bare"] = _ingest_one(run, "bare", proc, f"http://127.0.0.1:{port}", None, None)

    port = free_port()
    proc = run.start("asgi", [PYTHON, "-m", "bench.serve", "asgi", "--port", str(port)], env_with())
    run.results["ingest_asgi"] = _ingest_one(run, "asgi", proc, f"http://127.0.0.1:{port}", None, None)

    server, r = run.redis("naive")
    port = free_port()
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET)
    proc = run.start("naive", [PYTHON, "-m", "bench.serve", "naive", "--port", str(port)], env)
    run.results["ingest_naive"] = _ingest_one(run, "naive", proc, f"http://127.0.0.1:{port}", r,
                                              lambda r: r.llen("rq:queue:naive"), server)

    server, r = run.redis("ingest")
    port = free_port()
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET, WEB_CONCURRENCY=str(run.web_processes),
                   ORDERHOOKS_LOG_FORMAT="json", ORDERHOOKS_DATA_DIR=str(run.workdir))
    proc = run.start("orderhooks-web", [PYTHON, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1",
                                        "--port", str(port)], env)
    out = _ingest_one(run, "orderhooks", proc, f"http://127.0.0.1:{port}", r, lambda r: r.zcard(KEYS.events),
                      server)
    out["jobs"] = r.llen("rq:queue:orderhooks")
    run.results["ingest_orderhooks"] = out


# -- 2. drain ------------------------------------------------------------------------------------

def _order_body(i: int) -> bytes:
    data = json.loads(example_for_topic(TOPIC))
    data["order"]["orderId"] = str(500000 + i)
    return json.dumps(data).encode()


def _wait_drained(proc: Proc, progress: Callable[[], int], n: int, server: EmbeddedRedis,
                  timeout: float = 300.0) -> dict:
    """Items per second, from the first item seen done to the last (the worker's start-up excluded),
    and the CPU time the worker and Redis spent per item over the same span."""
    first_at = first_count = None
    deadline = time.monotonic() + timeout
    redis_pid = server.process.pid if server.process else 0
    while True:
        done = progress()
        now = time.perf_counter()
        if first_at is None and done > 0:
            first_at, first_count = now, done
            cpu0, redis0 = proc.cpu_seconds(), cpu_seconds(redis_pid)
        if done >= n:
            items = n - first_count
            return {"rate": items / (now - first_at) if now > first_at else float("nan"),
                    "cpu_us": (proc.cpu_seconds() - cpu0) / max(1, items) * 1e6,
                    "redis_cpu_us": (cpu_seconds(redis_pid) - redis0) / max(1, items) * 1e6}
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited while draining:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: only {done} of {n} done after {timeout}s")
        time.sleep(0.005)


def drain(run: Run) -> None:
    n = run.events
    # Baseline: one RQ SimpleWorker draining n no-op jobs.
    server, r = run.redis("rq")
    queue = Queue("noop", connection=r, serializer=JSONSerializer)
    r.config_set("appendfsync", "no")  # setting up is not what is measured
    for start in range(0, n, 500):
        pipe = r.pipeline()
        for i in range(start, min(n, start + 500)):
            queue.enqueue_call("bench.jobs.noop", args=(i,), pipeline=pipe)
        pipe.execute()
    r.config_set("appendfsync", "always")
    proc = run.start("rq-worker", [PYTHON, "-m", "bench.rq_worker", "noop"], env_with(REDIS_URL=server.url))
    finished = FinishedJobRegistry("noop", connection=r)
    run.results["drain_rq"] = {**_wait_drained(proc, lambda: finished.count, n, server), "rss_mib": proc.rss_mib()}
    proc.stop()

    # orderhooks: n orders/create events of n distinct orders, stored as a receiver stores them when
    # deliveries arrive one at a time (one RQ job per event: the worst case for the worker).
    server, r = run.redis("drain")
    settings = Settings.from_env({"REDIS_URL": server.url})
    ctx = Store.create(settings)
    empty = _used_memory(r)
    r.config_set("appendfsync", "no")
    for i in range(n):
        d = make_delivery(f"drain-{i}", TOPIC, SHOP, _order_body(i))
        store_deliveries(ctx.redis, ctx.keys, ctx.queue, [d], settings.event_ttl)
    r.config_set("appendfsync", "always")
    jobs = r.llen("rq:queue:orderhooks")
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_HANDLERS="bench.handlers_noop", ORDERHOOKS_LOG_FORMAT="json")
    proc = run.start("orderhooks-worker", [PYTHON, "-m", "orderhooks.cli", "worker", "--processes",
                                           str(run.worker_processes)], env)

    def progress() -> int:
        pipe = r.pipeline(transaction=False)
        pipe.zcard(KEYS.events_by_status(Status.PROCESSED))
        pipe.zcard(KEYS.events_by_status(Status.STALE))
        pipe.zcard(KEYS.dispatching)
        processed, stale, dispatching = pipe.execute()
        return processed + stale - dispatching

    out = {**_wait_drained(proc, progress, n, server), "rss_mib": proc.rss_mib(), "jobs": jobs}
    proc.stop()
    for key in r.scan_iter("rq:*", count=1000):  # RQ's finished-job records expire on their own
        r.delete(key)
    out["bytes_per_processed"] = (_used_memory(r) - empty) / n
    run.results["drain_orderhooks"] = out


# -- 3. end-to-end latency -----------------------------------------------------------------------

def _latency_one(run: Run, name: str, web: Proc, worker: Proc, url: str, r: Redis) -> dict:
    wait_http(web, url)
    warm = int(run.rate)  # the first second is not counted
    n = warm + int(run.rate * run.latency_seconds)
    key = secret_bytes(SECRET)
    requests = []
    for i in range(n):
        body = _order_body(i)
        event_id = f"{name}-lat-{i}"
        requests.append((event_id, body, {
            "Content-Type": "application/json", "X-Genstore-Topic": TOPIC, "X-Genstore-Shop-Domain": SHOP,
            "X-Genstore-Event-Id": event_id, "X-Genstore-Hmac-Sha256": genstore_signature(key, body),
        }))
    deadline = time.monotonic() + 60
    while not Worker.all(connection=r) and worker.alive() and time.monotonic() < deadline:
        time.sleep(0.1)  # until the worker has started and registered itself
    time.sleep(0.5)
    sent = steady(url + "/webhooks/genstore", requests, run.rate)
    deadline = time.monotonic() + 30
    while r.hlen("bench:called") < n and time.monotonic() < deadline and worker.alive():
        time.sleep(0.05)
    called = {k.decode(): float(v) for k, v in r.hgetall("bench:called").items()}
    measured = sent[warm:]
    timeline = [(s.at, s.status, (called[s.event_id] - s.at) * 1000 if s.event_id in called else None) for s in sent]
    (run.workdir / f"latency-{name}.json").write_text(json.dumps(timeline))
    lat = sorted((called[s.event_id] - s.at) * 1000 for s in measured if s.event_id in called)
    bad = sum(1 for s in sent if not 200 <= s.status < 300)
    out = {"n": len(measured), "missing": len(measured) - len(lat), "non_2xx": bad,
           "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": lat[-1] if lat else float("nan")}
    web.stop()
    worker.stop()
    return out


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def latency(run: Run) -> None:
    server, r = run.redis("latency-naive")
    port = free_port()
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET, BENCH_NAIVE_JOB="bench.jobs.record_called")
    web = run.start("latency-naive", [PYTHON, "-m", "bench.serve", "naive", "--port", str(port)], env)
    worker = run.start("latency-rq-worker", [PYTHON, "-m", "bench.rq_worker", "naive"], env)
    run.results["latency_naive"] = _latency_one(run, "naive", web, worker, f"http://127.0.0.1:{port}", r)

    server, r = run.redis("latency")
    r.config_set("latency-monitor-threshold", 20)  # Redis records its own stalls (fsync, slow commands)
    port = free_port()
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET, ORDERHOOKS_HANDLERS="bench.handlers_latency",
                   ORDERHOOKS_LOG_FORMAT="json", ORDERHOOKS_DATA_DIR=str(run.workdir))
    web = run.start("latency-web", [PYTHON, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1", "--port",
                                    str(port)], env)
    worker = run.start("latency-worker", [PYTHON, "-m", "orderhooks.cli", "worker"], env)
    run.results["latency_orderhooks"] = _latency_one(run, "orderhooks", web, worker, f"http://127.0.0.1:{port}", r)
    stalls = {event.decode() if isinstance(event, bytes) else event: int(peak)
              for event, _, _, peak in r.execute_command("LATENCY", "LATEST")}
    run.results["latency_orderhooks"]["redis_stalls_ms"] = stalls


# -- 4. a flood of refused deliveries ------------------------------------------------------------

FLOOD = 10_000  # wrongly signed deliveries sent while the accepted ones are measured


def _refused(n: int, prefix: str) -> list[tuple[str, bytes, dict]]:
    body = example_for_topic(TOPIC)
    signature = genstore_signature(b"not-the-configured-secret", body)
    return [(f"{prefix}-{i}", body, {"Content-Type": "application/json", "X-Genstore-Topic": TOPIC,
                                     "X-Genstore-Shop-Domain": SHOP, "X-Genstore-Event-Id": f"{prefix}-{i}",
                                     "X-Genstore-Hmac-Sha256": signature}) for i in range(n)]


def _flood_one(run: Run, name: str, elsewhere: bool = False, **env_extra: str) -> dict:
    """One receiver: accepted deliveries alone, then beside FLOOD refused ones sent evenly over the same
    seconds (open loop) to it, or with `elsewhere` to a bare server beside it (what the machine itself
    loses to the flood's traffic), then refused deliveries alone as fast as wrk sends them."""
    server, r = run.redis(f"flood-{name}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET, ORDERHOOKS_LOG_FORMAT="json",
                   ORDERHOOKS_DATA_DIR=str(run.workdir), **env_extra)
    proc = run.start(f"flood-{name}", [PYTHON, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1",
                                       "--port", str(port)], env)
    target, other = url, None
    if elsewhere:
        other_port = free_port()
        other = run.start(f"flood-{name}-bare", [PYTHON, "-m", "bench.serve", "bare", "--port", str(other_port)],
                          env_with())
        target = f"http://127.0.0.1:{other_port}"
        wait_http(other, target)
    body_file, signature = _body_file(run)
    wait_http(proc, url)
    half = max(1, run.connections // 2)
    hook = url + "/webhooks/genstore"
    wrk(hook, body_file, signature, f"{name}-warm", run.warmup, half)
    alone = wrk(hook, body_file, signature, f"{name}-alone", run.seconds, half)
    flood = _refused(FLOOD, f"{name}-flood")
    sent: list = []
    sender = threading.Thread(target=lambda: sent.extend(steady(target + "/webhooks/genstore", flood,
                                                                FLOOD / run.seconds)))
    sender.start()
    beside = wrk(hook, body_file, signature, f"{name}-beside", run.seconds, half)
    sender.join()
    time.sleep(1.0)  # the last group of records is written
    kept = [KEYS.rejected(p) for p in ("genstore", "bigcommerce")]
    out = {"alone": alone.rate, "alone_errors": alone.errors, "beside": beside.rate,
           "beside_errors": beside.errors, "flood_sent": len(sent),
           "flood_refused": sum(1 for s in sent if s.status in (200, 401)),  # 200: the bare server's answer
           "rejected_bytes": sum(r.memory_usage(k) or 0 for k in kept),
           "rejected_kept": sum(r.llen(k) for k in kept), "dropped": int(r.get(KEYS.rejected_dropped) or 0)}
    if not elsewhere:
        refused_alone = wrk(hook, body_file, "bad" + signature[3:], f"{name}-refused", run.seconds, half)
        out["refused_rate"] = refused_alone.rate
    proc.stop()
    if other:
        other.stop()
    return out


def flood(run: Run) -> None:
    run.results["flood_recorded"] = _flood_one(run, "recorded")
    run.results["flood_counted"] = _flood_one(run, "counted", ORDERHOOKS_REJECTED_RATE="0")
    run.results["flood_elsewhere"] = _flood_one(run, "elsewhere", elsewhere=True)


# -- the table -----------------------------------------------------------------------------------

def rows(run: Run) -> list[Row]:
    res = run.results
    out: list[Row] = []
    if "ingest_orderhooks" in res:
        oh, bare, naive = res["ingest_orderhooks"], res["ingest_bare"], res["ingest_naive"]
        asgi = res["ingest_asgi"]
        label = f"Ingest, req/s (wrk -t1 -c{run.connections}, {run.seconds:g}s; WEB_CONCURRENCY={run.web_processes})"
        out += [
            Row(label, f"{oh['rate']:,.0f}", "bare Starlette", f"{bare['rate']:,.0f}",
                oh["rate"] / bare["rate"], ">= 0.5 x bare"),
            Row("", "", "naive rq enqueue", f"{naive['rate']:,.0f}", oh["rate"] / naive["rate"], ""),
            Row("", "", "plain ASGI (uvicorn alone)", f"{asgi['rate']:,.0f}", oh["rate"] / asgi["rate"], ""),
            Row("Ingest, non-2xx or socket errors", str(oh["errors"]), "bare / naive",
                f"{bare['errors']} / {naive['errors']}", None, "0", ok=oh["errors"] == 0),
            Row("Ingest, receiver CPU per request, us", f"{oh['cpu_us']:.0f}", "bare / plain ASGI / naive",
                f"{bare['cpu_us']:.0f} / {asgi['cpu_us']:.0f} / {naive['cpu_us']:.0f}",
                bare["cpu_us"] / oh["cpu_us"], ""),
            Row("Ingest, Redis CPU per request, us", f"{oh['redis_cpu_us']:.0f}", "naive",
                f"{naive['redis_cpu_us']:.0f}", None, ""),
            Row("Ingest, latency p50 / p99 ms", f"{oh['p50_ms']:.1f} / {oh['p99_ms']:.1f}", "bare / naive",
                f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f}  {naive['p50_ms']:.1f} / {naive['p99_ms']:.1f}",
                None, ""),
            Row("Ingest, stored events / RQ jobs", f"{oh['stored']:,} / {oh['jobs']:,}", "answered 2xx",
                f"{oh['requests'] - oh['errors']:,}", None, ""),
        ]
    if "drain_orderhooks" in res:
        oh, rq = res["drain_orderhooks"], res["drain_rq"]
        out.append(Row(f"Drain, events/s ({run.events:,} orders/create, {oh['jobs']:,} jobs; "
                       f"{run.worker_processes} worker process(es))",
                       f"{oh['rate']:,.0f}", "RQ SimpleWorker, no-op jobs/s", f"{rq['rate']:,.0f}",
                       oh["rate"] / rq["rate"], ">= 3 x RQ"))
        out.append(Row("Drain, worker / Redis CPU per event, us", f"{oh['cpu_us']:.0f} / {oh['redis_cpu_us']:.0f}",
                       "per RQ no-op job", f"{rq['cpu_us']:.0f} / {rq['redis_cpu_us']:.0f}", None, ""))
    if "latency_orderhooks" in res:
        oh, naive = res["latency_orderhooks"], res["latency_naive"]
        out.append(Row(f"End-to-end latency p50 / p99 ms (sent -> handler called, {run.rate:g}/s)",
                       f"{oh['p50_ms']:.1f} / {oh['p99_ms']:.1f}", "naive enqueue + RQ worker",
                       f"{naive['p50_ms']:.1f} / {naive['p99_ms']:.1f}", None, "p99 <= 50 ms",
                       ok=oh["p99_ms"] <= 50 and oh["missing"] == 0 and oh["non_2xx"] == 0))
        out.append(Row("  max ms / not called / non-2xx", f"{oh['max_ms']:.1f} / {oh['missing']} / {oh['non_2xx']}",
                       "", f"{naive['max_ms']:.1f} / {naive['missing']} / {naive['non_2xx']}", None, ""))
        stalls = ", ".join(f"{k} {v} ms" for k, v in sorted(oh.get("redis_stalls_ms", {}).items())) or "none"
        out.append(Row("  Redis's own worst stalls >= 20 ms (LATENCY LATEST)", stalls, "", "", None, ""))
    if "ingest_orderhooks" in res:
        oh, naive = res["ingest_orderhooks"], res["ingest_naive"]
        out.append(Row("Redis bytes per stored event (queued)", f"{oh['bytes_per_item']:,.0f}",
                       "naive: per RQ job", f"{naive['bytes_per_item']:,.0f}", None, ""))
    if "drain_orderhooks" in res:
        out.append(Row("Redis bytes per processed event, with its order",
                       f"{res['drain_orderhooks']['bytes_per_processed']:,.0f}", "", "", None, ""))
    if "flood_recorded" in res:
        rec, cnt, far = res["flood_recorded"], res["flood_counted"], res["flood_elsewhere"]
        out.append(Row(f"Accepted req/s beside {FLOOD:,} refused deliveries ({FLOOD / run.seconds:,.0f}/s)",
                       f"{rec['beside']:,.0f}", "accepted alone", f"{rec['alone']:,.0f}",
                       rec["beside"] / rec["alone"], ">= 0.8 x alone",
                       ok=rec["beside"] >= 0.8 * rec["alone"] and rec["alone_errors"] == rec["beside_errors"] == 0
                       and rec["flood_refused"] == rec["flood_sent"] == FLOOD))
        out.append(Row("  the same, refusals only counted (ORDERHOOKS_REJECTED_RATE=0)", f"{cnt['beside']:,.0f}",
                       "accepted alone", f"{cnt['alone']:,.0f}", cnt["beside"] / cnt["alone"], ""))
        out.append(Row("  the same flood sent to a bare server beside it", f"{far['beside']:,.0f}",
                       "accepted alone", f"{far['alone']:,.0f}", far["beside"] / far["alone"], ""))
        out.append(Row("  refusals kept / dropped; their Redis KB", f"{rec['rejected_kept']:,} / {rec['dropped']:,}; "
                       f"{rec['rejected_bytes'] / 1024:,.0f}", "ORDERHOOKS_REJECTED_KEEP x 1 KB", "1,000", None,
                       "<= 1,000 KB", ok=rec["rejected_bytes"] <= 1024 * 1000))
        out.append(Row("Refused req/s alone (401, wrk)", f"{rec['refused_rate']:,.0f}",
                       "refusals only counted", f"{cnt['refused_rate']:,.0f}",
                       rec["refused_rate"] / cnt["refused_rate"], ""))
    if "ingest_orderhooks" in res:
        out.append(Row("Receiver RSS MiB (after ingest)", f"{res['ingest_orderhooks']['rss_mib']:.0f}",
                       "bare / naive",
                       f"{res['ingest_bare']['rss_mib']:.0f} / {res['ingest_naive']['rss_mib']:.0f}", None, ""))
    if "drain_orderhooks" in res:
        out.append(Row("Worker RSS MiB (after drain)", f"{res['drain_orderhooks']['rss_mib']:.0f}",
                       "RQ SimpleWorker", f"{res['drain_rq']['rss_mib']:.0f}", None, ""))
    return out


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="ingest,drain,latency,flood",
                        help="comma-separated: ingest, drain, latency, flood")
    parser.add_argument("--seconds", type=float, default=10, help="measured wrk run per receiver")
    parser.add_argument("--warmup", type=float, default=2, help="wrk warm-up per receiver, not counted")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=3000, help="events drained")
    parser.add_argument("--rate", type=float, default=200, help="deliveries per second for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--web-processes", type=int, default=1, help="WEB_CONCURRENCY of orderhooks web")
    parser.add_argument("--worker-processes", type=int, default=1, help="orderhooks worker --processes")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, Redis data)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="orderhooks-bench-"))
    run = Run(workdir, args.seconds, args.warmup, args.connections, args.events, args.rate, args.latency_seconds,
              args.web_processes, args.worker_processes)
    sections = {"ingest": ingest, "drain": drain, "latency": latency, "flood": flood}
    started = time.monotonic()
    load = os.getloadavg()[0]
    ok = False
    try:
        for name in args.only.split(","):
            sections[name.strip()](run)
        ok = True
    finally:
        run.cleanup()
        if args.json:
            args.json.write_text(json.dumps(run.results, indent=2))
        if args.keep or not ok:
            print(f"work directory (logs): {workdir}")
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    print_table(rows(run), title=f"orderhooks bench @ {_commit()}  ({os.cpu_count()} cores, load average "
                                 f"{load:.1f} at start, {time.monotonic() - started:.0f}s)")

