"""Clients that read a chat generation to its end across restarts, as a well-behaved client does.

Each transport's reader connects, reads tokens, and when the server ends the connection with a
restart notice (SSE `event: restart`, the NDJSON restart line, WebSocket close 1012) reconnects
with what it has (Last-Event-ID, or `last_event_id` in the WebSocket prompt) until the `end`.
`Reading` records every token and how each connection ended, so a test can count every token and
check that no connection was cut without a notice.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import websocket

from streaming.sse import SSEParser
from tests.support.clients import Stream

RESTART = "restart"  # the connection ended with a restart notice, then cleanly
END = "end"  # the generation's end arrived
CUT = "cut"  # the connection ended without either: what a restart must never do
REFUSED = "refused"  # nothing listened (a server between stop and start)

TOKENS, DELAY_MS = 60, 50
RECONNECT_SECONDS = 0.2  # a test need not wait the stream's retry (3 s)


@dataclass
class Reading:
    """What one client got: tokens in order, and how each connection ended."""

    transport: str
    prompt: str
    tokens: list[str] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)
    notices: list[tuple[float, str]] = field(default_factory=list)  # (arrival, reason)
    retry_fields: list[int | None] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def last_index(self) -> int | None:
        return len(self.tokens) - 1 if self.tokens else None


# An item a connection yields: ("token", index, text), ("restart", reason), ("end",).
Item = tuple


def _sse_items(url: str, reading: Reading, method: str) -> Iterator[Item]:
    headers = {} if reading.last_index is None else {"Last-Event-ID": str(reading.last_index)}
    query = f"prompt={reading.prompt}&tokens={TOKENS}&delay_ms={DELAY_MS}"
    if method == "GET":
        stream = Stream(url, f"/sse/chat?{query}", headers=headers, timeout=10)
    else:
        stream = Stream(url, "/api/chat", method="POST", timeout=10,
                        headers={**headers, "Accept": "text/event-stream"},
                        body={"prompt": reading.prompt, "tokens": TOKENS, "delay_ms": DELAY_MS})
    with stream:
        assert stream.status == 200, stream.read_all()
        parser = SSEParser()
        for _, chunk in stream.chunks():
            for event in parser.feed(chunk):
                if event.type == "message":
                    yield "token", int(event.last_event_id), event.data
                elif event.type == "restart":
                    reading.retry_fields.append(parser.retry)
                    yield "restart", json.loads(event.data)["reason"]
                elif event.type == "end":
                    yield ("end",)


def _ndjson_items(url: str, reading: Reading) -> Iterator[Item]:
    headers = {"Accept": "application/x-ndjson"}
    if reading.last_index is not None:
        headers["Last-Event-ID"] = str(reading.last_index)
    body = {"prompt": reading.prompt, "tokens": TOKENS, "delay_ms": DELAY_MS}
    with Stream(url, "/api/chat", method="POST", headers=headers, body=body, timeout=10) as stream:
        assert stream.status == 200, stream.read_all()
        pending = b""
        for _, chunk in stream.chunks():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in filter(None, lines):
                message = json.loads(line)
                if message["type"] == "token":
                    yield "token", message["index"], message["text"]
                elif message["type"] == "restart":
                    yield "restart", message["reason"]
                elif message["type"] == "end":
                    yield ("end",)


def _ws_items(url: str, reading: Reading) -> Iterator[Item]:
    ws = websocket.create_connection(url.replace("http://", "ws://") + "/ws/chat", timeout=10)
    try:
        prompt = {"type": "prompt", "prompt": reading.prompt, "tokens": TOKENS,
                  "delay_ms": DELAY_MS}
        if reading.last_index is not None:
            prompt["last_event_id"] = reading.last_index
        ws.send(json.dumps(prompt))
        while True:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(frame.data)
                if message["type"] == "token":
                    yield "token", message["index"], message["text"]
                elif message["type"] == "end":
                    yield ("end",)
                    return
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big")
                assert code == 1012, (code, frame.data)
                yield "restart", frame.data[2:].decode()
                return
    finally:
        ws.shutdown()


CONNECTIONS: dict[str, Callable[[str, Reading], Iterator[Item]]] = {
    "sse": lambda url, reading: _sse_items(url, reading, "GET"),
    "fetch-sse": lambda url, reading: _sse_items(url, reading, "POST"),
    "ndjson": _ndjson_items,
    "ws": _ws_items,
}


def read_to_end(url: str, reading: Reading, *, timeout: float = 60) -> Reading:
    """Read `reading.prompt`'s generation over `reading.transport` to its end, reconnecting."""
    connect = CONNECTIONS[reading.transport]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            reading.connected_at.append(time.monotonic())
            ending = CUT
            try:
                for item in connect(url, reading):
                    if item[0] == "token":
                        assert item[1] == len(reading.tokens), (reading.transport, item)
                        reading.tokens.append(item[2])
                    elif item[0] == "restart":
                        reading.notices.append((time.monotonic(), item[1]))
                        ending = RESTART
                    else:
                        reading.endings.append(END)
                        return reading
            except ConnectionRefusedError:
                ending = REFUSED
            except (http.client.HTTPException, OSError, websocket.WebSocketException):
                pass  # a cut: recorded as such
            reading.endings.append(ending)
            time.sleep(RECONNECT_SECONDS)
        raise AssertionError(f"{reading.transport}: no end within {timeout}s: {reading}")
    except BaseException as exc:  # handed to the test thread
        reading.error = exc
        return reading


def read_in_background(url: str, reading: Reading) -> threading.Thread:
    thread = threading.Thread(target=read_to_end, args=(url, reading), daemon=True)
    thread.start()
    return thread


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


NOTICES = frozenset({"restart", "reset", "overflow", "error"})  # from the server, not the stream


@dataclass
class Following:
    """What a resuming follower of an endless stream (a channel, a log, a task) got."""

    path: str
    events: list = field(default_factory=list)  # the stream's own events, with their ids
    restarts: list[str] = field(default_factory=list)  # reasons of the restart notices
    connections: int = 0
    error: BaseException | None = None


def follow(url: str, following: Following, done: Callable[[list], bool],
           timeout: float = 60) -> Following:
    """Read `following.path` like EventSource does, reconnecting with the last event's id, until
    `done(events)`; a 204 (a task's end already seen) also ends it."""
    deadline = time.monotonic() + timeout
    last_id: str | None = None
    try:
        while not done(following.events):
            assert time.monotonic() < deadline, f"{following.path}: not done: {following}"
            following.connections += 1
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with Stream(url, following.path, headers=headers, timeout=10) as stream:
                    if stream.status == 204:
                        return following
                    assert stream.status == 200, stream.read_all()
                    parser = SSEParser()
                    for _, chunk in stream.chunks():
                        for event in parser.feed(chunk):
                            if event.type == "restart":
                                following.restarts.append(json.loads(event.data)["reason"])
                            elif event.type not in NOTICES:
                                following.events.append(event)
                                last_id = event.last_event_id
                        if done(following.events):
                            return following
            except (http.client.HTTPException, OSError):
                pass
            time.sleep(RECONNECT_SECONDS)
        return following
    except BaseException as exc:  # handed to the test thread
        following.error = exc
        return following
