import json

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


def test_fanout_flush_ms_is_off_unless_set():
    assert config.load({})["FANOUT_FLUSH_MS"] is None
    assert config.load({"FANOUT_FLUSH_MS": "0"})["FANOUT_FLUSH_MS"] == 0
    assert config.load({"FANOUT_FLUSH_MS": "20"})["FANOUT_FLUSH_MS"] == 20


def test_limits_are_off_unless_set():
    settings = config.load({})
    assert settings["STREAM_MAX_AGE_SECONDS"] is None
    assert config.load({"STREAM_MAX_AGE_SECONDS": "90"})["STREAM_MAX_AGE_SECONDS"] == 90
    assert config.server_settings({})["MAX_REQUESTS"] == 0


@pytest.mark.parametrize(("key", "raw"), [("STREAM_MAX_AGE_SECONDS", "0"),
                                          ("STREAM_MAX_AGE_SECONDS", "never")])
def test_bad_limits_name_key_and_value(key, raw):
    with pytest.raises(config.ConfigError, match=key):
        config.load({key: raw})


def test_send_timeout_default():
    assert config.load({})["SEND_TIMEOUT_SECONDS"] == 30


def test_stream_limits_default_to_none_and_parse():
    assert config.load({})["MAX_STREAMS"] is None
    assert config.load({})["MAX_STREAMS_PER_CLIENT"] is None
    assert config.load({"MAX_STREAMS": "100"})["MAX_STREAMS"] == 100
    with pytest.raises(config.ConfigError, match="MAX_STREAMS_PER_CLIENT"):
        config.load({"MAX_STREAMS_PER_CLIENT": "0"})

@pytest.mark.parametrize(("raw", "value"), [("1", True), ("on", True), ("0", False),
                                            ("False", False)])
def test_reuse_port_is_a_flag(raw, value):
    assert config.server_settings({"REUSE_PORT": raw})["REUSE_PORT"] is value


def test_a_bad_flag_names_key_and_value():
    with pytest.raises(config.ConfigError, match=r"REUSE_PORT.*'maybe'"):
        config.server_settings({"REUSE_PORT": "maybe"})


@pytest.mark.parametrize("raw", ["\uff13", "1_000", " 5", "5 ", "+5", "0x10", ""])
def test_integers_are_ascii_digits_only(raw):
    with pytest.raises(config.ConfigError, match="SSE_RETRY_MS"):
        config._int(0)("SSE_RETRY_MS", raw)


@pytest.mark.parametrize("raw", ["\uff13", "1_0", " 5", "inf", "nan", "1e999", "."])
def test_seconds_are_ascii_numbers_only(raw):
    with pytest.raises(config.ConfigError, match="HEARTBEAT_SECONDS"):
        config.load({"HEARTBEAT_SECONDS": raw})


@pytest.mark.parametrize(("raw", "value"), [("5", 5), (".5", 0.5), ("2.", 2), ("1e1", 10)])
def test_seconds_take_plain_decimals(raw, value):
    assert config.load({"HEARTBEAT_SECONDS": raw})["HEARTBEAT_SECONDS"] == value


@pytest.mark.parametrize("raw", ["ftp://example", "example.com", "http://", "http://h:port"])
def test_upstream_base_url_must_be_http(raw):
    with pytest.raises(config.ConfigError, match="UPSTREAM_BASE_URL") as caught:
        config.load({"UPSTREAM_BASE_URL": raw})
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize("raw", ["", "http://u/v1", "HTTPS://u:8443/v1/"])
def test_upstream_base_url_may_be_empty_or_http(raw):
    assert config.load({"UPSTREAM_BASE_URL": raw})["UPSTREAM_BASE_URL"] == raw


def test_override_parses_strings_of_known_settings():
    settings = config.override(config.load({}), {"HEARTBEAT_SECONDS": "0.5", "PORT": "81"})
    assert settings["HEARTBEAT_SECONDS"] == 0.5
    assert settings["PORT"] == 81
    with pytest.raises(config.ConfigError, match="HEARTBEAT_SECONDS"):
        config.override({}, {"HEARTBEAT_SECONDS": "x"})


