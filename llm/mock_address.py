"""Where this server's own mock upstream is: the default upstream of the proxy and of the
upstream model backend. Kept apart from `upstream.py` so that a blueprint can name the address
without depending on the proxy's wire format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def self_base_url(environ: Mapping[str, Any]) -> str:
    """This server's own mock, at the address the client's connection reached."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        host, port = sock.getsockname()[:2]
    else:
        host, port = environ["SERVER_NAME"], environ["SERVER_PORT"]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/mock/v1"
