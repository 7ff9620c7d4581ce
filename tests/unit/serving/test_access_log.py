"""access_log: gunicorn's access line, to every target, for less, and never with a secret."""

from __future__ import annotations

import base64
import io
import logging
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from serving.access_log import REDACTED, AccessLogger, is_secret_name, redact_atoms, redact_query


@pytest.fixture
def logger():
    """An AccessLogger on a config with an access log; gunicorn.access restored afterwards."""
    access = logging.getLogger("gunicorn.access")
    saved = (list(access.handlers), access.propagate, access.level)
    config = Config()
    config.set("accesslog", "-")
    yield AccessLogger(config)
    access.handlers[:], access.propagate = saved[0], saved[1]
    access.setLevel(saved[2])


def gunicorn_line(logger, resp, environ) -> str:
    """gunicorn's own default line, with the secrets redacted as ours are."""
    atoms = redact_atoms(Logger.atoms(logger, resp, SimpleNamespace(headers=[]), environ,
                                      timedelta(0)))
    atoms["t"] = logger._now()  # the same second for both lines
    return logger.cfg.access_log_format % SafeAtoms(atoms)


def environ(**extra: str) -> dict:
    return {"REQUEST_METHOD": "GET", "RAW_URI": "/sse/chat?prompt=a&tokens=5",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", **extra}


USER = "Basic " + base64.b64encode(b"ann:secret").decode()


@pytest.mark.parametrize(("status", "sent", "extra"), [
    ("200 OK", 1234, {}),
    ("404 NOT FOUND", 0, {"HTTP_REFERER": "http://a/b", "HTTP_USER_AGENT": "curl/8"}),
    ("101 Switching Protocols", None, {"HTTP_USER_AGENT": 'say "hi"'}),
    ("200 OK", 7, {"RAW_URI": '/v1/x?q="quoted"', "HTTP_AUTHORIZATION": USER}),
    ("200 OK", 7, {"HTTP_AUTHORIZATION": "Bearer sk-not-a-user", "REMOTE_ADDR": "::1"}),
    ("200 OK", 7, {"RAW_URI": "/v1/models?api_key=sk-1&token=t", "HTTP_REFERER": "/?key=k"}),
])
def test_the_same_line_as_gunicorns_default_format(logger, status, sent, extra):
    resp = SimpleNamespace(status=status, sent=sent, headers=[("Content-Type", "text/plain")])
    env = environ(**extra)
    assert logger.access_line(resp, env) == gunicorn_line(logger, resp, env)


def test_the_date_is_gunicorns(logger):
    for _ in range(3):  # unless the second turned between the two reads
        theirs, ours = Logger.now(logger), logger._now()
        if theirs == ours:
            return
        time.sleep(0.01)
    assert ours == theirs


def test_every_handler_gets_the_line_once(logger):
    access = logging.getLogger("gunicorn.access")
    plain, prefixed, collected = io.StringIO(), io.StringIO(), []
    handlers = [logging.StreamHandler(plain), logging.StreamHandler(prefixed),
                type("Collect", (logging.Handler,), {"emit": lambda h, r: collected.append(r)})()]
    handlers[0].setFormatter(logging.Formatter("%(message)s"))
    handlers[1].setFormatter(logging.Formatter("access: %(message)s"))
    access.handlers[:] = handlers
    resp = SimpleNamespace(status="200 OK", sent=5, headers=[])
    logger.access(resp, SimpleNamespace(headers=[]), environ(), timedelta(0))
    line = logger.access_line(resp, environ())
    assert plain.getvalue() == line + "\n"
    assert prefixed.getvalue() == f"access: {line}\n"
    assert [record.getMessage() for record in collected] == [line]


def test_a_custom_format_keeps_gunicorns_path(logger):
    logger.cfg.set("access_log_format", "%(m)s %(U)s %({x-id}i)s")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("gunicorn.access").handlers[:] = [handler]
    logger.access(SimpleNamespace(status="200 OK", sent=1, headers=[]),
                  SimpleNamespace(headers=[("X-Id", "7")]),
                  environ(PATH_INFO="/p"), timedelta(0))
    assert stream.getvalue() == "GET /p 7\n"


def test_nothing_is_written_without_an_access_log():
    access = logging.getLogger("gunicorn.access")
    saved = list(access.handlers)
    try:
        logger = AccessLogger(Config())  # accesslog unset
        stream = io.StringIO()
        access.addHandler(logging.StreamHandler(stream))
        logger.access(SimpleNamespace(status="200 OK", sent=1, headers=[]),
                      SimpleNamespace(headers=[]), environ(), timedelta(0))
        assert stream.getvalue() == ""
    finally:
        access.handlers[:] = saved


# --- what counts as a secret, and what redaction leaves ------------------------------------


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
