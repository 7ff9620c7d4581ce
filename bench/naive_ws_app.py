"""Tiny flask-sock WebSocket app: the naive baseline for ``/ws/chat``.

Protocol (JSON text frames)::

    client -> {"type": "prompt", "prompt": "...", "tokens": N, "delay_ms": D}
    server -> {"type": "start", "model": "demo", "tokens": N}
    server -> {"type": "token", "index": i, "text": " tok<i>"}   (N times)
    server -> {"type": "end", "finish_reason": "stop", "tokens": N}

One send per token, ``time.sleep`` between tokens (gevent-patched under the
gevent worker), no cancel handling: that is the naive baseline.

Test hook: a prompt with ``"cancellable": true`` makes it poll the socket for
``{"type": "cancel"}`` between tokens and then end with
``{"type": "end", "finish_reason": "cancelled", ...}``, only so that
``loadgen cancel`` has something to measure. It is opt-in because a
``receive(timeout=0)`` per token costs ~4x in tokens/s and would make the
baseline look worse than a plain tutorial app.

    gunicorn -k gevent -w 1 --worker-connections 20000 -b 127.0.0.1:PORT \
        bench.naive_ws_app:app
"""

import json
import time

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@sock.route("/ws/chat")
def ws_chat(ws) -> None:
    msg = json.loads(ws.receive())
    n = int(msg.get("tokens", 100))
    delay = float(msg.get("delay_ms", 20)) / 1000.0
    cancellable = bool(msg.get("cancellable"))
    ws.send(json.dumps({"type": "start", "model": "demo", "tokens": n}))
    sent = 0
    reason = "stop"
    for i in range(n):
        if delay:
            time.sleep(delay)
        if cancellable:
            pending = ws.receive(timeout=0)  # non-blocking: None when nothing arrived
            if pending is not None and json.loads(pending).get("type") == "cancel":
                reason = "cancelled"
                break
        ws.send(json.dumps({"type": "token", "index": i, "text": f" tok{i}"}))
        sent += 1
    ws.send(json.dumps({"type": "end", "finish_reason": reason, "tokens": sent}))
