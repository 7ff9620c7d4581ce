"""CORS: off by default; ALLOWED_ORIGINS turns it on for the listed origins, preflights included,
never a wildcard, never credentials. Unit tests of `http_policy.cors`; the real server is in
tests/integration/test_cors_server.py."""

from __future__ import annotations

import pytest

import config
from http_policy.cors import CorsPolicy

APP = "https://app.example"
EVIL = "https://evil.example"

# --- CorsPolicy --------------------------------------------------------------------------------


def test_a_listed_origin_is_granted_by_its_configured_spelling():
    policy = CorsPolicy([APP + "/"])
    assert policy.allowed_origin("HTTPS://APP.EXAMPLE") == APP
    assert policy.response_headers(APP) == {"Access-Control-Allow-Origin": APP,
                                            "Access-Control-Expose-Headers": "Retry-After"}
    assert policy.response_headers(EVIL) == {}
    assert policy.response_headers(None) == {}


def test_a_preflight_is_granted_for_get_and_post_only():
    policy = CorsPolicy([APP])
    granted = policy.preflight_headers(APP, "POST")
    assert granted["Access-Control-Allow-Origin"] == APP
    assert "Content-Type" in granted["Access-Control-Allow-Headers"]
    assert policy.preflight_headers(APP, "DELETE") is None
    assert policy.preflight_headers(EVIL, "POST") is None


def test_cors_is_off_without_origins():
    policy = CorsPolicy([])
    assert not policy.enabled
    assert policy.preflight_headers(APP, "GET") is None


@pytest.mark.parametrize("bad", ["*", "https://*.example", "https://app.example/path", "app"])
def test_a_wildcard_or_a_non_origin_stops_the_start(bad):
    with pytest.raises(config.ConfigError, match="ALLOWED_ORIGINS"):
        config.load({"ALLOWED_ORIGINS": bad})
