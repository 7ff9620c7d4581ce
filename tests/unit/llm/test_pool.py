"""llm/pool.py: the proxy's pooled connections, checked with a peek before reuse."""

from __future__ import annotations

import socket
import time

import requests

from llm.pool import PooledAdapter, still_open
from testbed.loopback import LoopbackServer
from testbed.raw_http import read_request


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


class OneAnswerPerConnection(LoopbackServer):
    """Answers one request per connection, claiming keep-alive, then closes it."""

    def handle(self, connection: socket.socket, number: int) -> None:
        with connection.makefile("rb") as incoming:
            read_request(incoming)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                           b"Connection: keep-alive\r\n\r\nok")


def test_a_pooled_connection_the_upstream_closed_is_replaced_before_use():
    with OneAnswerPerConnection() as upstream, requests.Session() as session:
        session.mount("http://", PooledAdapter(max_retries=0))
        answers = []
        for _ in range(3):
            answers.append(session.get(upstream.url, timeout=5).text)
            time.sleep(0.05)  # the upstream's FIN arrives while the connection idles
    assert answers == ["ok"] * 3  # never sent on a closed connection, with no retry allowed
    assert upstream.connections == 3
