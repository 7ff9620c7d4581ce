"""A WebSocket message handler that raises, against the real server (tests/support/failing_app.py).

Before the session caught it, the exception reached Flask, whose 500 was written as HTTP onto
the upgraded socket: the client read garbage instead of a frame.
"""

from __future__ import annotations

import json

import websocket


def test_a_handler_exception_is_an_error_message_then_a_1011_close(failing_server):
    url = failing_server.url.replace("http://", "ws://") + "/test/ws/failing"
    ws = websocket.create_connection(url, timeout=10)
    try:
        ws.send(json.dumps({"type": "crash"}))
        assert json.loads(ws.recv()) == {"type": "error",
                                         "message": "the server failed to handle a message"}
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1011
        assert b"internal detail" not in frame.data
    finally:
        ws.close()
        ws.shutdown()
    assert "HTTP/1.1 500" not in failing_server.log()
