import pytest

from orderhooks.config import ConfigError, Settings


@pytest.mark.parametrize("name,value", [
    ("ORDERHOOKS_MAX_BODY", "lots"),
    ("ORDERHOOKS_MAX_BODY", "0"),
    ("ORDERHOOKS_TOLERANCE", "-1"),
    ("PORT", "http"),
    ("ORDERHOOKS_RETRY_DELAYS", "1,x"),
    ("ORDERHOOKS_INSECURE_NO_VERIFY", "maybe"),
    ("ORDERHOOKS_SECRETS", "whsec_###"),
])
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(name + ":")


def test_receiver_refuses_to_start_without_secrets():
    with pytest.raises(ConfigError, match="ORDERHOOKS_SECRETS"):
        Settings.from_env({}).require_verification()
    Settings.from_env({"ORDERHOOKS_INSECURE_NO_VERIFY": "1"}).require_verification()


def test_defaults_and_lists():
    s = Settings.from_env({"ORDERHOOKS_SECRETS": "a, b ,", "ORDERHOOKS_HANDLERS": "x.y,z"})
    assert s.secrets == ("a", "b")
    assert s.secret_keys == (b"a", b"b")
    assert s.handler_modules == ("x.y", "z")
    assert s.max_body == 1_048_576 and s.tolerance == 300 and s.port == 8000
    assert s.prefix == "orderhooks:"
    assert "a" not in repr(s).replace("redis_url", "")


def test_secret_key_takes_fernet_keys_for_rotation():
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert Settings.from_env({"ORDERHOOKS_SECRET_KEY": f"{first}, {second}"}).secret_key == (first, second)
    assert Settings.from_env({}).secret_key == ()
    assert first not in repr(Settings.from_env({"ORDERHOOKS_SECRET_KEY": first}))
