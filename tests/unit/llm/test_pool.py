"""llm/pool.py: the proxy's pooled connections, checked with a peek before reuse."""

from __future__ import annotations

import socket
import threading
import time

import requests

from llm.pool import PooledAdapter, still_open


def test_an_idle_open_socket_is_reusable():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert still_open(ours)


def test_a_socket_the_peer_closed_or_wrote_to_is_not():
    for spoil in (lambda peer: peer.close(), lambda peer: peer.sendall(b"HTTP/1.1 408")):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            spoil(theirs)
            assert not still_open(ours)


class OneAnswerPerConnection:
    """Answers one request per connection, claiming keep-alive, then closes it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with client, client.makefile("rb") as incoming:
                while incoming.readline() not in (b"\r\n", b""):
                    pass
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                               b"Connection: keep-alive\r\n\r\nok")


def test_a_pooled_connection_the_upstream_closed_is_replaced_before_use():
    upstream = OneAnswerPerConnection()
    with requests.Session() as session:
        session.mount("http://", PooledAdapter(max_retries=0))
        try:
            answers = []
            for _ in range(3):
                answers.append(session.get(upstream.url, timeout=5).text)
                time.sleep(0.05)  # the upstream's FIN arrives while the connection idles
        finally:
            upstream.listener.close()
    assert answers == ["ok"] * 3  # never sent on a closed connection, with no retry allowed
    assert upstream.connections == 3
