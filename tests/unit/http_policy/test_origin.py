"""Tests for http_policy.origin: which handshakes may be upgraded."""

from __future__ import annotations

import pytest

from http_policy.origin import origin_allowed

LISTED = ("http://good.example", "https://app.example:8443/")


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        pytest.param(None, "svc.example", True, id="no-origin-is-not-a-browser"),
        pytest.param("http://svc.example", "svc.example", True, id="same-origin"),
        pytest.param("https://svc.example", "svc.example", True, id="same-host-behind-tls-proxy"),
        pytest.param("http://SVC.example", "svc.EXAMPLE", True, id="case-insensitive"),
        pytest.param("http://127.0.0.1:8000", "127.0.0.1:8000", True, id="same-port"),
        pytest.param("http://127.0.0.1:9000", "127.0.0.1:8000", False, id="other-port"),
        pytest.param("http://svc.example.evil", "svc.example", False, id="suffix-attack"),
        pytest.param("http://evil.svc.example", "svc.example", False, id="subdomain"),
        pytest.param("http://evil.example", "svc.example", False, id="cross-site"),
        pytest.param("null", "svc.example", False, id="null-origin"),
        pytest.param("", "svc.example", False, id="empty-origin"),
        pytest.param("ws://svc.example", "svc.example", False, id="not-a-web-origin"),
        pytest.param("http://svc.example", None, False, id="no-host"),
        pytest.param("http://[::1", "svc.example", False, id="malformed"),
        pytest.param("http://good.example", "svc.example", True, id="listed"),
        pytest.param("HTTP://GOOD.EXAMPLE/", "svc.example", True, id="listed-any-case"),
        pytest.param("https://good.example", "svc.example", False, id="listed-other-scheme"),
        pytest.param("https://app.example:8443", "svc.example", True, id="listed-with-port"),
        pytest.param("https://app.example", "svc.example", False, id="listed-other-port"),
    ],
)
def test_origin_allowed(origin, host, allowed):
    assert origin_allowed(origin, host, LISTED) is allowed


def test_null_is_allowed_only_when_listed():
    assert origin_allowed("null", "svc.example", ("null",)) is True
