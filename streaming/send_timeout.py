"""Dropping a client that stopped reading: a write pending for `timeout` seconds ends its stream.

gunicorn writes each chunk a body yields with a blocking `sendall` (`workers/base_async.py`;
gevent parks the greenlet until the socket is writable), and only then asks the body for the
next chunk. A client whose TCP window stays full therefore holds its stream forever: the producer
waits behind it (backpressure, so memory stays bounded), but nothing ends the wait.

`guard_sends` wraps a body: it notes when a chunk is handed to gunicorn and when gunicorn comes
back for the next one (the write is done). A repeating timer looks every `1 / CHECKS` of the
timeout; a write pending longer than `timeout` shuts the socket down, gunicorn's `sendall` fails,
and gunicorn closes the body as it does for any vanished client. So a stalled client is dropped
between `timeout` and `(1 + 1 / CHECKS) * timeout` after its last completed write.

Progress is a completed write: a chunk is one batch (at most 256 events, or 128 KiB on the
proxy), which a client that reads at all takes well within the timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Generator, Iterator
from contextlib import suppress
from typing import Any

from gevent.hub import get_hub

CHECKS = 4


class SendWatch:
    """Shuts `sock` down once a write has been pending for `timeout` seconds.

    Created and stopped by the greenlet serving the stream; its timer runs in the hub.
    """

    __slots__ = ("_sock", "_timeout", "_timer", "pending_since", "stalled")

    def __init__(self, sock: Any, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._sock = sock
        self._timeout = timeout
        self.pending_since: float | None = None
        self.stalled = False
        self._timer = get_hub().loop.timer(timeout / CHECKS, timeout / CHECKS)
        self._timer.start(self._check)

    def _check(self) -> None:
        since = self.pending_since
        if since is None or time.monotonic() - since < self._timeout:
            return
        self.stalled = True
        self.stop()
        with suppress(OSError):  # already closed or reset: gunicorn's write fails anyway
            self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop watching; safe to call more than once."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()


def guard_sends(chunks: Generator[bytes, None, None], sock: Any, timeout: float) -> Iterator[bytes]:
    """`chunks` as a WSGI body whose client is dropped after `timeout` s without a finished write.

    Closing this iterator closes `chunks`, so their cleanup runs as if unwrapped.
    """
    watch = SendWatch(sock, timeout)
    try:
        for chunk in chunks:
            watch.pending_since = time.monotonic()
            yield chunk
            watch.pending_since = None
    finally:
        watch.stop()
        chunks.close()
