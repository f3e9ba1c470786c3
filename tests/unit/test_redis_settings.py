"""REDIS_URL or Redis Sentinel, and the replica acknowledgement settings."""

import pytest

from orderhooks.config import ConfigError, Settings
from storage.connection import redis_client, redis_client_async

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380,[::1]:26381", "REDIS_SENTINEL_MASTER": "main"}


def test_sentinels_are_read_as_addresses_and_master():
    s = Settings.from_env(SENTINELS)
    assert s.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381))
    assert s.redis_sentinel_master == "main"
    assert s.redis_url is None and s.redis_configured
    assert s.redis_address == "main via sentinels 10.0.0.1:26379,sentinel-b:26380,::1:26381"


def test_url_and_sentinels_together_is_an_error_naming_both():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**SENTINELS, "REDIS_URL": "redis://localhost:6379/0"})
    assert str(info.value).startswith("REDIS_URL, REDIS_SENTINELS:")


@pytest.mark.parametrize("env,name", [
    ({"REDIS_SENTINELS": "localhost:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "main"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "localhost", "REDIS_SENTINEL_MASTER": "main"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "localhost:sixty", "REDIS_SENTINEL_MASTER": "main"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "localhost:70000", "REDIS_SENTINEL_MASTER": "main"}, "REDIS_SENTINELS"),
    ({"ORDERHOOKS_MIN_REPLICAS": "-1"}, "ORDERHOOKS_MIN_REPLICAS"),
    ({"ORDERHOOKS_MIN_REPLICAS": "one"}, "ORDERHOOKS_MIN_REPLICAS"),
    ({"ORDERHOOKS_REPLICA_TIMEOUT_MS": "0"}, "ORDERHOOKS_REPLICA_TIMEOUT_MS"),
])
def test_bad_redis_setting_names_the_variable(env, name):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(name + ":")


def test_replica_defaults_and_values():
    s = Settings.from_env({})
    assert (s.min_replicas, s.replica_timeout_ms, s.redis_configured) == (0, 1000, False)
    s = Settings.from_env({"ORDERHOOKS_MIN_REPLICAS": "2", "ORDERHOOKS_REPLICA_TIMEOUT_MS": "250"})
    assert (s.min_replicas, s.replica_timeout_ms) == (2, 250)


def test_url_address_hides_the_password():
    s = Settings.from_env({"REDIS_URL": "redis://:hunter2@cache.internal:6380/1"})
    assert s.redis_address == "cache.internal:6380"


def test_clients_ask_the_sentinels_for_the_primary():
    s = Settings.from_env(SENTINELS)
    for client in (redis_client(s), redis_client_async(s)):
        pool = client.connection_pool
        assert pool.service_name == "main" and pool.is_master
        assert [(c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
                for c in pool.sentinel_manager.sentinels] == list(s.redis_sentinels)


def test_no_redis_configured_is_an_error():
    with pytest.raises(ConfigError, match="^REDIS_URL: not set"):
        redis_client(Settings.from_env({}))
