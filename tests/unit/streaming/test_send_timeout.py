"""SendWatch: a client that takes nothing for the timeout is dropped; one that reads is not."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
from gevent import socket as gsocket

from streaming.send_timeout import CHECKS, SendWatch, unsent_bytes, watch_sends

CHUNK = b"x" * 65536


def _pair() -> tuple[gsocket.socket, gsocket.socket]:
    """A connected TCP pair on loopback, with small buffers so writes soon block."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = gsocket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        raw, _ = listener.accept()
    server = gsocket.socket(fileno=raw.detach())
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return server, client


def _write_forever(sock) -> None:
    """What gunicorn does with an endless body: sendall each chunk until a write fails."""
    try:
        while True:
            sock.sendall(CHUNK)
    except OSError:
        pass


def test_a_client_that_stops_reading_is_dropped_after_the_timeout():
    server, client = _pair()
    writer = gevent.spawn(_write_forever, server)
    watch = SendWatch(server, 0.4)
    began = time.monotonic()
    writer.join(timeout=5)
    took = time.monotonic() - began
    assert writer.dead and watch.stalled
    assert 0.4 <= took < 0.4 * (1 + 2 / CHECKS) + 0.3
    server.close()
    client.close()


def test_a_slow_reader_that_keeps_taking_bytes_is_not_dropped():
    server, client = _pair()
    writer = gevent.spawn(_write_forever, server)
    watch = SendWatch(server, 0.4)
    received = 0
    deadline = time.monotonic() + 1.2  # three timeouts
    while time.monotonic() < deadline:
        received += len(client.recv(4096))
        gevent.sleep(0.05)
    assert not writer.dead and not watch.stalled
    assert received > 0
    watch.stop()
    writer.kill()
    server.close()
    client.close()


def test_an_idle_stream_with_everything_delivered_is_not_dropped():
    server, client = _pair()
    server.sendall(b"all of it")
    assert client.recv(100) == b"all of it"
    watch = SendWatch(server, 0.2)
    gevent.sleep(0.5)
    assert unsent_bytes(server) == 0 and not watch.stalled
    server.sendall(b"still usable")
    assert client.recv(100) == b"still usable"
    watch.stop()
    watch.stop()
    server.close()
    client.close()


def test_the_timeout_must_be_positive():
    server, client = _pair()
    with pytest.raises(ValueError, match="timeout"):
        SendWatch(server, 0)
    server.close()
    client.close()


def test_a_socket_that_is_not_tcp_is_not_watched():
    left, right = gsocket.socketpair()
    assert watch_sends(left, 1.0) is None
    left.close()
    right.close()
