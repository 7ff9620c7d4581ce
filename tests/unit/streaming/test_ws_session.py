"""Tests for streaming.ws_session: a Session over a real simple-websocket Server on a socketpair.

The peer is wsproto's frame layer on the other end, so every frame the session writes is parsed
as a browser would; metrics are recorded to check what a stream reports.
"""

from __future__ import annotations

import json

import gevent
import gevent.socket
import pytest
from simple_websocket import Server
from wsproto.frame_protocol import FrameProtocol, Opcode

from generation.params import parse_generation
from generation.ws_chat import ChatGeneration
from streaming.sources import PacedSource
from streaming.websocket import server_options, text_frames
from streaming.ws_session import BadMessage, Session, error_frame, parse_message
from tests.support.fakes import RecordingMetrics


class Broken:
    """A generation whose items fail after the first one."""

    def source(self) -> PacedSource:
        return PacedSource(self._items())

    def _items(self):
        yield 0.0, "first"
        raise RuntimeError("internal detail")

    def frames(self, batch: list) -> bytes:
        return text_frames(json.dumps({"type": "item", "item": item}) for item in batch)

    def finish(self) -> bytes:
        return b""


def handler_bug(body: dict):
    raise KeyError("internal detail")


STARTS = {"prompt": lambda body: ChatGeneration(parse_generation(body)),
          "boom": lambda body: Broken(), "crash": handler_bug}


