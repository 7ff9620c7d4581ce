"""Dropping a client that stopped reading: no progress on its socket for `timeout` seconds.

gunicorn writes each chunk a body yields with a blocking `sendall` (`workers/base_async.py`;
gevent parks the greenlet until the socket is writable), and only then asks the body for the
next chunk. A client whose TCP window stays shut therefore holds its stream forever: the
producer waits behind it (backpressure, so memory stays bounded), but nothing ends the wait.

`SendWatch` asks the kernel, `CHECKS` times per timeout, how many bytes the client has
acknowledged in all (Linux's `TCP_INFO`, `tcpi_bytes_acked`) and how many wait in the send
queue (SIOCOUTQ, `TIOCOUTQ` in Python). While bytes wait and the acknowledged count has not
moved since the last look, the client is taking nothing; once that has lasted `timeout` seconds
the socket is shut down, gunicorn's `sendall` fails, and gunicorn closes the body as it does for
any vanished client. A client that reads at all, however slowly, moves the count (the queue's
length alone would not do: a writer keeps refilling it to the brim); an idle stream with
everything delivered has nothing waiting. So a stalled client is dropped between `timeout` and
`(1 + 1 / CHECKS) * timeout` after it stopped. A socket that is not TCP is not watched.

Asking the socket rather than timing each write costs the stream nothing per write, and no
generator of its own (an idle stream keeps every generator it is suspended in).
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from contextlib import suppress
from typing import Any

from gevent.hub import get_hub

CHECKS = 4
_INT = struct.Struct("i")
_TCP_INFO_SIZE = 232
_BYTES_ACKED = struct.Struct("Q")
_BYTES_ACKED_OFFSET = 120  # struct tcp_info's tcpi_bytes_acked (linux/tcp.h, since 4.1)


def unsent_bytes(sock: Any) -> int:
    """Bytes written to `sock` that its peer has not acknowledged yet (SIOCOUTQ)."""
    return _INT.unpack(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * _INT.size))[0]


def acked_bytes(sock: Any) -> int:
    """Bytes of `sock` its peer has acknowledged since the connection opened (TCP_INFO)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    return _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_OFFSET)[0]


def watch_sends(sock: Any, timeout: float) -> SendWatch | None:
    """A SendWatch on `sock`, or None where the kernel cannot tell (not a TCP socket)."""
    try:
        acked_bytes(sock)
    except (OSError, struct.error):
        return None
    return SendWatch(sock, timeout)


class SendWatch:
    """Shuts the TCP socket `sock` down once its peer has taken nothing of a non-empty send
    queue for `timeout` seconds. Created and stopped by the greenlet serving the stream; its
    timer runs in the hub."""

    __slots__ = ("_last", "_sock", "_still", "_timer", "stalled", "timeout")

    def __init__(self, sock: Any, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._sock = sock
        self.timeout = timeout
        self._last = 0
        self._still = 0  # checks in a row with the same non-empty queue
        self.stalled = False
        self._timer = get_hub().loop.timer(timeout / CHECKS, timeout / CHECKS)
        self._timer.start(self._check)

    def _check(self) -> None:
        try:
            acked, unsent = acked_bytes(self._sock), unsent_bytes(self._sock)
        except (OSError, ValueError):  # closed meanwhile: nothing left to watch
            self.stop()
            return
        self._still = self._still + 1 if unsent and acked == self._last else 0
        self._last = acked
        if self._still >= CHECKS:
            self.stalled = True
            self.stop()
            with suppress(OSError):  # already closed or reset: gunicorn's write fails anyway
                self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Stop watching; safe to call more than once."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()
