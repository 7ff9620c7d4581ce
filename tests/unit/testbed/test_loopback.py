"""testbed/loopback.py: the base of the fake servers accepts, serves each connection, and stops."""

from __future__ import annotations

import socket
import threading

from testbed.loopback import LoopbackServer


class Echo(LoopbackServer):
    """Echoes what each connection sends; remembers the connection numbers it served."""

    def __init__(self) -> None:
        self.served: list[int] = []
        self.ended = threading.Event()
        super().__init__()

    def handle(self, connection: socket.socket, number: int) -> None:
        self.served.append(number)
        try:
            while data := connection.recv(100):
                connection.sendall(data)
        finally:
            self.ended.set()


def test_each_connection_is_served_in_a_thread_of_its_own():
    with Echo() as server:
        first = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        second = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with first, second:
            second.sendall(b"two")
            first.sendall(b"one")
            assert (first.recv(10), second.recv(10)) == (b"one", b"two")
    assert sorted(server.served) == [1, 2]
    assert server.connections == 2


def test_stop_ends_a_handler_blocked_in_recv_and_frees_the_port():
    server = Echo()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with client:
        client.sendall(b"x")
        assert client.recv(10) == b"x"  # the handler is now waiting in recv()
        server.stop()
        assert server.ended.is_set()  # joined, not left running
        assert client.recv(10) == b""
    with socket.create_server(("127.0.0.1", server.port)):  # the listener is closed
        pass
