"""serving.access_log: which names are secrets, and what redaction leaves of a URL and atoms."""

from __future__ import annotations

import pytest

from serving.access_log import REDACTED, is_secret_name, redact_atoms, redact_query


@pytest.mark.parametrize("name", ["api_key", "apikey", "API-KEY", "key", "token", "access_token",
                                  "publish_token", "password", "client_secret", "auth",
                                  "api%5Fkey", "session"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["tokens", "prompt", "delay_ms", "last_event_id", "keys", ""])
def test_names_that_are_not_secrets(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize(("raw", "redacted"), [
    ("GET /v1/models?api_key=sk-1&x=2 HTTP/1.1", "GET /v1/models?api_key=REDACTED&x=2 HTTP/1.1"),
    ("/a?token=t&tokens=5;key=k#f", "/a?token=REDACTED&tokens=5;key=REDACTED#f"),
    ("token=abc", "token=REDACTED"),
    ("/a?token=&b=1", "/a?token=&b=1"),
    ("/plain/path", "/plain/path"),
])
def test_redact_query(raw, redacted):
    assert redact_query(raw) == redacted


def test_redact_atoms_covers_headers_environ_copies_and_the_user():
    atoms = redact_atoms({"u": "alice", "r": "GET /?api_key=s HTTP/1.1", "q": "api_key=s",
                          "{authorization}i": "Bearer s", "{x-api-key}i": "s",
                          "{cookie}i": "session=s", "{http_authorization}e": "Bearer s",
                          "{raw_uri}e": "/?token=s", "{user-agent}i": "curl", "s": "200"})
    assert atoms["u"] == "-"
    assert "s" not in (atoms["r"].split("=")[1].split(" ")[0], atoms["q"].split("=")[1])
    assert {atoms[k] for k in ("{authorization}i", "{x-api-key}i", "{cookie}i",
                               "{http_authorization}e")} == {REDACTED}
    assert atoms["{raw_uri}e"] == "/?token=REDACTED"
    assert atoms["{user-agent}i"] == "curl"
