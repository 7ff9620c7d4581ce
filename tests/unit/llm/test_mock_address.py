"""The address of this server's own mock upstream."""

from __future__ import annotations

from types import SimpleNamespace

from llm.mock_address import self_base_url


def test_self_base_url_is_the_address_the_client_reached():
    ipv6 = SimpleNamespace(getsockname=lambda: ("::1", 8000, 0, 0))
    assert self_base_url({"gunicorn.socket": ipv6}) == "http://[::1]:8000/mock/v1"
    assert self_base_url({"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "81"}) == (
        "http://127.0.0.1:81/mock/v1")
