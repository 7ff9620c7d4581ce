import pytest

import config


def test_defaults():
    settings = config.load({})
    assert settings["HEARTBEAT_SECONDS"] == 15
    assert settings["SSE_RETRY_MS"] == 3000
    assert settings["ALLOWED_ORIGINS"] == ()
    assert config.server_settings({})["PORT"] == 8000


def test_values_are_parsed():
    settings = config.load({"HEARTBEAT_SECONDS": "0.5", "ALLOWED_ORIGINS": "http://a, http://b"})
    assert settings["HEARTBEAT_SECONDS"] == 0.5
    assert settings["ALLOWED_ORIGINS"] == ("http://a", "http://b")


@pytest.mark.parametrize(("key", "raw"), [
    ("HEARTBEAT_SECONDS", "soon"), ("HEARTBEAT_SECONDS", "0"), ("SSE_RETRY_MS", "-1"),
    ("UPSTREAM_POOL_SIZE", "1.5"),
])
def test_bad_values_name_key_and_value(key, raw):
    with pytest.raises(config.ConfigError) as caught:
        config.load({key: raw})
    assert key in str(caught.value)
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("on", True), ("0", False),
                                            ("False", False)])
def test_reuse_port_is_a_flag(raw, value):
    assert config.server_settings({"REUSE_PORT": raw})["REUSE_PORT"] is value


def test_a_bad_flag_names_key_and_value():
    with pytest.raises(config.ConfigError, match=r"REUSE_PORT.*'maybe'"):
        config.server_settings({"REUSE_PORT": "maybe"})
