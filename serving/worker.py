"""gunicorn's gevent worker, answering what its HTTP parser refuses in the API's JSON error shape.

gunicorn answers a request it cannot parse (a request line over `limit_request_line`: 414; too
many or too large header fields: 431; malformed syntax: 400) before any app code runs, with an
HTML page (`workers/base.py` `handle_error`, which writes it with `util.write_error`). Clients of
this API expect every error as `{"error": {"type", "message"}}`. `GeventWorker.handle_error`
gives gunicorn's error writer a wrapper of the client socket whose one write, the whole error
response, goes out as that JSON: same status and reason, the page's message as `message`, no
more detail than gunicorn's page had.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from gunicorn.workers.ggevent import GeventWorker as _GunicornGeventWorker

_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ([^\r\n]*)\r\n")
_PAGE_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)


def json_error_response(page: bytes) -> bytes:
    """gunicorn's HTML error response as the same response with a JSON error body."""
    status = _STATUS_LINE.match(page)
    if status is None:  # not an error page: nothing to translate
        return page
    code, reason = status.group(1).decode(), status.group(2).decode("latin-1")
    found = _PAGE_MESSAGE.search(page)
    message = html.unescape(found.group(1).decode("latin-1")) if found else ""
    error = {"type": reason.lower().replace(" ", "_"), "message": message or reason}
    body = json.dumps({"error": error}).encode()
    head = (f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _JSONErrorPages:
    """The client socket as gunicorn's error writer sees it: what it sends goes out as JSON."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(json_error_response(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class GeventWorker(_GunicornGeventWorker):
    """gunicorn's gevent worker; only its error pages change (see the module docstring)."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _JSONErrorPages(client), addr, exc)
