"""dead_peers: the listener's options, what accepted sockets inherit, and DEAD_PEER_SECONDS."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from types import SimpleNamespace

import pytest

import config
from serving.dead_peers import MAXIMUM_SECONDS, MINIMUM_SECONDS, apply, keepalive

MAX_TCP_KEEPCNT = 127  # include/net/tcp.h
MAX_TCP_KEEPIDLE = 32767


def _options(sock: socket.socket) -> dict[str, int]:
    tcp = socket.IPPROTO_TCP
    return {"user_timeout_ms": sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
            "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "idle": sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
            "interval": sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
            "count": sock.getsockopt(tcp, socket.TCP_KEEPCNT)}


@contextmanager
def _listener(family: int = socket.AF_INET) -> Iterator[socket.socket]:
    with closing(socket.socket(family, socket.SOCK_STREAM)) as listener:
        listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        listener.listen()
        yield listener


@contextmanager
def _accepted(listener: socket.socket, **client_options: int
              ) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A loopback connection to `listener`: (the accepted socket, the client's)."""
    with closing(socket.socket(listener.family, socket.SOCK_STREAM)) as client:
        for name, value in client_options.items():
            client.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
        client.connect(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        with closing(accepted):
            yield accepted, client


@pytest.mark.parametrize("seconds", [2, 3, 5, 10, 45, 59, 600, 3600, MAXIMUM_SECONDS])
def test_keepalive_probes_end_a_silent_idle_peer_at_the_setting(seconds):
    idle, interval, count = keepalive(seconds)
    assert idle + count * interval == seconds
    assert 1 <= count <= min(10, MAX_TCP_KEEPCNT)
    assert 1 <= interval <= MAX_TCP_KEEPIDLE
    # A live idle peer is probed about every half of the setting, not more often.
    assert seconds / 2 <= idle <= MAX_TCP_KEEPIDLE


@pytest.mark.parametrize("seconds", [0, MINIMUM_SECONDS - 1, MAXIMUM_SECONDS + 1])
def test_keepalive_refuses_a_setting_the_kernel_cannot_keep(seconds):
    with pytest.raises(ValueError, match="seconds must be"):
        keepalive(seconds)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_accepted_sockets_inherit_the_listeners_options(family):
    with _listener(family) as listener:
        assert apply([listener], 45) == 1
        with _accepted(listener) as (accepted, _):
            idle, interval, count = keepalive(45)
            assert _options(accepted) == {"user_timeout_ms": 45_000, "keepalive": 1,
                                          "idle": idle, "interval": interval, "count": count}


def test_gunicorns_wrapped_listeners_are_set_and_unix_sockets_skipped(tmp_path):
    with _listener() as listener, closing(socket.socket(socket.AF_UNIX)) as unix:
        unix.bind(str(tmp_path / "unix.sock"))
        unix.listen()
        # gunicorn.sock.TCPSocket keeps the socket as `.sock`
        assert apply([SimpleNamespace(sock=listener), SimpleNamespace(sock=unix)], 3) == 1
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 3000


def test_zero_puts_the_kernels_defaults_back_on_a_listener_set_before():
    # A shared listener (REUSE_PORT=0) keeps its options across a reload that turns it off.
    with _listener() as listener:
        apply([listener], 45)
        apply([listener], 0)
        with _accepted(listener) as (accepted, _):
            options = _options(accepted)
            assert (options["user_timeout_ms"], options["keepalive"]) == (0, 0)


def test_without_the_setting_accepted_sockets_have_the_kernels_defaults():
    # What the test above and the next compare with: a plain listener sets neither.
    with _listener() as listener, _accepted(listener) as (accepted, _):
        options = _options(accepted)
        assert (options["user_timeout_ms"], options["keepalive"]) == (0, 0)


def test_a_peer_that_takes_nothing_is_ended_after_the_setting_too():
    """The documented side effect: a zero window for DEAD_PEER_SECONDS ends the connection,
    as a peer that acknowledges nothing would (tcp(7) TCP_USER_TIMEOUT)."""
    with _listener() as listener:
        apply([listener], MINIMUM_SECONDS)
        with _accepted(listener, SO_RCVBUF=4096) as (accepted, _client):
            accepted.setblocking(False)
            with pytest.raises(BlockingIOError):
                while True:  # the client never reads: its window shuts
                    accepted.send(b"x" * 65536)
            began = time.monotonic()
            failure = 0
            while not failure and time.monotonic() - began < 10 * MINIMUM_SECONDS:
                select.select([accepted], [], [accepted], 1)
                failure = accepted.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert failure == errno.ETIMEDOUT


@pytest.mark.parametrize(("raw", "value"), [("", 45), ("45", 45), ("0", 0), ("2", 2),
                                            (str(MAXIMUM_SECONDS), MAXIMUM_SECONDS)])
def test_dead_peer_seconds_setting(raw, value):
    assert config.server_settings({"DEAD_PEER_SECONDS": raw})["DEAD_PEER_SECONDS"] == value


@pytest.mark.parametrize("raw", ["1", str(MAXIMUM_SECONDS + 1), "4.5", "-3", "soon"])
def test_dead_peer_seconds_refuses_what_the_kernel_cannot_keep(raw):
    with pytest.raises(config.ConfigError, match=rf"DEAD_PEER_SECONDS.*{raw!r}"):
        config.server_settings({"DEAD_PEER_SECONDS": raw})
