"""Faults against the real server; after each, nothing is left behind and the next client is
served normally (`worker_state.assert_recovered`: streams_active, worker fds and RSS).

- a client that vanishes without a FIN: its socket stops reading (a small SO_RCVBUF, never read)
  and is dropped after SEND_TIMEOUT_SECONDS, while its producer waits (backpressure);
- the LLM upstream stalling and dying mid-stream, behind the proxy;
- 300 clients connecting, reading a little and dropping, in waves.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import gevent
import pytest
import requests
from gevent import socket as gsocket

from llm.relay import BROKEN, STALLED
from llm.wire import error_event
from services import TRANSPORTS
from testbed.live_server import LiveServer
from testbed.raw_http import chunk
from tests.support.clients import metric, wait_until
from tests.support.fake_upstream import FIRST_EVENT, SSE_HEAD, FakeUpstream
from tests.support.worker_state import WorkerState, assert_recovered

SEND_TIMEOUT = 1.0
PIECE = chunk(b"data: " + b"x" * 16_000 + b"\n\n")


class FloodingUpstream(FakeUpstream):
    """FakeUpstream plus `/v1/flood`: an event stream that never ends, as fast as it is read."""

    def __init__(self) -> None:
        super().__init__()
        self.flooded = 0  # bytes the proxy took
        self.flood_ended_at: float | None = None

    def _flood(self, sock: socket.socket, target: str) -> bool:
        sock.sendall(SSE_HEAD)
        try:
            while True:
                sock.sendall(PIECE)
                self.flooded += len(PIECE)
        except OSError:  # the proxy closed the upstream connection
            self.flood_ended_at = time.monotonic()
        return False


@pytest.fixture(scope="module")
def flood() -> Iterator[FloodingUpstream]:
    with FloodingUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def guarded(start_server, flood) -> LiveServer:
    """A server that drops non-reading clients after a second, proxying to the flood."""
    return start_server(env={"SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT),
                             "UPSTREAM_BASE_URL": flood.url + "/v1"})


def _stalled_client(server: LiveServer, request: bytes) -> socket.socket:
    """A client that sends `request`, reads the first bytes and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(request)
    assert sock.recv(100)
    return sock