def test_override_passes_typed_values_and_unknown_keys_through():
    options = {"ping_interval": None}
    settings = config.override({}, {"HEARTBEAT_SECONDS": 0.01, "ALLOWED_ORIGINS": ("http://a",),
                                    "TESTING": True, "SOCK_SERVER_OPTIONS": options})
    assert settings == {"HEARTBEAT_SECONDS": 0.01, "ALLOWED_ORIGINS": ("http://a",),
                        "TESTING": True, "SOCK_SERVER_OPTIONS": options}


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_auth_is_off_by_default_and_on_with_a_key(tmp_path):
    assert not config.auth_on(config.load({}))
    assert config.auth_on(config.load({"AUTH_SECRET": "k" * 32}))
    pem = _public_pem()
    assert config.auth_on(config.load({"AUTH_PUBLIC_KEY": pem}))
    (tmp_path / "key.pem").write_text(pem)
    assert config.auth_on(config.load({"AUTH_PUBLIC_KEY": str(tmp_path / "key.pem")}))


@pytest.mark.parametrize(("environ", "says"), [
    ({"AUTH_SECRET": "short"}, "at least 32 bytes"),
    ({"AUTH_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"},
     "not a PEM public key"),
    ({"AUTH_PUBLIC_KEY": "/no/such/key.pem"}, "cannot be read"),
    ({"PUBLIC_CHANNELS": "news,bad name"}, "channel patterns"),
])
def test_bad_auth_settings_are_refused_naming_the_key(environ, says):
    with pytest.raises(config.ConfigError, match=says) as caught:
        config.load(environ)
    assert next(iter(environ)) in str(caught.value)


def test_a_secret_and_a_public_key_together_are_refused():
    with pytest.raises(config.ConfigError, match="not both"):
        config.load({"AUTH_SECRET": "k" * 32, "AUTH_PUBLIC_KEY": _public_pem()})


def test_an_ec_key_on_another_curve_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(config.ConfigError, match="P-256"):
        config.load({"AUTH_PUBLIC_KEY": pem})


