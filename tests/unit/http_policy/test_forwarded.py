"""Tests for http_policy.forwarded: whose X-Forwarded-For is believed, and what the app sees."""

from __future__ import annotations

import pytest

import config
from http_policy.forwarded import PEER_KEY, TrustedProxies, client_address, parse_networks

LOOPBACK = parse_networks(["127.0.0.1", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "networks", "expected"),
    [
        pytest.param("127.0.0.1", "203.0.113.9", LOOPBACK, "203.0.113.9", id="trusted-proxy"),
        pytest.param("198.51.100.1", "203.0.113.9", LOOPBACK, "198.51.100.1", id="untrusted-peer"),
        pytest.param("127.0.0.1", None, LOOPBACK, "127.0.0.1", id="no-header"),
        pytest.param("127.0.0.1", "6.6.6.6, 203.0.113.9", LOOPBACK, "203.0.113.9",
                     id="forged-entries-before-the-proxys-own"),
        pytest.param("::1", "2001:db8::7", LOOPBACK, "2001:db8::7", id="ipv6"),
        pytest.param("127.0.0.1", "unknown", LOOPBACK, "127.0.0.1", id="not-an-address"),
        pytest.param("127.0.0.1", "", LOOPBACK, "127.0.0.1", id="empty"),
        pytest.param("10.1.2.3", "203.0.113.9", parse_networks(["10.0.0.0/8"]), "203.0.113.9",
                     id="network"),
        pytest.param("198.51.100.1", "203.0.113.9", None, "203.0.113.9", id="star-trusts-all"),
        pytest.param("", "203.0.113.9", LOOPBACK, "203.0.113.9", id="unix-socket-peer"),
    ],
)
def test_client_address(peer, forwarded_for, networks, expected):
    assert client_address(peer, forwarded_for, networks) == expected


def test_star_anywhere_in_the_list_trusts_every_peer():
    assert parse_networks(["127.0.0.1", "*"]) is None


def test_a_bad_entry_is_refused():
    with pytest.raises(ValueError):
        parse_networks(["nginx.local"])


@pytest.mark.parametrize("raw", ["nginx", "10.0.0.1/8", "127.0.0.1, 300.1.1.1"])
def test_setting_refuses_what_gunicorn_would_refuse(raw):
    with pytest.raises(config.ConfigError) as caught:
        config.server_settings({"FORWARDED_ALLOW_IPS": raw})
    assert "FORWARDED_ALLOW_IPS" in str(caught.value) and repr(raw) in str(caught.value)


def test_setting_defaults_to_gunicorns_own():
    assert config.server_settings({})["FORWARDED_ALLOW_IPS"] == ("127.0.0.1", "::1")


def test_middleware_rewrites_the_environ_in_place_and_keeps_the_peer():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return [b"body"]

    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    body = TrustedProxies(app, ["127.0.0.1"])(environ, lambda *args: None)
    assert body == [b"body"]
    assert seen["REMOTE_ADDR"] == environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ[PEER_KEY] == "127.0.0.1"
