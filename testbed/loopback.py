"""The base of every hand-written server on loopback: the fake upstreams, the cutting proxy, the
benchmarks' fast upstream.

A subclass says what to do with one connection (`handle`); the base binds 127.0.0.1, accepts in
a thread, runs each connection in a thread of its own, and `stop()` ends them all: it shuts the
sockets down (which wakes a thread blocked in accept() or recv(), where close() alone would not
on Linux) and joins the threads. Plain threads on blocking sockets: the tests run without
gevent's patching, and a blocking send() is the fastest a benchmark's upstream can write.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Self


class LoopbackServer:
    """A TCP server on 127.0.0.1 (a free port unless `port` is given); a context manager."""

    JOIN_SECONDS = 5.0
    """How long stop() waits for each thread: a handler sleeping mid-script finishes meanwhile."""

    def __init__(self, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0  # accepted so far
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self.spawn(self._accept)

    def handle(self, connection: socket.socket, number: int) -> None:
        """Serve one accepted connection, the `number`th (from 1); closed on return. An
        OSError (the peer or stop() cut it) ends it quietly."""
        raise NotImplementedError

    def spawn(self, target: Callable[..., object], *args: object) -> None:
        """Run `target(*args)` in a thread that stop() joins."""
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def track(self, sock: socket.socket) -> socket.socket:
        """Have stop() shut `sock` down too (a connection the handler opened itself)."""
        with self._lock:
            self._sockets.append(sock)
        return sock

    def stop(self) -> None:
        """Stop accepting, cut every connection, and wait for the threads to end."""
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with suppress(OSError):  # not connected, or closed already
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(self.JOIN_SECONDS)
        for sock in sockets:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # stop() shut the listener down
                return
            self.track(connection)
            self.connections += 1
            self.spawn(self._serve, connection, self.connections)

    def _serve(self, connection: socket.socket, number: int) -> None:
        with connection, suppress(OSError):
            self.handle(connection, number)
