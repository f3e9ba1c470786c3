"""`orderhooks dev` as a newcomer runs it: the banner, a second dev on a taken port, another shell's commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orderhooks.embedded import free_port
from tests.support.stack import ROOT, wait_for

CLI = str(Path(sys.executable).with_name("orderhooks"))


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHOOKS_") and k != "REDIS_URL"}
    return env | {"PYTHONPATH": str(ROOT), "ORDERHOOKS_DATA_DIR": str(tmp_path / ".orderhooks")} | extra


def start_dev(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([CLI, "dev"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return proc, lines
    raise AssertionError(f"no banner: {lines} {proc.stderr.read() if proc.poll() is not None else ''}")


def test_the_banner_a_second_dev_and_the_commands_of_another_shell(tmp_path):
    port = free_port()
    env = clean_env(tmp_path, PORT=str(port))
    dev, banner = start_dev(tmp_path, env)
    try:
        text = "\n".join(banner)
        token = (tmp_path / ".orderhooks" / "dev-token").read_text().strip()
        assert f"http://127.0.0.1:{port}/ui" in text, "the inspector's URL"
        assert f"X-Genstore-Access-Token: {token}'" in text and "<token>" not in text, "the real token"
        send_line = next(line for line in banner if " send orders/create --url " in line)
        assert send_line.strip().endswith(f"http://127.0.0.1:{port}/webhooks/genstore"), "never hard-wrapped"
        cli = send_line.split()[0] if not send_line.startswith(" ") else send_line.split()[1]
        assert cli.endswith("orderhooks") and (tmp_path / cli).exists() or Path(cli).exists() or cli == "orderhooks"

        second = subprocess.run([CLI, "dev"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "is running" not in second.stdout
        assert f"port {port}" in second.stderr and "PORT" in second.stderr

        def ready():
            done = subprocess.run([CLI, "events", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60)
            return done if done.returncode == 0 else None
        assert wait_for(ready, 30, interval=0.5, what="the read commands to find dev's Redis").stdout.strip() == "[]"
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=60)


def test_read_commands_without_dev_or_redis_url_say_what_to_set(tmp_path):
    done = subprocess.run([CLI, "events"], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("configuration error: REDIS_URL: not set") and "Traceback" not in done.stderr


def test_a_malformed_or_unreachable_redis_is_one_line_in_every_command(tmp_path):
    for url, code, start in (("redis//localhost", 2, "configuration error: REDIS_URL: "),
                             (f"redis://127.0.0.1:{free_port()}/0", 1, "redis: unreachable at 127.0.0.1:")):
        for command in (["events"], ["orders"], ["event", "x"], ["replay", "--status", "failed"]):
            done = subprocess.run([CLI, *command], cwd=tmp_path, env=clean_env(tmp_path, REDIS_URL=url),
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == code, (command, done.stderr)
            assert done.stderr.startswith(start) and len(done.stderr.strip().splitlines()) == 1, done.stderr
