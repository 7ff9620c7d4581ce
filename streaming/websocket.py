"""WebSocket plumbing for many idle connections and fast streams on gunicorn's gevent worker.

simple-websocket (under flask-sock) does the handshake, reads and assembles messages, answers
pings, sends keepalive pings, drops a peer that stops answering them and closes with 1009 past
the message size limit; `server_options()` turns those on. This module adapts the rest, and
deviates from simple-websocket as it comes in three measured ways:

1. Its reader loop runs in the connection's own greenlet (`InlineReader`, `MessageSignal`)
   instead of a second greenlet per connection, and each message is handled the moment the
   loop has assembled it: an idle connection keeps one saved greenlet stack, not two
   (about 25 KB instead of 37 KB per idle connection).
2. Every write goes through one `LockedSocket`, whose `send` is `sendall` under a lock.
   simple-websocket writes with `sock.send` (which may write part of a frame) from its reader
   (pongs, pings, close) and from `ws.send`; with tokens written from a generation greenlet,
   two writers could otherwise interleave inside a frame.
3. Data messages are framed here (`encode_frames`), not by wsproto: 0.4 µs a frame against
   7 µs, and a batch of frames leaves in one `sendall`. That is safe because data frames are
   never fragmented and no extension is negotiated (the blueprint declines permessage-deflate);
   control frames (ping, pong, close) stay with wsproto.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from gevent import Timeout
from gevent.lock import Semaphore

MAX_MESSAGE_BYTES = 64 * 1024
"""A larger incoming message closes the connection with 1009 (simple-websocket enforces it)."""

LINGER_SECONDS = 2.0
"""How long a closing connection waits for the peer to close its side (see `close`)."""

TEXT, BINARY = 0x1, 0x2

# FIN + opcode, then the 7-bit length: the header of every frame under 126 bytes, prebuilt.
_SHORT_HEADERS = {op: tuple(bytes((0x80 | op, n)) for n in range(126)) for op in (TEXT, BINARY)}


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one final, unmasked frame (servers never mask: RFC 6455 section 5.1)."""
    if length < 126:
        return _SHORT_HEADERS[opcode][length]
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def encode_frames(payloads: Iterable[bytes], opcode: int) -> bytes:
    """Each payload as one whole message, joined so that a batch is written with one call."""
    parts: list[bytes] = []
    for payload in payloads:
        parts.append(frame_header(opcode, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def text_frames(texts: Iterable[str]) -> bytes:
    """Text messages (UTF-8), one frame each."""
    return encode_frames([text.encode() for text in texts], TEXT)


class WriteTimeout(TimeoutError):
    """The peer took none of a write for `write_timeout` seconds: treated as gone."""


class LockedSocket:
    """The connection's one writer: `send` writes all of `data` under a lock, or fails.

    Shared by the reader loop (pongs, pings, close frames, error replies) and a generation
    greenlet. A write that cannot finish within `write_timeout` seconds (a peer that stopped
    reading) shuts the socket down, which ends the reader loop too, and raises `WriteTimeout`
    (an OSError, which both the reader loop and the session treat as a disconnect).
    """

    __slots__ = ("_lock", "_sock", "_timeout")

    def __init__(self, sock: Any, write_timeout: float | None) -> None:
        self._sock = sock
        self._lock = Semaphore()
        self._timeout = write_timeout

    def send(self, data: bytes) -> int:
        """Write all of `data`; returns its length, as socket.send would for a whole write."""
        try:
            with Timeout(self._timeout, WriteTimeout), self._lock:
                self._sock.sendall(data)
        except WriteTimeout:
            # Part of a frame may be out: the stream is unusable, so end the connection.
            self.abort()
            raise
        return len(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        """Close once the peer has had our last frame: a lingering close, as nginx's.

        Closing a TCP socket with input still unread makes the kernel answer with RST: the
        peer's reply to our close frame then fails with "connection reset", and some stacks
        drop what the peer had not read yet. simple-websocket closes right after its close
        frame, often with input pending (the rest of a message over the size limit, frames in
        flight), so a client would see a reset rather than a clean 1009 or 1000. So: stop
        sending, read and drop what comes until the peer closes too (at most LINGER_SECONDS),
        then close.
        """
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
            with Timeout(LINGER_SECONDS, False):
                while self._sock.recv(4096):
                    pass
        self._sock.close()

    def abort(self) -> None:
        """Shut both directions down: a reader blocked on this socket sees EOF at once."""
        with suppress(OSError):  # already closed or reset: nothing left to wake
            self._sock.shutdown(socket.SHUT_RDWR)


class InlineReader:
    """simple-websocket's `thread_class`: its reader loop runs when the owner calls `run()`.

    `Server()` calls `start()` at the end of the handshake; here that does nothing, so no
    greenlet is spawned, and the connection's greenlet (gunicorn's) runs the loop itself
    (`ws_session.Session.serve`) until the connection ends.
    """

    __slots__ = ("_target", "name")

    def __init__(self, target: Callable[[], None]) -> None:
        self._target: Callable[[], None] | None = target
        self.name = "websocket-reader"

    def start(self) -> None:
        """Nothing: the loop must not get a greenlet of its own."""

    def run(self) -> None:
        """Read, answer control frames and hand over messages until the connection ends."""
        # The target is the Server's own bound method: dropping it once done breaks the
        # server -> reader -> server cycle, so a closed connection is freed at once rather
        # than by the next cyclic garbage collection.
        target, self._target = self._target, None
        if target is not None:
            target()


class MessageSignal:
    """simple-websocket's `event_class`: `set()` also calls `on_set`, in the reader's greenlet.

    The reader sets its event after queueing each message and when the connection ends, which
    is where an inline reader's owner must handle it: nothing else would ever wake up.
    """

    __slots__ = ("_flag", "on_set")

    def __init__(self) -> None:
        self._flag = False
        self.on_set: Callable[[], None] | None = None

    def set(self) -> None:
        self._flag = True
        if self.on_set is not None:
            self.on_set()

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        # Only `ws.receive(timeout=0)` may wait: the reader runs in this very greenlet, so a
        # blocking wait could never be woken.
        if not self._flag and timeout != 0:
            raise RuntimeError("with an inline reader only receive(timeout=0) can be used")
        return self._flag


def server_options(ping_seconds: float | None) -> dict[str, Any]:
    """flask-sock's `SOCK_SERVER_OPTIONS`: keepalive, the size limit and the inline reader."""
    return {
        "ping_interval": ping_seconds,
        "max_message_size": MAX_MESSAGE_BYTES,
        "thread_class": InlineReader,
        "event_class": MessageSignal,
    }
