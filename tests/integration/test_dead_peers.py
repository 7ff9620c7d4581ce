"""Peers that vanish without a word: their streams end within DEAD_PEER_SECONDS (+ a margin).

The client (testbed/stream_holder.py) runs in a network namespace of the test's own, joined to
the host by a veth pair (testbed/netns.py); the server binds the host's end of the pair. Setting
the namespace's end down cuts the client off with no FIN and no RST, as a phone losing its
network does: every packet just goes nowhere. The server's `streams_active` (read from the
host's side) must come back to its baseline within the setting plus a margin, each stream
counted in `stream_disconnects_total`, for SSE, NDJSON and WebSocket alike; streams with data
in flight (TCP_USER_TIMEOUT's case) and idle ones (the keepalive probes' case) both. A client
that is quiet but alive stays.

Those need root and iproute2's `ip`; they skip without them unless REQUIRE_NETNS=1 (CI), then
fail. The first test needs neither: the kernel's keepalive timer on the server's side of a
connection to a default server shows the setting reached every accepted socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from serving.dead_peers import keepalive
from testbed import netns
from testbed.live_server import ROOT, LiveServer
from tests.support.clients import metric, wait_until

DEAD_PEER_SECONDS = 3
MARGIN = 4
"""Seconds past the setting a stream may take to end: the kernel's timers run a little late,
the stream's greenlet has to run, and the gauge is written at the end of the loop's turn."""
TRANSPORTS = ("sse", "ndjson", "ws")
BUSY_MS = 100  # a token every 100 ms: data always in flight
# A token every twice the setting + 1 s: nothing in flight for longer than the setting, twice
# over, so only keepalive probes tell a live peer from a dead one.
QUIET_MS = (2 * DEAD_PEER_SECONDS + 1) * 1000
# Nothing else writes to the idle streams meanwhile.
ENV = {"DEAD_PEER_SECONDS": str(DEAD_PEER_SECONDS), "HEARTBEAT_SECONDS": "60",
       "WS_PING_SECONDS": "60", "WEB_CONCURRENCY": "2"}


@pytest.fixture
def link() -> Iterator[netns.Link]:
    reason = netns.unavailable()
    if reason is not None:
        if os.environ.get("REQUIRE_NETNS") == "1":
            pytest.fail(f"REQUIRE_NETNS=1 but no network namespace can be made: {reason}")
        pytest.skip(f"{reason} (CI runs as root with iproute2 and sets REQUIRE_NETNS=1)")
    with netns.Link() as made:
        yield made


@contextmanager
def serving(link: netns.Link, reuse_port: str = "1") -> Iterator[LiveServer]:
    server = LiveServer(host=link.host_address, env={**ENV, "REUSE_PORT": reuse_port})
    try:
        yield server.wait_ready()
        assert not server.blocking_reports()
    finally:
        server.stop()


class Holder:
    """testbed/stream_holder.py inside the namespace, with what it printed so far."""

    def __init__(self, link: netns.Link, server: LiveServer, delay_ms: int) -> None:
        command = link.command([sys.executable, "-m", "testbed.stream_holder",
                                "--url", server.url, "--delay-ms", str(delay_ms)])
        # `ip netns exec` execs the command: this pid is the holder's own.
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def records(self, transport: str) -> int:
        """How many records `transport`'s stream read, its first (`open`) included."""
        return sum(1 for line in self.lines if line.split(" ", 1)[0] == transport
                   and line.split(" ", 2)[1] in ("open", "record"))

    def ended(self) -> list[str]:
        return [line for line in self.lines if " ended" in line]

    def wait_open(self) -> None:
        try:
            wait_until(lambda: all(self.records(t) for t in TRANSPORTS) or self.ended(), 20)
        except AssertionError:
            raise AssertionError(f"streams not open; the holder printed {self.lines}") from None
        assert not self.ended(), self.lines

    def stop(self) -> None:
        # SIGKILL: nothing of the holder's own runs; once cut off its kernel sends nothing
        # that reaches the server either.
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        self.process.stdout.close()


