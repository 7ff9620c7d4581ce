"""/ws/chat and /ws/tts against the real gunicorn server, with real clients.

`websocket-client` is the ordinary client (it answers pings by itself); `RawClient`, a socket
driven by wsproto, is the client that answers nothing unless told to, reads at its own pace and
checks every byte of framing.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from generation import demo_model, tts
from tests.support.clients import metric, wait_until
from tests.support.ws_clients import GENEROUS, connect, receive, send, until_end, ws_url


def assert_silent(ws: websocket.WebSocket, seconds: float = 0.3) -> None:
    ws.settimeout(seconds)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()
    ws.settimeout(GENEROUS)


def prompt(ws: websocket.WebSocket, text: str, tokens: int, delay_ms: int = 0) -> None:
    send(ws, type="prompt", prompt=text, tokens=tokens, delay_ms=delay_ms)


class RawClient:
    """A WebSocket client on a plain socket, with wsproto for the protocol and nothing automatic."""

    def __init__(self, server, path: str, headers: list[tuple[str, str]] | None = None,
                 rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(GENEROUS)
        self.sock.connect(("127.0.0.1", server.port))
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.conn.send(Request(host=f"127.0.0.1:{server.port}", target=path,
                                                 extra_headers=headers or [])))
        self.handshake = self.next_event()

    def next_event(self, read: int = 65536):
        """The next protocol event; None once the server closed the TCP connection."""
        while True:
            for event in self.conn.events():
                return event
            data = self.sock.recv(read)
            if not data:
                return None
            self.conn.receive_data(data)

    def send_text(self, text: str) -> None:
        self.sock.sendall(self.conn.send(TextMessage(data=text)))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def pinging(start_server):
    """A server that pings every 0.4 s, so keepalive shows within a test (a shorter interval
    leaves a client on a loaded machine no time to answer)."""
    return start_server(env={"WS_PING_SECONDS": "0.4"})


# --- /ws/chat ---------------------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_full_generation(server, delay_ms):
    with connect(server) as ws:
        prompt(ws, "héllo wörld 🚀", 40, delay_ms)
        messages = until_end(ws)
    assert messages[0] == {"type": "start", "model": "demo", "tokens": 40}
    tokens = messages[1:-1]
    assert [t["index"] for t in tokens] == list(range(40))
    assert [t["text"] for t in tokens] == list(demo_model.generate("héllo wörld 🚀", 40))
    assert all(t["type"] == "token" for t in tokens)
    assert messages[-1] == {"type": "end", "finish_reason": "stop", "tokens": 40}


def test_tokens_default_to_fifty(server):
    with connect(server) as ws:
        send(ws, type="prompt", prompt="defaults", delay_ms=0)
        messages = until_end(ws)
    assert messages[-1] == {"type": "end", "finish_reason": "stop", "tokens": 50}
    assert len(messages) == 52


def test_cancel_midway_then_a_second_prompt(server):
    with connect(server) as ws:
        prompt(ws, "to be cancelled", 500, delay_ms=20)
        assert receive(ws)["type"] == "start"
        for index in range(3):
            assert receive(ws) == {"type": "token", "index": index,
                                   "text": list(demo_model.generate("to be cancelled", 3))[index]}
        send(ws, type="cancel")
        rest = until_end(ws)
        sent = 3 + len(rest) - 1
        assert all(m["type"] == "token" for m in rest[:-1])
        assert rest[-1] == {"type": "end", "finish_reason": "cancelled", "tokens": sent}
        assert sent < 500
        assert_silent(ws)  # nothing after the cancelled end
        prompt(ws, "second", 5)
        messages = until_end(ws)
    assert messages[0] == {"type": "start", "model": "demo", "tokens": 5}
    assert [m["text"] for m in messages[1:-1]] == list(demo_model.generate("second", 5))
    assert messages[-1]["finish_reason"] == "stop"


def test_cancel_does_not_wait_for_a_long_token_interval(server):
    with connect(server) as ws:
        prompt(ws, "slow", 3, delay_ms=10_000)
        assert receive(ws)["type"] == "start"
        ws.settimeout(5)  # half the token interval: a cancel that waited for it would time out
        send(ws, type="cancel")
        assert receive(ws) == {"type": "end", "finish_reason": "cancelled", "tokens": 0}


def test_cancel_and_prompt_back_to_back(server):
    with connect(server) as ws:
        prompt(ws, "first", 1000, delay_ms=10)
        assert receive(ws)["type"] == "start"
        send(ws, type="cancel")
        prompt(ws, "next", 3)
        first = until_end(ws)
        second = until_end(ws)
    assert first[-1]["finish_reason"] == "cancelled"
    assert [m["type"] for m in second] == ["start", "token", "token", "token", "end"]
    assert second[-1]["finish_reason"] == "stop"


def test_prompt_while_running_is_refused_and_the_generation_goes_on(server):
    with connect(server) as ws:
        prompt(ws, "busy", 20, delay_ms=20)
        assert receive(ws)["type"] == "start"
        prompt(ws, "intruder", 5)
        messages = until_end(ws)
    errors = [m for m in messages if m["type"] == "error"]
    assert len(errors) == 1
    assert "already running" in errors[0]["message"]
    tokens = [m["text"] for m in messages if m["type"] == "token"]
    assert tokens == list(demo_model.generate("busy", 20))
    assert messages[-1] == {"type": "end", "finish_reason": "stop", "tokens": 20}


def test_cancel_with_nothing_running_is_ignored(server):
    with connect(server) as ws:
        send(ws, type="cancel")
        assert_silent(ws)
        prompt(ws, "after", 2)
        assert receive(ws)["type"] == "start"


@pytest.mark.parametrize(
    ("frame", "param"),
    [
        pytest.param("not json", None, id="not-json"),
        pytest.param("[1, 2]", None, id="array"),
        pytest.param('"prompt"', None, id="string"),
        pytest.param("{}", None, id="no-type"),
        pytest.param('{"type": "dance"}', None, id="unknown-type"),
        pytest.param('{"type": 7}', None, id="type-not-string"),
        pytest.param('{"type": "prompt"}', "prompt", id="no-prompt"),
        pytest.param('{"type": "prompt", "prompt": 5}', "prompt", id="prompt-number"),
        pytest.param('{"type": "prompt", "prompt": ""}', "prompt", id="prompt-empty"),
        pytest.param(json.dumps({"type": "prompt", "prompt": "x" * 4001}), "prompt",
                     id="prompt-too-long"),
        pytest.param('{"type": "prompt", "prompt": "x", "tokens": "5"}', "tokens",
                     id="tokens-string"),
        pytest.param('{"type": "prompt", "prompt": "x", "tokens": 1.5}', "tokens",
                     id="tokens-float"),
        pytest.param('{"type": "prompt", "prompt": "x", "tokens": true}', "tokens",
                     id="tokens-bool"),
        pytest.param('{"type": "prompt", "prompt": "x", "tokens": 0}', "tokens", id="tokens-0"),
        pytest.param('{"type": "prompt", "prompt": "x", "tokens": 10001}', "tokens",
                     id="tokens-10001"),
        pytest.param('{"type": "prompt", "prompt": "x", "delay_ms": -1}', "delay_ms",
                     id="delay-negative"),
        pytest.param('{"type": "prompt", "prompt": "x", "delay_ms": 10001}', "delay_ms",
                     id="delay-10001"),
        pytest.param(b'{"type": "prompt", "prompt": "x"}', None, id="binary-frame"),
    ],
)
def test_bad_input_gets_an_error_and_the_connection_stays_usable(server, frame, param):
    with connect(server) as ws:
        if isinstance(frame, bytes):
            ws.send_binary(frame)
        else:
            ws.send(frame)
        error = receive(ws)
        assert error["type"] == "error"
        assert isinstance(error["message"], str) and error["message"]
        assert error.get("param") == param
        prompt(ws, "still here", 2)
        assert until_end(ws)[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize("size", [64 * 1024 + 1, 200_000])
def test_a_message_over_64_kib_closes_with_1009(server, size):
    with connect(server) as ws:
        ws.send("x" * (64 * 1024))  # at the limit: an ordinary bad message
        assert receive(ws)["type"] == "error"
        ws.send("x" * size)
        # Also answers the close: with the rest of the message still unread on the server, a
        # plain close there would have reset the connection under this reply.
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1009


def test_plain_http_request_to_a_websocket_route_is_400(server):
    response = requests.get(server.url + "/ws/chat", timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"


def test_permessage_deflate_is_declined(server):
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    client = RawClient(server, "/ws/chat", headers=offer)
    try:
        assert isinstance(client.handshake, AcceptConnection)
        assert client.handshake.extensions == []
        client.send_text(json.dumps({"type": "prompt", "prompt": "plain", "tokens": 1}))
        assert isinstance(client.next_event(), TextMessage)
    finally:
        client.close()


# --- origin check -----------------------------------------------------------------------


def test_same_origin_is_allowed(server):
    with connect(server, origin=server.url) as ws:
        prompt(ws, "same origin", 1)
        assert receive(ws)["type"] == "start"


def test_no_origin_is_allowed(server):
    with connect(server, suppress_origin=True) as ws:
        prompt(ws, "no origin", 1)
        assert receive(ws)["type"] == "start"


@pytest.mark.parametrize("origin", ["http://evil.example", "null",
                                    "http://127.0.0.1.evil.example"])
def test_other_origin_is_refused_with_403_before_the_upgrade(server, origin):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url(server, "/ws/chat"), timeout=GENEROUS, origin=origin)
    assert refused.value.status_code == 403
    client = RawClient(server, "/ws/tts", headers=[("Origin", origin)])
    try:
        assert isinstance(client.handshake, RejectConnection)
        assert client.handshake.status_code == 403
        assert ("upgrade", "websocket") not in [(k.lower(), v.lower()) for k, v in
                                                 ((k.decode(), v.decode())
                                                  for k, v in client.handshake.headers)]
    finally:
        client.close()


def test_listed_origin_is_allowed(start_server):
    listed = start_server(env={"ALLOWED_ORIGINS": "http://other.example, http://good.example"})
    with connect(listed, origin="http://good.example") as ws:
        prompt(ws, "listed", 1)
        assert receive(ws)["type"] == "start"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url(listed, "/ws/chat"), timeout=GENEROUS,
                                    origin="http://bad.example")
    assert refused.value.status_code == 403


# --- disconnects and keepalive ------------------------------------------------------------


def test_vanished_client_stops_its_generation(start_server):
    own = start_server()  # its own server, so no other test's streams move the gauge
    before = metric(own.url, "streams_active", transport="ws")
    gone_before = metric(own.url, "stream_disconnects_total", transport="ws")
    ws = websocket.create_connection(ws_url(own, "/ws/chat"), timeout=GENEROUS)
    try:
        prompt(ws, "vanishing", 10_000, delay_ms=50)
        assert receive(ws)["type"] == "start"
        wait_until(lambda: metric(own.url, "streams_active", transport="ws") == before + 1, 5)
    finally:
        ws.shutdown()  # the socket goes, without a close frame
    wait_until(lambda: metric(own.url, "streams_active", transport="ws") == before, 1)
    assert metric(own.url, "stream_disconnects_total", transport="ws") == gone_before + 1


def test_server_pings_and_a_client_that_answers_stays(pinging):
    with connect(pinging) as ws:
        pings = 0
        began = time.monotonic()
        while pings < 4:  # websocket-client answers each with a pong
            opcode, _ = ws.recv_data_frame(control_frame=True)
            pings += opcode == websocket.ABNF.OPCODE_PING
        assert time.monotonic() - began > 0.8  # several intervals went by
        prompt(ws, "kept alive", 3)
        messages = []
        while not messages or messages[-1]["type"] != "end":
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                messages.append(json.loads(frame.data))
    assert messages[-1] == {"type": "end", "finish_reason": "stop", "tokens": 3}


def test_a_client_that_does_not_answer_pings_is_dropped(pinging):
    client = RawClient(pinging, "/ws/chat")
    try:
        assert isinstance(client.handshake, AcceptConnection)
        events = []
        while (event := client.next_event()) is not None:
            events.append(event)
    finally:
        client.close()
    assert isinstance(events[0], Ping)
    closes = [e for e in events if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [1008]


def test_pings_go_on_during_a_generation_between_whole_frames(pinging):
    text = "keep talking" * 5  # 3.6 s of real-time audio: about 18 ping intervals
    client = RawClient(pinging, "/ws/tts")
    audio, pings = bytearray(), 0
    try:
        client.send_text(json.dumps({"type": "speak", "text": text, "realtime": True}))
        while True:
            event = client.next_event()
            if isinstance(event, Ping):
                pings += 1
                client.sock.sendall(client.conn.send(event.response()))
            elif isinstance(event, BytesMessage):
                audio += event.data
            else:
                break
    finally:
        client.close()
    assert isinstance(event, TextMessage), event
    assert json.loads(event.data)["finish_reason"] == "stop"
    assert bytes(audio) == b"".join(tts.pcm_frames(text))
    assert pings >= 5


# --- /ws/tts ----------------------------------------------------------------------------


def speak(ws: websocket.WebSocket, text: str, realtime: bool) -> tuple[list, dict]:
    """(arrival time, frame) of each binary frame, and the closing text message."""
    send(ws, type="speak", text=text, realtime=realtime)
    frames = []
    while isinstance(data := ws.recv(), bytes):
        frames.append((time.monotonic(), data))
    return frames, json.loads(data)


def test_tts_streams_the_documented_number_of_bytes(server):
    text = "Hello, wörld! 你好 🚀"
    with connect(server, "/ws/tts") as ws:
        frames, end = speak(ws, text, realtime=False)
    expected = int(tts.SAMPLE_RATE * 0.06 * len(text) * 2)  # 60 ms a character
    assert expected == len(text) * 1920
    assert end == {"type": "end", "finish_reason": "stop", "bytes": expected,
                   "sample_rate": 16000}
    audio = b"".join(frame for _, frame in frames)
    assert len(audio) == expected
    assert audio == b"".join(tts.pcm_frames(text))
    assert {len(frame) for _, frame in frames} == {640}  # 20 ms at 16 kHz, 16-bit mono


def test_tts_of_distinct_cjk_characters_never_holds_the_loop(server):
    # Tones used to be cached per character: each new one was rendered in the serving
    # greenlet, and a non-realtime batch held the loop for tens of ms (loop_never_blocked
    # fails the test on gevent's report).
    text = "".join(chr(0x4E00 + i) for i in range(1000))
    with connect(server, "/ws/tts") as ws:
        frames, end = speak(ws, text, realtime=False)
    assert end["bytes"] == len(text) * 1920 == sum(len(frame) for _, frame in frames)


def test_tts_realtime_frames_arrive_spread_over_the_duration(server):
    text = "x" * 25  # 1.5 s of audio
    with connect(server, "/ws/tts") as ws:
        sent_at = time.monotonic()
        frames, end = speak(ws, text, realtime=True)
    assert end["bytes"] == len(text) * 1920
    first, last = frames[0][0], frames[-1][0]
    assert first - sent_at < 0.75
    assert last - first > 1.0  # frame i leaves at i * 20 ms: the last at 1.48 s


def test_tts_without_realtime_is_faster_than_real_time(server):
    text = "fast " * 40  # 12 s of audio
    with connect(server, "/ws/tts") as ws:
        began = time.monotonic()
        _, end = speak(ws, text, realtime=False)
        took = time.monotonic() - began
    assert end["finish_reason"] == "stop"
    assert took < 0.06 * len(text) / 2


def test_tts_cancel(server):
    with connect(server, "/ws/tts") as ws:
        send(ws, type="speak", text="a long sentence " * 20, realtime=True)
        received = sum(len(ws.recv()) for _ in range(5))
        send(ws, type="cancel")
        while isinstance(data := ws.recv(), bytes):
            received += len(data)
        end = json.loads(data)
        assert end == {"type": "end", "finish_reason": "cancelled", "bytes": received,
                       "sample_rate": 16000}
        assert received < 20 * 16 * 1920
        assert_silent(ws)
        frames, end = speak(ws, "again", realtime=False)
    assert end["finish_reason"] == "stop"
    assert sum(len(frame) for _, frame in frames) == 5 * 1920


@pytest.mark.parametrize(
    ("message", "param"),
    [
        pytest.param({"type": "speak"}, "text", id="no-text"),
        pytest.param({"type": "speak", "text": ["a"]}, "text", id="text-list"),
        pytest.param({"type": "speak", "text": ""}, "text", id="text-empty"),
        pytest.param({"type": "speak", "text": "a", "realtime": "yes"}, "realtime",
                     id="realtime-string"),
        pytest.param({"type": "prompt", "prompt": "wrong route"}, None, id="prompt-on-tts"),
    ],
)
def test_tts_bad_input(server, message, param):
    with connect(server, "/ws/tts") as ws:
        send(ws, **message)
        error = receive(ws)
        assert error["type"] == "error"
        assert error.get("param") == param
        _, end = speak(ws, "ok", realtime=False)
    assert end["bytes"] == 2 * 1920
