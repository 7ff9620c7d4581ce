"""The ordinary WebSocket client (`websocket-client`, which answers pings by itself) speaking
the app's JSON messages, for the integration tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import websocket

GENEROUS = 10  # seconds a client waits for anything that should take milliseconds


def ws_url(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


@contextmanager
def connect(server, path: str = "/ws/chat", **options) -> Iterator[websocket.WebSocket]:
    ws = websocket.create_connection(ws_url(server, path), timeout=GENEROUS, **options)
    try:
        yield ws
    finally:
        ws.close()
        ws.shutdown()  # close() leaves the socket open when the server closed first


def send(ws: websocket.WebSocket, **message) -> None:
    ws.send(json.dumps(message))


def receive(ws: websocket.WebSocket) -> dict:
    data = ws.recv()
    assert isinstance(data, str), f"expected a text frame, got {data!r:.80}"
    return json.loads(data)


def until_end(ws: websocket.WebSocket) -> list[dict]:
    messages = [receive(ws)]
    while messages[-1]["type"] != "end":
        messages.append(receive(ws))
    return messages
