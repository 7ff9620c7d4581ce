"""The proxy's connection pool: requests' HTTPAdapter, with a cheaper check of idle connections.

Before it reuses a pooled connection, urllib3 asks whether the upstream closed it meanwhile
(`HTTPConnection.is_connected`): a `poll` with a zero timeout. Under gevent that poll is a
Timeout and a switch to the hub, so every proxied request gave up its turn of the event loop
before it was even sent, behind every other greenlet ready to run; in a burst of new streams
that is what the first chunk waits on. A peek with MSG_DONTWAIT on the socket underneath answers
the same question (nothing to read: still open; EOF, an error or stray bytes: not reusable) at
once. HTTPS connections keep urllib3's check: a TLS socket takes no recv flags.
"""

from __future__ import annotations

import socket
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool


def still_open(sock: Any) -> bool:
    """Whether an idle connection's socket can carry a next request: open, nothing unread."""
    raw = getattr(sock, "_sock", sock)  # gevent's socket would wait in the hub for data
    try:
        raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # EOF, or bytes nobody asked for


class _PeekingConnection(HTTPConnection):
    @property
    def is_connected(self) -> bool:
        return self.sock is not None and still_open(self.sock)


class _PeekingPool(HTTPConnectionPool):
    ConnectionCls = _PeekingConnection


class PooledAdapter(HTTPAdapter):
    """requests' HTTPAdapter whose plain-HTTP pools check idle connections with a peek."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme, "http": _PeekingPool}