@pytest.mark.parametrize(("host", "auth", "warned"), [
    ("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False),
    ("0.0.0.0", False, True), ("::", False, True), ("10.0.0.5", False, True),
    ("0.0.0.0", True, False),
])
def test_auth_off_on_a_reachable_address_is_warned_about(host, auth, warned):
    assert (config.auth_warning(host, auth) is not None) is warned


def _keys_file(tmp_path, document) -> str:
    path = tmp_path / "keys.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_proxy_keys_file_is_parsed_with_optional_limits(tmp_path):
    path = _keys_file(tmp_path, {"keys": [{"name": "team-a", "key": "sk-a", "rpm": 60,
                                           "tpm": 100000}, {"name": "b.2_x", "key": "sk-b"}]})
    assert config.load({"PROXY_KEYS_FILE": path})["PROXY_KEYS_FILE"] == (
        {"name": "team-a", "key": "sk-a", "rpm": 60, "tpm": 100000},
        {"name": "b.2_x", "key": "sk-b", "rpm": None, "tpm": None})
    assert config.load({})["PROXY_KEYS_FILE"] == ()


@pytest.mark.parametrize(("document", "says"), [
    ("{not json", "not JSON"),
    ([{"name": "a", "key": "k"}], "must hold an object"),
    ({"keys": [], "extra": 1}, "must hold an object"),
    ({"keys": ["sk-a"]}, r"keys\[1\] must be an object"),
    ({"keys": [{"name": "a", "key": "k", "rps": 1}]}, "unknown members"),
    ({"keys": [{"name": "a b", "key": "k"}]}, "name must be"),
    ({"keys": [{"name": "a" * 65, "key": "k"}]}, "name must be"),
    ({"keys": [{"key": "k"}]}, "name must be"),
    ({"keys": [{"name": "a", "key": ""}]}, "key must be a non-empty string"),
    ({"keys": [{"name": "a", "key": 5}]}, "key must be a non-empty string"),
    ({"keys": [{"name": "a", "key": "k", "rpm": 0}]}, "rpm must be a positive integer"),
    ({"keys": [{"name": "a", "key": "k", "tpm": 1.5}]}, "tpm must be a positive integer"),
    ({"keys": [{"name": "a", "key": "k", "rpm": True}]}, "rpm must be a positive integer"),
    ({"keys": [{"name": "a", "key": "k1"}, {"name": "a", "key": "k2"}]},
     r"keys\[2\] repeats an earlier entry's name"),
    ({"keys": [{"name": "a", "key": "sk-same"}, {"name": "b", "key": "sk-same"}]},
     r"keys\[2\] repeats an earlier entry's key"),
])
def test_a_bad_proxy_keys_file_is_refused_naming_the_setting_never_a_key(tmp_path, document,
                                                                         says):
    with pytest.raises(config.ConfigError, match=says) as caught:
        config.load({"PROXY_KEYS_FILE": _keys_file(tmp_path, document)})
    assert str(caught.value).startswith("PROXY_KEYS_FILE")
    assert "sk-" not in str(caught.value)


def test_a_missing_proxy_keys_file_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(config.ConfigError, match=r"PROXY_KEYS_FILE.*cannot be read"):
        config.load({"PROXY_KEYS_FILE": str(tmp_path / "absent.json")})


def test_a_key_both_in_the_file_and_in_proxy_api_keys_is_refused(tmp_path):
    path = _keys_file(tmp_path, {"keys": [{"name": "a", "key": "sk-both"}]})
    with pytest.raises(config.ConfigError, match="PROXY_API_KEYS lists too") as caught:
        config.load({"PROXY_KEYS_FILE": path, "PROXY_API_KEYS": "sk-other,sk-both"})
    assert "sk-both" not in str(caught.value)


def test_a_file_name_of_a_positional_key_is_refused(tmp_path):
    path = _keys_file(tmp_path, {"keys": [{"name": "key-2", "key": "sk-file"}]})
    assert config.load({"PROXY_KEYS_FILE": path, "PROXY_API_KEYS": "sk-x"})  # only key-1 taken
    with pytest.raises(config.ConfigError, match="named key-2, the name of a key"):
        config.load({"PROXY_KEYS_FILE": path, "PROXY_API_KEYS": "sk-x,sk-y"})


SECRET = "sk-never-shown"


def _upstreams(entries: object) -> str:
    return json.dumps(entries)


def test_upstreams_are_an_ordered_list_with_optional_keys():
    settings = config.load({"UPSTREAMS": _upstreams([
        {"name": "primary", "base_url": "https://a.example/v1", "api_key": SECRET},
        {"name": "backup.2_b-c", "base_url": "http://b:8080/v1"}])})
    assert settings["UPSTREAMS"] == (
        {"name": "primary", "base_url": "https://a.example/v1", "api_key": SECRET},
        {"name": "backup.2_b-c", "base_url": "http://b:8080/v1", "api_key": ""})
    assert config.load({})["UPSTREAMS"] == ()
    assert config.load({})["PROXY_ATTEMPTS"] == 2


GOOD = {"name": "a", "base_url": "http://a/v1", "api_key": SECRET}


@pytest.mark.parametrize(("raw", "says"), [
    ('[{"name": "a", "api_key": "sk-never-shown"', "UPSTREAMS must be a JSON list"),
    (_upstreams({"a": GOOD}), "UPSTREAMS must be a JSON list"),
    (_upstreams([]), "UPSTREAMS must be a JSON list"),
    (_upstreams([SECRET]), "UPSTREAMS[0] must be an object"),
    (_upstreams([GOOD, {**GOOD, "name": "a b"}]), "UPSTREAMS[1].name must be 1 to 64"),
    (_upstreams([{**GOOD, "name": "n" * 65}]), "UPSTREAMS[0].name"),
    (_upstreams([{**GOOD, "name": [SECRET]}]), "UPSTREAMS[0].name"),
    (_upstreams([{"name": "a", "api_key": SECRET}]), "UPSTREAMS[0].base_url"),
    (_upstreams([{**GOOD, "base_url": "ftp://a"}]), "UPSTREAMS[0].base_url must be an http"),
    (_upstreams([{**GOOD, "base_url": ""}]), "UPSTREAMS[0].base_url"),
    (_upstreams([{**GOOD, "api_key": [SECRET]}]), "UPSTREAMS[0].api_key must be a string"),
    (_upstreams([{**GOOD, "key": SECRET}]), "unknown members ['key']"),
    (_upstreams([GOOD, {**GOOD, "base_url": "http://b"}]), "name each upstream once"),
])
def test_bad_upstreams_are_refused_without_their_keys(raw, says):
    with pytest.raises(config.ConfigError) as caught:
        config.load({"UPSTREAMS": raw})
    assert says in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("single", [{"UPSTREAM_BASE_URL": "http://x/v1"},
                                    {"UPSTREAM_API_KEY": SECRET}])
def test_upstreams_and_the_single_upstream_settings_exclude_each_other(single):
    with pytest.raises(config.ConfigError) as caught:
        config.load({"UPSTREAMS": _upstreams([GOOD]), **single})
    assert "UPSTREAMS" in str(caught.value)
    assert "UPSTREAM_BASE_URL/UPSTREAM_API_KEY" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_proxy_attempts_is_one_or_more(raw):
    with pytest.raises(config.ConfigError, match="PROXY_ATTEMPTS"):
        config.load({"PROXY_ATTEMPTS": raw})
