"""CORS: off by default; ALLOWED_ORIGINS turns it on for the listed origins, preflights included,
never a wildcard, never credentials. Unit tests of `http_policy.cors` and the real server; a real
browser fetching across origins is in test_pages_cors.py."""

from __future__ import annotations

import pytest
import requests

import config
from http_policy.cors import CorsPolicy
from tests.support.live_server import LiveServer

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


# --- the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cors(start_server) -> LiveServer:
    return start_server(env={"ALLOWED_ORIGINS": APP})


def _preflight(server: LiveServer, origin: str, method: str = "POST",
               path: str = "/api/chat") -> requests.Response:
    return requests.options(server.url + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, last-event-id"})


@pytest.mark.parametrize("path", ["/api/chat", "/sse/chat", "/v1/chat/completions"])
def test_a_preflight_from_a_listed_origin_is_answered_here(cors, path):
    response = _preflight(cors, APP, path=path)
    assert response.status_code == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == APP
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    allowed = {h.lower() for h in headers["Access-Control-Allow-Headers"].split(", ")}
    assert {"content-type", "last-event-id", "authorization"} <= allowed
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.parametrize(("origin", "method"), [(EVIL, "POST"), (APP, "DELETE"),
                                                ("https://app.example.evil.example", "GET")])
def test_a_preflight_from_elsewhere_or_for_another_method_is_refused(cors, origin, method):
    response = _preflight(cors, origin, method)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"
    assert "Access-Control-Allow-Methods" not in response.headers
    if origin != APP:
        assert "Access-Control-Allow-Origin" not in response.headers


def test_a_listed_origin_reads_streams_and_errors(cors):
    body = {"prompt": "cors", "tokens": 3, "delay_ms": 0}
    streamed = requests.post(cors.url + "/api/chat", json=body, headers={"Origin": APP},
                             timeout=10)
    refused = requests.post(cors.url + "/api/chat", json={}, headers={"Origin": APP}, timeout=10)
    sse = requests.get(cors.url + "/sse/chat?prompt=c&tokens=2&delay_ms=0",
                       headers={"Origin": APP}, timeout=10)
    for response in (streamed, refused, sse):
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Expose-Headers"] == "Retry-After"
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers
    assert streamed.status_code == 200 and refused.status_code == 400


def test_another_origin_gets_no_grant_and_cors_off_adds_nothing(cors, server):
    other = requests.get(cors.url + "/healthz", headers={"Origin": EVIL}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]
    default = requests.get(server.url + "/healthz", headers={"Origin": APP}, timeout=10)
    assert not [h for h in default.headers if h.lower().startswith("access-control-")]
    assert _preflight(server, APP).status_code == 403
