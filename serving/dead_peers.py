"""Ending the streams of peers that vanished without a word: `DEAD_PEER_SECONDS`.

A phone that loses its network, or a NAT that forgets a mapping, sends no FIN and no RST. The
server's heartbeats then go into the kernel's send buffer, every write succeeds, and the stream
keeps its slot, mailbox and memory until TCP gives up retransmitting (`tcp_retries2`: about 15
minutes). The kernel can be told to give up sooner, per socket (tcp(7)):

- `TCP_USER_TIMEOUT` (milliseconds): data sent and not acknowledged for that long, or data that
  cannot go out because the peer's window stays shut, aborts the connection with `ETIMEDOUT`.
- `SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT`, for a connection with
  nothing in flight: after `idle` seconds without a segment from the peer it is probed every
  `interval`. With `TCP_USER_TIMEOUT` set, the kernel ends it at the first timer run that finds
  a probe out and nothing received for the user timeout (`tcp_keepalive_timer` in
  net/ipv4/tcp_timer.c); `TCP_KEEPCNT` gives the same end where the user timeout is absent.
  `keepalive()` picks `idle + count * interval == seconds`, so a silent idle peer ends at the
  setting too, and a live idle one costs one probe (and its ACK) every `idle` seconds.

`apply()` sets them on gunicorn's *listening* sockets, once per worker in `post_fork` (with
`REUSE_PORT=1` each worker's own, with `0` the shared one, set again by each worker). Linux
accepted sockets are clones of their listener and keep these options, so nothing runs per
connection (tests/unit/serving/test_dead_peers.py checks an accepted socket).

What ends the stream is the existing disconnect path: the kernel marks the socket failed and
readable, the disconnect watcher's peek gets `ETIMEDOUT` (streaming/disconnect.py), or the
next write fails; the stream ends and counts in `stream_disconnects_total`, for SSE, NDJSON
and WebSocket alike.

Deliberately accepted: a live client that reads nothing at all (a zero window) for the
setting is ended too, as `SEND_TIMEOUT_SECONDS` would end it; a reader stalled that long is
treated as gone. Behind nginx the peer is nginx: its own timeouts watch the clients.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

MINIMUM_SECONDS = 2
"""The shortest setting: one second idle and one probe out, in the kernel's whole seconds."""
MAXIMUM_SECONDS = 32767
"""The longest setting: the largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL` (MAX_TCP_KEEPIDLE)."""

_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def keepalive(seconds: int) -> tuple[int, int, int]:
    """`(idle, interval, count)` for keepalive probes ending a silent idle peer at `seconds`.

    Probes start at about half the setting (a live idle peer is probed that rarely) and ten
    fit in it at most: `idle + count * interval == seconds` in whole seconds.
    """
    if not MINIMUM_SECONDS <= seconds <= MAXIMUM_SECONDS:
        raise ValueError(f"seconds must be {MINIMUM_SECONDS}..{MAXIMUM_SECONDS}, got {seconds!r}")
    interval = max(1, seconds // 10)
    count = max(1, (seconds // 2) // interval)
    return seconds - count * interval, interval, count


def apply(listeners: Iterable[Any], seconds: int) -> int:
    """Set the options above on each TCP socket of `listeners` (gunicorn's `worker.sockets`
    or plain sockets); `seconds` 0 puts the kernel's defaults back. Returns how many it set."""
    done = 0
    for listener in listeners:
        sock = getattr(listener, "sock", listener)  # gunicorn wraps the socket
        if sock.family not in _STREAM_FAMILIES or sock.type != socket.SOCK_STREAM:
            continue  # a Unix socket has no peer that can vanish
        if seconds:
            idle, interval, count = keepalive(seconds)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, seconds * 1000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        done += 1
    return done