@contextmanager
def holding(link: netns.Link, server: LiveServer, delay_ms: int) -> Iterator[Holder]:
    holder = Holder(link, server, delay_ms)
    try:
        holder.wait_open()
        yield holder
    finally:
        holder.stop()


def _active(server: LiveServer) -> dict[str, float]:
    return {t: metric(server.url, "streams_active", transport=t) for t in TRANSPORTS}


def _disconnects(server: LiveServer) -> dict[str, float]:
    return {t: metric(server.url, "stream_disconnects_total", transport=t) for t in TRANSPORTS}


USER_HZ = 100  # the clock ticks /proc/net/tcp counts timers in (jiffies_delta_to_clock_t)
KEEPALIVE_TIMER = 2  # /proc/net/tcp's "tr": 1 retransmit, 2 keepalive (net/ipv4/tcp_ipv4.c)


def _server_side_timer(server_port: int, client_port: int) -> tuple[int, float] | None:
    """(timer kind, seconds until it fires) of the server's socket of a loopback connection."""
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if (local, remote) == (server_port, client_port):
                kind, when = fields[5].split(":")
                return int(kind, 16), int(when, 16) / USER_HZ
    return None


def test_every_accepted_connection_has_the_keepalive_timer_of_the_default_setting(server):
    # `server` runs the defaults: DEAD_PEER_SECONDS 45. Without it the timer is off (kind 0).
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
        client_port = client.getsockname()[1]
        wait_until(lambda: _server_side_timer(server.port, client_port) is not None, 5)
        kind, seconds = _server_side_timer(server.port, client_port)
    idle = keepalive(45)[0]
    assert kind == KEEPALIVE_TIMER and 0 < seconds <= idle, (kind, seconds)


@pytest.mark.parametrize("reuse_port", ["1", "0"], ids=["reuse-port", "shared-socket"])
def test_streams_of_a_peer_cut_off_without_a_word_end_within_the_setting(link, reuse_port):
    with serving(link, reuse_port) as server:
        baseline, gone_before = _active(server), _disconnects(server)
        with holding(link, server, BUSY_MS) as busy, holding(link, server, QUIET_MS) as quiet:
            wait_until(lambda: _active(server) == {t: baseline[t] + 2 for t in TRANSPORTS}, 10)
            link.down()
            cut_at = time.monotonic()
            ended_after: dict[str, float] = {}

            def all_ended() -> bool:
                for transport, value in _active(server).items():
                    if value == baseline[transport]:
                        ended_after.setdefault(transport, time.monotonic() - cut_at)
                return len(ended_after) == len(TRANSPORTS)

            try:
                wait_until(all_ended, DEAD_PEER_SECONDS + MARGIN, interval=0.05)
            except AssertionError:
                raise AssertionError(f"streams still open {DEAD_PEER_SECONDS + MARGIN} s after "
                                     f"the cut: {_active(server)} (baseline {baseline}; ended: "
                                     f"{ended_after})") from None
            print(f"\n[{reuse_port=}] all streams of a transport ended after the cut (s): "
                  + ", ".join(f"{t} {s:.1f}" for t, s in sorted(ended_after.items())))
            # The client saw none of it: the server's end was the kernel's, not a FIN or RST.
            assert not busy.ended() and not quiet.ended(), busy.lines + quiet.lines
        assert _disconnects(server) == {t: gone_before[t] + 2 for t in TRANSPORTS}


def test_a_quiet_client_that_is_alive_is_not_dropped(link):
    with serving(link) as server:
        baseline, gone_before = _active(server), _disconnects(server)
        with holding(link, server, QUIET_MS) as quiet:
            wait_until(lambda: _active(server) == {t: baseline[t] + 1 for t in TRANSPORTS}, 10)
            opened = {t: quiet.records(t) for t in TRANSPORTS}
            # Two more records each: between them more than twice the setting of silence.
            wait_until(lambda: all(quiet.records(t) >= opened[t] + 2 for t in TRANSPORTS),
                       2 * QUIET_MS / 1000 + MARGIN, interval=0.1)
            assert not quiet.ended(), quiet.lines
            assert _active(server) == {t: baseline[t] + 1 for t in TRANSPORTS}
            # Checked before the holder goes: its FIN would count.
            assert _disconnects(server) == gone_before
