"""The shop registry on a real Redis: tokens encrypted at rest, masked in listings, unreadable under a new key."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from orderhooks.config import ConfigError, Settings
from storage import shops
from workers.genstore import GenstoreClient, client_for

TOKEN = "shpat_0123456789abcdef"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def keyed(settings) -> Settings:
    return replace(settings, secret_key=(KEY,))


# -- failures first ---------------------------------------------------------------------------------------------

def test_adding_without_a_key_refuses_and_writes_nothing(ctx, settings):
    with pytest.raises(ConfigError) as info:
        shops.add_shop(ctx.redis, ctx.keys, settings, "acme.genmystore.com", TOKEN)
    assert str(info.value).startswith("ORDERHOOKS_SECRET_KEY: not set")
    assert ctx.redis.keys("*") == []


@pytest.mark.parametrize("value", ["nope", "x" * 44, Fernet.generate_key().decode()[:-4]])
def test_a_malformed_key_is_a_configuration_error_naming_the_variable(value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ORDERHOOKS_SECRET_KEY": value})
    assert str(info.value).startswith("ORDERHOOKS_SECRET_KEY: not a Fernet key")
    assert value not in str(info.value)  # the key is a secret: never echoed


def test_a_token_under_another_key_is_a_clear_error_naming_the_shop(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN)
    rotated_away = replace(keyed, secret_key=(Fernet.generate_key().decode(),))
    with pytest.raises(shops.TokenUnreadable) as info:
        shops.token(ctx.redis, ctx.keys, rotated_away, "acme.genmystore.com")
    assert "acme.genmystore.com" in str(info.value) and "ORDERHOOKS_SECRET_KEY" in str(info.value)
    with pytest.raises(shops.TokenUnreadable):
        client_for(ctx.redis, ctx.keys, rotated_away, "acme.genmystore.com")


@pytest.mark.parametrize("shop", ["", "https://acme.genmystore.com", "acme shop", "acme.genmystore.com/api", "a:b:c"])
def test_a_shop_that_is_not_a_domain_is_refused(ctx, keyed, shop):
    with pytest.raises(shops.ShopError, match="^SHOP: "):
        shops.add_shop(ctx.redis, ctx.keys, keyed, shop, TOKEN)
    assert ctx.redis.keys("*") == []


@pytest.mark.parametrize("token", ["", " shpat_x", "shpat\nX-Evil: 1", "tøken-0123456789"])
def test_a_token_with_spaces_or_line_breaks_is_refused(ctx, keyed, token):
    with pytest.raises(shops.ShopError, match="^--token: "):
        shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", token)


def test_a_bad_api_url_or_platform_is_refused(ctx, keyed):
    with pytest.raises(shops.ShopError, match="^--api-url: "):
        shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN, api_url="ftp://x")
    with pytest.raises(shops.ShopError, match="^--platform: "):
        shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN, platform="magento")
    with pytest.raises(shops.ShopError, match="^--api-url: "):
        shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.example.com", TOKEN, platform="bigcommerce")


def test_recording_a_run_for_a_removed_shop_writes_nothing(ctx, keyed):
    assert shops.record_run(ctx.redis, ctx.keys, "gone.genmystore.com", started_at=1.0, ok=True) is False
    assert ctx.redis.keys("*") == []


# -- the registry ------------------------------------------------------------------------------------------------

def test_the_token_is_encrypted_at_rest_and_reads_back(ctx, keyed):
    shop, new = shops.add_shop(ctx.redis, ctx.keys, keyed, " ACME.genmystore.com ", TOKEN)
    assert new and shop.shop == "acme.genmystore.com"
    raw = ctx.redis.hgetall(ctx.keys.shop("acme.genmystore.com"))
    everything = b"".join(k + v for k, v in raw.items())
    assert TOKEN.encode() not in everything and b"0123456789abcdef" not in everything
    assert Fernet(KEY).decrypt(raw[b"token"]).decode() == TOKEN  # Fernet under the configured key
    assert shops.token(ctx.redis, ctx.keys, keyed, "acme.genmystore.com") == TOKEN
    assert shops.token(ctx.redis, ctx.keys, keyed, "other.genmystore.com") is None


def test_a_rotated_key_list_still_reads_old_tokens(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN)
    rotated = replace(keyed, secret_key=(Fernet.generate_key().decode(), KEY))
    assert shops.token(ctx.redis, ctx.keys, rotated, "acme.genmystore.com") == TOKEN


def test_listing_masks_the_token_and_shows_defaults(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN, now=1700000000.0)
    shops.add_shop(ctx.redis, ctx.keys, keyed, "store-abc123.mybigcommerce.com", "plaintoken0123wxyz",
                   platform="bigcommerce")
    listed = shops.list_shops(ctx.redis, ctx.keys)
    assert [s.shop for s in listed] == ["acme.genmystore.com", "store-abc123.mybigcommerce.com"]
    acme, bc = listed
    assert acme.platform == "genstore" and acme.api_url == "https://acme.genmystore.com/api/202412"
    assert acme.token_hint == "shpat_…cdef" and acme.added_at == 1700000000.0 and acme.last_run is None
    assert bc.platform == "bigcommerce" and bc.api_url == "https://api.bigcommerce.com/stores/abc123/v2"
    assert bc.token_hint == "****wxyz"
    assert TOKEN not in str([s.to_json() for s in listed])


def test_mask_shows_nothing_of_a_short_token():
    assert shops.mask_token("abc123") == "****"
    assert shops.mask_token("shpat_0123456789") == "shpat_…6789"


def test_adding_again_replaces_the_token_and_keeps_added_at_and_runs(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN, now=1.0)
    shops.record_run(ctx.redis, ctx.keys, "acme.genmystore.com", started_at=5.0, ok=True, healed=2, at=6.0)
    shop, new = shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", "shpat_newtoken9876",
                               api_url="http://127.0.0.1:9/api/202412/", now=2.0)
    assert not new and shop.added_at == 1.0 and shop.api_url == "http://127.0.0.1:9/api/202412"
    assert shop.last_run is not None and shop.last_run.healed == 2
    assert shops.token(ctx.redis, ctx.keys, keyed, "acme.genmystore.com") == "shpat_newtoken9876"


def test_record_run_reads_back_and_keeps_the_last_successful_start(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN)
    assert shops.record_run(ctx.redis, ctx.keys, "acme.genmystore.com", started_at=100.0, ok=True,
                            healed=3, updated=1, errors=2, at=110.0)
    assert shops.record_run(ctx.redis, ctx.keys, "acme.genmystore.com", started_at=200.0, ok=False,
                            healed=1, error="503 from the API", at=205.0)
    shop = shops.get_shop(ctx.redis, ctx.keys, "acme.genmystore.com")
    run = shop.last_run
    assert (run.at, run.started_at, run.ok, run.healed, run.updated, run.errors, run.error) == (
        205.0, 200.0, False, 1, 0, 0, "503 from the API")
    assert shop.last_success_started_at == 100.0 == run.last_success_started_at


def test_remove_forgets_the_shop_and_its_token(ctx, keyed):
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN)
    assert shops.remove_shop(ctx.redis, ctx.keys, "Acme.genmystore.com") is True
    assert shops.remove_shop(ctx.redis, ctx.keys, "acme.genmystore.com") is False
    assert shops.list_shops(ctx.redis, ctx.keys) == []
    assert shops.token(ctx.redis, ctx.keys, keyed, "acme.genmystore.com") is None
    assert ctx.redis.keys("*") == []


def test_keys_escape_the_shop(ctx, keyed):
    assert ctx.keys.shop("a{b}.example.com") == "orderhooks:shop:a%7Bb%7D.example.com"


def test_client_for_binds_the_shops_token_and_url(ctx, keyed):
    assert client_for(ctx.redis, ctx.keys, keyed, "acme.genmystore.com") is None  # no token registered
    shops.add_shop(ctx.redis, ctx.keys, keyed, "acme.genmystore.com", TOKEN, api_url="http://127.0.0.1:9/api")
    client = client_for(ctx.redis, ctx.keys, keyed, "acme.genmystore.com")
    assert isinstance(client, GenstoreClient)
    assert client.shop == "acme.genmystore.com" and client.api_url == "http://127.0.0.1:9/api"
    assert TOKEN not in repr(client)
    client.close()
    shops.add_shop(ctx.redis, ctx.keys, keyed, "store-abc.mybigcommerce.com", TOKEN, platform="bigcommerce")
    assert client_for(ctx.redis, ctx.keys, keyed, "store-abc.mybigcommerce.com") is None  # not a Genstore shop
