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
    ("ORDERHOOKS_HEADER_TIMEOUT", "soon"),
    ("ORDERHOOKS_BODY_TIMEOUT", "0"),
    ("ORDERHOOKS_KEEPALIVE_TIMEOUT", "-5"),
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
    s = Settings.from_env({"ORDERHOOKS_SECRETS": "a, b ", "ORDERHOOKS_HANDLERS": "x.y,z"})
    assert s.secrets == ("a", "b")
    assert s.secret_keys == (b"a", b"b")
    assert s.handler_modules == ("x.y", "z")
    assert s.max_body == 1_048_576 and s.tolerance == 300 and s.port == 8000
    assert s.prefix == "orderhooks:"
    assert "a" not in repr(s).replace("redis_url", "")


@pytest.mark.parametrize("value,says", [
    ("whsec_", "secret 1 is a whsec_ key that decodes to nothing"),
    ("whsec_=", "not valid base64"),
    ("good-secret-of-some-length,whsec_", "secret 2 is a whsec_ key that decodes to nothing"),
    ("a,,b", "secret 2 of 3 is empty"),
    ("a, b ,", "secret 3 of 3 is empty"),
    (" , ", "secret 1 of 2 is empty"),
    ("whsec_AA==", "secret 1 is a whsec_ key of zero bytes only"),  # HMAC pads keys with zeros: the empty key
    ("whsec_AAAAAAAA", "secret 1 is a whsec_ key of zero bytes only"),
])
def test_an_empty_secret_fails_at_start_naming_the_variable(value, says):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ORDERHOOKS_SECRETS": value})
    assert str(info.value).startswith("ORDERHOOKS_SECRETS: ")
    assert says in str(info.value)


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ORDERHOOKS_SECRETS": "first-secret-value,whsec_###"})
    assert "secret 2" in str(info.value) and "###" not in str(info.value) and "first-secret" not in str(info.value)


def test_short_keys_are_accepted_and_named_by_position():
    strong = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy0xMjM0NTY3ODkw"
    s = Settings.from_env({"ORDERHOOKS_SECRETS": f"{strong},whsec_AQ==,fifteen-bytes!!,sixteen-bytes!!!"})
    assert s.secret_keys[1] == b"\x01"
    assert s.weak_secrets() == [2, 3]
    assert Settings.from_env({"ORDERHOOKS_SECRETS": strong}).weak_secrets() == []


def test_slow_client_timeouts_default_to_the_contract():
    s = Settings.from_env({})
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout) == (10.0, 30.0, 5.0)
    s = Settings.from_env({"ORDERHOOKS_HEADER_TIMEOUT": "2.5", "ORDERHOOKS_BODY_TIMEOUT": "4",
                           "ORDERHOOKS_KEEPALIVE_TIMEOUT": "1"})
    assert (s.header_timeout, s.body_timeout, s.keepalive_timeout) == (2.5, 4.0, 1.0)

def test_secret_key_takes_fernet_keys_for_rotation():
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert Settings.from_env({"ORDERHOOKS_SECRET_KEY": f"{first}, {second}"}).secret_key == (first, second)
    assert Settings.from_env({}).secret_key == ()
    assert first not in repr(Settings.from_env({"ORDERHOOKS_SECRET_KEY": first}))


@pytest.mark.parametrize("name,value", [
    ("ORDERHOOKS_NOTIFY_URLS", "hooks.slack.com/services/T/B/x"),
    ("ORDERHOOKS_NOTIFY_URLS", "https://ok.example.com/a,ftp://x"),
    ("ORDERHOOKS_NOTIFY_INTERVAL", "0"),
    ("ORDERHOOKS_NOTIFY_SECRET", "not-a-whsec-key"),
    ("ORDERHOOKS_PUBLIC_URL", "hooks.example.com"),
    ("ORDERHOOKS_REJECTED_KEEP", "0"),
    ("ORDERHOOKS_REJECTED_RATE", "-1"),
])
def test_bad_operations_value_names_the_variable_and_not_the_url(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(name + ":") and "slack" not in str(info.value)


def test_operations_defaults():
    s = Settings.from_env({"ORDERHOOKS_PUBLIC_URL": "https://hooks.example.com/"})
    assert (s.notify_urls, s.notify_interval, s.notify_secret, s.rejected_keep) == ((), 300, None, 1000)
    assert s.public_url == "https://hooks.example.com"
