"""`orderhooks shops add|list|remove` and `orderhooks dev`'s token key, run as processes against a real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import redis as redislib
from cryptography.fernet import Fernet

from orderhooks.config import Settings
from orderhooks.embedded import free_port
from storage import shops
from storage.keys import Keys
from tests.support.stack import DB, ROOT, db_url, wait_for

TOKEN = "shpat_cli0123456789secret"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def env(redis_url, tmp_path) -> dict:
    client = redislib.Redis.from_url(db_url(redis_url, DB["shops_cli"]))
    client.flushdb()
    client.close()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERHOOKS_", "REDIS_"))}
    environ.update({"REDIS_URL": db_url(redis_url, DB["shops_cli"]), "ORDERHOOKS_SECRET_KEY": KEY,
                    "PYTHONPATH": str(ROOT),
                    "ORDERHOOKS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"})
    return environ


@pytest.fixture
def db(env):
    client = redislib.Redis.from_url(env["REDIS_URL"])
    yield client
    client.close()


def cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orderhooks.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=env["ORDERHOOKS_DATA_DIR"].rsplit("/", 1)[0], input=stdin)


# -- failures first ----------------------------------------------------------------------------------------------

def test_add_without_the_key_refuses_in_one_line(env, db):
    del env["ORDERHOOKS_SECRET_KEY"]
    result = cli(env, "shops", "add", "acme.genmystore.com", "--token", TOKEN)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: ORDERHOOKS_SECRET_KEY: not set")
    assert TOKEN not in result.stdout + result.stderr and db.keys("*") == []


def test_a_malformed_key_refuses_in_one_line(env, db):
    env["ORDERHOOKS_SECRET_KEY"] = "not-a-key"
    result = cli(env, "shops", "add", "acme.genmystore.com", "--token", TOKEN)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: ORDERHOOKS_SECRET_KEY: not a Fernet key")
    assert len(result.stderr.strip().splitlines()) == 1 and db.keys("*") == []


def test_usage_errors_exit_2(env, db):
    assert cli(env, "shops", "add", "acme.genmystore.com").returncode == 2  # no --token
    bad_shop = cli(env, "shops", "add", "https://acme.genmystore.com", "--token", TOKEN)
    assert bad_shop.returncode == 2 and bad_shop.stderr.startswith("SHOP: expected a shop domain")
    bad_platform = cli(env, "shops", "add", "acme.genmystore.com", "--token", TOKEN, "--platform", "magento")
    assert bad_platform.returncode == 2
    assert db.keys("*") == []


def test_remove_of_an_unknown_shop_exits_1(env):
    result = cli(env, "shops", "remove", "nope.genmystore.com")
    assert result.returncode == 1 and "nope.genmystore.com is not registered" in result.stderr


def test_a_changed_key_is_a_clear_error_naming_the_shop_not_a_traceback(env):
    assert cli(env, "shops", "add", "acme.genmystore.com", "--token", TOKEN).returncode == 0
    env["ORDERHOOKS_SECRET_KEY"] = Fernet.generate_key().decode()
    result = cli(env, "shops", "list")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "unreadable" in result.stdout
    listed = json.loads(cli(env, "shops", "list", "--json").stdout)
    assert listed[0]["tokenReadable"] is False


def test_redis_unreachable_exits_1_naming_the_address(env):
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = cli(env, "shops", "list")
    assert result.returncode == 1
    assert result.stderr.startswith(f"redis: unreachable at {env['REDIS_URL'].split('//')[1].rsplit('/', 1)[0]}: ")


# -- the commands ------------------------------------------------------------------------------------------------

def test_add_list_remove(env, db):
    added = cli(env, "shops", "add", "Acme.genmystore.com", "--token", TOKEN)
    assert added.returncode == 0, added.stderr
    assert "added acme.genmystore.com" in added.stdout and "shpat_…cret" in added.stdout
    bc = cli(env, "shops", "add", "store-abc123.mybigcommerce.com", "--token", "bc0123456789tokn",
             "--platform", "bigcommerce")
    assert bc.returncode == 0, bc.stderr
    again = cli(env, "shops", "add", "acme.genmystore.com", "--token", TOKEN, "--api-url", "http://127.0.0.1:9/api")
    assert again.returncode == 0 and "updated acme.genmystore.com" in again.stdout

    keys = Keys()
    shops.record_run(db, keys, "acme.genmystore.com", started_at=1714557600.0, ok=True, healed=3, updated=1,
                     errors=0, at=1714557660.0)
    table = cli(env, "shops", "list")
    assert table.returncode == 0
    assert "acme.genmystore.com" in table.stdout and "shpat_…cret" in table.stdout
    assert "healed 3" in table.stdout and "not reconciled" in table.stdout
    listed = json.loads(cli(env, "shops", "list", "--json").stdout)
    assert [s["shop"] for s in listed] == ["acme.genmystore.com", "store-abc123.mybigcommerce.com"]
    acme, store = listed
    assert acme["apiUrl"] == "http://127.0.0.1:9/api" and acme["token"] == "shpat_…cret"
    assert acme["tokenReadable"] is True and acme["reconciled"] is True
    assert acme["lastRun"]["healed"] == 3 and acme["lastRun"]["startedAt"] == "2024-05-01T10:00:00+00:00"
    assert store["platform"] == "bigcommerce" and store["apiUrl"] == "https://api.bigcommerce.com/stores/abc123/v2"
    assert store["reconciled"] is False and store["token"] == "****tokn"
    for output in (added, bc, again, table):
        assert TOKEN not in output.stdout + output.stderr
    assert TOKEN.encode() not in b"".join(v for v in db.hvals(keys.shop("acme.genmystore.com")))

    removed = cli(env, "shops", "remove", "acme.genmystore.com")
    assert removed.returncode == 0 and "removed acme.genmystore.com" in removed.stdout
    assert [s["shop"] for s in json.loads(cli(env, "shops", "list", "--json").stdout)] == [
        "store-abc123.mybigcommerce.com"]


def test_the_token_can_come_from_stdin(env, db):
    result = cli(env, "shops", "add", "acme.genmystore.com", "--token", "-", stdin=TOKEN + "\n")
    assert result.returncode == 0, result.stderr
    settings_key = Settings.from_env({"ORDERHOOKS_SECRET_KEY": KEY})
    assert shops.token(db, Keys(), settings_key, "acme.genmystore.com") == TOKEN


def test_list_with_no_shops(env):
    result = cli(env, "shops", "list")
    assert result.returncode == 0 and "no shops registered" in result.stdout
    assert json.loads(cli(env, "shops", "list", "--json").stdout) == []


def test_dev_makes_a_key_in_its_data_dir_that_shops_add_then_uses(env, tmp_path):
    """`orderhooks dev` keeps a Fernet key beside its dev secret; `shops add` next to it needs no variable."""
    data = tmp_path / "data"
    dev_env = dict(env, PORT=str(free_port()), ORDERHOOKS_LOG_FORMAT="json", ORDERHOOKS_LOG_LEVEL="warning")
    del dev_env["ORDERHOOKS_SECRET_KEY"]
    proc = subprocess.Popen([sys.executable, "-m", "orderhooks.cli", "dev"], env=dev_env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        key_file = data / "dev-secret-key"
        wait_for(key_file.exists, 30, what="the dev key")
        key = key_file.read_text().strip()
        Fernet(key.encode())  # a usable Fernet key
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # Talking to the dev Redis (no REDIS_URL), shops add finds the dev key on its own.
    (data / "redis.url").write_text(env["REDIS_URL"])
    local = {k: v for k, v in env.items() if k not in ("REDIS_URL", "ORDERHOOKS_SECRET_KEY")}
    added = cli(local, "shops", "add", "acme.genmystore.com", "--token", TOKEN)
    assert added.returncode == 0, added.stderr
    client = redislib.Redis.from_url(env["REDIS_URL"])
    try:
        stored = client.hget(Keys().shop("acme.genmystore.com"), "token")
        assert Fernet(key.encode()).decrypt(stored).decode() == TOKEN
    finally:
        client.close()
