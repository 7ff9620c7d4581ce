"""A loopback TCP relay that cuts one streamed answer midway, as a dropped connection would.

The browser loads pages through it (same origin), so a page's fetch stream really is cut under
it: the first request whose head contains `marker` gets `cut_after` bytes of its answer, then
its connection is closed with no end to the chunked body. Everything else is relayed as is.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

from testbed.loopback import LoopbackServer


class CuttingProxy(LoopbackServer):
    """Listens on a free loopback port and relays to `target_port`; stop() closes everything."""

    def __init__(self, target_port: int, marker: bytes, cut_after: int) -> None:
        self.target_port = target_port
        self.marker = marker
        self.cut_after = cut_after
        self.requests: list[bytes] = []  # the head of every request that contained the marker
        self.cuts = 0
        self._cutting_lock = threading.Lock()
        super().__init__()

    def handle(self, client: socket.socket, number: int) -> None:
        upstream = self.track(socket.create_connection(("127.0.0.1", self.target_port)))
        state = {"cutting": False}
        self.spawn(self._answers, upstream, client, state)
        self._requests(client, upstream, state)

    def _requests(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if self.marker in data:
                    with self._cutting_lock:
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


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
