"""gunicorn's access log, without secrets and for less CPU: `logger_class =
"serving.access_log.AccessLogger"`.

For every request gunicorn's `Logger.access` builds a dict of every request header, response
header and environ variable (`atoms`), copies it while escaping quotes, and sends it through
`logging` (a LogRecord, `%`-formatting, a lock and a flush per handler): about a tenth of what a
new short stream costs the worker (bench/connections.py). `AccessLogger` writes the same line
from the nine fields gunicorn's default `access_log_format` uses, with the date formatted once a
second, to every handler of the `gunicorn.access` logger: straight to the stream of those that
only print the message (gunicorn's own, a FileHandler added for a log file), through a single
LogRecord for any other. A custom `access_log_format` keeps gunicorn's own path.

Secrets never reach the log, whatever the format. An access line is kept for weeks and read by
many, so nothing in it may let a reader act as a client:

- the request line, query string and Referer: some clients put keys in the URL (`?api_key=`,
  `?token=`); the values of query parameters with a secret's name become `REDACTED`;
- the Basic-auth user name (`%(u)s`), which some APIs use for the key itself: always `-`;
- every request header (`%({name}i)s`) and environ value (`%({name}e)s`) a custom format can
  print: Authorization, Proxy-Authorization, Cookie, API-key headers and their environ copies
  are redacted, and so are the URL's copies.

A secret's name: `key`, `token`, `secret`, `password`, `signature`, `auth`, `authorization`,
`credential(s)`, `session`, alone or at the end of the name (`api_key`, `apikey`,
`access_token`, `X-Api-Key`, `publish_token`), in any case, `-` and `_` alike.

Imported by the gunicorn master before any worker exists: nothing of the app, no gevent.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.config import AccessLogFormat
from gunicorn.glogging import Logger

DEFAULT_FORMAT = AccessLogFormat.default

REDACTED = "REDACTED"
SECRET_NAME = re.compile(
    r"(key|token|secret|password|signature|auth|authorization|credentials?|session)$")
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key",
                            "x-api-key"})
_PARAMETER = re.compile(r"([?&;]|^)([^=&;#\s]*)=([^&;#\s]*)")
_URL_ATOMS = ("r", "q", "f", "{raw_uri}e", "{query_string}e", "{http_referer}e",
              "{referer}i", "{path_info}e")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(unquote_plus(name).lower().replace("-", "_")))


def redact_query(text: str) -> str:
    """`text` (a URL, a request line or a query string) with secret parameters' values redacted."""
    def replace(match: re.Match) -> str:
        separator, name, value = match.groups()
        return f"{separator}{name}={REDACTED if is_secret_name(name) and value else value}"

    return _PARAMETER.sub(replace, text)


def _header_of(atom: str) -> str | None:
    """The request header an atom carries: `{x-api-key}i`, or its environ copy
    `{http_x_api_key}e`."""
    if atom.endswith("}i"):
        return atom[1:-2]
    if atom.startswith("{http_") and atom.endswith("}e"):
        return atom[6:-2].replace("_", "-")
    return None


def redact_atoms(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms with every secret they could carry redacted, in place."""
    atoms["u"] = "-"
    for key in atoms:
        if _header_of(key) in SECRET_HEADERS:
            atoms[key] = REDACTED
    for key in _URL_ATOMS:
        if isinstance(atoms.get(key), str):
            atoms[key] = redact_query(atoms[key])
    return atoms


def _quoted(value: str) -> str:
    # gunicorn's SafeAtoms escapes double quotes in every string atom.
    return value.replace('"', '\\"') if '"' in value else value


class AccessLogger(Logger):
    """gunicorn's Logger with a cheaper `access()`; everything else is gunicorn's."""

    _second = -1
    _date = ""

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        if self.cfg.access_log_format != DEFAULT_FORMAT or self.access_log.filters:
            super().access(resp, req, environ, request_time)
            return
        try:
            self._write(self.access_line(resp, environ))
        except Exception:
            self.exception("access log")

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict[str, Any]:
        """gunicorn's atoms, for a custom format, with every secret they could carry redacted."""
        return redact_atoms(super().atoms(resp, req, environ, request_time))

    def access_line(self, resp: Any, environ: dict) -> str:
        """The line gunicorn's default format gives, `h l u t "r" s b "f" "a"`, redacted."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        get = environ.get
        request = redact_query(
            f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}")
        referer = redact_query(get("HTTP_REFERER", "-"))
        return (f"{_quoted(get('REMOTE_ADDR', '-'))} - - {self._now()} "
                f'"{_quoted(request)}" {_quoted(str(status))} '
                f"{'-' if sent is None else sent} "
                f'"{_quoted(referer)}" "{_quoted(get("HTTP_USER_AGENT", "-"))}"')

    def _now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # the same format as gunicorn's Logger.now(), once a second
            self._date = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))
            self._second = second
        return self._date

    def _write(self, line: str) -> None:
        """To every handler of gunicorn.access, as `logging` would with the message `line`."""
        record = None
        for handler in self.access_log.handlers:
            if _prints_message_only(handler):
                with handler.lock:
                    handler.stream.write(line + handler.terminator)
                    handler.stream.flush()
                continue
            if record is None:
                record = self.access_log.makeRecord(self.access_log.name, logging.INFO,
                                                    "(access)", 0, line, (), None)
            if record.levelno >= handler.level:
                handler.handle(record)


def _prints_message_only(handler: logging.Handler) -> bool:
    formatter = handler.formatter
    return (type(handler) in (logging.StreamHandler, logging.FileHandler)
            and getattr(handler, "stream", None) is not None and not handler.filters
            and handler.level <= logging.INFO
            and formatter is not None and type(formatter) is logging.Formatter
            and formatter._fmt == "%(message)s")
