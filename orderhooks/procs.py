"""Stopping child processes: SIGTERM to all, wait, then SIGKILL what is left."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable


def terminate_all(procs: Iterable[subprocess.Popen], timeout: float = 30.0) -> None:
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
