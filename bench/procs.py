"""Starting and stopping the processes under test, and reading their memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


class Proc:
    """A child process in its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_mib(self) -> float:
        """Resident memory of the process and its children (a `--processes N` parent's workers)."""
        total = 0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process and its children (all threads)."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *_children(self.pid)])

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return found
    for kid in map(int, kids):
        found += [kid, *_children(kid)]
    return found


def env_with(**values: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERHOOKS_", "REDIS_URL", "WEB_CONCURRENCY"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def wait_http(proc: Proc, url: str, timeout: float = 30.0) -> None:
    """Until the server answers anything at all."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.tail()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not answer in {timeout}s:\n{proc.tail()}")
        time.sleep(0.1)
