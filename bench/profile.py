"""`python -m bench.profile`: where an event's time goes, in the receiver, the worker and Redis.

One `orderhooks web` takes signed `orders/create` deliveries from wrk while py-spy samples it; then one
`orderhooks worker` (a no-op handler) drains what was stored while py-spy samples it. Redis's
`INFO commandstats` is read after each phase (reset before it), with `SLOWLOG` and `LATENCY LATEST`.

Prints, per phase: the functions holding most of the process's samples (own time, and time under them),
and Redis's calls and microseconds per event, by command. Needs py-spy (`pip install py-spy`) and wrk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from redis import Redis

from bench.load import wrk
from bench.procs import PYTHON, cpu_seconds, env_with, wait_http
from bench.run import KEYS, SECRET, Run, _body_file
from orderhooks.embedded import free_port


def _pyspy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                             "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    """`function (path/to/module.py:line)` -> `module.py:function`, short enough to read."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{short}:{name}"


def summarize(collapsed: Path, top: int = 25) -> str:
    """Own and total sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    if not samples:
        return "  (no samples)"
    lines = [f"  {samples:,} samples; own time:"]
    lines += [f"    {100 * n / samples:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines.append("  time under (own + callees):")
    lines += [f"    {100 * n / samples:5.1f} %  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def commandstats(r: Redis, events: int) -> str:
    stats = r.info("commandstats")
    rows = sorted(((k.removeprefix("cmdstat_"), v) for k, v in stats.items()), key=lambda kv: -kv[1]["usec"])
    calls = sum(v["calls"] for _, v in rows)
    usec = sum(v["usec"] for _, v in rows)
    lines = [f"  {calls / max(1, events):.2f} calls and {usec / max(1, events):.1f} us of Redis CPU per event "
             f"(commands only; {events:,} events)"]
    lines += [f"    {name:<16} {v['calls'] / max(1, events):7.3f} calls/event  {v['usec'] / max(1, events):7.1f} "
              f"us/event  {v['usec_per_call']:7.1f} us/call" for name, v in rows[:15]]
    slow = r.slowlog_get(5)
    if slow:
        lines.append("  SLOWLOG (slowest 5): " + ", ".join(
            f"{e['command'][:40]!r} {e['duration']} us" for e in slow))
    latest = r.execute_command("LATENCY", "LATEST")
    lines.append("  LATENCY LATEST: " + (", ".join(f"{e[0]} max {e[3]} ms" for e in latest) or "none >= threshold"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="orderhooks-profile-"))
    run = Run(workdir, args.seconds, 2, args.connections, 0, 0, 0)
    try:
        server, r = run.redis("profile")
        r.config_set("slowlog-log-slower-than", 1000)
        r.config_set("latency-monitor-threshold", 10)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = env_with(REDIS_URL=server.url, ORDERHOOKS_SECRETS=SECRET, ORDERHOOKS_LOG_FORMAT="json",
                       ORDERHOOKS_DATA_DIR=str(workdir))
        web = run.start("web", [PYTHON, "-m", "orderhooks.cli", "web", "--host", "127.0.0.1", "--port", str(port)],
                        env)
        wait_http(web, url)
        body_file, signature = _body_file(run)
        wrk(url + "/webhooks/genstore", body_file, signature, "warm", 2, args.connections)
        r.config_resetstat()
        r.slowlog_reset()
        r.execute_command("LATENCY", "RESET")
        stored0 = r.zcard(KEYS.events)
        redis_cpu0, web_cpu0 = cpu_seconds(server.process.pid), web.cpu_seconds()
        spy = _pyspy(web.pid, args.seconds, workdir / "web.txt")
        result = wrk(url + "/webhooks/genstore", body_file, signature, "profile", args.seconds, args.connections)
        spy.wait()
        stored = r.zcard(KEYS.events) - stored0
        print(f"== receiver: {result.rate:,.0f} deliveries/s, {result.errors} errors; "
              f"{(web.cpu_seconds() - web_cpu0) / max(1, stored) * 1e6:.0f} us receiver CPU and "
              f"{(cpu_seconds(server.process.pid) - redis_cpu0) / max(1, stored) * 1e6:.0f} us Redis process CPU "
              f"per event")
        print(summarize(workdir / "web.txt", args.top))
        print(commandstats(r, stored))
        web.stop()

        total = r.zcard(KEYS.events)
        r.config_resetstat()
        r.slowlog_reset()
        r.execute_command("LATENCY", "RESET")
        redis_cpu0 = cpu_seconds(server.process.pid)
        worker = run.start("worker", [PYTHON, "-m", "orderhooks.cli", "worker"],
                           env | {"ORDERHOOKS_HANDLERS": "bench.handlers_noop"})
        time.sleep(1.0)  # its start-up is not what is profiled
        spy_worker = None
        started = time.monotonic()
        worker_cpu0 = worker.cpu_seconds()

        def done() -> int:
            return r.zcard(KEYS.events_by_status("processed")) + r.zcard(KEYS.events_by_status("stale"))

        while done() < total and time.monotonic() - started < 600:
            if spy_worker is None:
                spy_worker = _pyspy(worker.pid, 600, workdir / "worker.txt")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        worker_cpu = worker.cpu_seconds() - worker_cpu0
        if spy_worker is not None:
            spy_worker.send_signal(2)  # py-spy writes what it has on SIGINT
            spy_worker.wait()
        print(f"\n== worker: {total:,} events in {elapsed:.1f} s; {worker_cpu / max(1, total) * 1e6:.0f} us worker "
              f"CPU and {(cpu_seconds(server.process.pid) - redis_cpu0) / max(1, total) * 1e6:.0f} us Redis process "
              f"CPU per event")
        print(summarize(workdir / "worker.txt", args.top))
        print(commandstats(r, total))
        print(f"\nRedis used_memory per event (stored, processed, with orders): "
              f"{int(r.info('memory')['used_memory']) / max(1, total):,.0f} bytes")
        worker.stop()
    finally:
        run.cleanup()
        print(f"(work directory: {workdir})")


if __name__ == "__main__":
    main()
