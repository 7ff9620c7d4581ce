"""Notice a client leaving while its stream is idle, as Go's net/http does for `r.Context()`.

A write to a vanished client fails, but an idle stream writes only every heartbeat, so it would
hold its producer and its memory for up to that long. Instead a libev read watcher on the client
socket calls back as soon as the peer's FIN or RST arrives: no greenlet, no extra file
descriptor, a few hundred bytes per stream.

Limits, deliberately accepted: if the client sends bytes during the stream (HTTP pipelining),
EOF cannot be told apart from them without reading them, so the watcher stops and the next write
notices the disconnect instead.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

import gevent

from .cancellation import Cancellation

READ = 1  # libev's EV_READ

_GONE_ERRNOS = {errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE, errno.ETIMEDOUT, errno.EBADF}


class DisconnectWatcher:
    """Calls `on_disconnect()` from the hub once the peer closes its side of `sock`.

    Create and stop it from the greenlet serving the request; not to be shared.
    """

    __slots__ = ("_on_disconnect", "_raw", "_watcher")

    def __init__(self, sock: Any, on_disconnect: Callable[[], None]) -> None:
        # gevent's socket would wait on the hub if a peek found nothing, and the callback runs
        # *in* the hub; the raw socket object underneath only ever answers at once.
        self._raw = getattr(sock, "_sock", sock)
        self._on_disconnect = on_disconnect
        self._watcher = gevent.get_hub().loop.io(sock.fileno(), READ)
        self._watcher.start(self._readable)

    def _readable(self) -> None:
        try:
            peeked = self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in _GONE_ERRNOS:
                raise
            peeked = b""
        self.stop()
        if not peeked:
            self._on_disconnect()

    def stop(self) -> None:
        """Stop watching; safe to call more than once."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()


DISCONNECT = "disconnect"
"""The cancellation reason when the client went away."""


def cancel_on_disconnect(sock: Any | None, cancellation: Cancellation
                         ) -> DisconnectWatcher | None:
    """Watch `sock` (gunicorn's client socket; None elsewhere) and cancel on the peer's close."""
    if sock is None:
        return None
    return DisconnectWatcher(sock, lambda: cancellation.cancel(DISCONNECT))
