"""Tests for streaming.websocket: frames as wsproto reads them, one writer, the inline reader."""

from __future__ import annotations

import socket
import time

import gevent
import gevent.exceptions
import gevent.socket
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from streaming.websocket import (
    BINARY,
    LINGER_SECONDS,
    MAX_MESSAGE_BYTES,
    TEXT,
    InlineReader,
    LockedSocket,
    MessageSignal,
    WriteTimeout,
    encode_frames,
    frame_header,
    server_options,
    text_frames,
)


def parse(data: bytes) -> list[tuple[Opcode, bytes | str]]:
    """Server frames as a client's wsproto reads them; raises on anything malformed."""
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(data)
    frames = []
    for frame in proto.received_frames():
        assert frame.frame_finished and frame.message_finished
        frames.append((frame.opcode, frame.payload))
    return frames


# --- frames -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_header_length_boundaries(length, expected):
    assert frame_header(TEXT, length) == expected


def test_binary_header_has_the_binary_opcode():
    assert frame_header(BINARY, 3) == b"\x82\x03"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=70_000), max_size=4))
def test_binary_frames_round_trip_through_wsproto(payloads):
    assert parse(encode_frames(payloads, BINARY)) == [(Opcode.BINARY, p) for p in payloads]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=5))
def test_text_frames_round_trip_through_wsproto(texts):
    assert parse(text_frames(texts)) == [(Opcode.TEXT, t) for t in texts]


# --- the one writer -----------------------------------------------------------------------


def slow_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair with small kernel buffers, so a large write blocks half done."""
    left, right = gevent.socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return left, right


def read_slowly(sock, until: int) -> bytes:
    data = bytearray()
    while len(data) < until:
        gevent.sleep(0.001)
        chunk = sock.recv(8192)
        if not chunk:
            break
        data += chunk
    return bytes(data)


BIG = bytes(range(256)) * 1024  # 256 KB: far more than the buffers hold
SMALL = [text_frames([f"ping {i}"]) for i in range(10)]


def write_concurrently(send) -> tuple[bytes, list[BaseException]]:
    """A large frame from one greenlet while another sends small frames: what arrived, and
    what the writers raised."""
    left, right = slow_pair()
    big = encode_frames([BIG], BINARY)

    def small_writer() -> None:
        for frame in SMALL:
            send(left, frame)
            gevent.sleep(0.002)

    try:
        writers = [gevent.spawn(send, left, big), gevent.spawn(small_writer)]
        reader = gevent.spawn(read_slowly, right, len(big) + sum(map(len, SMALL)))
        gevent.joinall(writers)
        left.shutdown(socket.SHUT_WR)  # the reader stops at EOF if writers failed
        data = reader.get(timeout=30)
    finally:
        left.close()
        right.close()
    return data, [w.exception for w in writers if w.exception is not None]


def test_locked_socket_keeps_concurrent_frames_whole():
    lockeds: dict = {}

    def send(sock, data):
        lockeds.setdefault(sock, LockedSocket(sock, write_timeout=30)).send(data)

    data, errors = write_concurrently(send)
    assert errors == []
    frames = parse(data)
    assert (Opcode.BINARY, BIG) in frames
    assert [p for op, p in frames if op is Opcode.TEXT] == [f"ping {i}" for i in range(10)]


def test_unlocked_writers_break_the_stream(monkeypatch):
    """The control for the test above: without the lock, a second writer either lands inside
    the first one's frame or (gevent's own guard) fails while the first waits to write."""
    monkeypatch.setattr(gevent.get_hub(), "exception_stream", None)  # expected: not news
    data, errors = write_concurrently(lambda sock, frame: sock.sendall(frame))
    if errors:
        assert all(isinstance(e, gevent.exceptions.ConcurrentObjectUseError) for e in errors)
        return
    try:
        frames = parse(data)
    except Exception:  # wsproto's ParseFailed, or a frame cut short
        return
    assert (Opcode.BINARY, BIG) not in frames


def test_a_write_the_peer_never_takes_times_out_and_shuts_the_socket_down():
    left, right = slow_pair()
    locked = LockedSocket(left, write_timeout=0.2)
    waiting = gevent.spawn(lambda: gevent.sleep(0.05) or locked.send(b"second"))
    with pytest.raises(WriteTimeout):
        locked.send(encode_frames([BIG], BINARY))
    assert isinstance(WriteTimeout(), OSError)  # what the reader loop treats as a disconnect
    with pytest.raises(OSError):
        waiting.get(timeout=5)
    with pytest.raises(OSError):
        left.sendall(b"more")  # shut down: the connection is over
    left.close()
    right.close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A real TCP connection (a Unix socketpair has no resets to show)."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gevent.socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return server, client


@pytest.mark.parametrize("linger", [True, False])
def test_close_lingers_so_unread_input_does_not_reset_the_last_frame(linger):
    server, client = tcp_pair()
    try:
        client.sendall(b"unread" * 20_000)  # input the server never reads
        gevent.sleep(0.05)
        server.sendall(b"last frame")
        if linger:
            closing = gevent.spawn(LockedSocket(server, write_timeout=1).close)
        else:
            server.close()  # the control: what simple-websocket's own close does
        gevent.sleep(0.05)
        if linger:
            assert client.recv(100) == b"last frame"
            client.sendall(b"close reply")  # the peer may still answer
            client.close()
            closing.get(timeout=5)
        else:
            assert client.recv(100) == b"last frame"
            with pytest.raises(ConnectionResetError):  # the kernel answered with a reset
                client.sendall(b"close reply")
    finally:
        server.close()
        client.close()


def test_close_gives_up_lingering_on_a_peer_that_never_closes():
    server, client = tcp_pair()
    try:
        began = time.monotonic()
        LockedSocket(server, write_timeout=1).close()
        assert time.monotonic() - began == pytest.approx(LINGER_SECONDS, abs=1)
        assert client.recv(10) == b""  # it got our FIN
    finally:
        client.close()


def test_send_returns_the_whole_length_like_socket_send():
    left, right = gevent.socket.socketpair()
    locked = LockedSocket(left, write_timeout=None)
    assert locked.send(b"abc") == 3
    assert right.recv(10) == b"abc"
    assert locked.fileno() == left.fileno()
    locked.close()
    right.close()


# --- the inline reader ----------------------------------------------------------------------


def test_inline_reader_runs_its_target_only_when_asked():
    ran = []
    reader = InlineReader(target=lambda: ran.append(True))
    reader.name = reader.name.replace("(_thread)", "(x)")  # what simple-websocket does
    reader.start()
    assert ran == []
    reader.run()
    reader.run()  # the loop runs once; the reference to it is gone
    assert ran == [True]


def test_message_signal_calls_back_on_set_and_never_blocks():
    signal = MessageSignal()
    calls = []
    signal.set()  # before anyone listens
    signal.on_set = lambda: calls.append(signal.is_set())
    signal.clear()
    assert signal.wait(0) is False
    signal.set()
    assert calls == [True]
    assert signal.wait(0) is True
    signal.clear()
    with pytest.raises(RuntimeError, match="receive\\(timeout=0\\)"):
        signal.wait(1)


def test_server_options_turn_on_keepalive_the_limit_and_the_inline_reader():
    options = server_options(25.0)
    assert options == {"ping_interval": 25.0, "max_message_size": 64 * 1024,
                       "thread_class": InlineReader, "event_class": MessageSignal}
    assert MAX_MESSAGE_BYTES == 65536
