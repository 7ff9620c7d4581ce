"""guard_sends: a client that takes no write for the timeout is dropped; one that reads is not."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
from gevent import socket as gsocket

from streaming.send_timeout import CHECKS, SendWatch, guard_sends

CHUNK = b"x" * 65536


def _pair() -> tuple[gsocket.socket, gsocket.socket]:
    server, client = gsocket.socketpair()
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return server, client


def _endless():
    closed = []

    def chunks():
        try:
            while True:
                yield CHUNK
        finally:
            closed.append(True)

    return chunks(), closed


def _serve(body, sock) -> None:
    """What gunicorn does with a WSGI body: write each chunk, then close the body."""
    try:
        for chunk in body:
            sock.sendall(chunk)
    except OSError:
        pass
    finally:
        body.close()


def test_a_client_that_stops_reading_is_dropped_after_the_timeout():
    server, client = _pair()
    chunks, closed = _endless()
    began = time.monotonic()
    gevent.spawn(_serve, guard_sends(chunks, server, 0.4), server).join(timeout=5)
    took = time.monotonic() - began
    assert closed == [True]
    assert 0.4 <= took < 0.4 * (1 + 1 / CHECKS) + 0.3
    server.close()
    client.close()


def test_a_slow_reader_that_keeps_taking_writes_is_not_dropped():
    server, client = _pair()
    chunks, _closed = _endless()
    serving = gevent.spawn(_serve, guard_sends(chunks, server, 0.4), server)
    received = 0
    deadline = time.monotonic() + 1.2  # three timeouts
    while time.monotonic() < deadline:
        received += len(client.recv(65536))
        gevent.sleep(0.01)
    assert not serving.dead
    assert received > 3 * len(CHUNK)
    serving.kill()
    server.close()
    client.close()


def test_closing_the_guarded_body_closes_the_inner_one_and_stops_the_timer():
    server, client = _pair()
    chunks, closed = _endless()
    body = guard_sends(chunks, server, 0.1)
    assert next(body) == CHUNK
    body.close()
    assert closed == [True]
    gevent.sleep(0.2)
    server.sendall(b"still usable")  # the timer did not shut the socket after the close
    assert client.recv(100) == b"still usable"
    server.close()
    client.close()


def test_the_timeout_must_be_positive():
    server, client = _pair()
    with pytest.raises(ValueError, match="timeout"):
        SendWatch(server, 0)
    server.close()
    client.close()
