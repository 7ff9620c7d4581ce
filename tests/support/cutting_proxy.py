"""A loopback TCP relay that cuts one streamed answer midway, as a dropped connection would.

The browser loads pages through it (same origin), so a page's fetch stream really is cut under
it: the first request whose head contains `marker` gets `cut_after` bytes of its answer, then
its connection is closed with no end to the chunked body. Everything else is relayed as is.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

from testbed.live_server import free_port


class CuttingProxy:
    """Listens on a free loopback port and relays to `target_port`; stop() closes everything."""

    def __init__(self, target_port: int, marker: bytes, cut_after: int) -> None:
        self.target_port = target_port
        self.marker = marker
        self.cut_after = cut_after
        self.requests: list[bytes] = []  # the head of every request that contained the marker
        self.cuts = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", free_port()))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # stop() closed the listener
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            state = {"cutting": False}
            threading.Thread(target=self._requests, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, state),
                             daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if self.marker in data:
                    with self._lock:
                        self.requests.append(data.split(b"\r\n\r\n")[0])
                        if self.cuts == 0:
                            self.cuts = 1
                            state["cutting"] = True
                upstream.sendall(data)
        _close(upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket, state: dict) -> None:
        sent = 0
        with suppress(OSError):
            while data := upstream.recv(65536):
                if state["cutting"]:
                    data = data[: self.cut_after - sent]
                    sent += len(data)
                client.sendall(data)
                if state["cutting"] and sent >= self.cut_after:
                    break
        _close(client)
        _close(upstream)

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
