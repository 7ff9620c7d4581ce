"""gunicorn's access log, written for less CPU: `logger_class = "access_log.AccessLogger"`.

For every request gunicorn's `Logger.access` builds a dict of every request header, response
header and environ variable (`atoms`), copies it while escaping quotes, and sends it through
`logging` (a LogRecord, `%`-formatting, a lock and a flush per handler): about a tenth of what a
new short stream costs the worker (bench/connections.py). `AccessLogger` writes the same line
from the nine fields gunicorn's default `access_log_format` uses, with the date formatted once a
second, to every handler of the `gunicorn.access` logger: straight to the stream of those that
only print the message (gunicorn's own, a FileHandler added for a log file), through a single
LogRecord for any other. A custom `access_log_format` keeps gunicorn's own path.

Imported by the gunicorn master before any worker exists: nothing of the app, no gevent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gunicorn.config import AccessLogFormat
from gunicorn.glogging import Logger

DEFAULT_FORMAT = AccessLogFormat.default


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

    def access_line(self, resp: Any, environ: dict) -> str:
        """The line gunicorn's default format gives: `h l u t "r" s b "f" "a"`."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        get = environ.get
        user = self._get_user(environ) if "HTTP_AUTHORIZATION" in environ else None
        request = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
        return (f"{_quoted(get('REMOTE_ADDR', '-'))} - {_quoted(user or '-')} {self._now()} "
                f'"{_quoted(request)}" {_quoted(str(status))} '
                f"{'-' if sent is None else sent} "
                f'"{_quoted(get("HTTP_REFERER", "-"))}" "{_quoted(get("HTTP_USER_AGENT", "-"))}"')

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