class Peer:
    """The client end: masked frames out, the session's frames parsed in."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.proto = FrameProtocol(client=True, extensions=[])
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        head, rest = head.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        self.proto.receive_bytes(rest)

    def send(self, **message) -> None:
        self.sock.sendall(self.proto.send_data(json.dumps(message), True))

    def frame(self) -> tuple[Opcode, object]:
        while True:
            for frame in self.proto.received_frames():
                return frame.opcode, frame.payload
            data = self.sock.recv(65536)
            assert data, "the session closed the connection"
            self.proto.receive_bytes(data)

    def message(self) -> dict:
        opcode, payload = self.frame()
        assert opcode is Opcode.TEXT
        return json.loads(payload)

    def until_end(self) -> list[dict]:
        messages = [self.message()]
        while messages[-1]["type"] != "end":
            messages.append(self.message())
        return messages


def upgrade_environ(sock) -> dict:
    """What gunicorn hands a WebSocket upgrade request, with `sock` as the client socket."""
    return {"gunicorn.socket": sock, "HTTP_HOST": "test", "HTTP_UPGRADE": "websocket",
            "HTTP_CONNECTION": "Upgrade", "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
            "HTTP_SEC_WEBSOCKET_VERSION": "13"}


@pytest.fixture
def connection(stream_metrics):
    """(peer, session, serving greenlet, metrics) on a fresh socketpair."""
    server_sock, client_sock = gevent.socket.socketpair()
    ws = Server(upgrade_environ(server_sock), **server_options(None))
    metrics = stream_metrics
    session = Session(ws, STARTS, metrics=metrics, write_timeout=5)
    serving = gevent.spawn(session.serve)
    peer = Peer(client_sock)
    yield peer, session, serving, metrics
    client_sock.close()
    serving.join(timeout=5)
    server_sock.close()


def wait_for(predicate, timeout: float = 5) -> None:
    with gevent.Timeout(timeout):
        while not predicate():
            gevent.sleep(0.001)


def test_a_generation_reports_start_sends_and_end(connection):
    peer, session, _, metrics = connection
    peer.send(type="prompt", prompt="metrics", tokens=5, delay_ms=0)
    assert len(peer.until_end()) == 7
    wait_for(lambda: metrics.ends)
    assert metrics.starts == ["ws"]
    assert metrics.events == 7
    assert metrics.ends == [("ws", False)]
    assert session._running is None  # an idle connection holds no generation


def test_a_cancel_read_with_its_prompt_stops_it_before_any_token(connection):
    peer, _, _, _ = connection
    prompt = peer.proto.send_data(json.dumps({"type": "prompt", "prompt": "p", "tokens": 10_000,
                                              "delay_ms": 0}), True)
    cancel = peer.proto.send_data('{"type":"cancel"}', True)
    peer.sock.sendall(prompt + cancel)  # one read: both are handled before the first write
    assert peer.until_end() == [{"type": "end", "finish_reason": "cancelled", "tokens": 0}]


def test_a_client_leaving_mid_generation_kills_it_and_counts_a_disconnect(connection):
    peer, session, serving, metrics = connection
    peer.send(type="prompt", prompt="leaving", tokens=100, delay_ms=1000)
    assert peer.message()["type"] == "start"
    job, _ = session._running
    peer.sock.close()
    serving.join(timeout=5)
    assert serving.dead
    assert job.dead
    assert metrics.ends[-1] == ("ws", True)


def test_a_failing_generation_says_so_and_the_connection_stays_usable(connection, monkeypatch):
    monkeypatch.setattr(gevent.get_hub(), "exception_stream", None)
    peer, _, _, metrics = connection
    peer.send(type="boom")
    assert peer.message() == {"type": "item", "item": "first"}
    assert peer.message() == {"type": "error", "message": "the generation failed"}
    peer.send(type="prompt", prompt="after", tokens=1, delay_ms=0)
    assert peer.until_end()[-1]["finish_reason"] == "stop"
    assert ("ws", False) in metrics.ends


HANDLER_FAILED = {"type": "error", "message": "the server failed to handle a message"}


def assert_closed_with_1011(peer) -> None:
    opcode, payload = peer.frame()
    assert (opcode, payload[0]) == (Opcode.CLOSE, 1011)


def test_a_handler_that_raises_gets_an_error_message_and_a_1011_close(connection):
    peer, _, serving, _ = connection
    peer.send(type="crash")
    assert peer.message() == HANDLER_FAILED
    assert_closed_with_1011(peer)
    peer.sock.close()
    serving.join(timeout=5)
    assert serving.dead and serving.successful()


def test_a_handler_that_raises_mid_generation_ends_it_before_the_close(connection):
    peer, session, serving, metrics = connection
    peer.send(type="prompt", prompt="running", tokens=100, delay_ms=1000)
    assert peer.message()["type"] == "start"
    peer.send(type="crash")
    assert peer.message() == {"type": "end", "finish_reason": "cancelled", "tokens": 0}
    assert peer.message() == HANDLER_FAILED
    assert_closed_with_1011(peer)
    peer.sock.close()
    serving.join(timeout=5)
    assert session._running is None
    assert metrics.ends == [("ws", False)]  # the server's failure, not the client leaving


# --- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{}", "binary"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ("null", "JSON object"),
        ("{}", "unknown message type None"),
        ('{"type": "Prompt"}', "unknown message type 'Prompt'; expected one of: cancel, prompt"),
        ('{"type": ["prompt"]}', "unknown message type"),
    ],
)
def test_parse_message_rejects(data, match):
    with pytest.raises(BadMessage, match=match.replace("(", r"\(")):
        parse_message(data, ("prompt", "cancel"))


def test_parse_message_returns_type_and_body():
    assert parse_message('{"type": "prompt", "prompt": "x"}', ("prompt",)) == (
        "prompt", {"type": "prompt", "prompt": "x"})


class ThreadLike:
    """Stands for simple-websocket's default reader thread, without starting one."""

    def __init__(self, target) -> None:
        self.name = "reader"

    def start(self) -> None:
        pass


def test_a_server_without_the_inline_reader_is_refused():
    server_sock, client_sock = gevent.socket.socketpair()
    try:
        ws = Server(upgrade_environ(server_sock), thread_class=ThreadLike)
        with pytest.raises(RuntimeError, match="server_options"):
            Session(ws, STARTS, metrics=RecordingMetrics(), write_timeout=1)
    finally:
        server_sock.close()
        client_sock.close()


def test_error_frame():
    assert error_frame("bad") == text_frames(['{"type":"error","message":"bad"}'])
    assert error_frame("bad", "tokens") == text_frames(
        ['{"type":"error","message":"bad","param":"tokens"}'])