def _plateau(read, settle: float = 0.5, timeout: float = 15) -> float:
    """The value `read()` settles at (unchanged for `settle` seconds)."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError(f"still changing after {timeout}s: {last}")


def test_a_client_that_stops_reading_is_dropped_and_its_upstream_closed(guarded, flood):
    baseline = WorkerState.of(guarded)
    cut_before = metric(guarded.url, "stream_disconnects_total", transport="proxy")
    flood.flooded, flood.flood_ended_at = 0, None
    stalled = _stalled_client(guarded, b"GET /v1/flood HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        stalled_at = time.monotonic()
        wait_until(lambda: flood.flood_ended_at is not None, 15, interval=0.05)
        # Buffers fill (the kernel's, at most 128 KiB queued in the worker), the client takes
        # nothing for SEND_TIMEOUT, the proxy drops it and closes the upstream connection.
        assert flood.flood_ended_at - stalled_at > SEND_TIMEOUT
        assert flood.flooded < 64 * 1024 * 1024, flood.flooded
        assert metric(guarded.url, "stream_disconnects_total", transport="proxy") == cut_before + 1
    finally:
        stalled.close()
    assert_recovered(guarded, baseline)


def test_the_producer_waits_and_memory_stays_flat_while_a_client_does_not_read(guarded, flood):
    # A longer timeout here, so the stalled stream can be watched while it waits.
    server = LiveServer(env={"SEND_TIMEOUT_SECONDS": "6",
                             "UPSTREAM_BASE_URL": flood.url + "/v1"}).wait_ready()
    try:
        flood.flooded, flood.flood_ended_at = 0, None
        baseline = WorkerState.of(server)
        stalled = _stalled_client(server, b"GET /v1/flood HTTP/1.1\r\nHost: x\r\n\r\n")
        began = time.monotonic()
        taken = _plateau(lambda: flood.flooded)  # the upstream is not read any more
        held = WorkerState.of(server)
        assert time.monotonic() - began < 6, "the plateau came only with the drop"
        assert flood.flood_ended_at is None  # waiting, not cut yet
        assert held.rss_kb - baseline.rss_kb < 4 * 1024, (baseline, held, taken)
        wait_until(lambda: flood.flood_ended_at is not None, 15, interval=0.05)
        stalled.close()
        assert_recovered(server, baseline)
    finally:
        server.stop()


def test_a_websocket_client_that_stops_reading_is_dropped(guarded):
    baseline = WorkerState.of(guarded)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    stalled = _stalled_client(guarded, (
        "GET /ws/tts HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        speak = json.dumps({"type": "speak", "text": "x" * 4000, "realtime": False}).encode()
        mask = b"\x00\x00\x00\x00"  # clients must mask; a zero mask leaves the bytes as they are
        stalled.sendall(bytes([0x81, 0xFE]) + len(speak).to_bytes(2, "big") + mask + speak)
        # 7.7 MB of audio against a client that never reads: dropped a second after it stalls.
        assert_recovered(guarded, baseline, timeout=20)
    finally:
        stalled.close()


# --- the LLM upstream stalling and dying mid-stream -------------------------------------------

UPSTREAM_FAULTS = 20  # of each kind, at once


@pytest.fixture(scope="module")
def impatient(start_server, flood) -> LiveServer:
    """A proxy in front of the scripted upstream that gives up on a 0.5 s gap between bytes."""
    return start_server(env={"UPSTREAM_BASE_URL": flood.url + "/v1",
                             "UPSTREAM_READ_TIMEOUT": "0.5"})


def _proxied_body(server: LiveServer, path: str) -> bytes:
    with requests.get(server.url + path, stream=True, timeout=30) as response:
        assert response.status_code == 200
        return response.raw.read()


@pytest.mark.parametrize(("script", "failure"), [("stall", STALLED), ("die", BROKEN)])
def test_an_upstream_that_stalls_or_dies_mid_stream_ends_each_stream_in_band(
        impatient, script, failure):
    _proxied_body(impatient, f"/v1/{script}?warm-up")
    baseline = WorkerState.of(impatient)
    bodies: list[bytes] = [b""] * UPSTREAM_FAULTS

    def one(index: int) -> None:
        bodies[index] = _proxied_body(impatient, f"/v1/{script}?{index}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(UPSTREAM_FAULTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for body in bodies:
        # What arrived before the fault, intact, then OpenAI's error event and DONE.
        assert body.startswith(FIRST_EVENT), body
        assert body.endswith(error_event(failure)), body
    assert_recovered(impatient, baseline)


# --- 300 clients connecting, reading a little and dropping, in waves --------------------------

WAVE, WAVES = 300, 3
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
CHAT_BODY = json.dumps({"prompt": "wave", "tokens": 1000, "delay_ms": 20}).encode()
PROXY_BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "wave"}],
                         "stream": True, "max_tokens": 1000, "delay_ms": 20}).encode()
WAVE_REQUESTS = [
    b"GET /sse/chat?prompt=wave&tokens=1000&delay_ms=20 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/chat HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(CHAT_BODY), CHAT_BODY),
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(PROXY_BODY), PROXY_BODY),
    b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
]
WS_PROMPT = json.dumps({"type": "prompt", "prompt": "wave", "tokens": 1000, "delay_ms": 20}
                       ).encode()


def _visit(port: int, index: int) -> int:
    """One client: connect, ask, read a little, then drop (a FIN, or an RST for every third)."""
    request = WAVE_REQUESTS[index % len(WAVE_REQUESTS)]
    sock = gsocket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(request)
        if request.startswith(b"GET /ws/"):
            assert b" 101 " in sock.recv(4096)
            sock.sendall(bytes([0x81, 0x80 | len(WS_PROMPT), 0, 0, 0, 0]) + WS_PROMPT)
        received = 0
        while received < 600:  # the headers and a few events
            data = sock.recv(4096)
            assert data, f"closed early: {request[:30]!r}"
            received += len(data)
        if index % 3 == 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return received
    finally:
        sock.close()


def _disconnects(server: LiveServer) -> float:
    return sum(metric(server.url, "stream_disconnects_total", transport=t) for t in TRANSPORTS)


def _wave(server: LiveServer) -> None:
    visits = [gevent.spawn(_visit, server.port, i) for i in range(WAVE)]
    gevent.joinall(visits, timeout=120)
    failed = {index: repr(visit.exception) if visit.ready() else "unfinished after 120 s"
              for index, visit in enumerate(visits) if not visit.successful()}
    assert not failed, f"{len(failed)} of {WAVE} visits failed: {dict(list(failed.items())[:5])}"


def test_waves_of_clients_that_read_a_little_and_drop_leave_nothing_behind(start_server):
    server = start_server()
    _wave(server)  # warm-up: the heap grows once to hold 300 connections, and stays grown
    baseline = WorkerState.settled(server)
    for _ in range(WAVES):
        cut_before = _disconnects(server)
        _wave(server)
        assert_recovered(server, baseline, timeout=30)
        # Every client had a stream running when it dropped (a proxied one counts twice: the
        # proxy's, and the mock upstream's that the proxy then cut).
        assert _disconnects(server) - cut_before == WAVE + WAVE // len(WAVE_REQUESTS)
